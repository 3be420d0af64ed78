//! The command line of `hlsmux-deploy`, and what each command does.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::inventory::{self, Inventory, InventoryError, MacAddress, Pi, PiName, PiSerial};
use crate::render::{self, WriteError};
use crate::secrets::{Secrets, SecretsError};

#[derive(Parser, Debug)]
#[command(
    name = "hlsmux-deploy",
    version,
    about = "Add Pis to the hlsmux pool and render every file the pool needs from one inventory",
    after_help = "Examples:\n  hlsmux-deploy add-pi --name HLSPi2 --serial 1a2b3c4d --mac b8:27:eb:12:34:57 --ip 192.168.1.11 --muxid 2\n  hlsmux-deploy render --out rendered\n  hlsmux-deploy plan --out rendered"
)]
pub struct Cli {
    /// The inventory file.
    #[arg(
        long,
        global = true,
        env = "HLSMUX_INVENTORY",
        default_value = "inventory.toml"
    )]
    pub inventory: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a new Pi against the inventory and add it.
    #[command(
        after_help = "Example:\n  hlsmux-deploy add-pi --name HLSPi2 --serial 1a2b3c4d --mac b8:27:eb:12:34:57 --ip 192.168.1.11 --muxid 2 --hwdec"
    )]
    AddPi {
        /// Host name.
        #[arg(long)]
        name: PiName,
        /// The last 8 hex digits of `Serial` in the Pi's /proc/cpuinfo.
        #[arg(long)]
        serial: PiSerial,
        #[arg(long)]
        mac: MacAddress,
        /// Its fixed address, inside the subnet and outside the DHCP range.
        #[arg(long)]
        ip: Ipv4Addr,
        /// The muxer it serves.
        #[arg(long)]
        muxid: u16,
        /// Decode inputs in hardware (`muxhwdec=1`).
        #[arg(long)]
        hwdec: bool,
        /// GPU memory in MB.
        #[arg(long, default_value_t = 128)]
        gpu_mem: u32,
    },
    /// Remove a Pi from the inventory (render again to drop its files).
    #[command(after_help = "Example:\n  hlsmux-deploy remove-pi HLSPi2")]
    RemovePi { name: String },
    /// Render every file from the inventory into a directory, replacing an
    /// earlier render there.
    #[command(after_help = "Example:\n  hlsmux-deploy render --out rendered")]
    Render {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the commands that put a render in place on the NAS (nothing
    /// is run).
    #[command(after_help = "Example:\n  hlsmux-deploy plan --out rendered > install.sh")]
    Plan {
        /// Where `render` wrote the files.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

pub fn run(cli: Cli) -> Result<(), DeployError> {
    match cli.command {
        Command::AddPi {
            name,
            serial,
            mac,
            ip,
            muxid,
            hwdec,
            gpu_mem,
        } => {
            let pi = Pi {
                name,
                serial,
                mac,
                ip,
                muxer_id: muxid,
                hwdec,
                gpu_mem,
            };
            inventory::add_pi(&cli.inventory, &pi)?;
            eprintln!(
                "added {} (muxer {}, {}) to {}; now `hlsmux-deploy render --out DIR`",
                pi.name,
                pi.muxer_id,
                pi.ip,
                cli.inventory.display()
            );
        }
        Command::RemovePi { name } => {
            inventory::remove_pi(&cli.inventory, &name)?;
            eprintln!(
                "removed {name} from {}; render again to drop its files",
                cli.inventory.display()
            );
        }
        Command::Render { out } => {
            let inventory = Inventory::load(&cli.inventory)?;
            let secrets_path = inventory.secrets_path(&cli.inventory);
            let mut secrets = Secrets::load_or_create(&secrets_path)?;
            if let Some(gateway) = &inventory.gateway {
                secrets.ensure_gateway_tokens(
                    gateway.tokens.iter().map(|token| token.name.as_str()),
                    &secrets_path,
                )?;
            }
            let files = render::render(&inventory, &secrets);
            render::write_all(&out, &files)?;
            eprintln!(
                "rendered {} files for {} Pis into {}",
                files.len(),
                inventory.pis.len(),
                out.display()
            );
        }
        Command::Plan { out } => {
            let inventory = Inventory::load(&cli.inventory)?;
            print!("{}", crate::plan::plan(&inventory, &out));
        }
    }
    Ok(())
}

//! The inventory: one TOML file describing the site (the NAS, the LAN, the
//! broker) and every Pi of the pool. Everything `render` writes comes from
//! it, so it is parsed into checked values once, and a bad inventory is
//! refused with the rule it breaks before anything is written.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use hlsmux_protocol::{MuxerId, Namespace, StreamMaxAge};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

mod error;
mod names;

pub use error::InventoryError;
pub use names::{MacAddress, PiName, PiSerial};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub site: Site,
    #[serde(default, rename = "pi")]
    pub pis: Vec<Pi>,
    /// The HTTP gateway, if the site runs one.
    #[serde(default)]
    pub gateway: Option<Gateway>,
}

/// `hlsmux-gateway`: where it listens, and who may call it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Loopback by default: TLS is the reverse proxy's in front of it.
    #[serde(default = "default_gateway_listen")]
    pub listen: std::net::SocketAddr,
    #[serde(default, rename = "token")]
    pub tokens: Vec<GatewayToken>,
}

/// One API token; the token itself and its webhook secret are made on
/// first render into the secrets file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayToken {
    pub name: String,
    /// `submit`, `read`, `cancel`, `admin`.
    pub rights: Vec<String>,
    /// Where its webhooks may go (`host` or `host:port`).
    #[serde(default)]
    pub callback_hosts: Vec<String>,
}

fn default_gateway_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8480))
}

/// What every Pi shares: the NAS that netboots it and holds the media, the
/// LAN, the broker and the monitoring.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The NAS: DHCP, TFTP and NFS server, and by default the broker.
    pub nas_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub router: Ipv4Addr,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// The addresses DHCP hands out to other machines; no Pi's fixed
    /// address may be inside.
    pub dhcp_range: [Ipv4Addr; 2],
    pub tftp_root: PathBuf,
    /// The directory holding one NFS root per Pi, named after it.
    pub nfs_roots: PathBuf,
    /// The Pi root every new Pi's is copied from (a directory in
    /// `nfs_roots`).
    pub template_root: String,
    /// The shared media and output roots: exported by the NAS and mounted
    /// at the same paths on every Pi.
    pub media_root: PathBuf,
    pub output_root: PathBuf,
    pub broker: Broker,
    /// Where Prometheus reads the workers' file-SD targets (one file per Pi).
    pub prometheus_targets_dir: PathBuf,
    #[serde(default = "default_namespace")]
    pub namespace: Namespace,
    #[serde(default = "default_history_max_age")]
    pub history_max_age: StreamMaxAge,
    #[serde(default = "default_history_max_bytes")]
    pub history_max_bytes: u64,
    /// The broker passwords, created on first render (mode 0600); relative
    /// to the inventory file.
    #[serde(default = "default_secrets")]
    pub secrets: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    /// Host names or addresses of the broker's nodes (one, or three for a
    /// cluster); workers and the submit tool try them in order.
    pub hosts: Vec<String>,
    #[serde(default = "default_amqp_port")]
    pub port: u16,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    #[serde(default = "default_worker_user")]
    pub worker_user: String,
    #[serde(default = "default_submit_user")]
    pub submit_user: String,
    #[serde(default = "default_operator_user")]
    pub operator_user: String,
}

/// One Pi of the pool.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pi {
    pub name: PiName,
    pub serial: PiSerial,
    pub mac: MacAddress,
    pub ip: Ipv4Addr,
    pub muxer_id: u16,
    #[serde(default)]
    pub hwdec: bool,
    #[serde(default = "default_gpu_mem")]
    pub gpu_mem: u32,
}

impl Pi {
    /// The muxer ID, checked by [`Inventory::check`].
    pub fn muxer(&self) -> MuxerId {
        MuxerId::new(self.muxer_id).unwrap_or_else(|_| unreachable!("checked"))
    }
}

fn default_namespace() -> Namespace {
    Namespace::default()
}
fn default_history_max_age() -> StreamMaxAge {
    hlsmux_protocol::HistoryRetention::default().max_age
}
fn default_history_max_bytes() -> u64 {
    hlsmux_protocol::HistoryRetention::default().max_bytes
}
fn default_secrets() -> PathBuf {
    PathBuf::from("hlsmux-secrets.toml")
}
fn default_amqp_port() -> u16 {
    5672
}
fn default_vhost() -> String {
    "hlsmux".into()
}
fn default_worker_user() -> String {
    "hlsmux-worker".into()
}
fn default_submit_user() -> String {
    "hlsmux-submit".into()
}
fn default_operator_user() -> String {
    "hlsmux-operator".into()
}
fn default_gpu_mem() -> u32 {
    128
}

impl Inventory {
    /// Blocking. Reads and checks the inventory at `path`.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let text = read(path)?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let inventory: Inventory = toml::from_str(text).map_err(|e| InventoryError::Malformed {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        inventory.check()?;
        Ok(inventory)
    }

    /// The rules no single value can check: each Pi's address fits the
    /// site, and nothing two Pis must not share is shared.
    pub fn check(&self) -> Result<(), InventoryError> {
        let site = &self.site;
        let [first, last] = site.dhcp_range;
        for (what, ip) in [
            ("NAS address", site.nas_ip),
            ("router", site.router),
            ("DHCP range start", first),
            ("DHCP range end", last),
        ] {
            if !site.subnet.contains(&ip) {
                return Err(InventoryError::BadSite {
                    what,
                    detail: format!("{ip} is outside the subnet {}", site.subnet),
                });
            }
        }
        if first > last {
            return Err(InventoryError::BadSite {
                what: "DHCP range",
                detail: format!("{first}-{last} ends before it starts"),
            });
        }
        if let Some(gateway) = &self.gateway {
            let mut names = std::collections::HashSet::new();
            for token in &gateway.tokens {
                let plain = !token.name.is_empty()
                    && token
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !plain || !names.insert(token.name.as_str()) {
                    return Err(InventoryError::BadSite {
                        what: "gateway token",
                        detail: format!(
                            "{:?}: each token needs its own name of letters, digits, - and _",
                            token.name
                        ),
                    });
                }
                if let Some(right) = token
                    .rights
                    .iter()
                    .find(|r| !["submit", "read", "cancel", "admin"].contains(&r.as_str()))
                {
                    return Err(InventoryError::BadSite {
                        what: "gateway token",
                        detail: format!(
                            "{}: right {right:?}: use submit, read, cancel or admin",
                            token.name
                        ),
                    });
                }
            }
        }
        if site.broker.hosts.is_empty() {
            return Err(InventoryError::BadSite {
                what: "broker",
                detail: "name at least one host".into(),
            });
        }
        let users = [
            &site.broker.worker_user,
            &site.broker.submit_user,
            &site.broker.operator_user,
        ];
        if users
            .iter()
            .enumerate()
            .any(|(i, user)| users[..i].contains(user))
        {
            return Err(InventoryError::BadSite {
                what: "broker users",
                detail: "worker_user, submit_user and operator_user must differ: each has its own rights".into(),
            });
        }
        let mut seen: HashMap<(&'static str, String), String> = HashMap::new();
        for pi in &self.pis {
            let name = pi.name.to_string();
            if !site.subnet.contains(&pi.ip) {
                return Err(InventoryError::OutsideSubnet {
                    pi: name,
                    ip: pi.ip,
                    subnet: site.subnet,
                });
            }
            if (first..=last).contains(&pi.ip) {
                return Err(InventoryError::InsideDhcpRange {
                    pi: name,
                    ip: pi.ip,
                    first,
                    last,
                });
            }
            for (role, reserved) in [
                ("NAS", site.nas_ip),
                ("router", site.router),
                ("subnet's network", site.subnet.network()),
                ("subnet's broadcast", site.subnet.broadcast()),
            ] {
                if pi.ip == reserved {
                    return Err(InventoryError::ReservedAddress {
                        pi: name,
                        ip: pi.ip,
                        role,
                    });
                }
            }
            if pi.muxer_id == 0 {
                return Err(InventoryError::BadMuxerId { pi: name });
            }
            if !(16..=944).contains(&pi.gpu_mem) {
                return Err(InventoryError::BadGpuMem {
                    pi: name,
                    value: pi.gpu_mem,
                });
            }
            for key in [
                ("name", pi.name.to_string().to_ascii_lowercase()),
                ("serial", pi.serial.to_string()),
                ("MAC address", pi.mac.to_string()),
                ("IP", pi.ip.to_string()),
                ("muxer ID", pi.muxer_id.to_string()),
            ] {
                if let Some(first) = seen.get(&key) {
                    return Err(InventoryError::Duplicate {
                        what: key.0,
                        value: key.1,
                        first: first.clone(),
                        second: name,
                    });
                }
                seen.insert(key, name.clone());
            }
        }
        Ok(())
    }

    /// The secrets file's path, for an inventory read from `inventory_path`.
    pub fn secrets_path(&self, inventory_path: &Path) -> PathBuf {
        let base = inventory_path.parent().unwrap_or(Path::new("."));
        base.join(&self.site.secrets)
    }
}

/// Blocking. Appends `pi` to the inventory file at `path`, after checking
/// that the inventory with it is valid. The file's text, comments and all,
/// is kept; the new Pi is added as one `[[pi]]` table at its end.
pub fn add_pi(path: &Path, pi: &Pi) -> Result<(), InventoryError> {
    let text = read(path)?;
    let table = toml::to_string(pi).map_err(|e| InventoryError::Malformed {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let separator = if text.ends_with('\n') { "\n" } else { "\n\n" };
    let updated = format!("{text}{separator}[[pi]]\n{table}");
    Inventory::parse(&updated, path)?;
    write(path, &updated)
}

/// Blocking. Removes the Pi named `name` (its whole `[[pi]]` table) from
/// the inventory file at `path`.
pub fn remove_pi(path: &Path, name: &str) -> Result<(), InventoryError> {
    let text = read(path)?;
    let mut kept = String::with_capacity(text.len());
    let mut removed = false;
    for (index, chunk) in text.split("[[pi]]").enumerate() {
        if index == 0 {
            kept.push_str(chunk);
            continue;
        }
        // A chunk is one Pi's table up to the next `[[pi]]`.
        let table: Result<Pi, _> = toml::from_str(chunk);
        if table.is_ok_and(|pi| pi.name.as_str() == name) {
            removed = true;
            continue;
        }
        kept.push_str("[[pi]]");
        kept.push_str(chunk);
    }
    if !removed {
        return Err(InventoryError::UnknownPi(name.to_owned()));
    }
    let kept = format!("{}\n", kept.trim_end());
    Inventory::parse(&kept, path)?;
    write(path, &kept)
}

fn read(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|e| InventoryError::Unreadable {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), InventoryError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| InventoryError::Unwritable {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// A small site without Pis, for the tests of this crate.
#[cfg(test)]
pub(crate) const TEST_SITE: &str = r#"
[site]
nas_ip = "192.168.1.2"
subnet = "192.168.1.0/24"
router = "192.168.1.1"
dhcp_range = ["192.168.1.100", "192.168.1.199"]
tftp_root = "/srv/tftp"
nfs_roots = "/srv/nfs"
template_root = "pi-template"
media_root = "/srv/hlsmux/media"
output_root = "/srv/hlsmux/output"
prometheus_targets_dir = "/etc/prometheus/hlsmux-targets"

[site.broker]
hosts = ["192.168.1.2"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn pi(name: &str, serial: &str, mac: &str, ip: &str, muxer: u16) -> String {
        format!(
            "\n[[pi]]\nname = \"{name}\"\nserial = \"{serial}\"\nmac = \"{mac}\"\nip = \"{ip}\"\nmuxer_id = {muxer}\n"
        )
    }

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(text, Path::new("inventory.toml"))
    }

    #[test]
    fn a_small_inventory_parses_with_defaults() {
        let text = format!(
            "{TEST_SITE}{}",
            pi("HLSPi1", "1A2B3C4D", "B8:27:EB:00:00:01", "192.168.1.10", 1)
        );
        let inventory = parse(&text).expect("valid");
        let pi = &inventory.pis[0];
        assert_eq!(pi.serial.as_str(), "1a2b3c4d", "kept in lower case");
        assert_eq!(pi.mac.as_str(), "b8:27:eb:00:00:01");
        assert_eq!(pi.gpu_mem, 128);
        assert!(!pi.hwdec);
        assert_eq!(inventory.site.broker.vhost, "hlsmux");
        assert_eq!(inventory.site.history_max_age.as_str(), "7D");
    }

    #[test]
    fn each_bad_inventory_gets_its_own_error() {
        let one = pi("HLSPi1", "1a2b3c4d", "b8:27:eb:00:00:01", "192.168.1.10", 1);
        let cases = [
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.11", 1),
                "muxer ID 1 is used by both HLSPi1 and HLSPi2",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:01", "192.168.1.11", 2),
                "MAC address b8:27:eb:00:00:01 is used by both",
            ),
            (
                pi("HLSPi2", "1A2B3C4D", "b8:27:eb:00:00:02", "192.168.1.11", 2),
                "serial 1a2b3c4d is used by both",
            ),
            (
                pi("hlspi1", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.11", 2),
                "name hlspi1 is used by both",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.10", 2),
                "IP 192.168.1.10 is used by both",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:0", "192.168.1.11", 2),
                "MAC address \"b8:27:eb:00:00:0\" is not six",
            ),
            (
                pi("HLSPi2", "5e6f7a8", "b8:27:eb:00:00:02", "192.168.1.11", 2),
                "is not 8 hex digits",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.2.11", 2),
                "HLSPi2: IP 192.168.2.11 is outside the site's subnet 192.168.1.0/24",
            ),
            (
                pi(
                    "HLSPi2",
                    "5e6f7a8b",
                    "b8:27:eb:00:00:02",
                    "192.168.1.150",
                    2,
                ),
                "inside the DHCP range",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.2", 2),
                "is the NAS's address",
            ),
            (
                pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.11", 0),
                "muxer ID 0 is not valid",
            ),
            (
                "[gateway]\n[[gateway.token]]\nname = \"cms\"\nrights = [\"root\"]\n".to_owned(),
                "cms: right \"root\": use submit, read, cancel or admin",
            ),
            (
                "[gateway]\n[[gateway.token]]\nname = \"cms\"\nrights = []\n[[gateway.token]]\nname = \"cms\"\nrights = []\n".to_owned(),
                "\"cms\": each token needs its own name",
            ),
            (
                "[gateway]\n[[gateway.token]]\nname = \"../x\"\nrights = []\n".to_owned(),
                "\"../x\": each token needs its own name",
            ),
        ];
        for (second, expected) in cases {
            let error = parse(&format!("{TEST_SITE}{one}{second}")).expect_err(expected);
            assert!(
                error.to_string().contains(expected),
                "expected {expected:?}, got: {error}"
            );
        }
    }

    #[test]
    fn adding_and_removing_pis_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inventory.toml");
        let start = format!(
            "# my site\n{TEST_SITE}{}",
            pi("HLSPi1", "1a2b3c4d", "b8:27:eb:00:00:01", "192.168.1.10", 1)
        );
        std::fs::write(&path, &start).expect("write");
        let second: Pi = toml::from_str(
            &pi("HLSPi2", "5e6f7a8b", "b8:27:eb:00:00:02", "192.168.1.11", 2).replace("[[pi]]", ""),
        )
        .expect("pi");
        add_pi(&path, &second).expect("added");
        let inventory = Inventory::load(&path).expect("valid");
        assert_eq!(inventory.pis.len(), 2);
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .starts_with("# my site\n")
        );

        let error = add_pi(&path, &second).expect_err("twice");
        assert!(error.to_string().contains("used by both"), "{error}");

        remove_pi(&path, "HLSPi1").expect("removed");
        let inventory = Inventory::load(&path).expect("valid");
        let names: Vec<&str> = inventory.pis.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["HLSPi2"]);
        let error = remove_pi(&path, "HLSPi1").expect_err("gone");
        assert!(matches!(error, InventoryError::UnknownPi(_)));
    }
}

//! Render: every file the pool needs, from the inventory alone. Pure: the
//! same inventory and secrets give the same files, byte for byte; only
//! [`write_all`] touches the disk.

mod broker;
mod cluster;
mod gateway;
mod header;
mod monitoring;
mod netboot;
mod services;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use broker::{password_hash_with_salt, worker_amqp_url};
pub use header::GENERATED;

use crate::inventory::Inventory;
use crate::secrets::Secrets;

/// Marks an output directory as hlsmux-deploy's, so `render` may replace it.
pub const MARKER: &str = ".hlsmux-deploy";

/// One rendered file, its path relative to the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub contents: String,
    /// Holds a secret: written with mode 0600.
    pub private: bool,
}

impl RenderedFile {
    fn public(path: impl Into<PathBuf>, contents: String) -> Self {
        Self {
            path: path.into(),
            contents,
            private: false,
        }
    }

    fn private(path: impl Into<PathBuf>, contents: String) -> Self {
        Self {
            path: path.into(),
            contents,
            private: true,
        }
    }
}

/// Every file, in path order.
pub fn render(inventory: &Inventory, secrets: &Secrets) -> Vec<RenderedFile> {
    let site = &inventory.site;
    let mut files = vec![
        RenderedFile::public("nas/dhcpd.conf", netboot::dhcpd_conf(inventory)),
        RenderedFile::public("nas/exports", netboot::exports(inventory)),
        RenderedFile::public("nas/nfs-firewall.rules", netboot::firewall_rules(inventory)),
        RenderedFile::public(
            "pi-root/etc/systemd/system/hlsmux-worker.service",
            services::worker_unit(site),
        ),
        RenderedFile::public(
            "pi-root/etc/logrotate.d/hlsmux-worker",
            services::logrotate(),
        ),
        RenderedFile::private(
            "pi-root/etc/hlsmux/worker.toml",
            services::worker_config(site, secrets),
        ),
        RenderedFile::public("pi-root/etc/hlsmux/fstab", services::fstab(site)),
        RenderedFile::public(
            "prometheus/prometheus.yml",
            monitoring::prometheus_yml(site, inventory.gateway.as_ref()),
        ),
        RenderedFile::public(
            PathBuf::from("prometheus").join(monitoring::ALERTS_FILE),
            monitoring::alerts_yml(),
        ),
        RenderedFile::private(
            "rabbitmq/definitions.json",
            broker::definitions_json(inventory, secrets),
        ),
        RenderedFile::public("rabbitmq/rabbitmq.conf", cluster::rabbitmq_conf(site)),
        RenderedFile::private("rabbitmq/erlang.cookie", cluster::erlang_cookie(secrets)),
        RenderedFile::private("submit/hlsmux.env", services::submit_env(site, secrets)),
        RenderedFile::private("operator/hlsmux.env", services::operator_env(site, secrets)),
    ];
    if let Some(gateway) = &inventory.gateway {
        files.push(RenderedFile::public(
            "gateway/hlsmux-gateway.service",
            gateway::unit(site),
        ));
        files.push(RenderedFile::private(
            "gateway/gateway.env",
            gateway::env(site, gateway, secrets),
        ));
        files.push(RenderedFile::private(
            "gateway/gateway-tokens.toml",
            gateway::token_file(gateway, secrets),
        ));
        files.push(RenderedFile::private(
            "gateway/tokens.txt",
            gateway::tokens_to_hand_out(gateway, secrets),
        ));
    }
    if let Some(advanced) = cluster::advanced_config(site) {
        files.push(RenderedFile::public("rabbitmq/advanced.config", advanced));
    }
    if let Some(env) = cluster::rabbitmq_env(site) {
        files.push(RenderedFile::public("rabbitmq/rabbitmq-env.conf", env));
    }
    for pi in &inventory.pis {
        let boot = PathBuf::from("tftp").join(pi.serial.as_str());
        files.push(RenderedFile::public(
            boot.join("cmdline.txt"),
            netboot::cmdline_txt(site, pi),
        ));
        files.push(RenderedFile::public(
            boot.join("config.txt"),
            netboot::config_txt(pi),
        ));
        files.push(RenderedFile::public(
            PathBuf::from("prometheus/targets").join(format!("{}.yml", pi.name)),
            monitoring::target(pi),
        ));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{0} exists, is not empty and was not rendered by hlsmux-deploy: pick an empty or new directory"
    )]
    NotOurs(PathBuf),
    #[error("cannot write {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

/// Blocking. Writes `files` into `out`, replacing what an earlier render
/// left there, so a removed Pi leaves no file behind.
pub fn write_all(out: &Path, files: &[RenderedFile]) -> Result<(), WriteError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| WriteError::Io {
            path,
            detail: e.to_string(),
        }
    };
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty && !out.join(MARKER).exists() {
            return Err(WriteError::NotOurs(out.to_owned()));
        }
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut listing = BTreeMap::new();
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mode = if file.private { 0o600 } else { 0o644 };
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io(&path))?;
        handle
            .write_all(file.contents.as_bytes())
            .map_err(io(&path))?;
        listing.insert(file.path.display().to_string(), mode);
    }
    let marker: String = listing
        .iter()
        .map(|(path, mode)| format!("{mode:o} {path}\n"))
        .collect();
    std::fs::write(out.join(MARKER), marker).map_err(io(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
        files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("{path} rendered"))
    }

    #[test]
    fn a_three_node_broker_gives_every_program_every_node() {
        let site = crate::inventory::TEST_SITE.replace(
            r#"hosts = ["192.168.1.2"]"#,
            r#"hosts = ["nas1", "nas2", "nas3"]"#,
        );
        let inventory = Inventory::parse(&site, Path::new("inventory.toml")).expect("valid");
        let secrets = Secrets {
            worker_password: "w".into(),
            submit_password: "s".into(),
            operator_password: "o".into(),
            erlang_cookie: "COOKIE".into(),
            gateway_tokens: BTreeMap::new(),
        };
        let files = render(&inventory, &secrets);
        let conf = &file(&files, "rabbitmq/rabbitmq.conf").contents;
        for expected in [
            "cluster_formation.peer_discovery_backend = classic_config",
            "cluster_formation.classic_config.nodes.1 = rabbit@nas1",
            "cluster_formation.classic_config.nodes.3 = rabbit@nas3",
            "cluster_partition_handling = pause_minority",
        ] {
            assert!(conf.contains(expected), "{expected} in {conf}");
        }
        let advanced = &file(&files, "rabbitmq/advanced.config").contents;
        assert!(advanced.contains("{quorum_cluster_size, 3}"), "{advanced}");
        let cookie = file(&files, "rabbitmq/erlang.cookie");
        assert!(cookie.private && cookie.contents == "COOKIE");
        assert!(
            !files
                .iter()
                .any(|f| f.path == Path::new("rabbitmq/rabbitmq-env.conf")),
            "host names are short node names"
        );
        let settings = &file(&files, "pi-root/etc/hlsmux/worker.toml").contents;
        let url = settings
            .lines()
            .find_map(|l| l.strip_prefix("amqp_url = "))
            .expect("amqp_url")
            .trim_matches('"');
        let urls = hlsmux_amqp::AmqpUrls::parse(url).expect("the worker reads it");
        assert_eq!(urls.len(), 3);
        assert!(file(&files, "pi-root/etc/hlsmux/worker.toml").private);
        let prometheus = &file(&files, "prometheus/prometheus.yml").contents;
        assert!(
            prometheus.contains(r#"targets: ["nas1:15692", "nas2:15692", "nas3:15692"]"#),
            "{prometheus}"
        );
        assert!(
            !files.iter().any(|f| f.path.starts_with("tftp")),
            "no Pi, no boot files"
        );
        assert!(
            !file(&files, "nas/exports")
                .contents
                .contains("/srv/hlsmux/media")
        );
    }

    #[test]
    fn a_cluster_of_addresses_uses_long_node_names_and_one_node_no_cluster() {
        let secrets = Secrets {
            worker_password: "w".into(),
            submit_password: "s".into(),
            operator_password: "o".into(),
            erlang_cookie: "COOKIE".into(),
            gateway_tokens: BTreeMap::new(),
        };
        let addresses = crate::inventory::TEST_SITE.replace(
            r#"hosts = ["192.168.1.2"]"#,
            r#"hosts = ["192.168.1.2", "192.168.1.3", "192.168.1.4"]"#,
        );
        let inventory = Inventory::parse(&addresses, Path::new("inventory.toml")).expect("valid");
        let files = render(&inventory, &secrets);
        let env = &file(&files, "rabbitmq/rabbitmq-env.conf").contents;
        assert!(env.contains("USE_LONGNAME=true"), "{env}");
        let conf = &file(&files, "rabbitmq/rabbitmq.conf").contents;
        assert!(conf.contains("nodes.2 = rabbit@192.168.1.3"), "{conf}");

        let one = Inventory::parse(crate::inventory::TEST_SITE, Path::new("inventory.toml"))
            .expect("valid");
        let files = render(&one, &secrets);
        let conf = &file(&files, "rabbitmq/rabbitmq.conf").contents;
        assert!(!conf.contains("cluster_formation"), "{conf}");
        assert!(
            !files
                .iter()
                .any(|f| f.path == Path::new("rabbitmq/advanced.config"))
        );
        assert!(
            !files
                .iter()
                .any(|f| f.path == Path::new("rabbitmq/rabbitmq-env.conf"))
        );
    }
}

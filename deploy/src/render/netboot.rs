//! What netboots a Pi and lets it reach the NAS: the DHCP host blocks, the
//! boot files in its TFTP serial directory, the NFS exports and the
//! firewall rules admitting it to NFS.

use std::fmt::Write;

use crate::inventory::{Inventory, Pi, Site};

use super::header::GENERATED;

/// The kernel command line: root on NFS (the Pi's own root on the NAS),
/// and the hlsmux boot options the worker reads (`muxid=`, `muxhwdec=1`).
/// No `elevator=`: Linux has ignored it since 5.0.
pub fn cmdline_txt(site: &Site, pi: &Pi) -> String {
    let mut line = format!(
        "console=serial0,115200 console=tty1 root=/dev/nfs nfsroot={}:{}/{},vers=3 rw ip=dhcp rootwait muxid={}",
        site.nas_ip,
        site.nfs_roots.display(),
        pi.name,
        pi.muxer_id
    );
    if pi.hwdec {
        line.push_str(" muxhwdec=1");
    }
    line.push('\n');
    line
}

/// Additions to the Pi's `config.txt`: the GPU's memory split (the
/// hardware encoder and decoder allocate from it). Under `[all]`: appended
/// after the root's own `config.txt`, they would otherwise fall under its
/// last conditional section (Raspberry Pi OS ends with `[all]`, but a
/// template's may not).
pub fn config_txt(pi: &Pi) -> String {
    format!(
        "# {GENERATED}\n# {} (muxer {})\n[all]\ngpu_mem={}\n",
        pi.name, pi.muxer_id, pi.gpu_mem
    )
}

/// What option 43 must hold for a Pi's boot ROM to take the offer. Three
/// trailing spaces: the Pi 3B's ROM miscounts the string's length and
/// matches only with them; later boards find the string either way.
/// Raspberry Pi's documentation, boot-net.adoc, "Known Problems":
/// "The "Raspberry Pi Boot   " string in the DHCP reply requires the extra
/// three spaces due to an error calculating the string length. Fixed in
/// Raspberry Pi 3 Model B+".
pub const PI_BOOT_VENDOR_OPTION: &str = "Raspberry Pi Boot   ";

/// A complete ISC DHCP server configuration: the subnet with its dynamic
/// range, and one fixed-address host per Pi with what its network boot
/// asks for (the TFTP server, and the vendor option the Pi's bootloader
/// looks for before it trusts a PXE offer).
pub fn dhcpd_conf(inventory: &Inventory) -> String {
    let site = &inventory.site;
    let mut text = format!("# {GENERATED}\n\nauthoritative;\n\n");
    let [first, last] = site.dhcp_range;
    let _ = writeln!(
        text,
        "subnet {} netmask {} {{\n  range {first} {last};\n  option routers {};",
        site.subnet.network(),
        site.subnet.netmask(),
        site.router
    );
    if !site.dns.is_empty() {
        let servers: Vec<String> = site.dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(text, "  option domain-name-servers {};", servers.join(", "));
    }
    text.push_str("}\n");
    for pi in &inventory.pis {
        let _ = write!(
            text,
            "\n# {name}: muxer {muxer}{hwdec}\nhost {name} {{\n  hardware ethernet {mac};\n  fixed-address {ip};\n  option host-name \"{name}\";\n  next-server {nas};\n  option tftp-server-name \"{nas}\";\n  option vendor-class-identifier \"PXEClient\";\n  option vendor-encapsulated-options \"{PI_BOOT_VENDOR_OPTION}\";\n}}\n",
            name = pi.name,
            muxer = pi.muxer_id,
            hwdec = if pi.hwdec { ", hardware decoding" } else { "" },
            mac = pi.mac,
            ip = pi.ip,
            nas = site.nas_ip,
        );
    }
    text
}

/// `/etc/exports` lines: each Pi's root to that Pi alone, and the media
/// and output roots to the Pis of the pool.
pub fn exports(inventory: &Inventory) -> String {
    let site = &inventory.site;
    let mut text = format!("# {GENERATED}\n");
    for pi in &inventory.pis {
        let _ = writeln!(
            text,
            "{}/{} {}(rw,sync,no_subtree_check,no_root_squash)",
            site.nfs_roots.display(),
            pi.name,
            pi.ip
        );
    }
    if !inventory.pis.is_empty() {
        for root in [&site.media_root, &site.output_root] {
            let clients: Vec<String> = inventory
                .pis
                .iter()
                .map(|pi| format!("{}(rw,sync,no_subtree_check)", pi.ip))
                .collect();
            let _ = writeln!(text, "{} {}", root.display(), clients.join(" "));
        }
    }
    text
}

/// An `iptables-restore --noflush` file admitting each Pi to the NAS's
/// NFS services (portmapper 111, nfsd 2049, mountd on its fixed port).
pub fn firewall_rules(inventory: &Inventory) -> String {
    let mut text = format!(
        "# {GENERATED}\n# Load with: iptables-restore --noflush < nfs-firewall.rules, then jump to\n# the chain from INPUT once: iptables -C INPUT -j HLSMUX-NFS || iptables -I INPUT -j HLSMUX-NFS\n# (the plan does both). It admits the Pis to NFS on a NAS whose INPUT policy drops.\n*filter\n:HLSMUX-NFS - [0:0]\n-F HLSMUX-NFS\n"
    );
    for pi in &inventory.pis {
        for protocol in ["tcp", "udp"] {
            let _ = writeln!(
                text,
                "-A HLSMUX-NFS -s {}/32 -p {protocol} -m multiport --dports 111,2049,20048 -m comment --comment \"{}\" -j ACCEPT",
                pi.ip, pi.name
            );
        }
    }
    text.push_str("COMMIT\n");
    text
}

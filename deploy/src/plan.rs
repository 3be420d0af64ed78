//! Plan: the commands an operator runs on the NAS to put a render in
//! place, printed, never run. Idempotent where the shell allows, so
//! running the plan again after adding a Pi is safe.

use std::fmt::Write;
use std::path::Path;

use crate::inventory::Inventory;

/// Where the rendered NAS-wide files go on the NAS.
const EXPORTS_FILE: &str = "/etc/exports.d/hlsmux.exports";
const DHCPD_CONF: &str = "/etc/dhcp/dhcpd.conf";

pub fn plan(inventory: &Inventory, rendered: &Path) -> String {
    let site = &inventory.site;
    let out = rendered.display();
    let roots = site.nfs_roots.display();
    let tftp = site.tftp_root.display();
    let mut text = String::from("set -eu\n");
    for pi in &inventory.pis {
        let root = format!("{roots}/{}", pi.name);
        let boot = format!("{tftp}/{}", pi.serial);
        let _ = write!(
            text,
            "
# {name}: muxer {muxer}, {ip}, serial {serial}
[ -e {root} ] || cp -a {roots}/{template} {root}
install -d -m 0755 {boot}
# Boot files: /boot/firmware since Raspberry Pi OS Bookworm (/boot/config.txt
# is then a stub), /boot before.
firmware={root}/boot/firmware; [ -e $firmware/config.txt ] || firmware={root}/boot
cp -a $firmware/. {boot}/
install -m 0644 {out}/tftp/{serial}/cmdline.txt {boot}/cmdline.txt
cat $firmware/config.txt {out}/tftp/{serial}/config.txt > {boot}/config.txt
# The SD card's partitions are not there on a netbooted Pi.
sed -i '/^PARTUUID=/d' {root}/etc/fstab
install -D -m 0600 {out}/pi-root/etc/hlsmux/worker.toml {root}/etc/hlsmux/worker.toml
chroot {root} chown hlsmux:hlsmux /etc/hlsmux/worker.toml
install -m 0644 {out}/pi-root/etc/systemd/system/hlsmux-worker.service {root}/etc/systemd/system/hlsmux-worker.service
install -m 0644 {out}/pi-root/etc/logrotate.d/hlsmux-worker {root}/etc/logrotate.d/hlsmux-worker
grep -q hlsmux-deploy {root}/etc/fstab || cat {out}/pi-root/etc/hlsmux/fstab >> {root}/etc/fstab
ln -sf /etc/systemd/system/hlsmux-worker.service {root}/etc/systemd/system/multi-user.target.wants/hlsmux-worker.service
",
            name = pi.name,
            muxer = pi.muxer_id,
            ip = pi.ip,
            serial = pi.serial,
            template = site.template_root,
        );
    }
    let targets = site.prometheus_targets_dir.display();
    let _ = write!(
        text,
        "
# The NAS: NFS exports, DHCP, the NFS firewall rules, Prometheus targets, RabbitMQ.
install -m 0644 {out}/nas/exports {EXPORTS_FILE}
exportfs -ra
install -m 0644 {out}/nas/dhcpd.conf {DHCPD_CONF}
dhcpd -t -cf {DHCPD_CONF}
systemctl restart isc-dhcp-server
iptables-restore --noflush < {out}/nas/nfs-firewall.rules
iptables -C INPUT -j HLSMUX-NFS 2>/dev/null || iptables -I INPUT -j HLSMUX-NFS
install -d {targets}
rm -f {targets}/*.yml
cp {out}/prometheus/targets/*.yml {targets}/ 2>/dev/null || true
install -m 0600 -o rabbitmq {out}/rabbitmq/definitions.json /etc/rabbitmq/definitions.json
rabbitmqctl import_definitions /etc/rabbitmq/definitions.json
"
    );
    text
}

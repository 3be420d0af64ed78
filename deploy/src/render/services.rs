//! What runs on every Pi (one rendered copy, installed into each Pi's root):
//! the worker's systemd unit, its settings, the NFS mounts it needs, and the
//! rotation of the ffmpeg logs it keeps from failed jobs. Also the submit
//! tool's environment for the operator's machine.

use crate::inventory::Site;
use crate::secrets::Secrets;

use super::broker::{operator_amqp_url, submit_amqp_url, worker_amqp_url};
use super::header::GENERATED;

/// How long a job in hand may run on after SIGTERM (the worker's
/// `shutdown_grace_seconds`), and how much longer systemd waits before
/// SIGKILL: requeueing the job and closing the connection take a moment.
pub const SHUTDOWN_GRACE_SECONDS: u64 = 30;
const STOP_MARGIN_SECONDS: u64 = 60;

/// The sandboxing every hlsmux unit gets, worker and gateway alike, after
/// `ProtectSystem=strict` and its own `ReadWritePaths`.
pub(super) const HARDENING: &str = "ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes
";

/// The worker's state directory (systemd's `StateDirectory=hlsmux`).
const WORK_DIR: &str = "/var/lib/hlsmux";

pub fn worker_unit(site: &Site) -> String {
    let media = site.media_root.display();
    let output = site.output_root.display();
    let stop_timeout = SHUTDOWN_GRACE_SECONDS + STOP_MARGIN_SECONDS;
    format!(
        "# {GENERATED}
# hlsmux worker, one per machine of the pool.
# The binary at /usr/local/bin/hlsmux-worker, its settings in
# /etc/hlsmux/worker.toml (mode 0600: it holds the broker password), a
# system user `hlsmux` in the groups `video` and `render` (for the Pi's
# /dev/video* and /dev/vchiq, and /dev/dri for VAAPI).
[Unit]
Description=hlsmux worker: muxes queued videos into HLS
Wants=network-online.target
After=network-online.target remote-fs.target
# Do not start before the shared media and output roots are mounted.
RequiresMountsFor={media} {output}

[Service]
Type=exec
User=hlsmux
Group=hlsmux
SupplementaryGroups=video render
ExecStart=/usr/local/bin/hlsmux-worker --config /etc/hlsmux/worker.toml
Environment=RUST_LOG=info
# {WORK_DIR}: the work dir, holding the drain lock and failed jobs' ffmpeg logs.
StateDirectory=hlsmux
Restart=always
RestartSec=5
# SIGTERM lets the job in hand run on for shutdown_grace_seconds
# ({SHUTDOWN_GRACE_SECONDS}), then stops ffmpeg, removes its staging directory and gives
# the job back to the queue; allow well over that before SIGKILL.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop_timeout}
# Memory: the worker plans each encode under memory_budget_mib (by default
# half the machine's memory); the kernel stops the unit at three quarters,
# well before the machine's own OOM killer picks a victim, and the worker
# reports an encode killed there as out of memory (its cgroup's
# memory.events), never as a crash.
MemoryMax=75%

# Hardening that leaves ffmpeg and the hardware encoders working: no
# PrivateDevices (it would hide /dev/video*, /dev/vchiq and /dev/dri).
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={media} {output}
{HARDENING}
[Install]
WantedBy=multi-user.target
"
    )
}

/// The worker logs to the journal; the files it does write are the ffmpeg
/// logs of failed jobs, one per job, kept for a post-mortem and then aged out.
pub fn logrotate() -> String {
    format!(
        "# {GENERATED}
{WORK_DIR}/*.ffmpeg.log {{
    su hlsmux hlsmux
    weekly
    rotate 2
    maxage 30
    compress
    delaycompress
    missingok
    notifempty
    nocreate
}}
"
    )
}

/// The worker's settings that the site decides; every other setting keeps
/// its default (see worker.example.toml). The muxer ID and hardware
/// decoding come from each Pi's kernel command line.
pub fn worker_config(site: &Site, secrets: &Secrets) -> String {
    let mounts = format!(
        "[\"{}\", \"{}\"]",
        site.media_root.display(),
        site.output_root.display()
    );
    format!(
        "# {GENERATED}
# Mode 0600, owned by the worker's user: it holds the broker password.
amqp_url = \"{url}\"
namespace = \"{namespace}\"
media_root = \"{media}\"
output_root = \"{output}\"
work_dir = \"{WORK_DIR}\"
storage_mounts = {mounts}
shutdown_grace_seconds = {SHUTDOWN_GRACE_SECONDS}
history_max_age = \"{age}\"
history_max_bytes = {bytes}
",
        url = worker_amqp_url(site, secrets),
        namespace = site.namespace,
        media = site.media_root.display(),
        output = site.output_root.display(),
        age = site.history_max_age,
        bytes = site.history_max_bytes,
    )
}

/// Lines for each Pi's `/etc/fstab`: the shared roots from the NAS. systemd
/// owns the mounts (an automount on first access, so a NAS that comes back
/// is mounted again without anyone's help); the worker, unprivileged under
/// `NoNewPrivileges=yes`, only checks, probes and reports them.
pub fn fstab(site: &Site) -> String {
    let mut text = format!("# {GENERATED}\n");
    for root in [&site.media_root, &site.output_root] {
        text.push_str(&format!(
            "{nas}:{root} {root} nfs vers=3,hard,_netdev,x-systemd.automount,x-systemd.mount-timeout=60 0 0\n",
            nas = site.nas_ip,
            root = root.display()
        ));
    }
    text
}

/// The submit tool's environment for the people and programs that submit
/// (`set -a; . hlsmux.env; set +a`): queue, follow and cancel jobs.
pub fn submit_env(site: &Site, secrets: &Secrets) -> String {
    cli_env(site, &submit_amqp_url(site, secrets))
}

/// The same tool's environment for the pool's operator: also drain and
/// resume muxers and read and retry the dead-letter queue.
pub fn operator_env(site: &Site, secrets: &Secrets) -> String {
    cli_env(site, &operator_amqp_url(site, secrets))
}

/// The pool's variables for a program that runs as `amqp_url`'s user.
pub(super) fn cli_env(site: &Site, amqp_url: &str) -> String {
    format!(
        "# {GENERATED}\nHLSMUX_AMQP_URL={}\nHLSMUX_NAMESPACE={}\nHLSMUX_MEDIA_ROOT={}\nHLSMUX_OUTPUT_ROOT={}\n",
        amqp_url,
        site.namespace,
        site.media_root.display(),
        site.output_root.display()
    )
}

//! `hlsmux-deploy`: a Pi is added with one command and everything is
//! rendered with another, deterministically; every rendered file passes the
//! real program that reads it (dhcpd, systemd-analyze, logrotate, promtool,
//! the worker's own parsers); a removed Pi leaves nothing behind; and the
//! rendering of the example inventory in deploy/example is up to date.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `hlsmux-deploy --inventory INVENTORY ARGS...`; returns its exit
/// code and what it said.
async fn deploy(inventory: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(hlsmux_tests::deploy_binary())
        .arg("--inventory")
        .arg(inventory)
        .args(args)
        .output()
        .await
        .expect("hlsmux-deploy runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every file under `dir`, by relative path, with its contents and mode.
fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
            files.insert(relative, (std::fs::read(&path).expect("read"), mode));
        }
    }
    files
}

/// A one-Pi inventory whose paths point into `dir`, as the validators
/// need to find what the files name.
fn one_pi_inventory(dir: &Path) -> PathBuf {
    let example =
        std::fs::read_to_string(repository().join("deploy/inventory.example.toml")).expect("read");
    let site_only = example.split("[[pi]]").next().expect("site").to_owned();
    let first_pi = example.split("[[pi]]").nth(1).expect("first Pi");
    // The gateway's section comes after the last Pi.
    let gateway = example
        .split_once("\n[gateway]")
        .map(|(_, rest)| format!("\n[gateway]{rest}"))
        .unwrap_or_default();
    let text = format!("{site_only}[[pi]]{first_pi}{gateway}")
        .replace(
            "/etc/prometheus/hlsmux-targets",
            &dir.join("out/prometheus/targets").display().to_string(),
        )
        .replace("example-secrets.toml", "secrets.toml");
    let path = dir.join("inventory.toml");
    std::fs::write(&path, text).expect("write inventory");
    path
}

#[tokio::test]
async fn the_example_rendering_in_deploy_is_the_example_inventory_rendered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("example");
    let inventory = repository().join("deploy/inventory.example.toml");
    let (code, _, said) = deploy(
        &inventory,
        &["render", "--out", out.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, Some(0), "{said}");
    let shipped = tree(&repository().join("deploy/example"));
    let rendered = tree(&out);
    assert_eq!(
        shipped.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "deploy/example is stale: run `cargo run -p hlsmux-deploy -- --inventory deploy/inventory.example.toml render --out deploy/example`"
    );
    for (path, (contents, _)) in &rendered {
        assert!(
            shipped[path].0 == *contents,
            "deploy/example/{path} differs from its rendering: edit the inventory or the renderer and render again, never the file"
        );
    }

    // The same inventory renders the same bytes again.
    let again = dir.path().join("again");
    deploy(
        &inventory,
        &["render", "--out", again.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(tree(&again), rendered);
}

#[tokio::test]
async fn a_second_pi_is_one_add_pi_and_one_render_and_removing_it_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = one_pi_inventory(dir.path());
    let out = dir.path().join("out");
    let out_arg = out.to_str().expect("utf-8");

    let add = [
        "add-pi",
        "--name",
        "HLSPi3",
        "--serial",
        "9C0D1E2F",
        "--mac",
        "DC:A6:32:00:00:03",
        "--ip",
        "192.168.1.12",
        "--muxid",
        "3",
        "--hwdec",
    ];
    let (code, _, said) = deploy(&inventory, &add).await;
    assert_eq!(code, Some(0), "{said}");
    let (code, _, said) = deploy(&inventory, &["render", "--out", out_arg]).await;
    assert_eq!(code, Some(0), "{said}");
    let cmdline = std::fs::read_to_string(out.join("tftp/9c0d1e2f/cmdline.txt")).expect("boot");
    assert!(
        cmdline.contains("nfsroot=192.168.1.2:/srv/nfs/HLSPi3,vers=3"),
        "{cmdline}"
    );
    let dhcp = std::fs::read_to_string(out.join("nas/dhcpd.conf")).expect("dhcp");
    assert!(
        dhcp.contains("hardware ethernet dc:a6:32:00:00:03;"),
        "{dhcp}"
    );
    assert!(dhcp.contains("fixed-address 192.168.1.12;"), "{dhcp}");
    // A Pi 3B's boot ROM matches the vendor option only with three
    // trailing spaces (Raspberry Pi's boot-net documentation).
    assert!(
        dhcp.contains("option vendor-encapsulated-options \"Raspberry Pi Boot   \";"),
        "{dhcp}"
    );
    let exports = std::fs::read_to_string(out.join("nas/exports")).expect("exports");
    assert!(
        exports.contains("/srv/nfs/HLSPi3 192.168.1.12("),
        "{exports}"
    );
    let firewall = std::fs::read_to_string(out.join("nas/nfs-firewall.rules")).expect("rules");
    assert!(firewall.contains("-s 192.168.1.12/32"), "{firewall}");
    assert!(out.join("prometheus/targets/HLSPi3.yml").exists());
    let plan = deploy(&inventory, &["plan", "--out", out_arg]).await;
    assert!(
        plan.1
            .contains("cp -a /srv/nfs/pi-template /srv/nfs/HLSPi3"),
        "{}",
        plan.1
    );
    assert!(
        plan.1.contains("install -d -m 0755 /srv/tftp/9c0d1e2f"),
        "{}",
        plan.1
    );
    assert!(plan.1.contains("exportfs -ra"), "{}", plan.1);

    // Each bad Pi is refused with its own reason, and the inventory is left as it was.
    let before = std::fs::read(&inventory).expect("read");
    for (args, expected) in [
        (
            [
                "--muxid",
                "3",
                "--mac",
                "dc:a6:32:00:00:09",
                "--ip",
                "192.168.1.13",
            ],
            "muxer ID 3 is used by both HLSPi3 and HLSPi9",
        ),
        (
            [
                "--muxid",
                "9",
                "--mac",
                "dc:a6:32:00:00:9",
                "--ip",
                "192.168.1.13",
            ],
            "is not six two-digit hex octets",
        ),
        (
            [
                "--muxid",
                "9",
                "--mac",
                "dc:a6:32:00:00:09",
                "--ip",
                "10.0.0.13",
            ],
            "IP 10.0.0.13 is outside the site's subnet 192.168.1.0/24",
        ),
        (
            [
                "--muxid",
                "9",
                "--mac",
                "dc:a6:32:00:00:09",
                "--ip",
                "192.168.1.150",
            ],
            "inside the DHCP range",
        ),
    ] {
        let mut command = vec!["add-pi", "--name", "HLSPi9", "--serial", "99999999"];
        command.extend_from_slice(&args);
        let (code, _, said) = deploy(&inventory, &command).await;
        assert_eq!(code, Some(2), "{said}");
        assert!(said.contains(expected), "expected {expected:?}: {said}");
    }
    assert_eq!(std::fs::read(&inventory).expect("read"), before);

    let (code, _, said) = deploy(&inventory, &["remove-pi", "HLSPi3"]).await;
    assert_eq!(code, Some(0), "{said}");
    deploy(&inventory, &["render", "--out", out_arg]).await;
    let files = tree(&out);
    let stale: Vec<&String> = files
        .iter()
        .filter(|(path, (contents, _))| {
            path.contains("HLSPi3")
                || path.contains("9c0d1e2f")
                || String::from_utf8_lossy(contents).contains("192.168.1.12")
        })
        .map(|(path, _)| path)
        .collect();
    assert!(stale.is_empty(), "left behind: {stale:?}");

    // A directory that is not a render is never replaced.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");
    let (code, _, said) = deploy(
        &inventory,
        &["render", "--out", foreign.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("was not rendered by hlsmux-deploy"), "{said}");
    assert!(foreign.join("notes.txt").exists());
}

/// Runs `program args...`; returns whether it succeeded and all it said.
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} runs (scripts/provision installs it): {e}"));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn every_rendered_file_passes_the_program_that_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = one_pi_inventory(dir.path());
    let out = dir.path().join("out");
    let (code, _, said) = deploy(
        &inventory,
        &["render", "--out", out.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, Some(0), "{said}");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };

    // ISC dhcpd, and a broken copy to show the check can fail.
    let dhcp = out.join("nas/dhcpd.conf").display().to_string();
    let (ok, said) = run("dhcpd", &["-t", "-cf", &dhcp]).await;
    assert!(ok, "dhcpd -t: {said}");
    let text = std::fs::read_to_string(&dhcp).expect("read");
    let broken = write(
        "broken-dhcpd.conf",
        text.replace("fixed-address 192.168.1.10;", "fixed-address 192.168.1.10"),
    );
    assert!(
        !run("dhcpd", &["-t", "-cf", &broken]).await.0,
        "a broken config is refused"
    );

    // systemd, with ExecStart naming the worker binary under test (verify
    // checks that it is an executable); it must print nothing at all.
    let unit =
        std::fs::read_to_string(out.join("pi-root/etc/systemd/system/hlsmux-worker.service"))
            .expect("unit");
    let worker = hlsmux_tests::worker_binary().display().to_string();
    let unit_path = write(
        "hlsmux-worker.service",
        unit.replace("/usr/local/bin/hlsmux-worker", &worker),
    );
    let (ok, said) = run("systemd-analyze", &["verify", &unit_path]).await;
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let broken = write(
        "hlsmux-worker.service",
        unit.replace("/usr/local/bin/hlsmux-worker", &worker)
            .replace("Restart=always", "Restart=sometimes"),
    );
    let (_, said) = run("systemd-analyze", &["verify", &broken]).await;
    assert!(
        said.contains("restart specifier"),
        "a broken unit is reported: {said}"
    );
    for line in [
        "User=hlsmux",
        "Restart=always",
        "After=network-online.target remote-fs.target",
        "RequiresMountsFor=/srv/hlsmux/media /srv/hlsmux/output",
        "SupplementaryGroups=video render",
        // Three quarters of the machine: the worker plans encodes under half.
        "MemoryMax=75%",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    assert!(
        !unit.contains("PrivateDevices=yes"),
        "would hide the hardware encoder"
    );

    // The gateway's unit, likewise; its environment and token file private.
    let gateway_unit =
        std::fs::read_to_string(out.join("gateway/hlsmux-gateway.service")).expect("gateway unit");
    let gateway_binary = hlsmux_tests::gateway_binary().display().to_string();
    let gateway_unit_path = write(
        "hlsmux-gateway.service",
        gateway_unit
            .replace("/usr/local/bin/hlsmux-gateway", &gateway_binary)
            .replace(
                "EnvironmentFile=/etc/hlsmux/gateway.env",
                &format!(
                    "EnvironmentFile={}",
                    out.join("gateway/gateway.env").display()
                ),
            ),
    );
    let (ok, said) = run("systemd-analyze", &["verify", &gateway_unit_path]).await;
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify of the gateway: {said}"
    );
    for private in [
        "gateway/gateway.env",
        "gateway/gateway-tokens.toml",
        "gateway/tokens.txt",
    ] {
        let mode = std::fs::metadata(out.join(private))
            .expect(private)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{private}");
    }
    let token_file =
        std::fs::read_to_string(out.join("gateway/gateway-tokens.toml")).expect("token file");
    hlsmux_gateway::tokens::Tokens::parse(&token_file).expect("the gateway reads its token file");

    // logrotate, as root over a work dir of the test's (no `hlsmux` user
    // here); logrotate -d exits 0 even on errors, so its words are read.
    let logs = dir.path().join("work");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::write(logs.join("job.ffmpeg.log"), "ffmpeg said\n").expect("log");
    let rotation = std::fs::read_to_string(out.join("pi-root/etc/logrotate.d/hlsmux-worker"))
        .expect("logrotate")
        .replace("/var/lib/hlsmux", &logs.display().to_string())
        .replace("su hlsmux hlsmux", "su root root");
    let rotation_path = write("logrotate.conf", rotation.clone());
    let (_, said) = run("logrotate", &["-d", &rotation_path]).await;
    assert!(!said.contains("error"), "logrotate -d: {said}");
    assert!(
        said.contains("Handling 1 logs") && said.contains("job.ffmpeg.log"),
        "{said}"
    );
    let broken = write(
        "broken-logrotate.conf",
        rotation.replace("weekly", "every-week"),
    );
    let (_, said) = run("logrotate", &["-d", &broken]).await;
    assert!(said.contains("error"), "a broken file is reported: {said}");

    // Prometheus: the scrape config and its per-Pi targets.
    let prometheus = out.join("prometheus/prometheus.yml").display().to_string();
    let (ok, said) = run("promtool", &["check", "config", &prometheus]).await;
    assert!(ok && !said.contains("WARNING"), "promtool: {said}");
    let target =
        std::fs::read_to_string(out.join("prometheus/targets/HLSPi1.yml")).expect("target");
    assert!(target.contains("\"192.168.1.10:9797\""), "{target}");

    // The boot command line, read back by the worker's own parser.
    let cmdline = std::fs::read_to_string(out.join("tftp/1a2b3c4d/cmdline.txt")).expect("cmdline");
    let boot = hlsmux_worker::boot::BootOptions::parse(&cmdline, Path::new("cmdline.txt"))
        .expect("the worker reads it");
    assert_eq!((boot.muxer_id, boot.hw_decode), (Some(1), Some(true)));
    for word in ["root=/dev/nfs", "rw", "ip=dhcp", "rootwait"] {
        assert!(
            cmdline.split_whitespace().any(|w| w == word),
            "{word}: {cmdline}"
        );
    }
    assert!(
        !cmdline.contains("elevator="),
        "ignored since Linux 5.0: {cmdline}"
    );
    let config = std::fs::read_to_string(out.join("tftp/1a2b3c4d/config.txt")).expect("config");
    let all = config.lines().position(|l| l == "[all]");
    let gpu = config.lines().position(|l| l == "gpu_mem=128");
    assert!(
        all.zip(gpu).is_some_and(|(all, gpu)| all < gpu),
        "gpu_mem under [all]: {config}"
    );

    // The worker's settings: private, and the worker loads them.
    let settings_path = out.join("pi-root/etc/hlsmux/worker.toml");
    let mode = std::fs::metadata(&settings_path)
        .expect("settings")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "it holds the broker password");
    let (settings, _) = hlsmux_worker::config::Settings::load(Some(&settings_path))
        .expect("the worker loads its rendered settings");
    assert_eq!(settings.broker.namespace.to_string(), "hlsmux");
    assert_eq!(
        settings.storage.storage_mounts,
        [
            PathBuf::from("/srv/hlsmux/media"),
            PathBuf::from("/srv/hlsmux/output")
        ]
    );
    assert!(settings.broker.amqp_url.has_password());

    // systemd waits longer than the worker's grace period before SIGKILL.
    let stop_timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    assert!(
        stop_timeout >= settings.service.shutdown_grace.as_secs() + 30,
        "{stop_timeout}"
    );

    // The broker lets a long encode hold its job.
    let conf = std::fs::read_to_string(out.join("rabbitmq/rabbitmq.conf")).expect("conf");
    let timeout_ms: u64 = conf
        .lines()
        .find_map(|l| l.strip_prefix("consumer_timeout = "))
        .and_then(|v| v.parse().ok())
        .expect("consumer_timeout");
    assert!(timeout_ms >= 12 * 3600 * 1000, "{timeout_ms}");
}

/// The plan's boot-file steps for one Pi, run for real against a template
/// root laid out as Raspberry Pi OS lays it out: `boot/firmware` on
/// Bookworm (with `/boot/config.txt` a stub), `boot` on Bullseye.
#[tokio::test]
async fn the_plan_installs_the_boot_files_of_bookworm_and_bullseye_roots() {
    for (release, firmware) in [("bookworm", "boot/firmware"), ("bullseye", "boot")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (nfs, tftp) = (dir.path().join("nfs"), dir.path().join("tftp"));
        let template = nfs.join("pi-template");
        std::fs::create_dir_all(template.join(firmware)).expect("firmware dir");
        std::fs::create_dir_all(template.join("etc")).expect("etc");
        std::fs::write(template.join(firmware).join("start4.elf"), b"firmware").expect("elf");
        std::fs::write(
            template.join(firmware).join("config.txt"),
            "[pi4]\narm_boost=1\n",
        )
        .expect("config");
        if release == "bookworm" {
            std::fs::write(
                template.join("boot/config.txt"),
                "DO NOT EDIT THIS FILE\n\nThe file you are looking for has moved to /boot/firmware/config.txt\n",
            )
            .expect("stub");
        }
        std::fs::write(
            template.join("etc/fstab"),
            "proc /proc proc defaults 0 0\nPARTUUID=abcd-01 /boot/firmware vfat defaults 0 2\nPARTUUID=abcd-02 / ext4 defaults,noatime 0 1\n",
        )
        .expect("fstab");

        let inventory = one_pi_inventory(dir.path());
        let text = std::fs::read_to_string(&inventory)
            .expect("inventory")
            .replace(
                "\"/srv/tftp\"",
                &format!("{:?}", tftp.display().to_string()),
            )
            .replace("\"/srv/nfs\"", &format!("{:?}", nfs.display().to_string()));
        std::fs::write(&inventory, text).expect("inventory");
        let out = dir.path().join("out");
        let out_arg = out.to_str().expect("utf-8");
        let rendered = deploy(&inventory, &["render", "--out", out_arg]).await;
        assert_eq!(rendered.0, Some(0), "{rendered:?}");
        let plan = deploy(&inventory, &["plan", "--out", out_arg]).await;
        assert_eq!(plan.0, Some(0), "{plan:?}");
        // The Pi's root and boot steps, up to its worker's settings.
        let steps: Vec<&str> = plan
            .1
            .lines()
            .skip_while(|line| !line.starts_with("[ -e "))
            .take_while(|line| !line.starts_with("install -D"))
            .collect();
        assert!(!steps.is_empty(), "{}", plan.1);
        let script = format!("set -eu\n{}\n", steps.join("\n"));
        let ran = Command::new("sh")
            .args(["-c", &script])
            .output()
            .await
            .expect("sh runs");
        assert!(
            ran.status.success(),
            "{release}: {script}\n{}",
            String::from_utf8_lossy(&ran.stderr)
        );

        let boot = tftp.join("1a2b3c4d");
        assert_eq!(
            std::fs::read(boot.join("start4.elf"))
                .expect("the firmware is in the serial directory"),
            b"firmware",
            "{release}"
        );
        let config = std::fs::read_to_string(boot.join("config.txt")).expect("config");
        assert!(
            config.starts_with("[pi4]\narm_boost=1\n") && config.contains("[all]\ngpu_mem=128"),
            "{release}: the root's own config.txt, then ours: {config}"
        );
        let cmdline = std::fs::read_to_string(boot.join("cmdline.txt")).expect("cmdline");
        assert!(cmdline.contains("muxid=1"), "{cmdline}");
        let fstab = std::fs::read_to_string(nfs.join("HLSPi1/etc/fstab")).expect("fstab");
        assert!(
            !fstab.contains("PARTUUID") && fstab.contains("proc /proc"),
            "{release}: the SD card's lines go, the rest stays: {fstab}"
        );
    }
}

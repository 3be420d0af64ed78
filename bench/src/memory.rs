//! Item 7: ffmpeg's peak memory on a small board. A 1080p30 source through
//! the standard ladder with libx264, planned by `hlsmux-worker plan` as a
//! worker on a 1 GiB board would plan it (held to half: 512 MiB), and run;
//! beside it the same source planned for a roomy machine (no fit), for
//! comparison. The peak is the kernel's high-water mark of ffmpeg's
//! resident set (`VmHWM`), read until it exits.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// What one planned encode took.
pub struct Peak {
    pub ram_mib: u64,
    pub estimate_mib: f64,
    pub peak_mib: f64,
    pub rungs: usize,
}

/// Plans `input` for a board with `ram_mib` of memory and runs the plan,
/// writing under `scratch`.
pub async fn planned_peak(input: &Path, ram_mib: u64, scratch: &Path) -> Peak {
    let output = Command::new(hlsmux_tests::worker_binary())
        .arg("plan")
        .arg(input)
        .args([
            "--board",
            "pi5",
            "--ram-mib",
            &ram_mib.to_string(),
            "--json",
        ])
        .output()
        .await
        .expect("hlsmux-worker plan runs");
    assert!(
        output.status.success(),
        "plan: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).expect("a JSON plan");
    let out = scratch.join(format!("memory-{ram_mib}"));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("scratch");
    let args: Vec<String> = plan["ffmpeg"]
        .as_array()
        .expect("the command")
        .iter()
        .skip(1)
        .map(|arg| {
            arg.as_str()
                .expect("text")
                .replace("STAGING", &out.display().to_string())
        })
        .collect();
    let mut child = Command::new("ffmpeg")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    let pid = child.id().expect("running");
    let mut peak_kib = 0.0_f64;
    loop {
        if let Some(kib) = high_water_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        tokio::select! {
            status = child.wait() => {
                assert!(status.expect("waited").success(), "ffmpeg failed: {args:?}");
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    Peak {
        ram_mib,
        estimate_mib: plan["memory"]["estimate_mib"].as_f64().unwrap_or(f64::NAN),
        peak_mib: peak_kib / 1024.0,
        rungs: plan["rungs"].as_array().map_or(0, Vec::len),
    }
}

/// `VmHWM`: the most resident memory the process has had, in KiB.
fn high_water_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

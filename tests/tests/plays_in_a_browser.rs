//! A real player: hls.js in the system's headless Chromium plays an output
//! served over HTTP on loopback, starts, passes two segments, switches to
//! another rung on demand and plays on, with no hls.js error event. The
//! same for an encrypted output, and for an encrypted output in fMP4
//! segments. `scripts/provision` installs Chromium and
//! the npm packages; where it could not, the test says so and skips.

use std::path::{Path, PathBuf};

use hlsmux_tests::TestEnv;
use hlsmux_tests::media::Clip;
use tokio::process::Command;

const SEGMENT_SECONDS: &str = "1";

fn player_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("player")
}

/// Why the player cannot run here, if it cannot.
fn player_missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ));
    }
    let modules = player_dir().join("node_modules");
    for package in ["hls.js", "playwright-core"] {
        if !modules.join(package).exists() {
            return Some(format!(
                "{package} is not installed (npm ci --prefix {})",
                player_dir().display()
            ));
        }
    }
    None
}

/// Plays the output in `dir`; panics with the player's report if playback
/// did not pass.
async fn play(dir: &Path) {
    let output = Command::new("node")
        .arg(player_dir().join("play.mjs"))
        .arg(dir)
        .arg(SEGMENT_SECONDS)
        .output()
        .await
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "hls.js did not play {}: {report}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("a JSON report");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["passed"], true, "{report}");
    assert!(report["currentTime"].as_f64() > Some(4.0), "{report}");
}

#[tokio::test]
async fn hls_js_in_chromium_plays_and_switches_rungs_in_clear_and_encrypted_outputs() {
    if let Some(reason) = player_missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test = TestEnv::new("player").await;
    let _worker = test.worker(1).await;
    let clip = Clip {
        seconds: 8,
        ..Clip::default()
    }
    .write(&test.media_root().join("show.mp4"))
    .await;
    let common = [
        "--muxer",
        "1",
        "--wait",
        "--segment-length",
        SEGMENT_SECONDS,
    ];
    test.submit_ok(&clip, &[&common[..], &["--name", "clear.hls"]].concat())
        .await;
    test.submit_ok(
        &clip,
        &[&common[..], &["--name", "sealed.hls", "--encrypt"]].concat(),
    )
    .await;
    let fmp4 = [
        "--name",
        "sealed-fmp4.hls",
        "--encrypt",
        "--segment-format",
        "fmp4",
    ];
    test.submit_ok(&clip, &[&common[..], &fmp4].concat()).await;

    for output in ["clear.hls", "sealed.hls", "sealed-fmp4.hls"] {
        play(&test.output_root().join(output)).await;
    }
}

//! A real player: hls.js in the system's headless Chromium plays an output
//! served over HTTP on loopback, starts, passes two segments, switches to
//! another rung on demand and plays on, with no hls.js error event. The
//! same for an encrypted output, and for an encrypted output in fMP4
//! segments. `scripts/provision` installs Chromium and
//! the npm packages; where it could not, the test says so and skips.

use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, player};

const SEGMENT_SECONDS: u32 = 1;

#[tokio::test]
async fn hls_js_in_chromium_plays_and_switches_rungs_in_clear_and_encrypted_outputs() {
    if let Some(reason) = player::missing() {
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
    let segment_length = SEGMENT_SECONDS.to_string();
    let common = [
        "--muxer",
        "1",
        "--wait",
        "--segment-length",
        &segment_length,
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

    let masters: Vec<_> = ["clear.hls", "sealed.hls", "sealed-fmp4.hls"]
        .iter()
        .map(|output| test.output_root().join(output).join("master.m3u8"))
        .collect();
    let reports = player::play(&masters, SEGMENT_SECONDS, 2)
        .await
        .unwrap_or_else(|failures| panic!("hls.js did not play every output: {failures}"));
    for report in &reports {
        assert!(report["currentTime"].as_f64() > Some(4.0), "{report}");
    }
}

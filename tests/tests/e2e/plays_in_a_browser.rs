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

/// With `--base-url`, every URI of the playlists is absolute under that URL:
/// the page and master playlist come from one loopback origin, the media
/// playlists, segments, init sections and key from a second (a CDN), and
/// hls.js plays and switches as before.
#[tokio::test]
async fn outputs_with_a_base_url_play_with_their_media_from_a_second_origin() {
    if let Some(reason) = player::missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    let test = TestEnv::new("player-base-url").await;
    let _worker = test.worker(1).await;
    let clip = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("show.mp4"))
    .await;
    // A free loopback port for the second origin, known before encoding.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let base_url = format!("http://127.0.0.1:{port}/cdn%20root/");
    let cdn_root = test.path().join("cdn root");
    std::fs::create_dir_all(&cdn_root).expect("cdn root");
    let segment_length = SEGMENT_SECONDS.to_string();
    let common = [
        "--muxer",
        "1",
        "--wait",
        "--segment-length",
        &segment_length,
        "--base-url",
        &base_url,
    ];
    test.submit_ok(&clip, &[&common[..], &["--name", "clear cut.hls"]].concat())
        .await;
    let sealed = [
        "--name",
        "sealed-fmp4.hls",
        "--encrypt",
        "--segment-format",
        "fmp4",
    ];
    test.submit_ok(&clip, &[&common[..], &sealed].concat())
        .await;

    // Every URI a player follows is under the output's own URL.
    for (output, url) in [
        ("clear cut.hls", format!("{base_url}clear%20cut.hls/")),
        ("sealed-fmp4.hls", format!("{base_url}sealed-fmp4.hls/")),
    ] {
        let dir = test.output_root().join(output);
        let master = std::fs::read_to_string(dir.join("master.m3u8")).expect("master");
        let mut uris = Vec::new();
        for line in master.lines() {
            if !line.starts_with('#') && !line.is_empty() {
                uris.push(line.to_owned());
            }
            if let Some((_, rest)) = line.split_once("URI=\"") {
                uris.push(rest.split('"').next().expect("quoted").to_owned());
            }
        }
        assert!(uris.len() >= 4, "{master}");
        for uri in &uris {
            assert!(uri.starts_with(&url), "{uri} is not under {url}:\n{master}");
            let media = dir.join(uri.strip_prefix(&url).expect("prefix"));
            let text = std::fs::read_to_string(&media).expect("a playlist");
            for line in text.lines() {
                let target = if line.starts_with('#') {
                    line.split_once("URI=\"")
                        .map(|(_, rest)| rest.split('"').next().expect("quoted"))
                } else {
                    Some(line).filter(|l| !l.is_empty())
                };
                if let Some(target) = target {
                    assert!(target.starts_with(&url), "{target} in {uri}");
                    assert!(
                        dir.join(target.strip_prefix(&url).expect("prefix"))
                            .is_file(),
                        "{target} names no file"
                    );
                }
            }
        }
    }

    // The second origin serves the output root as `cdn root/`.
    std::os::unix::fs::symlink(test.output_root(), cdn_root.join("cdn root"))
        .expect("link the output root under the second origin's path");
    let masters: Vec<_> = ["clear cut.hls", "sealed-fmp4.hls"]
        .iter()
        .map(|output| test.output_root().join(output).join("master.m3u8"))
        .collect();
    let reports =
        player::play_with_media_origin(&masters, SEGMENT_SECONDS, 2, Some((port, &cdn_root)))
            .await
            .unwrap_or_else(|failures| panic!("hls.js did not play every output: {failures}"));
    for report in &reports {
        assert!(report["currentTime"].as_f64() > Some(4.0), "{report}");
    }
}

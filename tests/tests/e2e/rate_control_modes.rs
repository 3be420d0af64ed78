//! `--rate-control`: the seed's constant-bitrate (`-C`) and quality-based
//! (`-q`) encodes, as streaming services run them. Each mode's output
//! conforms like any other, and holds its rates the way the mode says,
//! measured from the segments (the master's BANDWIDTH is each variant's
//! peak segment rate, AVERAGE-BANDWIDTH its mean): `cbr` carries its
//! rung's bitrate even on an easy picture (padded), `capped-quality`
//! spends far less there and never more than the rung's cap, `vbr` (the
//! default) stays near its target on average. (A mode the worker's
//! encoder cannot do, such as `cbr` on a Pi, is refused as `bad_message`
//! before encoding: `VideoEncoder::supports` and `JobSpec::resolve`'s unit
//! tests, since no Pi encoder runs here.)

use hlsmux_tests::TestEnv;
use hlsmux_tests::conformance::{Expected, assert_conforms};
use hlsmux_tests::media::Clip;

/// (target kbit/s, BANDWIDTH, AVERAGE-BANDWIDTH) of each variant, in
/// kbit/s, lowest first.
fn variant_rates(run: &hlsmux_tests::CliRun, master: &std::path::Path) -> Vec<(f64, f64, f64)> {
    let done = run
        .json_lines()
        .into_iter()
        .find(|line| line["state"] == "done")
        .unwrap_or_else(|| panic!("a done line: {run:#?}"));
    let mut targets: Vec<f64> = done["rungs"]
        .as_array()
        .expect("rungs")
        .iter()
        .map(|rung| rung["video_bitrate"].as_f64().expect("bitrate") / 1000.0)
        .collect();
    targets.sort_by(f64::total_cmp);
    let bytes = std::fs::read(master).expect("master");
    let playlist = m3u8_rs::parse_master_playlist_res(&bytes).expect("a master playlist");
    let mut variants: Vec<(f64, f64)> = playlist
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| {
            (
                v.bandwidth as f64 / 1000.0,
                v.average_bandwidth.expect("AVERAGE-BANDWIDTH") as f64 / 1000.0,
            )
        })
        .collect();
    variants.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(targets.len(), variants.len());
    targets
        .into_iter()
        .zip(variants)
        .map(|(target, (peak, average))| (target, peak, average))
        .collect()
}

#[tokio::test]
async fn each_rate_control_holds_its_rates_and_conforms() {
    let test = TestEnv::new("rate-control").await;
    let _worker = test.worker(1).await;
    // An easy picture (still colour bars, no audio): what the modes do
    // with bits a picture does not need is what tells them apart.
    let clip = Clip {
        seconds: 6,
        audio: false,
        ..Clip::default()
    };
    let expected = Expected::from(clip);
    let path = test.media_root().join("easy.ts");
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "smptebars=size={}x{}:rate={}:duration={}",
            clip.width, clip.height, clip.fps, clip.seconds
        ))
        // Padded to 2 Mb/s, so that the ladder (never above the source's
        // own bitrate) keeps its rungs.
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"])
        .args([
            "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "2M",
        ])
        .args(["-x264-params", "nal-hrd=cbr", "-f", "mpegts"])
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(made.success());
    let mut measured = Vec::new();
    for mode in ["vbr", "cbr", "capped-quality"] {
        let name = format!("{mode}.hls");
        let run = test
            .submit_ok(
                &path,
                &[
                    "--muxer",
                    "1",
                    "--wait",
                    "--json",
                    "--rate-control",
                    mode,
                    "--name",
                    &name,
                ],
            )
            .await;
        let master = test.output_root().join(&name).join("master.m3u8");
        assert_conforms(&master, expected).await;
        let rates = variant_rates(&run, &master);
        eprintln!("{mode}: (target, peak, average) kbit/s {rates:?}");
        measured.push(rates);
    }
    let (vbr, cbr, capped) = (&measured[0], &measured[1], &measured[2]);
    for (index, &(target, peak, average)) in cbr.iter().enumerate() {
        // Filler keeps even this picture at its rate (MPEG-TS adds a
        // little more), every segment alike.
        assert!(
            average >= 0.95 * target && average <= 1.35 * target,
            "cbr rung {index}: average {average} for a target of {target}"
        );
        assert!(
            peak <= 1.1 * average,
            "cbr rung {index}: peak {peak}, average {average}"
        );
        // Quality-based encoding spends what the picture needs: a fraction.
        let (_, _, capped_average) = capped[index];
        assert!(
            capped_average < 0.5 * average,
            "capped-quality rung {index} spends {capped_average}, cbr {average}"
        );
        // Variable bitrate never pads: at most its target on average.
        let (_, _, vbr_average) = vbr[index];
        assert!(
            vbr_average < 0.9 * average && vbr_average <= 1.35 * target,
            "vbr rung {index}: average {vbr_average}, cbr {average}, target {target}"
        );
    }
}

#[tokio::test]
async fn an_unknown_mode_is_refused_naming_the_known_ones() {
    let test = TestEnv::new("rate-control-refused").await;
    let _worker = test.worker(1).await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test
        .cli(&[
            "submit",
            clip.to_str().expect("utf-8"),
            "--muxer",
            "1",
            "--rate-control",
            "constant",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("vbr, cbr, capped-quality"),
        "names the modes: {run:#?}"
    );
}

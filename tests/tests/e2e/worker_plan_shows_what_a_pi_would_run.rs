//! `hlsmux-worker plan` shows, on any machine, what a worker on a given
//! board would run for an input: for the awkward sources a Pi meets (an
//! ultra-wide film, a tall phone clip, 1080p50, broadcast MPEG-2 and 4K
//! with hardware decoding), the ladder and the ffmpeg command stay inside
//! what the VideoCore encoder and decoders can do: no side over 1920, no
//! rung over 30 frames per second, hardware decoding only within 1920.

use std::path::Path;

use hlsmux_tests::TestEnv;
use hlsmux_tests::media::{Clip, SourceCodec};
use serde_json::Value;
use tokio::process::Command;

async fn plan(input: &Path, args: &[&str]) -> Value {
    let output = Command::new(hlsmux_tests::worker_binary())
        .arg("plan")
        .arg(input)
        .args(args)
        .arg("--json")
        .env("HLSMUX_FFMPEG_THREADS", "1")
        .output()
        .await
        .expect("hlsmux-worker runs");
    assert!(
        output.status.success(),
        "plan {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

/// The argument after `flag` in the ffmpeg command, where there is one.
fn after(plan: &Value, flag: &str) -> Vec<String> {
    let args: Vec<&str> = plan["ffmpeg"]
        .as_array()
        .expect("ffmpeg")
        .iter()
        .map(|arg| arg.as_str().expect("text"))
        .collect();
    args.windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1].to_owned())
        .collect()
}

#[tokio::test]
async fn a_pi4_plan_keeps_every_awkward_source_inside_the_videocore() {
    let test = TestEnv::new("worker-plan").await;
    let dir = test.elsewhere();
    let clip = |width, height, fps, codec| Clip {
        width,
        height,
        fps,
        seconds: 1,
        audio: false,
        codec,
        ..Clip::default()
    };
    let sources = [
        ("ultra-wide.mp4", clip(2560, 1080, 25, SourceCodec::H264)),
        ("phone.mp4", clip(1080, 2340, 30, SourceCodec::H264)),
        ("fifty.mp4", clip(1920, 1080, 50, SourceCodec::H264)),
        (
            "broadcast.ts",
            clip(720, 576, 25, SourceCodec::InterlacedMpeg2),
        ),
        ("uhd.mp4", clip(3840, 2160, 25, SourceCodec::H264)),
    ];
    for (name, source) in sources {
        let input = source.write(&dir.join(name)).await;
        let plan = plan(&input, &["--board", "pi4", "--hwdec"]).await;
        assert_eq!(plan["encoder"], "h264_v4l2m2m", "{name}: {plan:#}");
        let rungs = plan["rungs"].as_array().expect("rungs");
        assert!(!rungs.is_empty(), "{name}");
        for rung in rungs {
            let (width, height) = (rung["width"].as_u64(), rung["height"].as_u64());
            assert!(
                width
                    .zip(height)
                    .is_some_and(|(w, h)| w <= 1920 && h <= 1920),
                "{name}: {rung}"
            );
            assert!(
                rung["frame_rate"].as_f64().is_some_and(|fps| fps <= 30.0),
                "{name}: {rung}"
            );
        }
        assert_eq!(
            after(&plan, "-c:v").last().map(String::as_str),
            Some("h264_v4l2m2m"),
            "{name}"
        );
        let decoder = plan["decoder"].as_str();
        match name {
            // Inside 1920 on both sides: the hardware decodes it.
            "fifty.mp4" => {
                assert_eq!(decoder, Some("h264_v4l2m2m"), "{name}: {plan:#}");
                assert_eq!(
                    after(&plan, "-c:v").first().map(String::as_str),
                    Some("h264_v4l2m2m")
                );
            }
            // A Pi 4 has no MPEG-2 decoder (a Pi 3 has, below).
            "broadcast.ts" => {
                assert_eq!(decoder, None, "{plan:#}");
                let graph = after(&plan, "-filter_complex").join("");
                assert!(
                    graph.contains("yadif") || graph.contains("bwdif"),
                    "deinterlaced: {graph}"
                );
            }
            // A side over 1920 is more than the VideoCore decodes: software,
            // and no rung's short side above 1080.
            _ => {
                assert_eq!(decoder, None, "{name}: {plan:#}");
                assert!(
                    rungs
                        .iter()
                        .all(|r| { r["width"].as_u64().min(r["height"].as_u64()) <= Some(1080) })
                );
            }
        }
    }
    // The wide film keeps its shape; 50 frames a second halve to 25.
    let wide = plan(&dir.join("ultra-wide.mp4"), &["--board", "pi4"]).await;
    let top = &wide["rungs"][0];
    assert_eq!(
        (top["width"].as_u64(), top["height"].as_u64()),
        (Some(1706), Some(720)),
        "{wide:#}"
    );
    let fifty = plan(&dir.join("fifty.mp4"), &["--board", "pi4"]).await;
    assert_eq!(fifty["rungs"][0]["frame_rate"], 25.0, "{fifty:#}");
    // A Pi 5 has no H.264 encoder: libx264, the source's own rate.
    let pi5 = plan(&dir.join("fifty.mp4"), &["--board", "pi5"]).await;
    assert_eq!(pi5["encoder"], "libx264");
    assert_eq!(pi5["rungs"][0]["frame_rate"], 50.0, "{pi5:#}");
}

/// Which board decodes what in hardware: a Pi 3 H.264 and MPEG-2, a Pi 4
/// H.264 and HEVC (the stateless decoder, `-hwaccel drm`), a Pi 5 HEVC
/// only; a 10-bit (High 10) H.264 source decodes in software everywhere.
#[tokio::test]
async fn each_board_decodes_in_hardware_only_what_it_has_a_decoder_for() {
    let test = TestEnv::new("worker-plan-decoders").await;
    let dir = test.elsewhere();
    let clip = |codec| Clip {
        width: 640,
        height: 360,
        seconds: 1,
        audio: false,
        codec,
        ..Clip::default()
    };
    let h264 = clip(SourceCodec::H264).write(&dir.join("h264.mp4")).await;
    let mpeg2 = clip(SourceCodec::InterlacedMpeg2)
        .write(&dir.join("broadcast.ts"))
        .await;
    let hevc = clip(SourceCodec::Hevc).write(&dir.join("hevc.mp4")).await;
    let high_10 = dir.join("high10.mp4");
    hlsmux_tests::media::run_ffmpeg(
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-threads",
            "1",
        ]
        .map(String::from)
        .into_iter()
        .chain([high_10.display().to_string()])
        .collect::<Vec<_>>(),
    )
    .await;
    let cases = [
        ("pi3", &h264, Some("h264_v4l2m2m")),
        ("pi3", &mpeg2, Some("mpeg2_v4l2m2m")),
        ("pi3", &hevc, None),
        ("pi4", &h264, Some("h264_v4l2m2m")),
        ("pi4", &mpeg2, None),
        ("pi4", &hevc, Some("drm (hwaccel)")),
        ("pi4", &high_10, None),
        ("pi5", &h264, None),
        ("pi5", &hevc, Some("drm (hwaccel)")),
    ];
    for (board, input, expected) in cases {
        let plan = plan(input, &["--board", board, "--hwdec"]).await;
        assert_eq!(
            plan["decoder"].as_str(),
            expected,
            "{board} decoding {}: {plan:#}",
            input.display()
        );
        if expected == Some("drm (hwaccel)") {
            assert_eq!(after(&plan, "-hwaccel"), vec!["drm".to_owned()]);
        }
    }
}

#[tokio::test]
async fn a_plan_for_what_is_not_video_says_why() {
    let test = TestEnv::new("worker-plan-bad").await;
    let text = test.elsewhere().join("notes.mp4");
    std::fs::write(&text, "not a video").expect("file");
    let output = Command::new(hlsmux_tests::worker_binary())
        .arg("plan")
        .arg(&text)
        .output()
        .await
        .expect("hlsmux-worker runs");
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("cannot read") && said.contains("notes.mp4"),
        "{said}"
    );
}

/// libx264 on a small board is held to half its memory: one thread per
/// rung, a short lookahead, and the top rung left out, all in the
/// command; a roomy machine keeps the whole ladder and x264's defaults.
/// The budget also comes from the machine's own `/proc/meminfo` (here a
/// copy saying 1 GiB, through the `meminfo` setting).
#[tokio::test]
async fn libx264_on_a_one_gib_board_is_planned_under_half_of_it() {
    let test = TestEnv::new("worker-plan-memory").await;
    let dir = test.elsewhere();
    let source = Clip {
        width: 1920,
        height: 1080,
        fps: 30,
        seconds: 1,
        audio: false,
        ..Clip::default()
    };
    let input = source.write(&dir.join("talk.mp4")).await;
    let small = plan(&input, &["--board", "pi5", "--ram-mib", "1024"]).await;
    let memory = &small["memory"];
    assert_eq!(memory["budget_mib"], 512, "{small:#}");
    assert!(
        memory["estimate_mib"]
            .as_u64()
            .is_some_and(|mib| mib <= 512)
    );
    assert_eq!(memory["dropped"], serde_json::json!(["1080p_7800k"]));
    assert_eq!(
        after(&small, "-threads").last().map(String::as_str),
        Some("1")
    );
    assert_eq!(after(&small, "-rc-lookahead"), vec!["5".to_owned()]);
    assert_eq!(small["rungs"][0]["name"], "1080p_6000k");

    let roomy = plan(&input, &["--board", "pi5", "--ram-mib", "8192"]).await;
    assert_eq!(roomy["memory"]["dropped"], serde_json::json!([]));
    assert!(after(&roomy, "-rc-lookahead").is_empty(), "{roomy:#}");
    assert_eq!(roomy["rungs"][0]["name"], "1080p_7800k");

    let meminfo = dir.join("meminfo");
    std::fs::write(
        &meminfo,
        "MemTotal:        1048576 kB\nMemFree:          524288 kB\nMemAvailable:     786432 kB\n",
    )
    .expect("meminfo");
    let output = Command::new(hlsmux_tests::worker_binary())
        .arg("plan")
        .arg(&input)
        .args(["--board", "pi5", "--json"])
        .env("HLSMUX_MEMINFO", &meminfo)
        .output()
        .await
        .expect("hlsmux-worker runs");
    let from_meminfo: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(from_meminfo["memory"], small["memory"], "{from_meminfo:#}");
}

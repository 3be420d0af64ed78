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
            "broadcast.ts" => {
                assert_eq!(decoder, Some("mpeg2_v4l2m2m"), "{plan:#}");
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

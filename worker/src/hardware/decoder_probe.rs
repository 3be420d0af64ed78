//! Finds, at start-up, which hardware decoders really work here. ffmpeg
//! listing a decoder says only that it was built: the Pi's ffmpeg has
//! `mpeg2_v4l2m2m` on a Pi 4, which has no MPEG-2 decoder, and on a Pi 3
//! without the MPEG-2 licence key; the `drm` hwaccel exists in Debian's
//! ffmpeg on a PC that has no Pi HEVC block. So each input codec that has
//! a hardware decoder beside the chosen encoder gets a trial: a short clip
//! in that codec, made with ffmpeg's own software encoder, decoded with
//! the hardware decoder. The codecs whose trial passes are decoded in
//! hardware; every reason for one that failed is logged.

use std::collections::HashSet;
use std::path::Path;
use tracing::info;

use super::encoder_probe::{NOT_IN_BUILD, available_decoders};
use super::trial;
use crate::pipeline::plan::codec::VideoEncoder;
use crate::pipeline::plan::decoder::HardwareDecoder;

/// Input codecs tried, each with the software encoder that makes its clip.
const TRIAL_CODECS: [(&str, &str); 3] = [
    ("h264", "libx264"),
    ("mpeg2video", "mpeg2video"),
    ("hevc", "libx265"),
];

/// Codecs a PC accelerator decodes that ffmpeg cannot make a clip of for
/// a trial: trusted when the same accelerator decoded H.264 here (ffmpeg
/// falls back to software by itself for what the device lacks).
const UNTRIED_HWACCEL_CODECS: [&str; 3] = ["vp9", "av1", "vc1"];

/// The input codecs whose hardware decoder beside `encoder` decodes a
/// trial clip here (why each other one does not is logged). Clips are
/// made in `work_dir` and removed.
pub async fn trial_decoders(
    ffmpeg: &Path,
    encoder: VideoEncoder,
    vaapi_device: &str,
    work_dir: &Path,
) -> HashSet<String> {
    let built = available_decoders(ffmpeg).await.unwrap_or_default();
    let mut working = HashSet::new();
    for (codec, software_encoder) in TRIAL_CODECS {
        let Some(decoder) = encoder.hardware_decoder(codec) else {
            continue;
        };
        let outcome = match decoder.decoder_name() {
            Some(name) if !built.contains(name) => Err(NOT_IN_BUILD.to_owned()),
            _ => {
                let clip = work_dir.join(format!(".decoder-trial.{codec}.ts"));
                let result = trial(ffmpeg, software_encoder, &clip, decoder, vaapi_device).await;
                let _ = tokio::fs::remove_file(&clip).await;
                result
            }
        };
        match outcome {
            Ok(()) => {
                info!(%codec, %decoder, "hardware decoder works");
                working.insert(codec.to_owned());
            }
            Err(reason) => {
                info!(%codec, %decoder, %reason, "hardware decoder fails its trial: decoding in software");
            }
        }
    }
    let hwaccel_works = working.contains("h264")
        && matches!(
            encoder.hardware_decoder("h264"),
            Some(HardwareDecoder::Hwaccel(_))
        );
    if hwaccel_works {
        for codec in UNTRIED_HWACCEL_CODECS {
            if encoder.hardware_decoder(codec).is_some() {
                working.insert(codec.to_owned());
            }
        }
    }
    working
}

/// Makes a 0.4 s clip with `software_encoder` at `clip`, and decodes it
/// with `decoder`.
async fn trial(
    ffmpeg: &Path,
    software_encoder: &str,
    clip: &Path,
    decoder: HardwareDecoder,
    vaapi_device: &str,
) -> Result<(), String> {
    let make: Vec<String> = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=0.4",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        software_encoder,
        "-f",
        "mpegts",
    ]
    .map(String::from)
    .into_iter()
    .chain([clip.display().to_string()])
    .collect();
    trial::run(ffmpeg, &make)
        .await
        .map_err(|error| format!("cannot make a trial clip with {software_encoder}: {error}"))?;
    let mut decode: Vec<String> = ["-v", "error", "-nostdin"].map(String::from).to_vec();
    decode.extend(decoder.input_args(vaapi_device));
    decode.extend(["-i".to_owned(), clip.display().to_string()]);
    decode.extend(["-f", "null", "-"].map(String::from));
    trial::run(ffmpeg, &decode).await
}

//! Finds a working video encoder at start-up. An encoder listed by ffmpeg can
//! still fail on the machine (no /dev/video11 on a Pi 5, no GPU, no driver),
//! so each candidate gets a one-second trial encode and the first that
//! succeeds is used.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;
use tracing::{info, warn};

use crate::pipeline::input::probe::last_lines;
use crate::pipeline::plan::codec::{EncoderChoice, RungRates, VideoEncoder};
use hlsmux_protocol::RateControl;

/// The reason given for an encoder this ffmpeg build does not have.
pub const NOT_IN_BUILD: &str = "not in this ffmpeg build";

/// The encoder in use and why each earlier candidate was passed over.
#[derive(Clone, Debug)]
pub struct EncoderSelection {
    pub encoder: VideoEncoder,
    pub rejected: Vec<(VideoEncoder, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(
        "encoder {encoder} failed its one-second trial encode ({reason}); set encoder = \"auto\" or another encoder"
    )]
    TrialFailed {
        encoder: VideoEncoder,
        reason: String,
    },
    #[error("no video encoder works on this machine: {0}")]
    NoneWorks(String),
    #[error("cannot list ffmpeg's codecs: {0}")]
    List(String),
}

/// Picks the encoder for `choice`, trying candidates in order.
pub async fn select_encoder(
    ffmpeg: &Path,
    choice: EncoderChoice,
    vaapi_device: &str,
) -> Result<EncoderSelection, EncoderError> {
    let built = list_codecs(ffmpeg, "-encoders")
        .await
        .map_err(EncoderError::List)?;
    let candidates: Vec<VideoEncoder> = match choice {
        EncoderChoice::Auto => VideoEncoder::AUTO_ORDER.to_vec(),
        EncoderChoice::Named(encoder) => vec![encoder],
    };
    let mut rejected = Vec::new();
    for encoder in candidates {
        let outcome = if built.contains(encoder.ffmpeg_name()) {
            trial_encode(ffmpeg, encoder, vaapi_device).await
        } else {
            Err(NOT_IN_BUILD.to_owned())
        };
        match outcome {
            Ok(()) => {
                for (passed_over, reason) in &rejected {
                    info!(encoder = %passed_over, %reason, "encoder passed over");
                }
                if encoder == VideoEncoder::Libx264 && choice == EncoderChoice::Auto {
                    warn!(
                        "no hardware H.264 encoder works here (a Pi 5 has none, 64-bit Pi OS has no OMX): encoding with libx264"
                    );
                }
                info!(%encoder, "video encoder chosen");
                return Ok(EncoderSelection { encoder, rejected });
            }
            Err(reason) if choice == EncoderChoice::Named(encoder) => {
                return Err(EncoderError::TrialFailed { encoder, reason });
            }
            Err(reason) => rejected.push((encoder, reason)),
        }
    }
    let summary: Vec<String> = rejected.iter().map(|(e, r)| format!("{e}: {r}")).collect();
    Err(EncoderError::NoneWorks(summary.join("; ")))
}

/// Names of the decoders this ffmpeg build has.
pub async fn available_decoders(ffmpeg: &Path) -> Result<HashSet<String>, String> {
    list_codecs(ffmpeg, "-decoders").await
}

async fn list_codecs(ffmpeg: &Path, flag: &str) -> Result<HashSet<String>, String> {
    let output = Command::new(ffmpeg)
        .args(["-hide_banner", flag])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(last_lines(&String::from_utf8_lossy(&output.stderr), 2));
    }
    Ok(parse_codec_list(&String::from_utf8_lossy(&output.stdout)))
}

/// Parses `ffmpeg -encoders` / `-decoders`: a legend, a `------` line, then
/// one ` V..... name  description` line per codec.
pub fn parse_codec_list(text: &str) -> HashSet<String> {
    text.lines()
        .skip_while(|line| !line.trim_start().starts_with("---"))
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

/// Encodes one second of test pattern with `encoder`, the way jobs use it.
async fn trial_encode(
    ffmpeg: &Path,
    encoder: VideoEncoder,
    vaapi_device: &str,
) -> Result<(), String> {
    let mut args: Vec<String> = vec![
        "-hide_banner".into(),
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
    ];
    args.extend(encoder.device_args(vaapi_device));
    args.extend(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=1",
        ]
        .map(String::from),
    );
    args.extend([
        "-vf".into(),
        format!("scale=640:360,{}", encoder.filter_suffix()),
    ]);
    args.extend(encoder.codec_args("ultrafast", 25, RateControl::Vbr));
    let rates = RungRates {
        kbps: 1000,
        max_kbps: 1070,
        buffer_kbits: 1500,
    };
    args.extend(encoder.rate_args(0, RateControl::Vbr, rates));
    args.extend(["-f", "mpegts", "-y", "/dev/null"].map(String::from));
    super::trial::run(ffmpeg, &args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_lists_are_parsed_past_the_legend() {
        let text = "Encoders:\n V..... = Video\n A..... = Audio\n ------\n \
            V....D libx264              libx264 H.264 / AVC (codec h264)\n \
            V..... h264_v4l2m2m         V4L2 mem2mem H.264 encoder wrapper (codec h264)\n";
        let names = parse_codec_list(text);
        assert_eq!(names.len(), 2);
        assert!(names.contains("libx264") && names.contains("h264_v4l2m2m"));
        assert!(!names.contains("="), "legend lines are not codecs");
    }
}

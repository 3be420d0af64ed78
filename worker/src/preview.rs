//! `hlsmux-worker plan INPUT`: what a worker would run for an input,
//! without running it. It probes the input with the worker's ffprobe and
//! settings and prints the ladder and the exact ffmpeg command, for the
//! encoder a board would use (a Pi 4's `h264_v4l2m2m`, a Pi 5's `libx264`)
//! and, with `--hwdec`, its hardware decoders: how a Pi would treat a
//! source can be seen, and tested, on any machine.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;
use crate::hardware::MachineCodecs;
use crate::pipeline::JobError;
use crate::pipeline::encode::{self, EncodePlan, OutputOptions};
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::input::probe;
use crate::pipeline::plan::codec::VideoEncoder;
use crate::pipeline::plan::memory::MemoryFit;

/// The machine a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// Raspberry Pi 3: the VideoCore IV encoder through V4L2.
    Pi3,
    /// Raspberry Pi 4: the VideoCore VI encoder through V4L2.
    Pi4,
    /// Raspberry Pi 5: no H.264 encoder, so libx264.
    Pi5,
    /// Anything else without a hardware encoder named.
    Generic,
}

impl Board {
    /// The board's cores, as the memory model counts x264's threads; the
    /// machine's own for `generic`.
    pub fn cores(self) -> Option<u32> {
        match self {
            // Raspberry Pi 3, 4 and 5 all have four Cortex-A cores.
            Board::Pi3 | Board::Pi4 | Board::Pi5 => Some(4),
            Board::Generic => None,
        }
    }

    /// Whether this board decodes input `codec` in hardware: a Pi 3 H.264
    /// and MPEG-2 (with the licence key), a Pi 4 H.264 and HEVC, a Pi 5
    /// HEVC only (Raspberry Pi's specifications: the Pi 4's "H.265 (4Kp60
    /// decode), H.264 (1080p60 decode, 1080p30 encode)"; the Pi 5's "4Kp60
    /// HEVC decoder"). `generic`: whatever its encoder's family offers, as
    /// if every trial passed.
    pub fn decodes(self, codec: &str) -> bool {
        match self {
            Board::Pi3 => matches!(codec, "h264" | "mpeg2video"),
            Board::Pi4 => matches!(codec, "h264" | "hevc"),
            Board::Pi5 => codec == "hevc",
            Board::Generic => true,
        }
    }

    pub fn encoder(self) -> VideoEncoder {
        match self {
            Board::Pi3 | Board::Pi4 => VideoEncoder::V4l2m2m,
            Board::Pi5 | Board::Generic => VideoEncoder::Libx264,
        }
    }
}

/// What the plan says, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub input: PathBuf,
    pub source: SourceView,
    pub encoder: String,
    /// The hardware decoder, when the input gets one.
    pub decoder: Option<String>,
    pub rungs: Vec<RungView>,
    /// How the plan was held to the memory budget.
    pub memory: MemoryFit,
    /// ffmpeg's arguments (the program first), writing into `STAGING`.
    pub ffmpeg: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub duration_seconds: f64,
    pub interlaced: bool,
}

#[derive(Debug, Serialize)]
pub struct RungView {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub frame_rate: f64,
}

/// Where the printed command writes: the worker writes into a staging
/// directory of its own for each attempt.
pub const STAGING: &str = "STAGING";

/// Probes `input` and plans it as a worker with `settings` would, with
/// `encoder`, decoding in hardware when `hw_decode` and the input allows.
pub async fn preview(
    settings: &Settings,
    input: &Path,
    board: Board,
    encoder: VideoEncoder,
    hw_decode: bool,
) -> Result<Preview, JobError> {
    let source = probe::probe(
        &settings.tools.ffprobe,
        input,
        input,
        &settings.encoding.input_formats,
        Duration::from_secs(settings.tools.probe_timeout_seconds),
    )
    .await?;
    // As if the board's hardware decoders had passed their trials.
    let codecs = MachineCodecs {
        encoder,
        hardware_decoders: hw_decode.then(|| {
            let codec = &source.video.codec;
            board
                .decodes(codec)
                .then(|| codec.clone())
                .into_iter()
                .collect::<HashSet<String>>()
        }),
    };
    let decoder = codecs.decoder_for(&source.video);
    let options = OutputOptions {
        ladder: settings.encoding.ladder,
        segment_seconds: settings.encoding.segment_seconds,
        layout: Layout {
            naming: settings.encoding.naming,
            format: settings.encoding.segment_format,
        },
        rate_control: settings.encoding.rate_control,
    };
    let plan = EncodePlan::new(
        &settings.encoding,
        input.to_owned(),
        &source,
        options,
        encoder,
        decoder,
    );
    let mut ffmpeg = vec![settings.tools.ffmpeg.display().to_string()];
    ffmpeg.extend(
        encode::ffmpeg_args(&plan, Path::new(STAGING))
            .into_iter()
            .map(|arg: OsString| arg.to_string_lossy().into_owned()),
    );
    Ok(Preview {
        input: input.to_owned(),
        source: SourceView {
            codec: source.video.codec.clone(),
            width: source.video.width,
            height: source.video.height,
            frame_rate: source.video.frame_rate.as_f64(),
            duration_seconds: source.duration_seconds,
            interlaced: source.video.interlaced,
        },
        encoder: encoder.to_string(),
        decoder: plan.decoder.map(|decoder| decoder.to_string()),
        rungs: rungs_of(&plan),
        memory: plan.memory.clone(),
        ffmpeg,
    })
}

fn rungs_of(plan: &EncodePlan) -> Vec<RungView> {
    plan.rungs
        .iter()
        .map(|rung| RungView {
            name: rung.name(),
            width: rung.width,
            height: rung.height,
            video_kbps: rung.video_kbps,
            frame_rate: rung.frame_rate.as_f64(),
        })
        .collect()
}

impl std::fmt::Display for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = &self.source;
        writeln!(
            f,
            "{}: {} {}x{} at {:.3} fps, {:.1} s{}",
            self.input.display(),
            source.codec,
            source.width,
            source.height,
            source.frame_rate,
            source.duration_seconds,
            if source.interlaced {
                ", interlaced"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "encoder {}, decoding {}",
            self.encoder,
            self.decoder.as_deref().unwrap_or("in software")
        )?;
        for rung in &self.rungs {
            writeln!(
                f,
                "  {:<14} {:>4}x{:<4} {:>6} kb/s {:>6.3} fps",
                rung.name, rung.width, rung.height, rung.video_kbps, rung.frame_rate
            )?;
        }
        let memory = &self.memory;
        if memory.estimate_mib > 0 {
            write!(
                f,
                "memory: about {} MiB of a {} MiB budget",
                memory.estimate_mib, memory.budget_mib
            )?;
            if let Some(threads) = memory.threads {
                write!(f, "; {threads} thread per rung")?;
            }
            if let Some(frames) = memory.lookahead {
                write!(f, "; lookahead {frames} frames")?;
            }
            if !memory.dropped.is_empty() {
                write!(f, "; left out to fit: {}", memory.dropped.join(", "))?;
            }
            writeln!(f)?;
        }
        let quoted: Vec<String> = self.ffmpeg.iter().map(|arg| shell_quoted(arg)).collect();
        writeln!(f, "{}", quoted.join(" "))
    }
}

/// `arg` as a POSIX shell word.
fn shell_quoted(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+%@".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

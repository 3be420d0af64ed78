//! Memory: what one encode costs in RAM, and fitting a plan to the
//! worker's memory budget, so a 1 GiB Pi is never asked for more than it
//! has (an out-of-memory kill would only bounce the job between Pis).
//!
//! Only libx264 is modelled: it holds every frame it works on in the
//! machine's memory, per rung, and its threads and lookahead multiply
//! them. The Pi's hardware encoder keeps its frames in GPU memory
//! (`gpu_mem`), and the PC encoders in the device's.
//!
//! The model, measured with Debian's ffmpeg 5.1 and libx264 (preset
//! veryfast, a 1080p30 source and the standard ladder, peak RSS from
//! `/usr/bin/time`; `scripts/bench` item 7 measures it again):
//! - a base of 40 MB plus 22 bytes per source pixel (ffmpeg, the decoder's
//!   frames and the audio);
//! - per rung, 6 MB plus per pixel 40 bytes, 3.2 more per frame of
//!   lookahead and 26 more per frame thread past the first;
//! - 10 % over that for what the model leaves out.
//!
//! The fit tries, in order: the settings as they are; one thread per rung
//! (ffmpeg 5.1 then runs the encoders one after another: slower, never
//! larger); then a lookahead of 5 frames; then drops the top rung, and the
//! next, until the estimate fits. The lowest rung is always kept.

use serde::Serialize;

use super::codec::VideoEncoder;
use super::ladder::Rung;

const MIB: u64 = 1024 * 1024;
const BASE_BYTES: f64 = 40e6;
const BASE_PER_SOURCE_PIXEL: f64 = 22.0;
const RUNG_BYTES: f64 = 6e6;
const RUNG_PER_PIXEL: f64 = 40.0;
const PER_PIXEL_PER_LOOKAHEAD_FRAME: f64 = 3.2;
const PER_PIXEL_PER_EXTRA_THREAD: f64 = 26.0;
const UNMODELLED_MARGIN: f64 = 1.1;
/// The smallest lookahead the fit goes down to: x264's VBV and macroblock
/// tree still have frames to plan with.
const LEAST_LOOKAHEAD: u32 = 5;

/// How an encode is held to the budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryFit {
    pub budget_mib: u64,
    pub estimate_mib: u64,
    /// Threads per rung's encoder, when the fit set them (`-threads`).
    pub threads: Option<u32>,
    /// Frames of x264 lookahead, when the fit set it (`-rc-lookahead`).
    pub lookahead: Option<u32>,
    /// The rungs left out to fit, top first.
    pub dropped: Vec<String>,
}

impl MemoryFit {
    /// Nothing changed: the encoder is not modelled, or the plan fits.
    fn unchanged(budget_mib: u64, estimate_mib: u64) -> Self {
        Self {
            budget_mib,
            estimate_mib,
            threads: None,
            lookahead: None,
            dropped: Vec::new(),
        }
    }
}

/// What the fit works from.
#[derive(Clone, Copy, Debug)]
pub struct MemoryInputs<'a> {
    pub budget_bytes: u64,
    pub encoder: VideoEncoder,
    pub source_pixels: u64,
    /// `ffmpeg_threads`: 0 lets x264 pick (1.5 per core).
    pub configured_threads: u32,
    pub cores: u32,
    pub x264_preset: &'a str,
}

/// Fits `rungs` (top first) to the budget; returns the rungs kept and how.
pub fn fit(rungs: Vec<Rung>, inputs: MemoryInputs<'_>) -> (Vec<Rung>, MemoryFit) {
    let budget_mib = inputs.budget_bytes / MIB;
    if inputs.encoder != VideoEncoder::Libx264 {
        return (rungs, MemoryFit::unchanged(budget_mib, 0));
    }
    let threads = match inputs.configured_threads {
        0 => (inputs.cores.max(1) * 3).div_ceil(2),
        n => n,
    };
    let lookahead = preset_lookahead(inputs.x264_preset);
    let estimate = |rungs: &[Rung], threads, lookahead| {
        estimate_bytes(inputs.source_pixels, rungs, threads, lookahead)
    };
    let as_set = estimate(&rungs, threads, lookahead);
    if as_set <= inputs.budget_bytes {
        return (rungs, MemoryFit::unchanged(budget_mib, as_set / MIB));
    }
    let one_thread = estimate(&rungs, 1, lookahead);
    if one_thread <= inputs.budget_bytes {
        let fit = MemoryFit {
            threads: Some(1),
            ..MemoryFit::unchanged(budget_mib, one_thread / MIB)
        };
        return (rungs, fit);
    }
    let lookahead = lookahead.min(LEAST_LOOKAHEAD);
    let mut kept = rungs;
    let mut dropped = Vec::new();
    while kept.len() > 1 && estimate(&kept, 1, lookahead) > inputs.budget_bytes {
        dropped.push(kept.remove(0).name());
    }
    let fit = MemoryFit {
        budget_mib,
        estimate_mib: estimate(&kept, 1, lookahead) / MIB,
        threads: Some(1),
        lookahead: Some(lookahead),
        dropped,
    };
    (kept, fit)
}

/// The model's peak resident memory of one libx264 encode, in bytes.
pub fn estimate_bytes(source_pixels: u64, rungs: &[Rung], threads: u32, lookahead: u32) -> u64 {
    let per_pixel = RUNG_PER_PIXEL
        + PER_PIXEL_PER_LOOKAHEAD_FRAME * f64::from(lookahead)
        + PER_PIXEL_PER_EXTRA_THREAD * f64::from(threads.saturating_sub(1));
    let encoders: f64 = rungs
        .iter()
        .map(|rung| RUNG_BYTES + per_pixel * f64::from(rung.width) * f64::from(rung.height))
        .sum();
    let base = BASE_BYTES + BASE_PER_SOURCE_PIXEL * source_pixels as f64;
    ((base + encoders) * UNMODELLED_MARGIN) as u64
}

/// x264's own `rc_lookahead` for a preset (x264's `common/base.c`,
/// `preset_set`); veryfast's 10 for a preset it does not know.
fn preset_lookahead(preset: &str) -> u32 {
    match preset {
        "ultrafast" | "superfast" => 0,
        "faster" => 20,
        "fast" => 30,
        "medium" => 40,
        "slow" => 50,
        "slower" | "veryslow" | "placebo" => 60,
        _ => 10,
    }
}

/// Half the machine's memory (`MemTotal` in `/proc/meminfo`): the rest is
/// the system's, the worker's, and the page cache NFS reads through.
pub fn default_budget_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024 / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::ladder::FrameRate;

    fn rung(width: u32, height: u32, video_kbps: u32) -> Rung {
        Rung {
            width,
            height,
            video_kbps,
            frame_rate: FrameRate { num: 30, den: 1 },
        }
    }

    /// The standard ladder for a 1080p30 source.
    fn ladder_1080() -> Vec<Rung> {
        vec![
            rung(1920, 1080, 7800),
            rung(1920, 1080, 6000),
            rung(1280, 720, 4500),
            rung(1280, 720, 3000),
            rung(960, 540, 2000),
            rung(768, 432, 1100),
            rung(768, 432, 730),
            rung(640, 360, 365),
            rung(416, 234, 145),
        ]
    }

    fn inputs(budget_mib: u64, encoder: VideoEncoder) -> MemoryInputs<'static> {
        MemoryInputs {
            budget_bytes: budget_mib * MIB,
            encoder,
            source_pixels: 1920 * 1080,
            configured_threads: 0,
            cores: 4,
            x264_preset: "veryfast",
        }
    }

    #[test]
    fn the_model_matches_what_was_measured() {
        // Measured peaks (MB): one 1080p rung 209, two 332, with one
        // thread and a lookahead of 5; the whole ladder 605.
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let one = mb(estimate_bytes(1920 * 1080, &ladder_1080()[..1], 1, 5));
        let two = mb(estimate_bytes(1920 * 1080, &ladder_1080()[..2], 1, 5));
        let all = mb(estimate_bytes(1920 * 1080, &ladder_1080(), 1, 5));
        for (model, measured) in [(one, 209.0), (two, 332.0), (all, 605.0)] {
            assert!(
                (model - measured).abs() / measured < 0.12,
                "model {model:.0} MB, measured {measured} MB"
            );
        }
    }

    #[test]
    fn a_roomy_machine_keeps_the_ladder_and_its_settings() {
        let (kept, fit) = fit(ladder_1080(), inputs(8 * 1024, VideoEncoder::Libx264));
        assert_eq!(kept.len(), 9);
        assert_eq!((fit.threads, fit.lookahead), (None, None));
        assert!(fit.dropped.is_empty());
    }

    #[test]
    fn a_one_gib_board_gets_one_thread_a_short_lookahead_and_loses_the_top_rung() {
        // Half of a 1 GiB board.
        let (kept, fit) = fit(ladder_1080(), inputs(512, VideoEncoder::Libx264));
        assert_eq!(fit.threads, Some(1));
        assert_eq!(fit.lookahead, Some(5));
        assert_eq!(fit.dropped, vec!["1080p_7800k".to_owned()]);
        assert_eq!(kept.len(), 8);
        assert!(fit.estimate_mib <= 512, "{fit:?}");
    }

    #[test]
    fn one_thread_alone_is_tried_before_the_lookahead_or_a_rung() {
        let four_rungs = ladder_1080()[2..6].to_vec();
        let (kept, fit) = fit(four_rungs, inputs(350, VideoEncoder::Libx264));
        assert_eq!(kept.len(), 4);
        assert_eq!((fit.threads, fit.lookahead), (Some(1), None), "{fit:?}");
    }

    #[test]
    fn the_lowest_rung_is_always_kept() {
        let (kept, fit) = fit(ladder_1080(), inputs(16, VideoEncoder::Libx264));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name(), "234p_145k");
        assert_eq!(fit.dropped.len(), 8);
    }

    #[test]
    fn hardware_encoders_keep_their_frames_elsewhere() {
        let (kept, fit) = fit(ladder_1080(), inputs(16, VideoEncoder::V4l2m2m));
        assert_eq!(kept.len(), 9);
        assert_eq!(fit.threads, None);
    }

    #[test]
    fn the_default_budget_is_half_of_memtotal() {
        let meminfo = "MemTotal:        1000000 kB\nMemFree:          500000 kB\n";
        assert_eq!(default_budget_bytes(meminfo), Some(512_000_000));
        assert_eq!(default_budget_bytes("MemFree: 1 kB\n"), None);
    }
}

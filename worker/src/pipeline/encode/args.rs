//! The ffmpeg command line of a plan: one decode, a filter graph that
//! scales to every rung, and the HLS muxer options that put keyframes at
//! the same times in every rung.

use std::ffi::OsString;
use std::path::Path;

use crate::pipeline::hls::layout::AUDIO_RENDITION;
use hlsmux_protocol::SegmentFormat;

use super::plan::{AudioSource, EncodePlan};
use crate::pipeline::plan::codec::RungRates;

/// The ffmpeg arguments for `plan`, writing into `out_dir`: the global
/// options and the input, the filter graph and the streams it maps, the
/// encoders, then the HLS muxer.
pub fn ffmpeg_args(plan: &EncodePlan, out_dir: &Path) -> Vec<OsString> {
    part_args(plan, out_dir, Part::Whole)
}

/// What one ffmpeg run of a plan encodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Part {
    /// Every rung and the audio, from start to end: a job encoded whole.
    Whole,
    /// Every rung, no audio, for one window of the source (a chunk of a
    /// split job).
    VideoWindow(Window),
    /// The audio alone, whole (a split job's audio is never cut in chunks:
    /// AAC would click at the joins).
    AudioOnly,
}

/// A stretch of the source encoded on its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub start_seconds: f64,
    pub seconds: f64,
    /// The global number of its first segment.
    pub first_segment: u64,
}

/// Where a split job's timestamps start: past zero by more than any
/// decoding delay, so no part is shifted to keep its first decoding time
/// non-negative (a whole encode's first part is shifted by its B-frame
/// delay, the others would not be, and the joins would jump).
const SPLIT_TIMESTAMP_BASE_SECONDS: f64 = 1.0;

/// The ffmpeg arguments for one part of `plan`.
pub fn part_args(plan: &EncodePlan, out_dir: &Path, part: Part) -> Vec<OsString> {
    let mut args = Args::default();
    input_args(&mut args, plan, part);
    mapping_args(&mut args, plan, part);
    encoder_args(&mut args, plan, part);
    muxer_args(&mut args, plan, out_dir, part);
    args.0
}

impl Part {
    fn video(self) -> bool {
        !matches!(self, Part::AudioOnly)
    }

    fn audio(self) -> bool {
        !matches!(self, Part::VideoWindow(_))
    }
}

/// An ffmpeg command line being built.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<S: Into<OsString>>(&mut self, items: impl IntoIterator<Item = S>) {
        self.0.extend(items.into_iter().map(Into::into));
    }
}

/// Quiet, machine-readable progress on stdout, the hardware device and
/// decoder, the confinement of what the input may open, and the input
/// (with a silent track after it when one is asked for).
fn input_args(args: &mut Args, plan: &EncodePlan, part: Part) {
    args.push([
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
    ]);
    if plan.threads > 0 {
        args.push(["-threads".to_owned(), plan.threads.to_string()]);
    }
    args.push(plan.encoder.device_args(&plan.vaapi_device));
    if let Some(decoder) = plan.decoder {
        args.push(decoder.input_args(&plan.vaapi_device));
    }
    args.push(crate::pipeline::input::validate::confinement_args(
        &plan.input_formats,
    ));
    if let Part::VideoWindow(window) = part {
        // Seeking before the input is accurate when transcoding: ffmpeg
        // decodes from the keyframe before the start and drops the lead-in.
        args.push([
            "-ss".to_owned(),
            format!("{:.6}", window.start_seconds),
            "-t".to_owned(),
            format!("{:.6}", window.seconds),
        ]);
    }
    args.push([OsString::from("-i"), plan.input.clone().into_os_string()]);
    if let Some(AudioSource::Silence { seconds }) = &plan.audio
        && part.audio()
    {
        args.push([
            "-f".to_owned(),
            "lavfi".to_owned(),
            "-t".to_owned(),
            format!("{seconds:.3}"),
            "-i".to_owned(),
            "anullsrc=channel_layout=stereo:sample_rate=48000".to_owned(),
        ]);
    }
}

/// The filter graph, one output per rung, and the audio stream.
fn mapping_args(args: &mut Args, plan: &EncodePlan, part: Part) {
    if part.video() {
        args.push(["-filter_complex".to_owned(), filter_graph(plan)]);
        for index in 0..plan.rungs.len() {
            args.push(["-map".to_owned(), format!("[video{index}]")]);
        }
    }
    if !part.audio() {
        return;
    }
    match &plan.audio {
        Some(AudioSource::Track(track)) => {
            args.push(["-map".to_owned(), format!("0:{}", track.index)]);
        }
        Some(AudioSource::Silence { .. }) => args.push(["-map", "1:a"]),
        None => {}
    }
}

/// The video encoder with each rung's rates, keyframes at every segment
/// boundary, and AAC.
fn encoder_args(args: &mut Args, plan: &EncodePlan, part: Part) {
    if part.video() {
        video_encoder_args(args, plan);
    }
    if part.audio() {
        audio_encoder_args(args, plan);
    }
}

fn video_encoder_args(args: &mut Args, plan: &EncodePlan) {
    // Keyframes exactly at segment boundaries in every variant: a GOP of one
    // segment (at the fastest rung's rate), and keyframes forced by time
    // (which every encoder honours).
    let fastest = plan
        .rungs
        .iter()
        .map(|rung| rung.frame_rate.as_f64())
        .fold(1.0, f64::max);
    let per_segment = plan.keyframes_per_segment();
    let interval = f64::from(plan.segment_seconds) / f64::from(per_segment);
    let gop = (fastest * interval).round().max(1.0) as u32;
    args.push(
        plan.encoder
            .codec_args(&plan.x264_preset, gop, plan.rate_control),
    );
    // Held to the memory budget: fewer threads per rung's encoder (and in
    // the filters), a shorter lookahead.
    match plan.memory.threads {
        Some(threads) => args.push([
            "-threads".to_owned(),
            threads.to_string(),
            "-filter_complex_threads".to_owned(),
            "1".to_owned(),
        ]),
        None if plan.threads > 0 => {
            args.push(["-threads".to_owned(), plan.threads.to_string()]);
        }
        None => {}
    }
    if let Some(frames) = plan.memory.lookahead {
        args.push(["-rc-lookahead".to_owned(), frames.to_string()]);
    }
    for (index, rung) in plan.rungs.iter().enumerate() {
        let rates = RungRates {
            kbps: rung.video_kbps,
            max_kbps: rung.max_kbps(),
            buffer_kbits: rung.buffer_kbits(),
        };
        args.push(plan.encoder.rate_args(index, plan.rate_control, rates));
    }
    // `n_forced*S/N` rather than a rounded interval: (N*S)/N is S exactly,
    // so every segment boundary is a keyframe however S divides.
    args.push([
        "-force_key_frames".to_owned(),
        format!(
            "expr:gte(t,n_forced*{}/{per_segment})",
            plan.segment_seconds
        ),
    ]);
}

fn audio_encoder_args(args: &mut Args, plan: &EncodePlan) {
    if let Some(end) = plan.audio_end_seconds {
        args.push(["-filter:a".to_owned(), format!("atrim=end={end:.6}")]);
    }
    if plan.audio.is_some() {
        args.push([
            "-c:a".to_owned(),
            "aac".to_owned(),
            "-b:a".to_owned(),
            format!("{}k", plan.audio_kbps),
            "-ac".to_owned(),
            "2".to_owned(),
        ]);
    }
}

/// The HLS muxer: one variant per rung naming the shared audio rendition
/// group (players fetch the audio once whichever rung they play), VOD
/// playlists, and the layout's file names. ffmpeg writes no master
/// playlist: `master` writes it from what was actually encoded.
fn muxer_args(args: &mut Args, plan: &EncodePlan, out_dir: &Path, part: Part) {
    let group = match plan.audio {
        Some(_) => format!(",agroup:{AUDIO_RENDITION}"),
        None => String::new(),
    };
    let mut stream_map: Vec<String> = Vec::new();
    if part.video() {
        stream_map.extend(
            plan.rungs
                .iter()
                .enumerate()
                .map(|(index, rung)| format!("v:{index}{group},name:{}", rung.name())),
        );
    }
    if plan.audio.is_some() && part.audio() {
        stream_map.push(format!("a:0{group},name:{AUDIO_RENDITION}"));
    }
    // A split job's parts keep the source's timeline (from a common base),
    // each numbering its segments where it falls on the grid.
    let (offset, first_segment) = match part {
        Part::Whole => (None, None),
        Part::VideoWindow(window) => (
            Some(SPLIT_TIMESTAMP_BASE_SECONDS + window.start_seconds),
            Some(window.first_segment),
        ),
        Part::AudioOnly => (Some(SPLIT_TIMESTAMP_BASE_SECONDS), None),
    };
    if let Some(offset) = offset {
        args.push([
            "-avoid_negative_ts".to_owned(),
            "disabled".to_owned(),
            "-output_ts_offset".to_owned(),
            format!("{offset:.6}"),
        ]);
    }
    if let Some(first) = first_segment {
        args.push(["-start_number".to_owned(), first.to_string()]);
    }
    args.push([
        "-max_muxing_queue_size".to_owned(),
        "1024".to_owned(),
        "-f".to_owned(),
        "hls".to_owned(),
        "-hls_time".to_owned(),
        plan.segment_seconds.to_string(),
        "-hls_playlist_type".to_owned(),
        "vod".to_owned(),
        "-hls_flags".to_owned(),
        "independent_segments".to_owned(),
        "-var_stream_map".to_owned(),
        stream_map.join(" "),
        "-hls_segment_type".to_owned(),
        plan.layout.format.as_str().to_owned(),
    ]);
    if plan.layout.format == SegmentFormat::Fmp4 {
        args.push([
            "-hls_fmp4_init_filename".to_owned(),
            plan.layout.ffmpeg_init().to_owned(),
        ]);
    }
    args.push([
        OsString::from("-hls_segment_filename"),
        out_dir.join(plan.layout.ffmpeg_segments()).into_os_string(),
        out_dir
            .join(plan.layout.ffmpeg_playlists())
            .into_os_string(),
    ]);
}

/// Decodes the video once (deinterlaced when stored as fields), splits it,
/// and scales each copy to its rung at the rung's constant frame rate (which
/// also turns a variable-rate source into a constant-rate output).
pub(super) fn filter_graph(plan: &EncodePlan) -> String {
    let count = plan.rungs.len();
    let deinterlace = if plan.deinterlace { "yadif," } else { "" };
    let mut graph = format!("[0:{}]{deinterlace}split={count}", plan.video_stream_index);
    for index in 0..count {
        graph.push_str(&format!("[split{index}]"));
    }
    for (index, rung) in plan.rungs.iter().enumerate() {
        graph.push_str(&format!(
            // Square pixels: the rung's size is the picture's shape already
            // (rounded to even sides, an error under a pixel), so no
            // sample aspect ratio is left to correct it.
            ";[split{index}]scale={}:{},setsar=1,fps={},{}[video{index}]",
            rung.width,
            rung.height,
            rung.frame_rate.ffmpeg(),
            plan.encoder.filter_suffix()
        ));
    }
    graph
}

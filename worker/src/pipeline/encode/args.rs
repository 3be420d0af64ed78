//! The ffmpeg command line of a plan: one decode, a filter graph that
//! scales to every rung, and the HLS muxer options that put keyframes at
//! the same times in every rung.

use std::ffi::OsString;
use std::path::Path;

use crate::pipeline::hls::layout::AUDIO_RENDITION;
use hlsmux_protocol::SegmentFormat;

use super::plan::{AudioSource, EncodePlan};

/// The ffmpeg arguments for `plan`, writing into `out_dir`.
pub fn ffmpeg_args(plan: &EncodePlan, out_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
    push(&[
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-nostats",
    ]);
    push(&["-progress", "pipe:1"]);
    let threads = plan.threads.to_string();
    if plan.threads > 0 {
        push(&["-threads", &threads]);
    }
    args.extend(plan.encoder.device_args(&plan.vaapi_device));
    if let Some(decoder) = plan.decoder {
        args.extend(decoder.input_args(&plan.vaapi_device));
    }
    args.extend(crate::pipeline::input::validate::confinement_args(
        &plan.input_formats,
    ));
    let mut args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    args.push("-i".into());
    args.push(plan.input.clone().into());

    let mut push = |items: &[String]| args.extend(items.iter().map(OsString::from));
    if let Some(AudioSource::Silence { seconds }) = &plan.audio {
        push(&[
            "-f".into(),
            "lavfi".into(),
            "-t".into(),
            format!("{seconds:.3}"),
            "-i".into(),
            "anullsrc=channel_layout=stereo:sample_rate=48000".into(),
        ]);
    }
    push(&["-filter_complex".into(), filter_graph(plan)]);
    for index in 0..plan.rungs.len() {
        push(&["-map".into(), format!("[video{index}]")]);
    }
    match &plan.audio {
        Some(AudioSource::Track(track)) => push(&["-map".into(), format!("0:{}", track.index)]),
        Some(AudioSource::Silence { .. }) => push(&["-map".into(), "1:a".into()]),
        None => {}
    }

    // Keyframes exactly at segment boundaries in every variant: a GOP of one
    // segment (at the fastest rung's rate), and keyframes forced by time
    // (which every encoder honours).
    let fastest = plan
        .rungs
        .iter()
        .map(|rung| rung.frame_rate.as_f64())
        .fold(1.0, f64::max);
    let gop = (fastest * f64::from(plan.segment_seconds)).round().max(1.0) as u32;
    push(&plan.encoder.codec_args(&plan.x264_preset, gop));
    if plan.threads > 0 {
        push(&["-threads".into(), threads]);
    }
    for (index, rung) in plan.rungs.iter().enumerate() {
        push(
            &plan
                .encoder
                .rate_args(index, rung.video_kbps, rung.max_kbps(), rung.buffer_kbits()),
        );
    }
    push(&[
        "-force_key_frames".into(),
        format!("expr:gte(t,n_forced*{})", plan.segment_seconds),
    ]);
    if plan.audio.is_some() {
        push(&[
            "-c:a".into(),
            "aac".into(),
            "-b:a".into(),
            format!("{}k", plan.audio_kbps),
            "-ac".into(),
            "2".into(),
        ]);
    }

    // The audio is one rendition group: every rung names it, and players
    // fetch it once whichever rung they play. (ffmpeg writes no master
    // playlist: `master` writes it from what was actually encoded.)
    let group = match plan.audio {
        Some(_) => format!(",agroup:{AUDIO_RENDITION}"),
        None => String::new(),
    };
    let mut stream_map: Vec<String> = plan
        .rungs
        .iter()
        .enumerate()
        .map(|(index, rung)| format!("v:{index}{group},name:{}", rung.name()))
        .collect();
    if plan.audio.is_some() {
        stream_map.push(format!("a:0{group},name:{AUDIO_RENDITION}"));
    }
    let segment_seconds = plan.segment_seconds.to_string();
    let muxer: [&str; 12] = [
        "-max_muxing_queue_size",
        "1024",
        "-f",
        "hls",
        "-hls_time",
        &segment_seconds,
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-var_stream_map",
        &stream_map.join(" "),
    ];
    args.extend(muxer.iter().map(OsString::from));
    args.extend([
        "-hls_segment_type".into(),
        plan.layout.format.as_str().into(),
    ]);
    if plan.layout.format == SegmentFormat::Fmp4 {
        args.extend([
            "-hls_fmp4_init_filename".into(),
            plan.layout.ffmpeg_init().into(),
        ]);
    }
    args.push("-hls_segment_filename".into());
    args.push(out_dir.join(plan.layout.ffmpeg_segments()).into());
    args.push(out_dir.join(plan.layout.ffmpeg_playlists()).into());
    args
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
            ";[split{index}]scale={}:{},fps={},{}[video{index}]",
            rung.width,
            rung.height,
            rung.frame_rate.ffmpeg(),
            plan.encoder.filter_suffix()
        ));
    }
    graph
}

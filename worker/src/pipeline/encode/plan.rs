//! The encode plan: everything ffmpeg needs to know to encode one job,
//! made from the worker's encoding settings, the probed source and the
//! job's options.

use std::path::PathBuf;

use crate::config::EncodingSettings;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::input::probe::{AudioTrack, SourceMedia};
use crate::pipeline::plan::codec::VideoEncoder;
use crate::pipeline::plan::decoder::HardwareDecoder;
use crate::pipeline::plan::ladder::{Rung, SourceVideo, plan_ladder};
use crate::pipeline::plan::memory::{self, MemoryFit, MemoryInputs};
use hlsmux_protocol::{LadderName, RateControl};

/// Where the audio rendition comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioSource {
    /// A track of the input.
    Track(AudioTrack),
    /// Silence as long as the source: for a source without audio, when the
    /// setting `silent_audio` asks for a track every output has.
    Silence { seconds: f64 },
}

impl AudioSource {
    pub fn language(&self) -> Option<&str> {
        match self {
            AudioSource::Track(track) => track.language.as_deref(),
            AudioSource::Silence { .. } => None,
        }
    }
}

/// What a job asks of its output, each the worker's default unless the job
/// says otherwise.
#[derive(Clone, Copy, Debug)]
pub struct OutputOptions {
    pub ladder: LadderName,
    pub segment_seconds: u32,
    pub layout: Layout,
    pub rate_control: RateControl,
}

/// Everything ffmpeg needs to know to encode one job.
#[derive(Clone, Debug)]
pub struct EncodePlan {
    pub input: PathBuf,
    pub video_stream_index: usize,
    /// Deinterlace before scaling (the source is stored as fields).
    pub deinterlace: bool,
    /// Encoded once, as a rendition all rungs share.
    pub audio: Option<AudioSource>,
    /// Where the audio is cut so that, once the AAC encoder's one frame of
    /// priming delays it, it ends with the video (see `audio_end`).
    pub audio_end_seconds: Option<f64>,
    pub rungs: Vec<Rung>,
    pub segment_seconds: u32,
    /// The longest keyframe interval (see `keyframes_per_segment`).
    pub keyframe_seconds: u32,
    /// Where each file goes.
    pub layout: Layout,
    pub rate_control: RateControl,
    pub encoder: VideoEncoder,
    /// Decode in hardware with this, where the input's codec allows.
    pub decoder: Option<HardwareDecoder>,
    pub vaapi_device: String,
    pub x264_preset: String,
    pub audio_kbps: u32,
    pub threads: u32,
    /// How the plan was held to the memory budget (threads, lookahead and
    /// rungs dropped).
    pub memory: MemoryFit,
    /// The demuxers the input may be opened with.
    pub input_formats: String,
}

/// Samples in one AAC frame: the encoder's priming delay, one frame.
const AAC_FRAME_SAMPLES: f64 = 1024.0;
/// The rate of the silence made for a source without audio.
const SILENCE_SAMPLE_RATE: u32 = 48_000;

/// Where to cut the audio so that it ends with the video. The AAC encoder
/// starts with one frame of priming that the segments' timestamps keep, so
/// audio as long as the video ends one frame later, and the HLS muxer put
/// that frame into a segment of its own (23 ms) after the last video one.
fn audio_end(source: &SourceMedia, audio: &AudioSource) -> f64 {
    let rate = match audio {
        AudioSource::Track(track) => track.sample_rate.unwrap_or(SILENCE_SAMPLE_RATE),
        AudioSource::Silence { .. } => SILENCE_SAMPLE_RATE,
    };
    let video = source.video_seconds.unwrap_or(source.duration_seconds);
    (video - AAC_FRAME_SAMPLES / f64::from(rate.max(1))).max(0.0)
}

/// The margin over the ladder's nominal bitrates that an output may take:
/// rate control overshoots, the container's overhead (MPEG-TS adds about a
/// tenth), playlists and I-frame playlists.
const OUTPUT_SIZE_MARGIN: f64 = 1.5;

impl EncodePlan {
    /// How many equal keyframe intervals each segment is cut into: the
    /// fewest that keep each within `keyframe_seconds`. Segment boundaries
    /// are every this many keyframes, so they stay keyframes.
    pub fn keyframes_per_segment(&self) -> u32 {
        self.segment_seconds
            .div_ceil(self.keyframe_seconds.max(1))
            .max(1)
    }

    /// What every chunk of a split job must be encoded alike with, in
    /// short: a worker whose own plan for the chunk says otherwise (other
    /// rungs, say, under a smaller memory budget) leaves it to the
    /// coordinator. Threads, lookahead and the decoder may differ: they
    /// change how fast a chunk is made, not what it is.
    pub fn chunk_signature(&self) -> String {
        format!(
            "{} {:?} seg={} kf={} {:?} {:?} preset={} audio={} {:?}",
            self.encoder,
            self.rungs,
            self.segment_seconds,
            self.keyframe_seconds,
            self.layout,
            self.rate_control,
            self.x264_preset,
            self.audio.is_some(),
            self.deinterlace,
        )
    }

    /// The same plan, decoding the input in software: for a hardware
    /// decoder that failed on it.
    pub fn decoding_in_software(self) -> Self {
        Self {
            decoder: None,
            ..self
        }
    }

    /// About how many bytes this plan writes for `seconds` of source, at
    /// most: every rung's and the audio's bitrate over the duration, with a
    /// margin. Encrypting writes each segment a second time before the
    /// clear one is removed.
    pub fn estimated_output_bytes(&self, seconds: f64, encrypted: bool) -> u64 {
        let video_kbps: u64 = self
            .rungs
            .iter()
            .map(|rung| u64::from(rung.video_kbps))
            .sum();
        let audio_kbps = if self.audio.is_some() {
            u64::from(self.audio_kbps)
        } else {
            0
        };
        let copies = if encrypted { 2.0 } else { 1.0 };
        let bytes = (video_kbps + audio_kbps) as f64 * 1000.0 / 8.0
            * seconds.max(0.0)
            * OUTPUT_SIZE_MARGIN
            * copies;
        bytes as u64
    }

    /// The plan for `source` under `settings`: the ladder trimmed to the
    /// source, to the encoder's limits and to `max_rung_lines`; the audio
    /// track in `audio_language`, or the first.
    pub fn new(
        settings: &EncodingSettings,
        input: PathBuf,
        source: &SourceMedia,
        options: OutputOptions,
        encoder: VideoEncoder,
        decoder: Option<HardwareDecoder>,
    ) -> Self {
        let audio = match source.audio_track(settings.audio_language.as_deref()) {
            Some(track) => Some(AudioSource::Track(track.clone())),
            None if settings.silent_audio => Some(AudioSource::Silence {
                seconds: source.duration_seconds,
            }),
            None => None,
        };
        let rungs = plan_ladder(
            options.ladder,
            SourceVideo {
                width: source.video.width,
                height: source.video.height,
                bitrate: source.video_bitrate,
                frame_rate: source.video.frame_rate,
            },
            encoder.limits().at_most_lines(settings.max_rung_lines),
        );
        let (rungs, memory) = memory::fit(
            rungs,
            MemoryInputs {
                budget_bytes: settings.memory_budget_bytes,
                encoder,
                source_pixels: u64::from(source.video.width) * u64::from(source.video.height),
                configured_threads: settings.ffmpeg_threads,
                cores: settings.cores,
                x264_preset: &settings.x264_preset,
            },
        );
        Self {
            input,
            video_stream_index: source.video.index,
            deinterlace: source.video.interlaced,
            audio_end_seconds: audio.as_ref().map(|audio| audio_end(source, audio)),
            audio,
            rungs,
            segment_seconds: options.segment_seconds,
            keyframe_seconds: settings.keyframe_seconds,
            layout: options.layout,
            rate_control: options.rate_control,
            encoder,
            decoder,
            vaapi_device: settings.vaapi_device.clone(),
            x264_preset: settings.x264_preset.clone(),
            audio_kbps: settings.audio_bitrate_kbps,
            threads: settings.ffmpeg_threads,
            memory,
            input_formats: settings.input_formats.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::codec::VideoEncoder;
    use crate::pipeline::plan::ladder::FrameRate;

    #[test]
    fn the_audio_is_cut_one_aac_frame_before_the_video_ends() {
        use crate::pipeline::input::probe::{AudioTrack, SourceMedia, VideoStream};
        let track = AudioTrack {
            index: 1,
            language: None,
            sample_rate: Some(44_100),
        };
        let source = SourceMedia {
            duration_seconds: 4.04,
            video_seconds: Some(4.0),
            video: VideoStream {
                index: 0,
                codec: "h264".into(),
                width: 320,
                height: 180,
                frame_rate: FrameRate { num: 25, den: 1 },
                interlaced: false,
                pix_fmt: None,
            },
            audio: vec![track.clone()],
            video_bitrate: None,
        };
        let end = audio_end(&source, &AudioSource::Track(track));
        assert!((end - (4.0 - 1024.0 / 44_100.0)).abs() < 1e-9, "{end}");
        let silence = audio_end(&source, &AudioSource::Silence { seconds: 4.04 });
        assert!((silence - (4.0 - 1024.0 / 48_000.0)).abs() < 1e-9);
        let unknown = SourceMedia {
            video_seconds: None,
            ..source
        };
        let end = audio_end(&unknown, &AudioSource::Silence { seconds: 4.04 });
        assert!(end > 4.0 && end < 4.04, "the container's duration: {end}");
    }

    #[test]
    fn the_estimate_is_the_bitrates_over_the_duration_with_a_margin() {
        let rung = |video_kbps| Rung {
            width: 640,
            height: 360,
            video_kbps,
            frame_rate: FrameRate { num: 30, den: 1 },
        };
        let plan = EncodePlan {
            input: PathBuf::from("in.mp4"),
            video_stream_index: 0,
            deinterlace: false,
            rate_control: hlsmux_protocol::RateControl::Vbr,
            audio: Some(AudioSource::Silence { seconds: 60.0 }),
            audio_end_seconds: None,
            rungs: vec![rung(1000), rung(500)],
            segment_seconds: 6,
            keyframe_seconds: 2,
            layout: Layout::default(),
            encoder: VideoEncoder::Libx264,
            decoder: None,
            vaapi_device: String::new(),
            x264_preset: "veryfast".into(),
            audio_kbps: 128,
            threads: 1,
            memory: MemoryFit::default(),
            input_formats: String::new(),
        };
        // 1628 kbit/s for 60 s is 12.21 MB; with the margin 18.315 MB.
        assert_eq!(plan.estimated_output_bytes(60.0, false), 18_315_000);
        assert_eq!(plan.estimated_output_bytes(60.0, true), 36_630_000);
        let silent = EncodePlan {
            audio: None,
            ..plan
        };
        assert_eq!(silent.estimated_output_bytes(60.0, false), 16_875_000);
    }
}

//! Encode: one ffmpeg process that decodes the input once, scales it to every
//! rung, and writes all variants and the master playlist with keyframes at
//! the same timestamps, so players can switch rungs at any segment.
//!
//! `plan` decides, `args` writes the command line, `process` runs and
//! watches it, `progress` reads what it reports.

mod args;
pub mod oom;
mod plan;
mod process;
mod progress;

pub use args::{Part, Window, ffmpeg_args, part_args};
pub use plan::{AudioSource, EncodePlan, OutputOptions};
pub use process::{FfmpegRun, run_ffmpeg, stop_orphaned_encoders};
pub use progress::{EncodeProgress, ProgressParser};

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::hls::layout::Layout;
    use crate::pipeline::input::probe::AudioTrack;
    use crate::pipeline::plan::codec::VideoEncoder;
    use crate::pipeline::plan::decoder::HardwareDecoder;
    use crate::pipeline::plan::ladder::FrameRate;
    use crate::pipeline::plan::ladder::Rung;
    use hlsmux_protocol::SegmentFormat;
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    const PAL: FrameRate = FrameRate { num: 25, den: 1 };

    fn plan(audio: Option<usize>) -> EncodePlan {
        EncodePlan {
            input: PathBuf::from("/media/in.mkv"),
            video_stream_index: 1,
            deinterlace: false,
            rate_control: hlsmux_protocol::RateControl::Vbr,
            audio_end_seconds: audio.map(|_| 3.978_667),
            audio: audio.map(|index| {
                AudioSource::Track(AudioTrack {
                    index,
                    sample_rate: Some(48_000),
                    language: None,
                })
            }),
            rungs: vec![
                Rung {
                    width: 640,
                    height: 360,
                    video_kbps: 800,
                    frame_rate: PAL,
                },
                Rung {
                    width: 426,
                    height: 240,
                    video_kbps: 400,
                    frame_rate: PAL,
                },
            ],
            segment_seconds: 4,
            keyframe_seconds: 2,
            layout: Layout::default(),
            encoder: VideoEncoder::Libx264,
            decoder: None,
            vaapi_device: "/dev/dri/renderD128".into(),
            x264_preset: "veryfast".into(),
            audio_kbps: 128,
            threads: 2,
            memory: crate::pipeline::plan::memory::MemoryFit::default(),
            input_formats: "mov,matroska".into(),
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn value_after<'a>(args: &'a [OsString], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|pair| pair[0] == flag)
            .filter_map(|pair| pair[1].to_str())
            .collect()
    }

    #[test]
    fn the_input_is_confined_to_local_files_and_allowed_formats() {
        let args = ffmpeg_args(&plan(None), Path::new("/out"));
        let input_at = args.iter().position(|a| a == "-i").expect("an input");
        let before_input = text(&args[..input_at]);
        assert!(
            before_input.contains("-protocol_whitelist file"),
            "{before_input}"
        );
        assert!(
            before_input.contains("-format_whitelist mov,matroska"),
            "{before_input}"
        );
    }

    #[test]
    fn decodes_once_and_splits_into_every_rung() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-i"), ["/media/in.mkv"]);
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(graph.starts_with("[0:1]split=2[split0][split1]"), "{graph}");
        assert!(graph.contains("scale=426:240"), "{graph}");
    }

    #[test]
    fn audio_is_encoded_once_as_a_rendition_every_rung_shares() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-map"), ["[video0]", "[video1]", "0:2"]);
        let map = value_after(&args, "-var_stream_map")[0];
        assert_eq!(
            map,
            "v:0,agroup:audio,name:360p_800k v:1,agroup:audio,name:240p_400k a:0,agroup:audio,name:audio"
        );
        assert_eq!(value_after(&args, "-c:a"), ["aac"]);
    }

    #[test]
    fn silence_as_long_as_the_source_is_a_second_input_when_asked_for() {
        let mut silent = plan(None);
        silent.audio = Some(AudioSource::Silence { seconds: 12.5 });
        let args = ffmpeg_args(&silent, Path::new("/out/stage"));
        assert_eq!(
            value_after(&args, "-i"),
            [
                "/media/in.mkv",
                "anullsrc=channel_layout=stereo:sample_rate=48000"
            ]
        );
        assert_eq!(value_after(&args, "-t"), ["12.500"]);
        assert_eq!(value_after(&args, "-map"), ["[video0]", "[video1]", "1:a"]);
        assert_eq!(value_after(&args, "-c:a"), ["aac"]);
    }

    #[test]
    fn each_rung_gets_a_constant_frame_rate_and_fields_are_deinterlaced() {
        let mut interlaced = plan(None);
        interlaced.deinterlace = true;
        interlaced.rungs[1].frame_rate = FrameRate {
            num: 30000,
            den: 1001,
        };
        let args = ffmpeg_args(&interlaced, Path::new("/out/stage"));
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(graph.starts_with("[0:1]yadif,split=2"), "{graph}");
        assert!(
            graph.contains("scale=640:360,setsar=1,fps=25/1,"),
            "{graph}"
        );
        assert!(
            graph.contains("scale=426:240,setsar=1,fps=30000/1001,"),
            "{graph}"
        );
        assert_eq!(
            value_after(&args, "-g"),
            ["60"],
            "a keyframe interval (2 s) of the fastest rung"
        );
    }

    #[test]
    fn an_input_without_audio_maps_video_only() {
        let args = ffmpeg_args(&plan(None), Path::new("/out/stage"));
        assert!(!text(&args).contains("-c:a"));
        assert_eq!(
            value_after(&args, "-var_stream_map")[0],
            "v:0,name:360p_800k v:1,name:240p_400k"
        );
    }

    #[test]
    fn keyframes_come_at_most_two_seconds_apart_and_on_every_segment_boundary() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-g"), ["50"]);
        assert_eq!(value_after(&args, "-keyint_min"), ["50"]);
        assert_eq!(value_after(&args, "-sc_threshold"), ["0"]);
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            ["expr:gte(t,n_forced*4/2)"]
        );
        assert_eq!(value_after(&args, "-hls_time"), ["4"]);
        // Five-second segments: three intervals of 1.667 s, the third
        // ending exactly on the boundary.
        let five = EncodePlan {
            segment_seconds: 5,
            ..plan(Some(2))
        };
        let args = ffmpeg_args(&five, Path::new("/out/stage"));
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            ["expr:gte(t,n_forced*5/3)"]
        );
        assert_eq!(value_after(&args, "-g"), ["42"]);
        let one = EncodePlan {
            segment_seconds: 1,
            ..plan(Some(2))
        };
        assert_eq!(one.keyframes_per_segment(), 1);
    }

    #[test]
    fn the_audio_is_trimmed_to_end_with_the_video() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-filter:a"), ["atrim=end=3.978667"]);
        let silent = ffmpeg_args(&plan(None), Path::new("/out/stage"));
        assert!(value_after(&silent, "-filter:a").is_empty());
    }

    #[test]
    fn each_rung_gets_its_rate_and_vbv() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-b:v:1"), ["400k"]);
        assert_eq!(value_after(&args, "-maxrate:v:1"), ["428k"]);
        assert_eq!(value_after(&args, "-bufsize:v:1"), ["600k"]);
    }

    #[test]
    fn writes_master_and_variants_into_the_staging_directory() {
        let args = ffmpeg_args(&plan(Some(2)), Path::new("/out/stage"));
        assert_eq!(
            args.last().map(|a| a.to_string_lossy().into_owned()),
            Some("/out/stage/%v/index.m3u8".into())
        );
        assert!(
            value_after(&args, "-master_pl_name").is_empty(),
            "the worker writes the master playlist itself"
        );
        let mut seed = plan(Some(2));
        seed.layout = Layout {
            naming: hlsmux_protocol::OutputNaming::Seed,
            format: SegmentFormat::Fmp4,
        };
        let args = ffmpeg_args(&seed, Path::new("/out/stage"));
        assert_eq!(
            value_after(&args, "-hls_segment_filename"),
            ["/out/stage/media_%v_%05d.m4s"]
        );
        assert_eq!(value_after(&args, "-hls_segment_type"), ["fmp4"]);
        assert_eq!(
            value_after(&args, "-hls_fmp4_init_filename"),
            ["media_init.mp4"]
        );
        assert_eq!(value_after(&args, "-threads"), ["2", "2"]);
    }

    #[test]
    fn hardware_set_up_goes_before_the_input_and_uploads_after_scaling() {
        let mut vaapi = plan(Some(2));
        vaapi.encoder = VideoEncoder::Vaapi;
        vaapi.decoder = Some(HardwareDecoder::Hwaccel("vaapi"));
        let args = ffmpeg_args(&vaapi, Path::new("/out/stage"));
        let input = args.iter().position(|a| a == "-i").expect("input");
        let device = args
            .iter()
            .position(|a| a == "-vaapi_device")
            .expect("device");
        let hwaccel = args.iter().position(|a| a == "-hwaccel").expect("hwaccel");
        assert!(device < input && hwaccel < input);
        let graph = value_after(&args, "-filter_complex")[0];
        assert!(
            graph.contains("scale=640:360,setsar=1,fps=25/1,format=nv12,hwupload[video0]"),
            "{graph}"
        );
        assert_eq!(value_after(&args, "-c:v"), ["h264_vaapi"]);
    }

    #[test]
    fn a_pi_hardware_decoder_is_chosen_as_the_input_codec() {
        let mut pi = plan(Some(2));
        pi.encoder = VideoEncoder::V4l2m2m;
        pi.decoder = Some(HardwareDecoder::Codec("h264_v4l2m2m"));
        let args = ffmpeg_args(&pi, Path::new("/out/stage"));
        assert_eq!(value_after(&args, "-c:v"), ["h264_v4l2m2m", "h264_v4l2m2m"]);
        let input = args.iter().position(|a| a == "-i").expect("input");
        let decoder = args.iter().position(|a| a == "-c:v").expect("decoder");
        assert!(decoder < input, "the decoder is an input option");
        assert!(
            value_after(&args, "-maxrate:v:0").is_empty(),
            "no VBV on the Pi encoder"
        );
        assert_eq!(value_after(&args, "-hls_segment_type"), ["mpegts"]);
    }

    #[test]
    fn progress_blocks_are_parsed() {
        let mut parser = ProgressParser::default();
        let block = "frame=50\nfps=24.5\nout_time_us=2000000\nspeed=1.5x\n";
        for line in block.lines() {
            assert_eq!(parser.feed(line), None);
        }
        let progress = parser.feed("progress=continue").expect("block ends");
        assert_eq!(
            progress,
            EncodeProgress {
                out_seconds: 2.0,
                fps: 24.5,
                speed: 1.5
            }
        );
        assert!((progress.percent_of(4.0) - 50.0).abs() < 1e-9);
        assert!(parser.feed("speed=N/A").is_none());
        assert_eq!(parser.feed("progress=end").map(|p| p.speed), Some(1.5));
    }
}

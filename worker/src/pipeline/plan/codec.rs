//! The encoders the worker can drive, and the ffmpeg flags each one needs.
//! Pure: the trial that decides which encoder works on this machine lives in
//! `hardware::encoder_probe`.

use std::fmt;
use std::str::FromStr;

use hlsmux_protocol::RateControl;

/// The quality `capped-quality` asks for: x264's CRF 23 (its default, "good
/// quality") and the same number on the hardware encoders' scales.
const CAPPED_QUALITY: u32 = 23;

/// One rung's rates, in kbit/s: its target, its cap and its buffer.
#[derive(Clone, Copy, Debug)]
pub struct RungRates {
    pub kbps: u32,
    pub max_kbps: u32,
    pub buffer_kbits: u32,
}

/// An H.264 encoder ffmpeg can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoEncoder {
    Libx264,
    /// Raspberry Pi 4 and earlier (and other SoCs) through V4L2 mem2mem.
    V4l2m2m,
    /// Raspberry Pi on 32-bit Pi OS (Broadcom OpenMAX IL).
    Omx,
    Vaapi,
    Qsv,
    Nvenc,
}

/// The encoder setting: one encoder, or the first that passes its trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderChoice {
    Auto,
    Named(VideoEncoder),
}

impl VideoEncoder {
    /// The order `auto` tries: the Pi's own encoders first (a Pi 5 or 64-bit
    /// Pi OS fails them and falls through), then PC hardware, then software.
    pub const AUTO_ORDER: [VideoEncoder; 6] = [
        VideoEncoder::V4l2m2m,
        VideoEncoder::Omx,
        VideoEncoder::Vaapi,
        VideoEncoder::Qsv,
        VideoEncoder::Nvenc,
        VideoEncoder::Libx264,
    ];

    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            VideoEncoder::Libx264 => "libx264",
            VideoEncoder::V4l2m2m => "h264_v4l2m2m",
            VideoEncoder::Omx => "h264_omx",
            VideoEncoder::Vaapi => "h264_vaapi",
            VideoEncoder::Qsv => "h264_qsv",
            VideoEncoder::Nvenc => "h264_nvenc",
        }
    }

    fn is_pi(self) -> bool {
        matches!(self, VideoEncoder::V4l2m2m | VideoEncoder::Omx)
    }

    /// Whether its output can go into fMP4 segments: an MP4 initialization
    /// section needs the SPS/PPS before the first frame, and the Pi's
    /// VideoCore encoders give them only with it (MPEG-TS segments carry
    /// their own). Raspberry Pi OS's ffmpeg hands them on as new extradata
    /// with the first packet, and the HLS muxer delays the fMP4 `moov`
    /// (`delay_moov`) until it has them (rpi-ffmpeg release/5.1/main:
    /// v4l2_m2m_enc.c, movenc.c, hlsenc.c), so this may well work on a Pi;
    /// it stays refused until `scripts/pi-check` has seen an init section
    /// with SPS/PPS come out of a real one.
    pub fn writes_fmp4(self) -> bool {
        !self.is_pi()
    }

    /// What the encoder cannot do; the ladder stays inside it.
    pub fn limits(self) -> EncoderLimits {
        match self {
            // The Pi's VideoCore encoder: 1080p at most, and it refuses to
            // start much above 20 Mb/s. Neither side may pass 1920, the
            // portrait side of a phone clip no more than the width of a
            // film: raspberrypi/linux,
            // drivers/staging/vc04_services/bcm2835-codec/bcm2835-v4l2-codec.c
            // defines MAX_W_CODEC and MAX_H_CODEC both as 1920. Its
            // throughput is one 1080p30 stream ("H264 (1080p60 decode,
            // 1080p30 encode)", Raspberry Pi 4 Model B specifications), so
            // no rung runs above 30 frames per second. Its streams are
            // H.264 level 4.0: the driver's default (bcm2835-v4l2-codec.c
            // gives V4L2_CID_MPEG_VIDEO_H264_LEVEL the default LEVEL_4_0)
            // and FFmpeg's v4l2_m2m_enc.c sets the profile, never the level;
            // these limits keep every rung inside 4.0 (see the test).
            VideoEncoder::V4l2m2m | VideoEncoder::Omx => EncoderLimits {
                max_lines: Some(1080),
                max_kbps: Some(20_000),
                max_side: Some(1920),
                max_frame_rate: Some(30),
            },
            _ => EncoderLimits::default(),
        }
    }

    /// Global options, before the input: hardware device set-up.
    pub fn device_args(self, vaapi_device: &str) -> Vec<String> {
        match self {
            VideoEncoder::Vaapi => vec!["-vaapi_device".into(), vaapi_device.into()],
            VideoEncoder::Qsv => strings(&["-init_hw_device", "qsv=hw", "-filter_hw_device", "hw"]),
            _ => Vec::new(),
        }
    }

    /// Filters appended to each rung's scaler: the pixel format the encoder
    /// takes, and the upload to the device for GPU encoders.
    pub fn filter_suffix(self) -> &'static str {
        match self {
            // The Pi encoder takes exactly yuv420p; so do players from libx264.
            VideoEncoder::Libx264
            | VideoEncoder::V4l2m2m
            | VideoEncoder::Omx
            | VideoEncoder::Nvenc => "format=yuv420p",
            VideoEncoder::Vaapi => "format=nv12,hwupload",
            VideoEncoder::Qsv => "format=nv12,hwupload=extra_hw_frames=64",
        }
    }

    /// Whether this encoder can hold rates as `mode` asks, and if not,
    /// why not.
    ///
    /// The Pi's encoders are driven through FFmpeg's wrappers, which set
    /// only a target bitrate: `h264_v4l2m2m` sets `V4L2_CID_MPEG_VIDEO_BITRATE`,
    /// frame-level rate control and the GOP, never a bitrate mode or a
    /// quality (FFmpeg libavcodec/v4l2_m2m_enc.c, `v4l2_prepare_encoder`),
    /// and `h264_omx` asks for `OMX_Video_ControlRateVariable` with a
    /// target (libavcodec/omx.c, `omx_component_init`). FFmpeg's
    /// `h264_qsv` has no rate-control option: it infers the mode from the
    /// rates given, and a quality-capped mode only on some drivers, so it
    /// is not offered.
    pub fn supports(self, mode: RateControl) -> Result<(), String> {
        let refused = match (self, mode) {
            (_, RateControl::Vbr)
            | (VideoEncoder::Libx264 | VideoEncoder::Nvenc | VideoEncoder::Vaapi, _)
            | (VideoEncoder::Qsv, RateControl::Cbr) => return Ok(()),
            (VideoEncoder::V4l2m2m | VideoEncoder::Omx, _) => {
                "FFmpeg drives the Raspberry Pi's encoder with a target bitrate only"
            }
            (VideoEncoder::Qsv, _) => {
                "FFmpeg's h264_qsv offers no quality-capped mode that works on every driver"
            }
        };
        Err(format!(
            "rate control {mode} cannot be done with {self}: {refused}; submit with --rate-control vbr, or to a muxer whose workers use another encoder"
        ))
    }

    /// Encoder options shared by every rung.
    pub fn codec_args(self, x264_preset: &str, gop: u32, mode: RateControl) -> Vec<String> {
        let gop = gop.to_string();
        let mut args = strings(&["-c:v", self.ffmpeg_name(), "-g", &gop]);
        match self {
            VideoEncoder::Libx264 => args.extend(strings(&[
                "-preset",
                x264_preset,
                "-profile:v",
                "high",
                "-keyint_min",
                &gop,
                "-sc_threshold",
                "0",
            ])),
            // No B-frames on the VideoCore encoder. SPS/PPS need no help:
            // Raspberry Pi OS's ffmpeg puts them in front of every keyframe
            // itself when the muxer wants no global header, as MPEG-TS does
            // (jc-kynesim/rpi-ffmpeg release/5.1/main, v4l2_m2m_enc.c,
            // v4l2_receive_packet), so each segment decodes on its own; a
            // `dump_extra` filter would add nothing, the stream having no
            // extradata to repeat. `scripts/pi-check` decodes every segment
            // alone on the device to hold that.
            VideoEncoder::V4l2m2m | VideoEncoder::Omx => args.extend(strings(&["-bf", "0"])),
            VideoEncoder::Vaapi => args.extend(strings(&["-profile:v", "high", "-bf", "0"])),
            VideoEncoder::Qsv => args.extend(strings(&["-profile:v", "high", "-preset", "medium"])),
            // Forced keyframes must be real IDR frames to start segments.
            VideoEncoder::Nvenc => args.extend(strings(&[
                "-profile:v",
                "high",
                "-preset",
                "p4",
                "-rc",
                if mode == RateControl::Cbr {
                    "cbr"
                } else {
                    "vbr"
                },
                "-forced-idr",
                "1",
                "-no-scenecut",
                "1",
            ])),
        }
        args
    }

    /// Rate control of rung `index` in `mode` (which [`supports`](Self::supports)
    /// has allowed).
    pub fn rate_args(self, index: usize, mode: RateControl, rates: RungRates) -> Vec<String> {
        let RungRates {
            kbps,
            max_kbps,
            buffer_kbits,
        } = rates;
        let option = |name: &str, value: String| [format!("-{name}:v:{index}"), value];
        // The VideoCore encoder has no VBV: only its average rate is set.
        if self.is_pi() {
            return option("b", format!("{kbps}k")).into();
        }
        let mut args = Vec::new();
        match mode {
            RateControl::Vbr => {
                args.extend(option("b", format!("{kbps}k")));
                args.extend(option("maxrate", format!("{max_kbps}k")));
                args.extend(option("bufsize", format!("{buffer_kbits}k")));
            }
            // The rate, a one-second buffer, and (x264) HRD signalling with
            // filler, so that every second really carries the rate.
            RateControl::Cbr => {
                args.extend(option("b", format!("{kbps}k")));
                args.extend(option("maxrate", format!("{kbps}k")));
                args.extend(option("bufsize", format!("{kbps}k")));
                match self {
                    VideoEncoder::Libx264 => {
                        args.extend(option("minrate", format!("{kbps}k")));
                        args.extend(option("x264-params", "nal-hrd=cbr".to_owned()));
                    }
                    VideoEncoder::Vaapi => args.extend(option("rc_mode", "CBR".to_owned())),
                    _ => {}
                }
            }
            // A constant quality under the rung's cap and buffer.
            RateControl::CappedQuality => {
                match self {
                    VideoEncoder::Libx264 => {
                        args.extend(option("crf", CAPPED_QUALITY.to_string()));
                    }
                    VideoEncoder::Nvenc => {
                        args.extend(option("cq", CAPPED_QUALITY.to_string()));
                        args.extend(option("b", "0".to_owned()));
                    }
                    VideoEncoder::Vaapi => {
                        args.extend(option("rc_mode", "QVBR".to_owned()));
                        args.extend(option("global_quality", CAPPED_QUALITY.to_string()));
                        args.extend(option("b", format!("{kbps}k")));
                    }
                    _ => {}
                }
                args.extend(option("maxrate", format!("{max_kbps}k")));
                args.extend(option("bufsize", format!("{buffer_kbits}k")));
            }
        }
        args
    }
}

/// Limits an encoder imposes on the ladder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderLimits {
    /// The longest short side (lines) it encodes.
    pub max_lines: Option<u32>,
    pub max_kbps: Option<u32>,
    /// The longest either side (width or height) may be.
    pub max_side: Option<u32>,
    /// The highest frame rate of any rung.
    pub max_frame_rate: Option<u32>,
}

impl EncoderLimits {
    /// These limits, and no rung over `lines` (the setting `max_rung_lines`).
    pub fn at_most_lines(self, lines: u32) -> Self {
        Self {
            max_lines: Some(self.max_lines.map_or(lines, |max| max.min(lines))),
            ..self
        }
    }
}

impl fmt::Display for VideoEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ffmpeg_name())
    }
}

impl FromStr for EncoderChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(EncoderChoice::Auto);
        }
        VideoEncoder::AUTO_ORDER
            .into_iter()
            .find(|encoder| encoder.ffmpeg_name() == s)
            .map(EncoderChoice::Named)
            .ok_or_else(|| {
                let names: Vec<&str> = VideoEncoder::AUTO_ORDER
                    .iter()
                    .map(|e| e.ffmpeg_name())
                    .collect();
                format!(
                    "unknown encoder {s:?}; use auto or one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Owned copies of `items`, for an argument list.
pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_pair(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2)
            .any(|pair| pair[0] == flag && pair[1] == value)
    }

    #[test]
    fn every_encoder_name_parses_back() {
        for encoder in VideoEncoder::AUTO_ORDER {
            assert_eq!(
                encoder.ffmpeg_name().parse(),
                Ok(EncoderChoice::Named(encoder))
            );
        }
        assert_eq!("auto".parse(), Ok(EncoderChoice::Auto));
        assert!("h265_magic".parse::<EncoderChoice>().is_err());
    }

    #[test]
    fn auto_ends_with_software() {
        assert_eq!(
            VideoEncoder::AUTO_ORDER.last(),
            Some(&VideoEncoder::Libx264)
        );
        assert_eq!(
            VideoEncoder::AUTO_ORDER.first(),
            Some(&VideoEncoder::V4l2m2m)
        );
    }

    #[test]
    fn v4l2m2m_gets_yuv420p_no_b_frames_and_no_vbv() {
        let encoder = VideoEncoder::V4l2m2m;
        assert_eq!(encoder.filter_suffix(), "format=yuv420p");
        let args = encoder.codec_args("veryfast", 50, RateControl::Vbr);
        assert!(has_pair(&args, "-c:v", "h264_v4l2m2m"));
        assert!(has_pair(&args, "-bf", "0"));
        assert!(!args.iter().any(|arg| arg.starts_with("-bsf")), "{args:?}");
        assert!(has_pair(&args, "-g", "50"));
        assert!(
            !args.contains(&"-preset".to_owned()),
            "x264 options mean nothing to it"
        );
        let rate = encoder.rate_args(
            1,
            RateControl::Vbr,
            RungRates {
                kbps: 3000,
                max_kbps: 3210,
                buffer_kbits: 4500,
            },
        );
        assert_eq!(rate, ["-b:v:1", "3000k"]);
        assert_eq!(
            encoder.limits(),
            EncoderLimits {
                max_lines: Some(1080),
                max_kbps: Some(20_000),
                max_side: Some(1920),
                max_frame_rate: Some(30),
            }
        );
    }

    #[test]
    fn each_rate_control_maps_to_the_encoders_own_options_or_is_refused() {
        let rates = RungRates {
            kbps: 800,
            max_kbps: 856,
            buffer_kbits: 1200,
        };
        let x264 = VideoEncoder::Libx264;
        let cbr = x264.rate_args(0, RateControl::Cbr, rates);
        assert!(has_pair(&cbr, "-maxrate:v:0", "800k") && has_pair(&cbr, "-minrate:v:0", "800k"));
        assert!(has_pair(&cbr, "-x264-params:v:0", "nal-hrd=cbr"));
        let capped = x264.rate_args(0, RateControl::CappedQuality, rates);
        assert!(has_pair(&capped, "-crf:v:0", "23") && has_pair(&capped, "-maxrate:v:0", "856k"));
        assert!(!capped.contains(&"-b:v:0".to_owned()), "{capped:?}");
        let nvenc = VideoEncoder::Nvenc;
        assert!(has_pair(
            &nvenc.codec_args("x", 50, RateControl::Cbr),
            "-rc",
            "cbr"
        ));
        assert!(has_pair(
            &nvenc.rate_args(0, RateControl::CappedQuality, rates),
            "-cq:v:0",
            "23"
        ));
        let vaapi = VideoEncoder::Vaapi.rate_args(0, RateControl::CappedQuality, rates);
        assert!(has_pair(&vaapi, "-rc_mode:v:0", "QVBR"), "{vaapi:?}");
        for pi in [VideoEncoder::V4l2m2m, VideoEncoder::Omx] {
            assert!(pi.supports(RateControl::Vbr).is_ok());
            for mode in [RateControl::Cbr, RateControl::CappedQuality] {
                let why = pi.supports(mode).expect_err("not on a Pi");
                assert!(
                    why.contains("target bitrate only") && why.contains("--rate-control vbr"),
                    "{why}"
                );
            }
        }
        assert!(VideoEncoder::Qsv.supports(RateControl::Cbr).is_ok());
        assert!(
            VideoEncoder::Qsv
                .supports(RateControl::CappedQuality)
                .is_err()
        );
    }

    #[test]
    fn omx_is_treated_like_the_pi_encoder_it_is() {
        let args = VideoEncoder::Omx.codec_args("veryfast", 50, RateControl::Vbr);
        assert!(has_pair(&args, "-c:v", "h264_omx"));
        assert!(has_pair(&args, "-bf", "0"));
        assert_eq!(VideoEncoder::Omx.filter_suffix(), "format=yuv420p");
        assert_eq!(VideoEncoder::Omx.limits().max_lines, Some(1080));
    }

    #[test]
    fn libx264_gets_fixed_gops_without_scene_cuts_and_vbv() {
        let args = VideoEncoder::Libx264.codec_args("ultrafast", 100, RateControl::Vbr);
        assert!(has_pair(&args, "-preset", "ultrafast"));
        assert!(has_pair(&args, "-keyint_min", "100"));
        assert!(has_pair(&args, "-sc_threshold", "0"));
        let rate = VideoEncoder::Libx264.rate_args(
            0,
            RateControl::Vbr,
            RungRates {
                kbps: 800,
                max_kbps: 856,
                buffer_kbits: 1200,
            },
        );
        assert_eq!(
            rate,
            [
                "-b:v:0",
                "800k",
                "-maxrate:v:0",
                "856k",
                "-bufsize:v:0",
                "1200k"
            ]
        );
        assert_eq!(VideoEncoder::Libx264.limits(), EncoderLimits::default());
    }

    #[test]
    fn nvenc_forces_real_idr_keyframes() {
        let args = VideoEncoder::Nvenc.codec_args("veryfast", 50, RateControl::Vbr);
        assert!(has_pair(&args, "-forced-idr", "1"));
        assert!(has_pair(&args, "-no-scenecut", "1"));
        assert!(
            VideoEncoder::Nvenc
                .device_args("/dev/dri/renderD128")
                .is_empty()
        );
    }

    #[test]
    fn vaapi_and_qsv_upload_frames_to_their_device() {
        assert_eq!(
            VideoEncoder::Vaapi.device_args("/dev/dri/renderD129"),
            ["-vaapi_device", "/dev/dri/renderD129"]
        );
        assert_eq!(VideoEncoder::Vaapi.filter_suffix(), "format=nv12,hwupload");
        assert_eq!(
            VideoEncoder::Qsv.device_args("x"),
            ["-init_hw_device", "qsv=hw", "-filter_hw_device", "hw"]
        );
        assert!(
            VideoEncoder::Qsv
                .filter_suffix()
                .ends_with("hwupload=extra_hw_frames=64")
        );
    }

    /// H.264 level 4.0 (the Pi encoder's): at most 8192 macroblocks a
    /// picture, 245760 a second, and 25 Mb/s in the High profile (ITU-T
    /// H.264 Table A-1). The largest rung the limits allow fits it.
    #[test]
    fn the_pi_encoders_limits_keep_every_rung_inside_level_4_0() {
        let limits = VideoEncoder::V4l2m2m.limits();
        let (side, lines) = (
            limits.max_side.expect("side"),
            limits.max_lines.expect("lines"),
        );
        let macroblocks = side.div_ceil(16) * lines.div_ceil(16);
        assert!(macroblocks <= 8192, "{macroblocks} macroblocks a picture");
        let per_second = macroblocks * limits.max_frame_rate.expect("rate");
        assert!(per_second <= 245_760, "{per_second} macroblocks a second");
        assert!(limits.max_kbps.expect("kbps") <= 25_000);
    }
}

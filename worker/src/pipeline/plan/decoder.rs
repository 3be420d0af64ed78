//! Hardware decoders: which one an input codec gets beside each encoder,
//! what each can take (size, bit depth, chroma), and its ffmpeg flags.
//! Pure: whether one really works on this machine is decided by a trial
//! decode at start-up (`hardware::decoder_probe`), and a job whose
//! hardware decode fails anyway is encoded again in software.

use std::fmt;

use super::codec::{VideoEncoder, strings};

/// How an input is decoded in hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HardwareDecoder {
    /// A decoder of its own (`-c:v h264_v4l2m2m` before the input).
    Codec(&'static str),
    /// A generic accelerator; frames come back to memory for the filters.
    Hwaccel(&'static str),
}

impl VideoEncoder {
    /// The hardware decoder for an input codec (ffprobe's `codec_name`)
    /// beside this encoder, or `None` where software decoding is the only
    /// way. Which of them work is the start-up trial's to say: the Pi's
    /// ffmpeg lists `mpeg2_v4l2m2m` on a Pi 4, which has no MPEG-2 decoder
    /// (Raspberry Pi 4 Model B specifications: "H.265 (4Kp60 decode),
    /// H.264 (1080p60 decode, 1080p30 encode)"), and on a Pi 3 it needs the
    /// MPEG-2 licence key.
    pub fn hardware_decoder(self, input_codec: &str) -> Option<HardwareDecoder> {
        match self {
            VideoEncoder::V4l2m2m => match input_codec {
                "h264" => Some(HardwareDecoder::Codec("h264_v4l2m2m")),
                "mpeg2video" => Some(HardwareDecoder::Codec("mpeg2_v4l2m2m")),
                // Pi 4's HEVC block is a stateless decoder, reached through
                // the V4L2 request API as the `drm` hwaccel, not v4l2m2m
                // (jc-kynesim/rpi-ffmpeg, libavcodec/v4l2_request_hevc.c).
                "hevc" => Some(HardwareDecoder::Hwaccel(DRM)),
                _ => None,
            },
            VideoEncoder::Omx => match input_codec {
                "h264" => Some(HardwareDecoder::Codec("h264_mmal")),
                "mpeg2video" => Some(HardwareDecoder::Codec("mpeg2_mmal")),
                _ => None,
            },
            VideoEncoder::Vaapi => {
                hwaccel_codec(input_codec).then_some(HardwareDecoder::Hwaccel("vaapi"))
            }
            VideoEncoder::Qsv => {
                hwaccel_codec(input_codec).then_some(HardwareDecoder::Hwaccel("qsv"))
            }
            VideoEncoder::Nvenc => {
                hwaccel_codec(input_codec).then_some(HardwareDecoder::Hwaccel("cuda"))
            }
            // A Pi 5 has no H.264 encoder (libx264 then) but decodes HEVC in
            // hardware, the same stateless block as the Pi 4's; elsewhere
            // the `drm` hwaccel fails its trial and HEVC decodes in software.
            VideoEncoder::Libx264 => {
                (input_codec == "hevc").then_some(HardwareDecoder::Hwaccel(DRM))
            }
        }
    }
}

/// The Pi's stateless HEVC decoder, through rpi-ffmpeg's V4L2 request
/// hwaccel.
const DRM: &str = "drm";

/// Codecs the PC hardware decoders handle; others decode in software.
fn hwaccel_codec(codec: &str) -> bool {
    matches!(
        codec,
        "h264" | "hevc" | "mpeg2video" | "vp9" | "av1" | "vc1"
    )
}

impl HardwareDecoder {
    /// Input options, placed before `-i`.
    pub fn input_args(self, vaapi_device: &str) -> Vec<String> {
        match self {
            HardwareDecoder::Codec(name) => strings(&["-c:v", name]),
            HardwareDecoder::Hwaccel("vaapi") => {
                strings(&["-hwaccel", "vaapi", "-hwaccel_device", vaapi_device])
            }
            HardwareDecoder::Hwaccel(name) => strings(&["-hwaccel", name]),
        }
    }

    /// The decoder name ffmpeg lists in `-decoders`, where it has one.
    pub fn decoder_name(self) -> Option<&'static str> {
        match self {
            HardwareDecoder::Codec(name) => Some(name),
            HardwareDecoder::Hwaccel(_) => None,
        }
    }

    /// The longest side it decodes, where it has a limit: the VideoCore
    /// decoders share the codec's 1920 on either side (raspberrypi/linux,
    /// drivers/staging/vc04_services/bcm2835-codec/bcm2835-v4l2-codec.c,
    /// MAX_W_CODEC and MAX_H_CODEC), so a 4K source decodes in software.
    pub fn max_side(self) -> Option<u32> {
        match self {
            HardwareDecoder::Codec(_) => Some(1920),
            HardwareDecoder::Hwaccel(_) => None,
        }
    }

    /// Whether it decodes pictures in `pix_fmt` (ffprobe's name; unknown
    /// is taken as the common 8-bit 4:2:0). The VideoCore decoders give
    /// 8-bit 4:2:0 only (bcm2835-v4l2-codec.c lists no 10-bit or 4:2:2
    /// capture format), so High 10 and 4:2:2 H.264 decode in software; the
    /// HEVC block takes 8- and 10-bit 4:2:0 (v4l2_request_hevc.c: SAND8,
    /// SAND30/NV15). The PC accelerators fall back to software themselves
    /// for what they cannot do.
    pub fn takes(self, pix_fmt: Option<&str>) -> bool {
        let eight_bit_420 = |format: &str| matches!(format, "yuv420p" | "yuvj420p");
        match (self, pix_fmt) {
            (_, None) => true,
            (HardwareDecoder::Codec(_), Some(format)) => eight_bit_420(format),
            (HardwareDecoder::Hwaccel(DRM), Some(format)) => {
                eight_bit_420(format) || format == "yuv420p10le"
            }
            (HardwareDecoder::Hwaccel(_), Some(_)) => true,
        }
    }
}

impl fmt::Display for HardwareDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardwareDecoder::Codec(name) => f.write_str(name),
            HardwareDecoder::Hwaccel(name) => write!(f, "{name} (hwaccel)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every encoder/decoder pair: the decoder chosen for each input codec.
    #[test]
    fn hardware_decoders_per_encoder_and_input_codec() {
        use HardwareDecoder::{Codec, Hwaccel};
        let cases: [(VideoEncoder, &str, Option<HardwareDecoder>); 17] = [
            (VideoEncoder::V4l2m2m, "h264", Some(Codec("h264_v4l2m2m"))),
            (
                VideoEncoder::V4l2m2m,
                "mpeg2video",
                Some(Codec("mpeg2_v4l2m2m")),
            ),
            (VideoEncoder::V4l2m2m, "hevc", Some(Hwaccel("drm"))),
            (VideoEncoder::Omx, "h264", Some(Codec("h264_mmal"))),
            (VideoEncoder::Omx, "mpeg2video", Some(Codec("mpeg2_mmal"))),
            (VideoEncoder::Omx, "vp9", None),
            (VideoEncoder::Vaapi, "h264", Some(Hwaccel("vaapi"))),
            (VideoEncoder::Vaapi, "hevc", Some(Hwaccel("vaapi"))),
            (VideoEncoder::Vaapi, "prores", None),
            (VideoEncoder::Qsv, "h264", Some(Hwaccel("qsv"))),
            (VideoEncoder::Qsv, "mjpeg", None),
            (VideoEncoder::Nvenc, "h264", Some(Hwaccel("cuda"))),
            (VideoEncoder::Nvenc, "av1", Some(Hwaccel("cuda"))),
            (VideoEncoder::Nvenc, "theora", None),
            (VideoEncoder::Libx264, "h264", None),
            (VideoEncoder::Libx264, "mpeg2video", None),
            (VideoEncoder::Libx264, "hevc", Some(Hwaccel("drm"))),
        ];
        for (encoder, codec, expected) in cases {
            assert_eq!(
                encoder.hardware_decoder(codec),
                expected,
                "{encoder} decoding {codec}"
            );
        }
    }

    #[test]
    fn high_10_and_4_2_2_are_more_than_the_videocore_decodes() {
        let h264 = HardwareDecoder::Codec("h264_v4l2m2m");
        assert!(h264.takes(Some("yuv420p")) && h264.takes(Some("yuvj420p")));
        assert!(h264.takes(None));
        for beyond in ["yuv420p10le", "yuv422p", "yuv422p10le", "yuv444p"] {
            assert!(!h264.takes(Some(beyond)), "{beyond}");
        }
        let hevc = HardwareDecoder::Hwaccel("drm");
        assert!(hevc.takes(Some("yuv420p10le")));
        assert!(!hevc.takes(Some("yuv422p10le")));
        assert!(HardwareDecoder::Hwaccel("vaapi").takes(Some("yuv422p")));
    }

    #[test]
    fn decoder_input_args() {
        assert_eq!(
            HardwareDecoder::Codec("h264_v4l2m2m").input_args("d"),
            ["-c:v", "h264_v4l2m2m"]
        );
        assert_eq!(
            HardwareDecoder::Hwaccel("vaapi").input_args("/dev/dri/renderD128"),
            [
                "-hwaccel",
                "vaapi",
                "-hwaccel_device",
                "/dev/dri/renderD128"
            ]
        );
        assert_eq!(
            HardwareDecoder::Hwaccel("drm").input_args("d"),
            ["-hwaccel", "drm"]
        );
    }
}

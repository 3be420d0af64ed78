//! The worker's edge to the machine it runs on: which encoders and decoders
//! really work here, and how hot and throttled the SoC is.

pub mod decoder_probe;
pub mod encoder_probe;
pub mod soc;
mod trial;

use std::collections::HashSet;

use crate::pipeline::input::probe::VideoStream;
use crate::pipeline::plan::codec::VideoEncoder;
use crate::pipeline::plan::decoder::HardwareDecoder;

/// The codecs this worker uses, decided once at start-up.
#[derive(Clone, Debug)]
pub struct MachineCodecs {
    pub encoder: VideoEncoder,
    /// With hardware decoding on, the input codecs (ffprobe's names) whose
    /// hardware decoder passed its trial decode here.
    pub hardware_decoders: Option<HashSet<String>>,
}

impl MachineCodecs {
    /// The hardware decoder for an input video, or `None` to decode in
    /// software: hardware decoding off, no hardware decoder for the codec,
    /// one that failed its trial here, or a picture larger, deeper or
    /// with more chroma than it decodes.
    pub fn decoder_for(&self, video: &VideoStream) -> Option<HardwareDecoder> {
        let trusted = self.hardware_decoders.as_ref()?;
        if !trusted.contains(&video.codec) {
            return None;
        }
        let decoder = self.encoder.hardware_decoder(&video.codec)?;
        let too_large = decoder
            .max_side()
            .is_some_and(|max| video.width.max(video.height) > max);
        (!too_large && decoder.takes(video.pix_fmt.as_deref())).then_some(decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(codec: &str, width: u32, height: u32) -> VideoStream {
        VideoStream {
            index: 0,
            codec: codec.into(),
            width,
            height,
            frame_rate: crate::pipeline::plan::ladder::FrameRate::FALLBACK,
            interlaced: false,
            pix_fmt: Some("yuv420p".into()),
        }
    }

    #[test]
    fn hardware_decoding_falls_back_to_software() {
        let off = MachineCodecs {
            encoder: VideoEncoder::V4l2m2m,
            hardware_decoders: None,
        };
        assert_eq!(off.decoder_for(&video("h264", 1920, 1080)), None);
        let pi = MachineCodecs {
            encoder: VideoEncoder::V4l2m2m,
            hardware_decoders: Some(HashSet::from(["h264".to_owned()])),
        };
        assert_eq!(
            pi.decoder_for(&video("h264", 1920, 1080)),
            Some(HardwareDecoder::Codec("h264_v4l2m2m"))
        );
        assert_eq!(
            pi.decoder_for(&video("h264", 1080, 1920)),
            Some(HardwareDecoder::Codec("h264_v4l2m2m")),
            "portrait 1080x1920 is inside the limit"
        );
        assert_eq!(
            pi.decoder_for(&video("h264", 3840, 2160)),
            None,
            "4K is more than the VideoCore decodes: software"
        );
        assert_eq!(
            pi.decoder_for(&video("mpeg2video", 720, 576)),
            None,
            "failed its trial here: software"
        );
        let high_10 = VideoStream {
            pix_fmt: Some("yuv420p10le".into()),
            ..video("h264", 1920, 1080)
        };
        assert_eq!(pi.decoder_for(&high_10), None, "High 10: software");
        assert_eq!(
            pi.decoder_for(&video("vp9", 1280, 720)),
            None,
            "no hardware decoder for the codec"
        );
    }
}

//! The worker's edge to the machine it runs on: which encoders and decoders
//! really work here, and how hot and throttled the SoC is.

pub mod encoder_probe;
pub mod soc;

use std::collections::HashSet;

use crate::pipeline::input::probe::VideoStream;
use crate::pipeline::plan::codec::{HardwareDecoder, VideoEncoder};

/// The codecs this worker uses, decided once at start-up.
#[derive(Clone, Debug)]
pub struct MachineCodecs {
    pub encoder: VideoEncoder,
    /// The decoders of this ffmpeg build, when hardware decoding is on.
    pub hardware_decoders: Option<HashSet<String>>,
}

impl MachineCodecs {
    /// The hardware decoder for an input video, or `None` to decode in
    /// software: hardware decoding off, no hardware decoder for the codec,
    /// one this ffmpeg build lacks, or a picture larger than it decodes.
    pub fn decoder_for(&self, video: &VideoStream) -> Option<HardwareDecoder> {
        let available = self.hardware_decoders.as_ref()?;
        let decoder = self.encoder.hardware_decoder(&video.codec)?;
        if decoder
            .max_side()
            .is_some_and(|max| video.width.max(video.height) > max)
        {
            return None;
        }
        match decoder.decoder_name() {
            Some(name) if !available.contains(name) => None,
            _ => Some(decoder),
        }
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
            hardware_decoders: Some(HashSet::from(["h264_v4l2m2m".to_owned()])),
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
            "not in this build: software"
        );
        assert_eq!(
            pi.decoder_for(&video("vp9", 1280, 720)),
            None,
            "no hardware decoder for the codec"
        );
    }
}

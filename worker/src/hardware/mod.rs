//! The worker's edge to the machine it runs on: which encoders and decoders
//! really work here, and how hot and throttled the SoC is.

pub mod encoder_probe;
pub mod soc;

use std::collections::HashSet;

use crate::pipeline::plan::codec::{HardwareDecoder, VideoEncoder};

/// The codecs this worker uses, decided once at start-up.
#[derive(Clone, Debug)]
pub struct MachineCodecs {
    pub encoder: VideoEncoder,
    /// The decoders of this ffmpeg build, when hardware decoding is on.
    pub hardware_decoders: Option<HashSet<String>>,
}

impl MachineCodecs {
    /// The hardware decoder for an input codec, or `None` to decode in
    /// software: hardware decoding off, no hardware decoder for the codec,
    /// or one this ffmpeg build lacks.
    pub fn decoder_for(&self, input_codec: &str) -> Option<HardwareDecoder> {
        let available = self.hardware_decoders.as_ref()?;
        let decoder = self.encoder.hardware_decoder(input_codec)?;
        match decoder.decoder_name() {
            Some(name) if !available.contains(name) => None,
            _ => Some(decoder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_decoding_falls_back_to_software() {
        let off = MachineCodecs {
            encoder: VideoEncoder::V4l2m2m,
            hardware_decoders: None,
        };
        assert_eq!(off.decoder_for("h264"), None);
        let pi = MachineCodecs {
            encoder: VideoEncoder::V4l2m2m,
            hardware_decoders: Some(HashSet::from(["h264_v4l2m2m".to_owned()])),
        };
        assert_eq!(
            pi.decoder_for("h264"),
            Some(HardwareDecoder::Codec("h264_v4l2m2m"))
        );
        assert_eq!(
            pi.decoder_for("mpeg2video"),
            None,
            "not in this build: software"
        );
        assert_eq!(
            pi.decoder_for("vp9"),
            None,
            "no hardware decoder for the codec"
        );
    }
}

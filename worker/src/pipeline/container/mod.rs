//! The containers segments come in (MPEG-TS, fragmented MP4): what one
//! segment holds, read from its own bytes (and, for fMP4, its
//! initialization section) by the reader for its container.

mod facts;
pub mod mp4;
pub mod ts;

pub use facts::SegmentFacts;

use hlsmux_protocol::SegmentFormat;

/// Reads the first bytes of a segment in `format`; `init` is the stream's
/// initialization section (fMP4 only), where its codecs are declared.
pub fn read(
    format: SegmentFormat,
    init: Option<&[u8]>,
    segment_prefix: &[u8],
) -> Result<SegmentFacts, String> {
    match format {
        SegmentFormat::Mpegts => {
            let whole_packets = segment_prefix.len() - segment_prefix.len() % ts::PACKET_BYTES;
            ts::read_segment(&segment_prefix[..whole_packets]).map_err(|e| e.to_string())
        }
        SegmentFormat::Fmp4 => {
            let mut facts = mp4::read_fragment(segment_prefix).map_err(|e| e.to_string())?;
            if let Some(init) = init {
                let codecs = mp4::read_init(init).map_err(|e| format!("its init section {e}"))?;
                facts.video_codec = codecs.video_codec;
                facts.audio_codec = codecs.audio_codec;
            }
            Ok(facts)
        }
    }
}

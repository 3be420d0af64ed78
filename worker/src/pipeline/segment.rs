//! Segment: what one media segment holds, read from its own bytes (and,
//! for fMP4, its initialization section) by the reader for its container.

use hlsmux_protocol::SegmentFormat;

use super::{mp4, ts};

/// What a segment holds, as a master playlist and its checks need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentFacts {
    /// RFC 6381 codec string of the H.264 stream (`avc1.64001f`).
    pub video_codec: Option<String>,
    /// RFC 6381 codec string of the AAC stream (`mp4a.40.2`).
    pub audio_codec: Option<String>,
    /// The first video frame is a keyframe (decodable on its own).
    pub starts_with_keyframe: bool,
    /// Bytes from the segment's start to the end of its first video frame:
    /// the byte range of an I-frame playlist entry.
    pub first_frame_bytes: Option<usize>,
}

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

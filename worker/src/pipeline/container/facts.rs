//! What one media segment holds, as the master playlist and its checks
//! need it, whichever container it is in.

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

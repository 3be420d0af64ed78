//! Fragmented MP4 (ISO BMFF) reading, just enough to describe an fMP4 HLS
//! stream: the codec strings from the initialization section (`avcC`,
//! `esds`), and of a media segment whether its first sample is a sync
//! sample and where that sample's bytes end (an I-frame byte range).

use super::facts::SegmentFacts;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mp4Error {
    #[error("is not ISO BMFF: {0}")]
    NotIsoBmff(String),
    #[error("has no {0} box")]
    Missing(&'static str),
}

/// Boxes whose body is a list of boxes, on the paths read here.
const CONTAINERS: [&[u8; 4]; 7] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf",
];
/// Sample entries: fixed fields before their child boxes.
const VISUAL_SAMPLE_ENTRY_BYTES: usize = 78;
const AUDIO_SAMPLE_ENTRY_BYTES: usize = 28;

/// One box: its type, its body, and where it and its body start in the
/// file.
#[derive(Clone, Copy, Debug)]
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    start: usize,
    body_start: usize,
}

/// The boxes in `bytes`, which start at `offset` in the file.
fn boxes(bytes: &[u8], offset: usize) -> Result<Vec<Mp4Box<'_>>, Mp4Error> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap_or_default();
        let (header, size) = match size32 {
            0 => (8, bytes.len() - at),
            1 => {
                let large = bytes
                    .get(at + 8..at + 16)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| Mp4Error::NotIsoBmff("a truncated box size".into()))?;
                (16, usize::try_from(large).unwrap_or(usize::MAX))
            }
            size => (8, size as usize),
        };
        if size < header {
            return Err(Mp4Error::NotIsoBmff(format!(
                "box {} of {size} bytes",
                String::from_utf8_lossy(&kind)
            )));
        }
        // A box cut off by the end of what was read keeps what there is.
        let end = (at + size).min(bytes.len());
        found.push(Mp4Box {
            kind,
            body: &bytes[(at + header).min(end)..end],
            start: offset + at,
            body_start: offset + at + header,
        });
        at += size;
    }
    Ok(found)
}

/// Every box reached by descending through `path` (each level may have
/// several: a `moov` has a `trak` per track).
fn descend<'a>(roots: &[Mp4Box<'a>], path: &[&[u8; 4]]) -> Vec<Mp4Box<'a>> {
    let Some((first, rest)) = path.split_first() else {
        return roots.to_vec();
    };
    let matching = roots.iter().filter(|b| &b.kind == *first);
    matching
        .flat_map(|found| {
            if rest.is_empty() {
                vec![*found]
            } else if CONTAINERS.contains(first) {
                let children = boxes(found.body, found.body_start).unwrap_or_default();
                descend(&children, rest)
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// The codec strings of an initialization section.
pub fn read_init(bytes: &[u8]) -> Result<SegmentFacts, Mp4Error> {
    let top = boxes(bytes, 0)?;
    if !top.iter().any(|b| &b.kind == b"moov") {
        return Err(Mp4Error::Missing("moov"));
    }
    let mut facts = SegmentFacts::default();
    for stsd in descend(
        &top,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    ) {
        // A full box (4 bytes) and an entry count (4 bytes), then entries.
        let entries = boxes(stsd.body.get(8..).unwrap_or_default(), 0)?;
        for entry in entries {
            match &entry.kind {
                b"avc1" | b"avc3" => {
                    let children = boxes(
                        entry
                            .body
                            .get(VISUAL_SAMPLE_ENTRY_BYTES..)
                            .unwrap_or_default(),
                        0,
                    )?;
                    if let Some(avcc) = children.iter().find(|b| &b.kind == b"avcC")
                        && let Some(&[_, profile, constraints, level]) = avcc.body.get(..4)
                    {
                        facts.video_codec = Some(format!(
                            "{}.{profile:02x}{constraints:02x}{level:02x}",
                            String::from_utf8_lossy(&entry.kind)
                        ));
                    }
                }
                b"mp4a" => {
                    let children = boxes(
                        entry
                            .body
                            .get(AUDIO_SAMPLE_ENTRY_BYTES..)
                            .unwrap_or_default(),
                        0,
                    )?;
                    if let Some(esds) = children.iter().find(|b| &b.kind == b"esds")
                        && let Some(object_type) =
                            aac_object_type(esds.body.get(4..).unwrap_or_default())
                    {
                        facts.audio_codec = Some(format!("mp4a.40.{object_type}"));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(facts)
}

/// The audio object type in an `esds` body's descriptors: ES_Descriptor
/// (tag 3) holds DecoderConfigDescriptor (tag 4), which for AAC (object
/// type indication 0x40) holds DecoderSpecificInfo (tag 5), whose first
/// five bits are the audio object type.
fn aac_object_type(descriptors: &[u8]) -> Option<u8> {
    let (tag, es, _) = descriptor(descriptors)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR_ES_Id
    }
    let (tag, config, _) = descriptor(es.get(at..)?)?;
    if tag != 0x04 || *config.first()? != 0x40 {
        return None;
    }
    let (tag, specific, _) = descriptor(config.get(13..)?)?;
    (tag == 0x05).then(|| specific.first().map(|byte| byte >> 3))?
}

/// One descriptor: its tag, its body, and the bytes after it.
fn descriptor(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *bytes.first()?;
    let mut length = 0usize;
    let mut at = 1;
    loop {
        let byte = *bytes.get(at)?;
        length = (length << 7) | usize::from(byte & 0x7f);
        at += 1;
        if byte & 0x80 == 0 || at > 4 {
            break;
        }
    }
    let body = bytes.get(at..at + length)?;
    Some((tag, body, &bytes[at + length..]))
}

/// Whether a media segment opens on a sync sample, and where that first
/// sample's bytes end.
pub fn read_fragment(bytes: &[u8]) -> Result<SegmentFacts, Mp4Error> {
    let top = boxes(bytes, 0)?;
    let moof = top
        .iter()
        .find(|b| &b.kind == b"moof")
        .ok_or(Mp4Error::Missing("moof"))?;
    let traf = descend(&top, &[b"moof", b"traf"]);
    let traf = traf.first().ok_or(Mp4Error::Missing("traf"))?;
    let children = boxes(traf.body, traf.body_start)?;
    let tfhd = children
        .iter()
        .find(|b| &b.kind == b"tfhd")
        .ok_or(Mp4Error::Missing("tfhd"))?;
    let trun = children
        .iter()
        .find(|b| &b.kind == b"trun")
        .ok_or(Mp4Error::Missing("trun"))?;
    let defaults = TrackFragmentDefaults::read(tfhd.body);
    let run = TrackRun::read(trun.body).ok_or(Mp4Error::Missing("trun fields"))?;

    let flags = run.first_sample_flags.or(defaults.sample_flags);
    let size = run.first_sample_size.or(defaults.sample_size);
    // With default-base-is-moof (or no base given), data offsets count
    // from the moof's first byte.
    let base = defaults.base_data_offset.unwrap_or(moof.start as u64);
    let first_frame_bytes = match (run.data_offset, size) {
        (Some(offset), Some(size)) => {
            usize::try_from(base + u64::try_from(offset).unwrap_or(0) + u64::from(size)).ok()
        }
        _ => None,
    };
    Ok(SegmentFacts {
        video_codec: None,
        audio_codec: None,
        // sample_is_non_sync_sample is bit 16 of the sample flags.
        starts_with_keyframe: flags.is_some_and(|f| f & 0x0001_0000 == 0),
        first_frame_bytes,
    })
}

#[derive(Default)]
struct TrackFragmentDefaults {
    base_data_offset: Option<u64>,
    sample_size: Option<u32>,
    sample_flags: Option<u32>,
}

impl TrackFragmentDefaults {
    fn read(body: &[u8]) -> Self {
        let flags = be32(body, 0).unwrap_or(0) & 0x00ff_ffff;
        let mut at = 8; // version and flags, track_ID
        let mut defaults = Self::default();
        if flags & 0x01 != 0 {
            defaults.base_data_offset = body
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            at += 8;
        }
        if flags & 0x02 != 0 {
            at += 4; // sample_description_index
        }
        if flags & 0x08 != 0 {
            at += 4; // default_sample_duration
        }
        if flags & 0x10 != 0 {
            defaults.sample_size = be32(body, at);
            at += 4;
        }
        if flags & 0x20 != 0 {
            defaults.sample_flags = be32(body, at);
        }
        defaults
    }
}

struct TrackRun {
    data_offset: Option<i32>,
    first_sample_flags: Option<u32>,
    first_sample_size: Option<u32>,
}

impl TrackRun {
    fn read(body: &[u8]) -> Option<Self> {
        let flags = be32(body, 0)? & 0x00ff_ffff;
        let mut at = 8; // version and flags, sample_count
        let mut data_offset = None;
        if flags & 0x001 != 0 {
            data_offset = be32(body, at).map(|v| v as i32);
            at += 4;
        }
        let mut first_sample_flags = None;
        if flags & 0x004 != 0 {
            first_sample_flags = be32(body, at);
            at += 4;
        }
        // The first sample's own fields, in their order.
        if flags & 0x100 != 0 {
            at += 4; // duration
        }
        let first_sample_size = if flags & 0x200 != 0 {
            let size = be32(body, at);
            at += 4;
            size
        } else {
            None
        };
        if flags & 0x400 != 0 && first_sample_flags.is_none() {
            first_sample_flags = be32(body, at);
        }
        Some(Self {
            data_offset,
            first_sample_flags,
            first_sample_size,
        })
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(body.len() + 8)
            .expect("small")
            .to_be_bytes()
            .to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(body);
        bytes
    }

    fn nest(kinds: &[&[u8; 4]], body: &[u8]) -> Vec<u8> {
        kinds
            .iter()
            .rev()
            .fold(body.to_vec(), |inner, kind| mp4_box(kind, &inner))
    }

    /// An init section with an H.264 track (High, level 3.0) and an AAC-LC
    /// track, laid out as ffmpeg writes them.
    fn init() -> Vec<u8> {
        let mut avc1 = vec![0u8; VISUAL_SAMPLE_ENTRY_BYTES];
        avc1.extend(mp4_box(b"avcC", &[1, 0x64, 0x00, 0x1e, 0xff]));
        let esds_body = hex(
            "0000000003808080250001000480808017401500000000010d8800010d880580808005120856e500068080800102",
        );
        let mut mp4a = vec![0u8; AUDIO_SAMPLE_ENTRY_BYTES];
        mp4a.extend(mp4_box(b"esds", &esds_body));
        let stsd = |entry: Vec<u8>| {
            let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1];
            body.extend(entry);
            mp4_box(b"stsd", &body)
        };
        let track = |entry| nest(&[b"trak", b"mdia", b"minf", b"stbl"], &stsd(entry));
        let mut moov_body = track(mp4_box(b"avc1", &avc1));
        moov_body.extend(track(mp4_box(b"mp4a", &mp4a)));
        let mut bytes = mp4_box(b"ftyp", b"iso5\0\0\0\x01");
        bytes.extend(mp4_box(b"moov", &moov_body));
        bytes
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

    /// A segment like ffmpeg's: styp, moof (tfhd with defaults, trun with a
    /// data offset, first-sample flags and per-sample sizes), mdat.
    fn fragment(first_sample_flags: u32) -> (Vec<u8>, usize) {
        let tfhd = hex("0002003800000001000002000000275601010000");
        let mut trun = hex("00000a0500000002");
        let data_offset_at = trun.len();
        trun.extend([0, 0, 0, 0]);
        trun.extend(first_sample_flags.to_be_bytes());
        trun.extend(hex("0000012c00000000000000640000000a"));
        let mut traf = mp4_box(b"tfhd", &tfhd);
        traf.extend(mp4_box(b"trun", &trun));
        let mut moof = mp4_box(b"moof", &mp4_box(b"traf", &traf));
        let data_offset = u32::try_from(moof.len() + 8).expect("small");
        // trun sits at moof header 8 + traf header 8 + tfhd + trun header 8.
        let trun_body_at = 8 + 8 + (8 + tfhd.len()) + 8;
        moof[trun_body_at + data_offset_at..trun_body_at + data_offset_at + 4]
            .copy_from_slice(&data_offset.to_be_bytes());
        let mut bytes = mp4_box(b"styp", b"msdh\0\0\0\0");
        let moof_start = bytes.len();
        bytes.extend(moof);
        bytes.extend(mp4_box(b"mdat", &[0x55; 400]));
        let first_frame_end = moof_start + data_offset as usize + 300;
        (bytes, first_frame_end)
    }

    #[test]
    fn codecs_are_read_from_the_init_section() {
        let facts = read_init(&init()).expect("reads");
        assert_eq!(facts.video_codec.as_deref(), Some("avc1.64001e"));
        assert_eq!(facts.audio_codec.as_deref(), Some("mp4a.40.2"));
    }

    #[test]
    fn a_sync_first_sample_and_its_end_are_read() {
        let (bytes, end) = fragment(0x0200_0000);
        let facts = read_fragment(&bytes).expect("reads");
        assert!(facts.starts_with_keyframe);
        assert_eq!(facts.first_frame_bytes, Some(end));
        let (predicted, _) = fragment(0x0101_0000);
        assert!(
            !read_fragment(&predicted)
                .expect("reads")
                .starts_with_keyframe
        );
    }

    #[test]
    fn other_bytes_are_refused() {
        assert_eq!(
            read_init(&mp4_box(b"ftyp", b"iso5")),
            Err(Mp4Error::Missing("moov"))
        );
        assert!(read_fragment(b"\0\0\0\x04abcd").is_err());
    }
}

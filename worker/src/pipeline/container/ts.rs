//! MPEG-TS reading, just enough to describe a segment ffmpeg wrote: the
//! codec strings a master playlist names (`avc1.64001f`, `mp4a.40.2`, read
//! from the stream's own SPS and ADTS headers, not assumed), whether the
//! segment opens on a keyframe, and where its first frame ends (the byte
//! range of an I-frame playlist entry).

use super::facts::SegmentFacts;

/// Every MPEG-TS packet is this long.
pub const PACKET_BYTES: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;

/// PMT stream types (ISO/IEC 13818-1, table 2-34).
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;

/// H.264 NAL unit types.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsError {
    #[error("is not MPEG-TS: {0}")]
    NotTransportStream(String),
    #[error("has no program map (PAT/PMT) before its payload")]
    NoProgramMap,
}

/// The PID of null (stuffing) packets, whose continuity counter means
/// nothing.
const NULL_PID: u16 = 0x1fff;

/// Renumbers the continuity counters of `bytes` (whole packets) so each
/// PID's run on from `counters` (the last counter seen per PID, carried
/// from segment to segment): a packet with a payload takes the next
/// number, one without repeats the last (ISO/IEC 13818-1, 2.4.3.3). Used
/// where parts encoded apart are joined into one stream.
pub fn renumber_continuity(
    bytes: &mut [u8],
    counters: &mut std::collections::HashMap<u16, u8>,
) -> Result<(), TsError> {
    if !bytes.len().is_multiple_of(PACKET_BYTES) {
        return Err(TsError::NotTransportStream(format!(
            "{} bytes is not a whole number of {PACKET_BYTES}-byte packets",
            bytes.len()
        )));
    }
    for (number, packet) in bytes.chunks_exact_mut(PACKET_BYTES).enumerate() {
        if packet[0] != SYNC_BYTE {
            return Err(TsError::NotTransportStream(format!(
                "packet {number} does not start with the sync byte"
            )));
        }
        let pid = u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2]);
        if pid == NULL_PID {
            continue;
        }
        let has_payload = packet[3] & 0x10 != 0;
        let own = packet[3] & 0x0f;
        let counter = match (counters.get(&pid), has_payload) {
            (None, _) => own,
            (Some(last), true) => (last + 1) & 0x0f,
            (Some(last), false) => *last,
        };
        packet[3] = (packet[3] & 0xf0) | counter;
        counters.insert(pid, counter);
    }
    Ok(())
}

/// Reads what a segment holds from its bytes: codecs from the first SPS
/// and ADTS header, a keyframe start when the first picture is IDR, and the
/// first frame's end on a packet boundary (the tables and the picture).
pub fn read_segment(bytes: &[u8]) -> Result<SegmentFacts, TsError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(PACKET_BYTES) {
        return Err(TsError::NotTransportStream(format!(
            "{} bytes is not a whole number of {PACKET_BYTES}-byte packets",
            bytes.len()
        )));
    }
    let mut pmt_pid: Option<u16> = None;
    let mut video_pid: Option<u16> = None;
    let mut audio_pid: Option<u16> = None;
    let mut first_video_pes: Vec<u8> = Vec::new();
    let mut video_pes_started = false;
    let mut facts = SegmentFacts::default();

    for (number, packet) in bytes.chunks_exact(PACKET_BYTES).enumerate() {
        if packet[0] != SYNC_BYTE {
            return Err(TsError::NotTransportStream(format!(
                "packet {number} does not start with the sync byte"
            )));
        }
        let unit_start = packet[1] & 0x40 != 0;
        let pid = u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2]);
        let Some(payload) = payload(packet) else {
            continue;
        };
        if pid == PAT_PID && unit_start {
            pmt_pid = pmt_pid.or_else(|| program_map_pid(payload));
        } else if Some(pid) == pmt_pid && unit_start && video_pid.is_none() {
            for (stream_type, elementary_pid) in elementary_streams(payload) {
                match stream_type {
                    STREAM_TYPE_H264 => video_pid = video_pid.or(Some(elementary_pid)),
                    STREAM_TYPE_AAC_ADTS => audio_pid = audio_pid.or(Some(elementary_pid)),
                    _ => {}
                }
            }
        } else if Some(pid) == video_pid {
            if unit_start && video_pes_started {
                // The next picture begins: the first one is whole.
                facts.first_frame_bytes = Some(number * PACKET_BYTES);
                break;
            }
            video_pes_started |= unit_start;
            if video_pes_started {
                first_video_pes.extend_from_slice(payload);
            }
        } else if Some(pid) == audio_pid && unit_start && facts.audio_codec.is_none() {
            facts.audio_codec = pes_data(payload).and_then(adts_codec);
        }
    }
    if pmt_pid.is_none() || (video_pid.is_none() && audio_pid.is_none()) {
        return Err(TsError::NoProgramMap);
    }
    if video_pes_started && facts.first_frame_bytes.is_none() {
        // A segment of one picture: it runs to the end.
        facts.first_frame_bytes = Some(bytes.len());
    }
    if let Some(elementary) = pes_data(&first_video_pes) {
        for nal in nal_units(elementary) {
            match nal.first().map(|header| header & 0x1f) {
                Some(NAL_SPS) if facts.video_codec.is_none() && nal.len() >= 4 => {
                    facts.video_codec =
                        Some(format!("avc1.{:02x}{:02x}{:02x}", nal[1], nal[2], nal[3]));
                }
                Some(NAL_IDR) => facts.starts_with_keyframe = true,
                _ => {}
            }
        }
    }
    Ok(facts)
}

/// The packet's payload, after its adaptation field.
fn payload(packet: &[u8]) -> Option<&[u8]> {
    let control = (packet[3] >> 4) & 0x3;
    let start = match control {
        0b01 => 4,
        0b11 => 5 + usize::from(packet[4]),
        _ => return None,
    };
    packet.get(start..).filter(|rest| !rest.is_empty())
}

/// A PSI section's body (after the pointer field), up to its CRC.
fn section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let table = payload.get(1 + pointer..)?;
    let length = usize::from(u16::from(*table.get(1)? & 0x0f) << 8 | u16::from(*table.get(2)?));
    // The section after its 3-byte header, less the 4-byte CRC.
    table.get(3..(3 + length).checked_sub(4)?)
}

/// The PMT's PID from a PAT: the first program that is not the network PID.
fn program_map_pid(payload: &[u8]) -> Option<u16> {
    let body = section(payload)?;
    body.get(5..)?
        .chunks_exact(4)
        .find(|program| u16::from(program[0]) << 8 | u16::from(program[1]) != 0)
        .map(|program| u16::from(program[2] & 0x1f) << 8 | u16::from(program[3]))
}

/// The PMT's elementary streams, as (stream type, PID).
fn elementary_streams(payload: &[u8]) -> Vec<(u8, u16)> {
    let Some(body) = section(payload) else {
        return Vec::new();
    };
    let Some(info_length) = body
        .get(7..9)
        .map(|bytes| usize::from(u16::from(bytes[0] & 0x0f) << 8 | u16::from(bytes[1])))
    else {
        return Vec::new();
    };
    let mut streams = Vec::new();
    let mut rest = body.get(9 + info_length..).unwrap_or_default();
    while rest.len() >= 5 {
        let pid = u16::from(rest[1] & 0x1f) << 8 | u16::from(rest[2]);
        let es_info = usize::from(u16::from(rest[3] & 0x0f) << 8 | u16::from(rest[4]));
        streams.push((rest[0], pid));
        rest = rest.get(5 + es_info..).unwrap_or_default();
    }
    streams
}

/// A PES packet's elementary stream data, after its header.
fn pes_data(pes: &[u8]) -> Option<&[u8]> {
    if pes.get(..3)? != [0, 0, 1] {
        return None;
    }
    let header_length = usize::from(*pes.get(8)?);
    pes.get(9 + header_length..)
}

/// `mp4a.40.<object type>` from an ADTS header.
fn adts_codec(data: &[u8]) -> Option<String> {
    let syncword = data.first()? == &0xff && data.get(1)? & 0xf0 == 0xf0;
    let object_type = (data.get(2)? >> 6) + 1;
    syncword.then(|| format!("mp4a.40.{object_type}"))
}

/// The NAL units of an Annex B byte stream, each without its start code.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut index = 0;
    while index + 3 <= stream.len() {
        if stream[index..index + 3] == [0, 0, 1] {
            starts.push(index + 3);
            index += 3;
        } else {
            index += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(at, &start)| {
            let end = starts.get(at + 1).map_or(stream.len(), |next| next - 3);
            // A four-byte start code leaves a zero before the next unit.
            let mut unit = &stream[start..end.max(start)];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            unit
        })
        .collect()
}

/// MPEG-TS built by hand, for tests here and in `master`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// One TS packet on `pid` carrying `payload` (padded by an adaptation
    /// field, as muxers do).
    pub fn packet(pid: u16, unit_start: bool, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![
            SYNC_BYTE,
            (u8::from(unit_start) << 6) | (pid >> 8) as u8,
            pid as u8,
        ];
        let stuffing = PACKET_BYTES - 4 - payload.len();
        if stuffing == 0 {
            packet.push(0x10);
        } else {
            packet.push(0x30);
            packet.push((stuffing - 1) as u8);
            if stuffing > 1 {
                packet.push(0);
                packet.extend(std::iter::repeat_n(0xff, stuffing - 2));
            }
        }
        packet.extend_from_slice(payload);
        packet
    }

    fn psi(table: &[u8]) -> Vec<u8> {
        let mut payload = vec![0];
        payload.extend_from_slice(table);
        payload.extend_from_slice(&[0, 0, 0, 0]);
        payload
    }

    /// A PAT naming PMT 0x1000, and a PMT naming H.264 on 0x100 and AAC on
    /// 0x101.
    pub fn tables() -> Vec<u8> {
        let pat = psi(&[0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00]);
        let pmt = psi(&[
            0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1, 0x00, 0xf0, 0x00,
            0x0f, 0xe1, 0x01, 0xf0, 0x00,
        ]);
        let mut bytes = packet(PAT_PID, true, &pat);
        bytes.extend(packet(0x1000, true, &pmt));
        bytes
    }

    pub fn pes(data: &[u8]) -> Vec<u8> {
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        pes.extend_from_slice(data);
        pes
    }

    pub const SPS_HIGH_31: [u8; 8] = [0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f];
    pub const IDR: [u8; 6] = [0, 0, 1, 0x65, 0x88, 0x84];
    pub const NON_IDR: [u8; 6] = [0, 0, 1, 0x41, 0x9a, 0x02];

    /// A segment whose first picture (SPS and IDR) fills
    /// `picture_packets` packets before the next picture starts; returns
    /// it and where its first picture ends.
    pub fn segment(picture_packets: usize) -> (Vec<u8>, usize) {
        let mut bytes = tables();
        let mut first = SPS_HIGH_31.to_vec();
        first.extend_from_slice(&IDR);
        bytes.extend(packet(0x100, true, &pes(&first)));
        for _ in 1..picture_packets {
            bytes.extend(packet(0x100, false, &[0x11; 100]));
        }
        let end = bytes.len();
        bytes.extend(packet(0x100, true, &pes(&NON_IDR)));
        (bytes, end)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn codecs_keyframe_and_first_frame_are_read() {
        let mut bytes = tables();
        let mut first = SPS_HIGH_31.to_vec();
        first.extend_from_slice(&IDR);
        bytes.extend(packet(0x100, true, &pes(&first)));
        bytes.extend(packet(0x101, true, &pes(&[0xff, 0xf1, 0x50, 0x80])));
        bytes.extend(packet(0x100, false, &[0x11; 20]));
        let first_frame_end = bytes.len();
        bytes.extend(packet(0x100, true, &pes(&NON_IDR)));
        let facts = read_segment(&bytes).expect("reads");
        assert_eq!(
            facts,
            SegmentFacts {
                video_codec: Some("avc1.64001f".into()),
                audio_codec: Some("mp4a.40.2".into()),
                starts_with_keyframe: true,
                first_frame_bytes: Some(first_frame_end),
            }
        );
    }

    #[test]
    fn a_segment_opening_on_a_predicted_frame_is_not_a_keyframe_start() {
        let mut bytes = tables();
        let mut first = SPS_HIGH_31.to_vec();
        first.extend_from_slice(&NON_IDR);
        bytes.extend(packet(0x100, true, &pes(&first)));
        let facts = read_segment(&bytes).expect("reads");
        assert!(!facts.starts_with_keyframe);
        assert_eq!(facts.first_frame_bytes, Some(bytes.len()));
    }

    #[test]
    fn other_bytes_are_refused() {
        assert!(matches!(
            read_segment(b"#EXTM3U\n"),
            Err(TsError::NotTransportStream(_))
        ));
        let mut shifted = vec![0u8; PACKET_BYTES];
        shifted[0] = 0x46;
        assert!(matches!(
            read_segment(&shifted),
            Err(TsError::NotTransportStream(_))
        ));
        let video_without_tables = packet(0x100, true, &pes(&IDR));
        assert_eq!(
            read_segment(&video_without_tables),
            Err(TsError::NoProgramMap)
        );
    }

    #[test]
    fn continuity_counters_run_on_across_a_join() {
        let packet = |pid: u16, payload: bool, counter: u8| {
            let mut p = vec![0u8; PACKET_BYTES];
            p[0] = SYNC_BYTE;
            p[1] = (pid >> 8) as u8 & 0x1f;
            p[2] = pid as u8;
            p[3] = if payload { 0x10 } else { 0x20 } | counter;
            p
        };
        let counters_of = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .chunks_exact(PACKET_BYTES)
                .map(|p| p[3] & 0x0f)
                .collect()
        };
        let mut counters = std::collections::HashMap::new();
        // The first part: PID 0x100 at 14, 15.
        let mut first = [packet(0x100, true, 14), packet(0x100, true, 15)].concat();
        renumber_continuity(&mut first, &mut counters).expect("renumbered");
        assert_eq!(counters_of(&first), [14, 15], "a first part keeps its own");
        // The second part's muxer started on its own (at 5 here); an
        // adaptation-only packet repeats its counter; a null packet is
        // left alone.
        let mut second = [
            packet(0x100, true, 5),
            packet(0x100, false, 5),
            packet(0x100, true, 6),
            packet(NULL_PID, true, 7),
        ]
        .concat();
        renumber_continuity(&mut second, &mut counters).expect("renumbered");
        assert_eq!(counters_of(&second), [0, 0, 1, 7]);
        let mut third = [packet(0x100, true, 0)].concat();
        renumber_continuity(&mut third, &mut counters).expect("renumbered");
        assert_eq!(counters_of(&third), [2]);
        let mut torn = vec![0u8; 100];
        assert!(renumber_continuity(&mut torn, &mut counters).is_err());
    }
}

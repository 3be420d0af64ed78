//! fMP4 fragments moved onto the stitched timeline. ffmpeg's MP4 muxer
//! starts every chunk's decode times at zero and places the chunk with an
//! empty edit in its initialization section; the stitched output keeps the
//! first chunk's section, so each later chunk's fragments get their decode
//! times (`tfdt`, ISO/IEC 14496-12 8.8.12) moved on by where the chunk
//! starts.

/// The media timescale (`mdhd`, ISO/IEC 14496-12 8.4.2) of the first
/// track of an initialization section.
pub fn media_timescale(init: &[u8]) -> Option<u32> {
    let at = init.windows(4).position(|w| w == b"mdhd")?;
    let version = *init.get(at + 4)?;
    // After the type: version and flags (4 bytes), then the creation and
    // modification times (4 bytes each, 8 in version 1).
    let timescale_at = at + 8 + if version == 1 { 16 } else { 8 };
    let bytes: [u8; 4] = init.get(timescale_at..timescale_at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes)).filter(|scale| *scale > 0)
}

/// Adds `ticks` to the decode time of every track fragment in `segment`,
/// walking its boxes (`moof` → `traf` → `tfdt`).
pub fn shift_decode_times(segment: &mut [u8], ticks: u64) -> Result<(), String> {
    let mut shifted = 0;
    walk(segment, 0, segment.len(), &mut |bytes, kind, body| {
        if kind != *b"tfdt" {
            return Ok(());
        }
        let version = bytes[body];
        let at = body + 4;
        if version == 1 {
            let old = u64::from_be_bytes(bytes[at..at + 8].try_into().map_err(|_| "short tfdt")?);
            bytes[at..at + 8].copy_from_slice(&(old + ticks).to_be_bytes());
        } else {
            let old = u32::from_be_bytes(bytes[at..at + 4].try_into().map_err(|_| "short tfdt")?);
            let new = u32::try_from(u64::from(old) + ticks)
                .map_err(|_| "a 32-bit tfdt cannot hold the shifted decode time".to_owned())?;
            bytes[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        shifted += 1;
        Ok(())
    })?;
    if shifted == 0 {
        return Err("no track fragment decode time (tfdt) to shift".into());
    }
    Ok(())
}

/// Visits every box in `bytes[from..to]`, descending into `moof` and
/// `traf`, with the offset of each box's body.
fn walk(
    bytes: &mut [u8],
    from: usize,
    to: usize,
    visit: &mut impl FnMut(&mut [u8], [u8; 4], usize) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = from;
    while at + 8 <= to {
        let size =
            u32::from_be_bytes(bytes[at..at + 4].try_into().map_err(|_| "short box")?) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().map_err(|_| "short box")?;
        let (header, size) = match size {
            1 => {
                let large = u64::from_be_bytes(
                    bytes
                        .get(at + 8..at + 16)
                        .ok_or("short box")?
                        .try_into()
                        .map_err(|_| "short box")?,
                );
                (16, usize::try_from(large).map_err(|_| "box too large")?)
            }
            0 => (8, to - at),
            size => (8, size),
        };
        if size < header || at + size > to {
            return Err(format!("a box at byte {at} runs past its parent"));
        }
        visit(bytes, kind, at + header)?;
        if kind == *b"moof" || kind == *b"traf" {
            walk(bytes, at + header, at + size, visit)?;
        }
        at += size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of `kind` around `body`.
    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let size = u32::try_from(body.len() + 8).expect("small");
        [&size.to_be_bytes()[..], kind, body].concat()
    }

    #[test]
    fn decode_times_move_on_and_nothing_else_changes() {
        let tfdt = boxed(
            b"tfdt",
            &[&[1u8, 0, 0, 0][..], &25_600u64.to_be_bytes()].concat(),
        );
        let traf = boxed(b"traf", &[boxed(b"tfhd", &[0; 8]), tfdt].concat());
        let moof = boxed(b"moof", &[boxed(b"mfhd", &[0; 8]), traf].concat());
        let mut segment = [moof, boxed(b"mdat", b"pictures")].concat();
        let before = segment.clone();
        shift_decode_times(&mut segment, 153_600).expect("shifted");
        let at = segment.windows(4).position(|w| w == b"tfdt").expect("tfdt") + 8;
        let time = u64::from_be_bytes(segment[at..at + 8].try_into().expect("8 bytes"));
        assert_eq!(time, 25_600 + 153_600);
        let changed = before.iter().zip(&segment).filter(|(a, b)| a != b).count();
        assert!(changed <= 8, "only the decode time changed");
        let mut no_fragment = boxed(b"mdat", b"x");
        assert!(shift_decode_times(&mut no_fragment, 1).is_err());
    }

    #[test]
    fn the_timescale_is_read_from_mdhd() {
        let mdhd = boxed(
            b"mdhd",
            &[
                &[0, 0, 0, 0][..],
                &[0; 8],
                &12_800u32.to_be_bytes(),
                &[0; 8],
            ]
            .concat(),
        );
        assert_eq!(media_timescale(&boxed(b"moov", &mdhd)), Some(12_800));
        assert_eq!(media_timescale(b"nothing"), None);
    }
}

//! Layout: the names of an output's files under each naming scheme, in one
//! place for encode (which tells ffmpeg), master, encrypt and verify.
//! A "stream" is a rung's name (`720p_4500k`) or the audio rendition's.

use hlsmux_protocol::{OutputNaming, SegmentFormat};

/// The stream name of the one audio rendition every video rung shares.
pub const AUDIO_RENDITION: &str = "audio";

/// Where each file of an output lives, relative to the output directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub naming: OutputNaming,
    pub format: SegmentFormat,
}

impl Layout {
    /// The playlist players start from.
    pub fn master(self) -> &'static str {
        match self.naming {
            OutputNaming::Hlsmux => "master.m3u8",
            OutputNaming::Seed => "manifest_master.m3u8",
        }
    }

    pub fn media_playlist(self, stream: &str) -> String {
        self.ffmpeg_playlists().replace("%v", stream)
    }

    pub fn i_frame_playlist(self, stream: &str) -> String {
        match self.naming {
            OutputNaming::Hlsmux => format!("{stream}/iframes.m3u8"),
            OutputNaming::Seed => format!("manifest_{stream}_iframes.m3u8"),
        }
    }

    /// ffmpeg's pattern for the media playlists (`%v`: the stream's name).
    pub fn ffmpeg_playlists(self) -> &'static str {
        match self.naming {
            OutputNaming::Hlsmux => "%v/index.m3u8",
            OutputNaming::Seed => "manifest_%v.m3u8",
        }
    }

    /// ffmpeg's pattern for the segments.
    pub fn ffmpeg_segments(self) -> String {
        let extension = match self.format {
            SegmentFormat::Mpegts => "ts",
            SegmentFormat::Fmp4 => "m4s",
        };
        match self.naming {
            OutputNaming::Hlsmux => format!("%v/segment_%05d.{extension}"),
            OutputNaming::Seed => format!("media_%v_%05d.{extension}"),
        }
    }

    /// ffmpeg's name for each stream's fMP4 initialization section, beside
    /// its playlist (ffmpeg adds the stream's number: `init_0.mp4`).
    pub fn ffmpeg_init(self) -> &'static str {
        match self.naming {
            OutputNaming::Hlsmux => "init.mp4",
            OutputNaming::Seed => "media_init.mp4",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_naming_is_flat_with_its_prefixes() {
        let seed = Layout {
            naming: OutputNaming::Seed,
            ..Layout::default()
        };
        assert_eq!(seed.master(), "manifest_master.m3u8");
        assert_eq!(seed.media_playlist("360p_365k"), "manifest_360p_365k.m3u8");
        assert_eq!(seed.ffmpeg_segments(), "media_%v_%05d.ts");
        let fmp4 = Layout {
            format: SegmentFormat::Fmp4,
            ..seed
        };
        assert_eq!(fmp4.ffmpeg_segments(), "media_%v_%05d.m4s");
        let own = Layout::default();
        assert_eq!(own.media_playlist(AUDIO_RENDITION), "audio/index.m3u8");
        assert_eq!(own.i_frame_playlist("360p_365k"), "360p_365k/iframes.m3u8");
    }
}

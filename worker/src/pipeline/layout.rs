//! Layout: the names of an output's files under each naming scheme, in one
//! place for encode (which tells ffmpeg), master, encrypt and verify.
//! A "stream" is a rung's name (`720p_4500k`) or the audio rendition's.

use hlsmux_protocol::OutputNaming;

/// The stream name of the one audio rendition every video rung shares.
pub const AUDIO_RENDITION: &str = "audio";

/// Where each file of an output lives, relative to the output directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout(pub OutputNaming);

impl Layout {
    /// The playlist players start from.
    pub fn master(self) -> &'static str {
        match self.0 {
            OutputNaming::Hlsmux => "master.m3u8",
            OutputNaming::Seed => "manifest_master.m3u8",
        }
    }

    pub fn media_playlist(self, stream: &str) -> String {
        self.ffmpeg_playlists().replace("%v", stream)
    }

    pub fn i_frame_playlist(self, stream: &str) -> String {
        match self.0 {
            OutputNaming::Hlsmux => format!("{stream}/iframes.m3u8"),
            OutputNaming::Seed => format!("manifest_{stream}_iframes.m3u8"),
        }
    }

    /// ffmpeg's pattern for the media playlists (`%v`: the stream's name).
    pub fn ffmpeg_playlists(self) -> &'static str {
        match self.0 {
            OutputNaming::Hlsmux => "%v/index.m3u8",
            OutputNaming::Seed => "manifest_%v.m3u8",
        }
    }

    /// ffmpeg's pattern for the segments.
    pub fn ffmpeg_segments(self) -> &'static str {
        match self.0 {
            OutputNaming::Hlsmux => "%v/segment_%05d.ts",
            OutputNaming::Seed => "media_%v_%05d.ts",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_naming_is_flat_with_its_prefixes() {
        let seed = Layout(OutputNaming::Seed);
        assert_eq!(seed.master(), "manifest_master.m3u8");
        assert_eq!(seed.media_playlist("360p_365k"), "manifest_360p_365k.m3u8");
        assert_eq!(seed.ffmpeg_segments(), "media_%v_%05d.ts");
        let own = Layout(OutputNaming::Hlsmux);
        assert_eq!(own.media_playlist(AUDIO_RENDITION), "audio/index.m3u8");
        assert_eq!(own.i_frame_playlist("360p_365k"), "360p_365k/iframes.m3u8");
    }
}

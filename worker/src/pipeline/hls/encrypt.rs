//! Encrypt: HLS `METHOD=AES-128` over every segment of a staged output, with
//! a fresh random key per job and a fresh random IV per segment.
//!
//! Done here after ffmpeg rather than by ffmpeg's own `hls_key_info_file`:
//! ffmpeg 5.1 writes the same IV (zero) for every segment of a stream, and a
//! reused IV under one key is what AES-CBC must never have. The key is
//! written beside the playlists, readable by the worker's user only, so a web
//! server running as another user does not hand it out; a key server finds
//! it under the same path (setting `key_uri_prefix`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use hlsmux_protocol::RelativePath;
use m3u8_rs::{Key, KeyMethod, MediaPlaylist};

use crate::pipeline::JobError;
use crate::pipeline::hls::key::{KEY_BYTES, KEY_FILE, key_uri, random, write_key};
use crate::pipeline::hls::master::Presentation;
use crate::pipeline::hls::playlist::{fail, read};

type Aes128CbcEncryptor = cbc::Encryptor<aes::Aes128>;

/// Blocking. Encrypts every segment of the output staged in `dir` (named
/// `output` under the output root) in place, and rewrites each media
/// playlist of `presentation` (as master wrote them) with one `#EXT-X-KEY`
/// per segment. I-frame playlists name the same key and IV as the segment
/// they point into.
pub fn encrypt_output(
    dir: &Path,
    presentation: Presentation,
    output: &RelativePath,
    key_uri_prefix: &str,
) -> Result<(), JobError> {
    let key: [u8; KEY_BYTES] = random()?;
    write_key(&dir.join(KEY_FILE), &key)?;
    let mut keys: HashMap<PathBuf, (Key, u64)> = HashMap::new();
    for (uri, mut media) in presentation.media {
        let playlist_path = dir.join(&uri);
        let variant_dir = playlist_path.parent().unwrap_or(dir);
        let key_uri = key_uri(key_uri_prefix, output, &uri);
        for segment in &mut media.segments {
            let iv: [u8; KEY_BYTES] = random()?;
            let path = variant_dir.join(&segment.uri);
            let plain = read(&path)?;
            let sealed = Aes128CbcEncryptor::new(&key.into(), &iv.into())
                .encrypt_padded_vec_mut::<Pkcs7>(&plain);
            replace(&path, &sealed)?;
            let segment_key = Key {
                method: KeyMethod::AES128,
                uri: Some(key_uri.clone()),
                iv: Some(format!("0x{}", hex(&iv))),
                keyformat: None,
                keyformatversions: None,
            };
            keys.insert(path, (segment_key.clone(), sealed.len() as u64));
            segment.key = Some(segment_key);
        }
        replace(&playlist_path, &render(&media)?)?;
    }
    for (uri, mut media) in presentation.i_frames {
        let playlist_path = dir.join(&uri);
        let variant_dir = playlist_path.parent().unwrap_or(dir);
        for segment in &mut media.segments {
            let Some((segment_key, sealed_bytes)) = keys.get(&variant_dir.join(&segment.uri))
            else {
                return Err(fail(format!(
                    "{uri}: {} is no segment of a media playlist",
                    segment.uri
                )));
            };
            segment.key = Some(segment_key.clone());
            // CBC decrypts whole blocks: a range from the segment's start
            // is readable once it ends on a block boundary.
            if let Some(range) = &mut segment.byte_range {
                range.length = range
                    .length
                    .next_multiple_of(KEY_BYTES as u64)
                    .min(*sealed_bytes);
            }
        }
        replace(&playlist_path, &render(&media)?)?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` through a temporary file, so a crash leaves
/// either version whole (the staging directory is discarded anyway).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".encrypting");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|error| JobError::unwritable(path, error))
}

fn render(media: &MediaPlaylist) -> Result<Vec<u8>, JobError> {
    let mut bytes = Vec::new();
    media
        .write_to(&mut bytes)
        .map_err(|error| fail(format!("cannot write a media playlist: {error}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::hls::key::check_key_file;
    use crate::pipeline::hls::layout::Layout;
    use crate::pipeline::hls::playlist::{media_playlist_uris, read_master, read_media};
    use aes::cipher::BlockDecryptMut;
    use std::os::unix::fs::PermissionsExt;

    type Aes128CbcDecryptor = cbc::Decryptor<aes::Aes128>;

    fn write_output(dir: &Path) {
        std::fs::write(
            dir.join(Layout::default().master()),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n640x360/index.m3u8\n",
        )
        .expect("master");
        let variant = dir.join("640x360");
        std::fs::create_dir(&variant).expect("mkdir");
        std::fs::write(
            variant.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXTINF:2.000000,\nsegment_00000.ts\n#EXTINF:2.000000,\nsegment_00001.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("media");
        for (index, fill) in [(0, 0x47), (1, 0x48)] {
            std::fs::write(
                variant.join(format!("segment_0000{index}.ts")),
                vec![fill; 1000],
            )
            .expect("segment");
        }
    }

    /// The playlists as master would hand them over.
    fn presentation(dir: &Path) -> Presentation {
        let master = read_master(&dir.join(Layout::default().master())).expect("master");
        let media = media_playlist_uris(&master)
            .into_iter()
            .map(|uri| (uri.to_owned(), read_media(&dir.join(uri)).expect("media")))
            .collect();
        Presentation {
            master,
            media,
            i_frames: Vec::new(),
        }
    }

    #[test]
    fn every_segment_gets_its_own_iv_under_one_private_key_and_decrypts_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_output(dir.path());
        let output = RelativePath::parse("talks/a.hls").expect("valid");
        encrypt_output(dir.path(), presentation(dir.path()), &output, "").expect("encrypts");

        check_key_file(dir.path()).expect("a private 16-byte key");
        let key = std::fs::read(dir.path().join(KEY_FILE)).expect("key");
        let playlist = std::fs::read(dir.path().join("640x360/index.m3u8")).expect("playlist");
        let media = m3u8_rs::parse_media_playlist_res(&playlist).expect("parses");
        assert!(media.end_list);
        let keys: Vec<&Key> = media
            .segments
            .iter()
            .map(|s| s.key.as_ref().expect("every segment names its key"))
            .collect();
        assert_eq!(keys[0].uri.as_deref(), Some("../encryption.key"));
        assert_ne!(keys[0].iv, keys[1].iv, "one IV per segment");
        for (segment, fill) in media.segments.iter().zip([0x47u8, 0x48]) {
            let sealed =
                std::fs::read(dir.path().join("640x360").join(&segment.uri)).expect("segment");
            assert_ne!(sealed[..16], [fill; 16], "not plain text");
            let iv_hex = segment.key.as_ref().and_then(|k| k.iv.clone()).expect("iv");
            let iv: Vec<u8> = (2..iv_hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&iv_hex[i..i + 2], 16).expect("hex"))
                .collect();
            let plain = Aes128CbcDecryptor::new_from_slices(&key, &iv)
                .expect("sizes")
                .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
                .expect("decrypts");
            assert_eq!(plain, vec![fill; 1000]);
        }
    }

    #[test]
    fn a_key_server_prefix_names_the_key_by_output_path() {
        let output = |name| RelativePath::parse(name).expect("valid");
        assert_eq!(
            key_uri(
                "https://keys.example/hls/",
                &output("talks/a.hls"),
                "640x360/index.m3u8"
            ),
            "https://keys.example/hls/talks/a.hls/encryption.key"
        );
        assert_eq!(
            key_uri("https://keys.example/hls/", &output("a b#1?.hls"), "x.m3u8"),
            "https://keys.example/hls/a%20b%231%3F.hls/encryption.key",
            "a name is percent-encoded, so no # or ? cuts the URI short"
        );
        assert_eq!(
            key_uri("", &output("a.hls"), "index.m3u8"),
            "encryption.key"
        );
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, [7u8; 16]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = check_key_file(dir.path()).expect_err("world-readable");
        assert!(error.contains("readable by others"), "{error}");
    }
}

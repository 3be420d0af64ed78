//! Rebase: with a base URL (setting `base_url`, `hlsmux submit
//! --base-url`), every URI a player follows becomes absolute under the
//! output's own URL, `<base_url><output>/`: the master's variant, rendition
//! and I-frame playlist URIs, and each media and I-frame playlist's segment,
//! initialization section and (relative) key URIs. The playlists can then
//! be served from one host and the media from another (a CDN). It runs
//! after verify, on the verified playlists, and checks its own work: every
//! URI it wrote lies under the output's URL and names a file of the output.

use std::path::{Component, Path, PathBuf};

use m3u8_rs::MediaPlaylist;

use crate::pipeline::JobError;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::hls::playlist::{every_playlist_uri, fail, read_master, read_media};

/// Blocking. Rewrites every playlist of the output staged in `dir` so that
/// its URIs are absolute under `output_url` (ending in `/`).
pub fn rebase_output(dir: &Path, layout: Layout, output_url: &str) -> Result<(), JobError> {
    let master_path = dir.join(layout.master());
    let mut master = read_master(&master_path)?;
    let playlists: Vec<String> = every_playlist_uri(&master)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for uri in &playlists {
        let path = output_file(dir, Path::new(""), uri)?;
        let mut media = read_media(&path)?;
        let from = Path::new(uri).parent().unwrap_or(Path::new("")).to_owned();
        for target in media_uris(&mut media) {
            *target = absolute(dir, output_url, &from, target)?;
        }
        write(&path, |out| media.write_to(out))?;
    }
    for variant in &mut master.variants {
        variant.uri = absolute(dir, output_url, Path::new(""), &variant.uri)?;
    }
    for rendition in &mut master.alternatives {
        if let Some(uri) = &mut rendition.uri {
            *uri = absolute(dir, output_url, Path::new(""), uri)?;
        }
    }
    write(&master_path, |out| master.write_to(out))?;
    check_rebased(dir, layout, output_url)
}

/// Every URI of a media playlist that a player follows.
fn media_uris(media: &mut MediaPlaylist) -> Vec<&mut String> {
    let mut uris = Vec::new();
    for segment in &mut media.segments {
        uris.push(&mut segment.uri);
        if let Some(map) = &mut segment.map {
            uris.push(&mut map.uri);
        }
        if let Some(key) = &mut segment.key
            && let Some(uri) = &mut key.uri
            && !uri.contains("://")
        {
            uris.push(uri);
        }
    }
    uris
}

/// `uri`, relative to the playlist directory `from` (under `dir`), as an
/// absolute URI under `output_url`; it must name a file of the output.
fn absolute(dir: &Path, output_url: &str, from: &Path, uri: &str) -> Result<String, JobError> {
    let file = output_file(dir, from, uri)?;
    let inside = file
        .strip_prefix(dir)
        .map_err(|_| fail(format!("{uri} leaves the output")))?;
    let parts: Vec<&str> = inside
        .components()
        .filter_map(|part| part.as_os_str().to_str())
        .collect();
    Ok(format!("{output_url}{}", parts.join("/")))
}

/// The file of the output that the relative `uri` from `from` names.
fn output_file(dir: &Path, from: &Path, uri: &str) -> Result<PathBuf, JobError> {
    let mut path = PathBuf::new();
    for part in from.join(uri).components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            Component::ParentDir if path.pop() => {}
            _ => return Err(fail(format!("{uri} leaves the output"))),
        }
    }
    let file = dir.join(path);
    if !file.is_file() {
        return Err(fail(format!("{uri} names no file of the output")));
    }
    Ok(file)
}

fn write(
    path: &Path,
    render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<(), JobError> {
    let mut bytes = Vec::new();
    render(&mut bytes)
        .and_then(|()| std::fs::write(path, &bytes))
        .map_err(|error| fail(format!("cannot rewrite {}: {error}", path.display())))
}

/// Reads the rebased playlists back: every URI they hold is under
/// `output_url` and names a file of the output.
fn check_rebased(dir: &Path, layout: Layout, output_url: &str) -> Result<(), JobError> {
    let master = read_master(&dir.join(layout.master()))?;
    let in_output = |uri: &str| -> Result<PathBuf, JobError> {
        let rest = uri
            .strip_prefix(output_url)
            .ok_or_else(|| fail(format!("{uri} is not under the output's URL {output_url}")))?;
        output_file(dir, Path::new(""), rest)
    };
    for uri in every_playlist_uri(&master) {
        let mut media = read_media(&in_output(uri)?)?;
        for target in media_uris(&mut media) {
            in_output(target)?;
        }
        if let Some(key) = media.segments.iter().find_map(|s| s.key.as_ref())
            && let Some(key_uri) = &key.uri
            && key_uri.starts_with(output_url)
        {
            in_output(key_uri)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uris_become_absolute_under_the_output_and_never_leave_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("360p")).expect("rung dir");
        std::fs::write(dir.path().join("360p/seg0.ts"), b"ts").expect("segment");
        std::fs::write(dir.path().join("encryption.key"), b"k").expect("key");
        let url = "https://cdn.example.com/hls/a%20b.hls/";
        let rung = Path::new("360p");
        assert_eq!(
            absolute(dir.path(), url, rung, "seg0.ts").expect("inside"),
            "https://cdn.example.com/hls/a%20b.hls/360p/seg0.ts"
        );
        assert_eq!(
            absolute(dir.path(), url, rung, "../encryption.key").expect("inside"),
            "https://cdn.example.com/hls/a%20b.hls/encryption.key"
        );
        for leaving in ["../../etc/passwd", "/etc/passwd", "missing.ts"] {
            assert!(
                absolute(dir.path(), url, rung, leaving).is_err(),
                "{leaving}"
            );
        }
    }
}

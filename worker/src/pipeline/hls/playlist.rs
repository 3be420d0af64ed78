//! Reading a staged output's playlists back from disk, as a player would:
//! for master, encrypt and verify alike. A playlist that cannot be read is
//! a broken output (`verify_failed`).

use std::path::Path;

use m3u8_rs::{MasterPlaylist, MediaPlaylist};

use crate::pipeline::JobError;

/// The URIs of every media playlist the master names: its variants' and
/// its renditions'.
pub fn media_playlist_uris(master: &MasterPlaylist) -> Vec<&str> {
    let mut uris: Vec<&str> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| v.uri.as_str())
        .chain(master.alternatives.iter().filter_map(|a| a.uri.as_deref()))
        .collect();
    uris.dedup();
    uris
}

/// The URIs of every playlist the master names: its media playlists (see
/// [`media_playlist_uris`]) and its I-frame playlists.
pub fn every_playlist_uri(master: &MasterPlaylist) -> Vec<&str> {
    let mut uris = media_playlist_uris(master);
    uris.extend(
        master
            .variants
            .iter()
            .filter(|v| v.is_i_frame)
            .map(|v| v.uri.as_str()),
    );
    uris
}

pub fn read_master(path: &Path) -> Result<MasterPlaylist, JobError> {
    let bytes = read(path)?;
    m3u8_rs::parse_master_playlist_res(&bytes)
        .map_err(|_| fail(format!("{} is not a valid master playlist", path.display())))
}

pub fn read_media(path: &Path) -> Result<MediaPlaylist, JobError> {
    let bytes = read(path)?;
    m3u8_rs::parse_media_playlist_res(&bytes)
        .map_err(|_| fail(format!("{} is not a valid media playlist", path.display())))
}

pub fn read(path: &Path) -> Result<Vec<u8>, JobError> {
    std::fs::read(path).map_err(|error| fail(format!("cannot read {}: {error}", path.display())))
}

pub fn fail(detail: String) -> JobError {
    JobError::VerifyFailed(detail)
}

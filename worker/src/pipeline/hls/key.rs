//! The AES-128 key of an encrypted output: made fresh per job, written
//! readable by the worker's user only, named in playlists, and read back
//! to check the segments.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes::cipher::BlockDecryptMut;
use aes::cipher::KeyIvInit;
use aes::cipher::block_padding::NoPadding;
use hlsmux_protocol::RelativePath;
use m3u8_rs::Key;

use crate::pipeline::JobError;
use crate::pipeline::hls::playlist::{fail, read};

/// The key file's name in every encrypted output directory.
pub const KEY_FILE: &str = "encryption.key";
/// AES-128: a 16-byte key, and a 16-byte IV per segment.
pub const KEY_BYTES: usize = 16;

type Aes128CbcDecryptor = cbc::Decryptor<aes::Aes128>;

/// The key URI players are given. With no prefix, a path relative to a
/// variant playlist at `variant_uri` (from the master playlist), so the
/// output plays from any static server that may serve the key; with one,
/// `<prefix><output>/encryption.key` (the output's name percent-encoded),
/// for a key server that mirrors the output root behind its own access
/// control.
pub fn key_uri(prefix: &str, output: &RelativePath, variant_uri: &str) -> String {
    if prefix.is_empty() {
        let depth = variant_uri.matches('/').count();
        format!("{}{KEY_FILE}", "../".repeat(depth))
    } else {
        format!("{prefix}{}/{KEY_FILE}", output.uri_encoded())
    }
}

/// Blocking. Checks an encrypted output's key file: 16 bytes, readable by
/// its owner only.
pub fn check_key_file(dir: &Path) -> Result<(), String> {
    let path = dir.join(KEY_FILE);
    let metadata =
        std::fs::metadata(&path).map_err(|error| format!("key file {KEY_FILE}: {error}"))?;
    if metadata.len() != KEY_BYTES as u64 {
        return Err(format!(
            "key file {KEY_FILE} holds {} bytes, not {KEY_BYTES}",
            metadata.len()
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {KEY_FILE} is readable by others (mode {mode:o})"
        ));
    }
    Ok(())
}

/// Blocking. The output's key, for reading its segments back.
pub fn read_key(dir: &Path) -> Result<[u8; KEY_BYTES], JobError> {
    let bytes = read(&dir.join(KEY_FILE))?;
    bytes
        .try_into()
        .map_err(|_| fail(format!("key file {KEY_FILE} is not {KEY_BYTES} bytes")))
}

/// Decrypts the whole blocks at the start of a segment sealed under `key`
/// and `key_attribute`'s IV: enough to read what the segment opens with.
pub fn decrypt_prefix(
    key: &[u8; KEY_BYTES],
    key_attribute: &Key,
    sealed_prefix: &[u8],
) -> Result<Vec<u8>, String> {
    let iv_text = key_attribute
        .iv
        .as_deref()
        .and_then(|iv| iv.strip_prefix("0x").or_else(|| iv.strip_prefix("0X")))
        .ok_or("the key names no IV")?;
    let iv: Vec<u8> = (0..iv_text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(iv_text.get(at..at + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("IV {iv_text} is not hexadecimal"))?;
    let whole_blocks = sealed_prefix.len() - sealed_prefix.len() % KEY_BYTES;
    Aes128CbcDecryptor::new_from_slices(key, &iv)
        .map_err(|_| format!("IV {iv_text} is not {KEY_BYTES} bytes"))?
        .decrypt_padded_vec_mut::<NoPadding>(&sealed_prefix[..whole_blocks])
        .map_err(|error| error.to_string())
}

pub fn random<const N: usize>() -> Result<[u8; N], JobError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(JobError::NoRandomness)?;
    Ok(bytes)
}

pub fn write_key(path: &Path, key: &[u8]) -> Result<(), JobError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| JobError::unwritable(path, error))?;
    file.write_all(key)
        .and_then(|()| file.sync_all())
        .map_err(|error| JobError::unwritable(path, error))
}

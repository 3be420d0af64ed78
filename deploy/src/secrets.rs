//! The broker passwords of the pool's two RabbitMQ users. They are made
//! once, at random, into a file beside the inventory (mode 0600), and read
//! from it on every later render, so the same inventory renders the same
//! files byte for byte.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub worker_password: String,
    pub submit_password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read the secrets file {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("cannot create the secrets file {path}: {detail}")]
    Unwritable { path: PathBuf, detail: String },
}

impl Secrets {
    /// Blocking. Reads the secrets at `path`, creating them when the file
    /// does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| SecretsError::Unreadable {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self {
                    worker_password: new_password(path)?,
                    submit_password: new_password(path)?,
                };
                secrets.create(path)?;
                Ok(secrets)
            }
            Err(error) => Err(SecretsError::Unreadable {
                path: path.to_owned(),
                detail: error.to_string(),
            }),
        }
    }

    fn create(&self, path: &Path) -> Result<(), SecretsError> {
        let unwritable = |e: std::io::Error| SecretsError::Unwritable {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let text = format!(
            "# The hlsmux pool's broker passwords, made by hlsmux-deploy. Keep this file\n# private: the rendered worker config and definitions.json are made from it.\n{}",
            toml::to_string(self).map_err(|e| SecretsError::Unwritable {
                path: path.to_owned(),
                detail: e.to_string(),
            })?
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(unwritable)?;
        file.write_all(text.as_bytes()).map_err(unwritable)
    }
}

/// 24 random bytes as URL-safe base64: 32 characters that need no escaping
/// in an AMQP URL.
fn new_password(path: &Path) -> Result<String, SecretsError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| SecretsError::Unwritable {
        path: path.to_owned(),
        detail: format!("no randomness: {e}"),
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_made_once_privately_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hlsmux-secrets.toml");
        let made = Secrets::load_or_create(&path).expect("made");
        assert_eq!(made.worker_password.len(), 32);
        assert_ne!(made.worker_password, made.submit_password);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secrets::load_or_create(&path).expect("read"), made);
    }
}

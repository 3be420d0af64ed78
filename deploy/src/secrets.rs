//! The broker passwords of the pool's three RabbitMQ users, and the Erlang
//! cookie the broker's cluster nodes share. They are made once, at random,
//! into a file beside the inventory (mode 0600), and read from it on every
//! later render, so the same inventory renders the same files byte for
//! byte. A file from an earlier version gains what it lacks on the next
//! render.

use std::collections::BTreeMap;
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
    pub operator_password: String,
    /// Every RabbitMQ node of a cluster must hold the same cookie.
    pub erlang_cookie: String,
    /// The HTTP gateway's tokens, by name: each the token to hand out and
    /// the secret its webhooks are signed with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gateway_tokens: BTreeMap<String, GatewayTokenSecrets>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTokenSecrets {
    pub token: String,
    pub webhook_secret: String,
}

/// The file as an earlier version may have written it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSecrets {
    worker_password: String,
    submit_password: String,
    operator_password: Option<String>,
    erlang_cookie: Option<String>,
    #[serde(default)]
    gateway_tokens: BTreeMap<String, GatewayTokenSecrets>,
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
            Ok(text) => {
                let stored: StoredSecrets =
                    toml::from_str(&text).map_err(|e| SecretsError::Unreadable {
                        path: path.to_owned(),
                        detail: e.to_string(),
                    })?;
                let complete = stored.operator_password.is_some() && stored.erlang_cookie.is_some();
                let secrets = Self {
                    worker_password: stored.worker_password,
                    submit_password: stored.submit_password,
                    operator_password: stored
                        .operator_password
                        .map_or_else(|| new_password(path), Ok)?,
                    erlang_cookie: stored.erlang_cookie.map_or_else(|| new_cookie(path), Ok)?,
                    gateway_tokens: stored.gateway_tokens,
                };
                if !complete {
                    secrets.replace(path)?;
                }
                Ok(secrets)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secrets = Self {
                    worker_password: new_password(path)?,
                    submit_password: new_password(path)?,
                    operator_password: new_password(path)?,
                    erlang_cookie: new_cookie(path)?,
                    gateway_tokens: BTreeMap::new(),
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

    /// Makes a token and a webhook secret for each gateway token name that
    /// has none yet, and keeps them in the file; the others are kept.
    pub fn ensure_gateway_tokens<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        path: &Path,
    ) -> Result<(), SecretsError> {
        let mut added = false;
        for name in names {
            if !self.gateway_tokens.contains_key(name) {
                let made = GatewayTokenSecrets {
                    token: new_password(path)?,
                    webhook_secret: new_password(path)?,
                };
                self.gateway_tokens.insert(name.to_owned(), made);
                added = true;
            }
        }
        if added {
            self.replace(path)?;
        }
        Ok(())
    }

    /// Rewrites the file with every password: written beside it, then
    /// renamed over it, so it is never half written.
    fn replace(&self, path: &Path) -> Result<(), SecretsError> {
        let beside = path.with_extension("toml.new");
        let _ = std::fs::remove_file(&beside);
        self.create(&beside)?;
        std::fs::rename(&beside, path).map_err(|e| SecretsError::Unwritable {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    fn create(&self, path: &Path) -> Result<(), SecretsError> {
        let unwritable = |e: std::io::Error| SecretsError::Unwritable {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let text = format!(
            "# The hlsmux pool's broker passwords and Erlang cookie, made by hlsmux-deploy.\n# Keep this file private: the rendered worker config, definitions.json and\n# erlang.cookie are made from it.\n{}",
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

/// 20 random upper-case letters: RabbitMQ's own cookies look like this,
/// and Erlang takes a cookie as an atom, so letters are the safe choice.
fn new_cookie(path: &Path) -> Result<String, SecretsError> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| SecretsError::Unwritable {
        path: path.to_owned(),
        detail: format!("no randomness: {e}"),
    })?;
    Ok(bytes.iter().map(|b| char::from(b'A' + b % 26)).collect())
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

    #[test]
    fn a_file_without_the_operator_password_gains_one_and_keeps_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hlsmux-secrets.toml");
        std::fs::write(&path, "worker_password = \"w\"\nsubmit_password = \"s\"\n")
            .expect("old file");
        let read = Secrets::load_or_create(&path).expect("read");
        assert_eq!(
            (read.worker_password.as_str(), read.submit_password.as_str()),
            ("w", "s")
        );
        assert_eq!(read.operator_password.len(), 32);
        assert_eq!(read.erlang_cookie.len(), 20);
        assert!(read.erlang_cookie.chars().all(|c| c.is_ascii_uppercase()));
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secrets::load_or_create(&path).expect("read again"), read);
    }

    #[test]
    fn gateway_tokens_are_made_for_new_names_and_kept_for_known_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hlsmux-secrets.toml");
        let mut secrets = Secrets::load_or_create(&path).expect("made");
        secrets
            .ensure_gateway_tokens(["cms"], &path)
            .expect("cms made");
        let cms = secrets.gateway_tokens["cms"].clone();
        assert_ne!(cms.token, cms.webhook_secret);
        let mut again = Secrets::load_or_create(&path).expect("read");
        again
            .ensure_gateway_tokens(["cms", "dashboard"], &path)
            .expect("dashboard made");
        assert_eq!(again.gateway_tokens["cms"], cms, "kept");
        assert_eq!(Secrets::load_or_create(&path).expect("read"), again);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

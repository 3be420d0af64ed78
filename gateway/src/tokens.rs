//! Bearer tokens: read from a file that holds only their SHA-256 digests
//! (so the file gives no token away), each with a name and its rights.
//! Every request but `/healthz` and `/readyz` needs one. A token that may
//! ask for webhooks also has the secret its callbacks are signed with
//! (kept as is: an HMAC needs the key itself, so the file is 0600) and the
//! hosts they may go to (the gateway will not be made to POST anywhere
//! else on the network).
//!
//! ```toml
//! [[token]]
//! name = "cms"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! rights = ["submit", "read", "cancel"]
//! webhook_secret = "a long random string shared with the CMS"
//! callback_hosts = ["cms.example.com", "10.0.0.5:8080"]
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// Queue jobs.
    Submit,
    /// Read jobs, their events, and the pool.
    Read,
    /// Cancel jobs.
    Cancel,
    /// Everything.
    Admin,
}

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Submit => "submit",
            Right::Read => "read",
            Right::Cancel => "cancel",
            Right::Admin => "admin",
        }
    }
}

/// Who a request comes from: the token's name and rights.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    rights: Vec<Right>,
    /// The key its webhooks are signed with, if it may have any.
    pub webhook_secret: Option<String>,
    /// `host` or `host:port` its callbacks may go to.
    pub callback_hosts: Vec<String>,
}

impl Caller {
    pub fn may(&self, right: Right) -> bool {
        self.rights.contains(&right) || self.rights.contains(&Right::Admin)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token file {path} is not valid: {detail}")]
    Invalid { path: String, detail: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    rights: Vec<Right>,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    callback_hosts: Vec<String>,
}

/// The shortest webhook secret taken: a short key is a guessable one.
const MIN_SECRET_BYTES: usize = 16;

/// The known tokens, by digest.
#[derive(Debug, Default)]
pub struct Tokens {
    by_digest: HashMap<String, Caller>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|detail| TokenFileError::Invalid {
            path: shown,
            detail,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokenFile = toml::from_str(text).map_err(|error| error.to_string())?;
        let mut by_digest = HashMap::new();
        for entry in file.token {
            let digest = entry.sha256.to_ascii_lowercase();
            if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "token {:?}: sha256 must be 64 hex digits (the SHA-256 of the token, e.g. `printf %s TOKEN | sha256sum`)",
                    entry.name
                ));
            }
            if entry
                .webhook_secret
                .as_ref()
                .is_some_and(|secret| secret.len() < MIN_SECRET_BYTES)
            {
                return Err(format!(
                    "token {:?}: webhook_secret must be at least {MIN_SECRET_BYTES} bytes \
                     (e.g. `openssl rand -hex 32`)",
                    entry.name
                ));
            }
            let caller = Caller {
                name: entry.name,
                rights: entry.rights,
                webhook_secret: entry.webhook_secret,
                callback_hosts: entry
                    .callback_hosts
                    .iter()
                    .map(|host| host.to_ascii_lowercase())
                    .collect(),
            };
            if by_digest.insert(digest, caller).is_some() {
                return Err("two entries hold the same token".into());
            }
        }
        Ok(Self { by_digest })
    }

    /// The caller named `name`, if the file still has it.
    pub fn named(&self, name: &str) -> Option<&Caller> {
        self.by_digest.values().find(|caller| caller.name == name)
    }

    /// The caller a bearer token stands for, if it is known.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_digest.get(&digest(token))
    }
}

/// The SHA-256 of a token, in lower-case hex, as the token file holds it.
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_digest_only() {
        let file = format!(
            "[[token]]\nname = \"cms\"\nsha256 = \"{}\"\nrights = [\"submit\", \"read\"]\n",
            digest("s3cret")
        );
        let tokens = Tokens::parse(&file).expect("valid");
        let caller = tokens.caller("s3cret").expect("known");
        assert_eq!(caller.name, "cms");
        assert!(caller.may(Right::Submit) && caller.may(Right::Read));
        assert!(!caller.may(Right::Cancel));
        assert!(tokens.caller("s3cret ").is_none());
        assert!(!file.contains("s3cret"));
    }

    #[test]
    fn a_bad_digest_or_right_is_refused() {
        assert!(Tokens::parse("[[token]]\nname = \"x\"\nsha256 = \"abc\"\nrights = []\n").is_err());
        let unknown_right = format!(
            "[[token]]\nname = \"x\"\nsha256 = \"{}\"\nrights = [\"root\"]\n",
            digest("t")
        );
        assert!(Tokens::parse(&unknown_right).is_err());
    }

    #[test]
    fn admin_may_do_everything() {
        let file = format!(
            "[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nrights = [\"admin\"]\n",
            digest("t")
        );
        let tokens = Tokens::parse(&file).expect("valid");
        let caller = tokens.caller("t").expect("known");
        assert!(
            [Right::Submit, Right::Read, Right::Cancel]
                .iter()
                .all(|r| caller.may(*r))
        );
    }
}

//! Why settings were refused: the key at fault and what to set instead.

use crate::boot::BootOptionError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(transparent)]
    Boot(#[from] BootOptionError),
}

pub(super) fn invalid(key: &'static str) -> impl FnOnce(String) -> ConfigError {
    move |message| ConfigError::Invalid { key, message }
}

//! Relative paths carried in job messages (the input under the media root,
//! the output name under the output root), checked lexically once so that a
//! message can never name a file outside its root by `..` or an absolute path.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A non-empty relative path made only of normal components (no `..`, no
/// root, no `.`), using `/` as separator on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelativePath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelativePathError {
    #[error("path is empty")]
    Empty,
    #[error("path {0:?} is absolute; it must be relative to its root")]
    Absolute(String),
    #[error("path {0:?} steps out of its root with '..'")]
    ParentComponent(String),
    #[error("path {0:?} is not valid UTF-8")]
    NotUtf8(String),
    #[error("path of {length} bytes is longer than the {MAX_PATH_BYTES} allowed")]
    TooLong { length: usize },
    #[error("path component of {length} bytes is longer than the {MAX_COMPONENT_BYTES} allowed")]
    ComponentTooLong { length: usize },
}

/// Limits of Linux filesystems (PATH_MAX, NAME_MAX): longer names could
/// never be opened, so they are refused before they reach a disk.
pub const MAX_PATH_BYTES: usize = 4096;
pub const MAX_COMPONENT_BYTES: usize = 255;

impl RelativePath {
    pub fn parse(path: &str) -> Result<Self, RelativePathError> {
        Self::from_path(Path::new(path))
    }

    pub fn from_path(path: &Path) -> Result<Self, RelativePathError> {
        let length = path.as_os_str().len();
        if length > MAX_PATH_BYTES {
            return Err(RelativePathError::TooLong { length });
        }
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(
                    part.to_str()
                        .ok_or_else(|| RelativePathError::NotUtf8(path.display().to_string()))?,
                ),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(RelativePathError::ParentComponent(
                        path.display().to_string(),
                    ));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(RelativePathError::Absolute(path.display().to_string()));
                }
            }
        }
        if parts.is_empty() {
            return Err(RelativePathError::Empty);
        }
        if let Some(long) = parts.iter().find(|part| part.len() > MAX_COMPONENT_BYTES) {
            return Err(RelativePathError::ComponentTooLong { length: long.len() });
        }
        Ok(Self(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path joined under `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// The last component (the file or directory name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl TryFrom<String> for RelativePath {
    type Error = RelativePathError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RelativePath> for String {
    fn from(value: RelativePath) -> Self {
        value.0
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_kept_with_slashes() {
        let path = RelativePath::parse("./incoming/a/clip.mp4").expect("valid");
        assert_eq!(path.as_str(), "incoming/a/clip.mp4");
        assert_eq!(path.file_name(), "clip.mp4");
    }

    #[test]
    fn escapes_are_refused() {
        assert!(matches!(
            RelativePath::parse("../etc/passwd"),
            Err(RelativePathError::ParentComponent(_))
        ));
        assert!(matches!(
            RelativePath::parse("a/../../b"),
            Err(RelativePathError::ParentComponent(_))
        ));
        assert!(matches!(
            RelativePath::parse("/etc/passwd"),
            Err(RelativePathError::Absolute(_))
        ));
        assert_eq!(RelativePath::parse(""), Err(RelativePathError::Empty));
        assert_eq!(RelativePath::parse("."), Err(RelativePathError::Empty));
    }

    #[test]
    fn absurdly_long_names_are_refused() {
        let long_name = "a".repeat(MAX_COMPONENT_BYTES + 1);
        assert_eq!(
            RelativePath::parse(&long_name),
            Err(RelativePathError::ComponentTooLong {
                length: MAX_COMPONENT_BYTES + 1
            })
        );
        let deep = "abc/".repeat(MAX_PATH_BYTES / 4 + 1);
        assert!(matches!(
            RelativePath::parse(&deep),
            Err(RelativePathError::TooLong { .. })
        ));
    }

    #[test]
    fn deserialising_applies_the_same_rules() {
        let parsed: Result<RelativePath, _> = serde_json::from_str("\"../x\"");
        assert!(parsed.is_err());
    }
}

//! Relative paths carried in job messages (the input under the media root,
//! the output name under the output root), checked lexically once so that a
//! message can never name a file outside its root by `..` or an absolute path.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// What a URI path segment may not hold as it is: everything but RFC 3986's
/// unreserved characters and sub-delimiters (and `:`, `@`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

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
    /// A newline or escape in a name would forge log lines, playlist
    /// lines and terminal output wherever the name is shown.
    #[error("path {0:?} holds a control character")]
    ControlCharacter(String),
    /// ffmpeg's HLS muxer expands `%v`, `%d` and the like in the names it
    /// writes: an output name holding `%` would write elsewhere.
    #[error("output name {0:?} holds '%', which ffmpeg reads as a pattern: choose another name")]
    Pattern(String),
    #[error("output name {0:?} is inside {RESERVED_OUTPUT_DIR:?}, which the pool keeps for itself")]
    Reserved(String),
}

/// The directory under the output root where the workers keep their own
/// files (the job ID register): no output may be named into it.
pub const RESERVED_OUTPUT_DIR: &str = ".hlsmux";

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
        if parts.iter().any(|part| part.chars().any(char::is_control)) {
            return Err(RelativePathError::ControlCharacter(
                path.display().to_string(),
            ));
        }
        if let Some(long) = parts.iter().find(|part| part.len() > MAX_COMPONENT_BYTES) {
            return Err(RelativePathError::ComponentTooLong { length: long.len() });
        }
        Ok(Self(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path, if it can name an output: ffmpeg takes output names as
    /// patterns, so no `%`; and not inside the pool's own directory.
    pub fn as_output_name(self) -> Result<Self, RelativePathError> {
        if self.0.contains('%') {
            return Err(RelativePathError::Pattern(self.0));
        }
        if self.0.split('/').next() == Some(RESERVED_OUTPUT_DIR) {
            return Err(RelativePathError::Reserved(self.0));
        }
        Ok(self)
    }

    /// The components of this path, each percent-encoded for a URI path
    /// (RFC 3986 unreserved characters and sub-delimiters kept), joined by
    /// `/`: a name may hold `#`, `?` or spaces, a URI may not.
    pub fn uri_encoded(&self) -> String {
        self.0
            .split('/')
            .map(|part| utf8_percent_encode(part, PATH_SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
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
    fn control_characters_are_refused_and_percent_only_in_output_names() {
        for name in ["a\nb.mp4", "dir/\u{1b}[31mred.mp4", "tab\there.mp4"] {
            assert!(
                matches!(
                    RelativePath::parse(name),
                    Err(RelativePathError::ControlCharacter(_))
                ),
                "{name:?}"
            );
        }
        let percent = RelativePath::parse("sale 50%/clip.mp4").expect("an input may");
        assert!(matches!(
            percent.as_output_name(),
            Err(RelativePathError::Pattern(_))
        ));
    }

    #[test]
    fn no_output_goes_inside_the_pools_own_directory() {
        for name in [".hlsmux/job-ids/x.json", "./.hlsmux"] {
            let path = RelativePath::parse(name).expect("a path");
            assert!(
                matches!(path.as_output_name(), Err(RelativePathError::Reserved(_))),
                "{name}"
            );
        }
        let nested = RelativePath::parse("talks/.hlsmux").expect("a path");
        assert!(nested.as_output_name().is_ok());
    }

    #[test]
    fn uri_encoding_keeps_slashes_and_encodes_the_rest() {
        let path = RelativePath::parse("talks/a b#c?.hls").expect("valid");
        assert_eq!(path.uri_encoded(), "talks/a%20b%23c%3F.hls");
        let plain = RelativePath::parse("talks/day-1_clip.hls").expect("valid");
        assert_eq!(plain.uri_encoded(), "talks/day-1_clip.hls");
        let unicode = RelativePath::parse("vidéo.hls").expect("valid");
        assert_eq!(unicode.uri_encoded(), "vid%C3%A9o.hls");
    }

    #[test]
    fn deserialising_applies_the_same_rules() {
        let parsed: Result<RelativePath, _> = serde_json::from_str("\"../x\"");
        assert!(parsed.is_err());
    }
}

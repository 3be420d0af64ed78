//! `base_url`: the URL at which the output root is served (a CDN, another
//! host), written before every URI in an output's playlists so that they
//! are fetched from there. It comes from workers' settings and from
//! submitters, so it is checked like every other name a job carries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::RelativePath;

/// The longest base URL taken.
const MAX_LEN: usize = 1024;

/// An absolute `http`/`https` URL ending in `/`, with no query, fragment,
/// quote, space or control character, and `%` only as a valid escape: it is
/// written into playlist attributes and prefixed to paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "base URL {shown} is not usable: {rule} (give the http:// or https:// URL at which the output root is served, ending in /, e.g. https://cdn.example.com/hls/)"
)]
pub struct BaseUrlError {
    /// The value, escaped, and cut short when long.
    shown: String,
    rule: &'static str,
}

impl FromStr for BaseUrl {
    type Err = BaseUrlError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let refuse = |rule| BaseUrlError {
            shown: format!("{:?}", value.chars().take(80).collect::<String>()),
            rule,
        };
        if value.len() > MAX_LEN {
            return Err(refuse("it is longer than 1024 bytes"));
        }
        let Some(rest) = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
        else {
            return Err(refuse("it does not start with http:// or https://"));
        };
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return Err(refuse("it names no host (or carries credentials)"));
        }
        if !value.ends_with('/') {
            return Err(refuse("it does not end in /"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&()*+,;=:/%[]".contains(c);
        if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
            return Err(match bad {
                '?' | '#' => refuse("it has a query or fragment"),
                _ => refuse(
                    "it holds a character a playlist URI may not (quote, space, control or non-ASCII)",
                ),
            });
        }
        let bytes = value.as_bytes();
        let escapes_valid = bytes.iter().enumerate().all(|(at, byte)| {
            *byte != b'%'
                || (bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit))
        });
        if !escapes_valid {
            return Err(refuse("a % is not followed by two hex digits"));
        }
        Ok(Self(value.to_owned()))
    }
}

impl TryFrom<String> for BaseUrl {
    type Error = BaseUrlError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<BaseUrl> for String {
    fn from(url: BaseUrl) -> Self {
        url.0
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl BaseUrl {
    /// The URL of the output directory `output` (under the output root),
    /// ending in `/`: its name percent-encoded.
    pub fn of_output(&self, output: &RelativePath) -> String {
        format!("{}{}/", self.0, output.uri_encoded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_urls_ending_in_a_slash_are_taken() {
        for good in [
            "https://cdn.example.com/hls/",
            "http://127.0.0.1:8080/",
            "https://[::1]:8443/a%20b/",
        ] {
            assert!(good.parse::<BaseUrl>().is_ok(), "{good}");
        }
        for (bad, rule) in [
            ("cdn.example.com/hls/", "http"),
            ("ftp://cdn.example.com/", "http"),
            ("https://cdn.example.com/hls", "end in /"),
            ("https:///hls/", "no host"),
            ("https://user:pw@cdn.example.com/", "credentials"),
            ("https://cdn.example.com/?a=b/", "query"),
            ("https://cdn.example.com/#x/", "query or fragment"),
            ("https://cdn.example.com/\"x/", "quote"),
            ("https://cdn.example.com/a b/", "space"),
            ("https://cdn.example.com/\u{e9}/", "non-ASCII"),
            ("https://cdn.example.com/%zz/", "hex"),
        ] {
            let error = bad.parse::<BaseUrl>().expect_err(bad).to_string();
            assert!(error.contains(rule), "{bad}: {error}");
        }
    }

    #[test]
    fn an_output_url_encodes_the_output_name() {
        let base: BaseUrl = "https://cdn.example.com/hls/".parse().expect("valid");
        let output = RelativePath::parse("incoming/my clip#1.mp4.hls").expect("valid");
        assert_eq!(
            base.of_output(&output),
            "https://cdn.example.com/hls/incoming/my%20clip%231.mp4.hls/"
        );
    }
}

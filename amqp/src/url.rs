//! The broker address: parsed once, and never printed with its password.

use std::fmt;
use std::str::FromStr;

use lapin::uri::AMQPUri;

/// Seconds between AMQP heartbeats when the URL does not say: a dead
/// connection is noticed within two intervals.
const DEFAULT_HEARTBEAT_SECONDS: u16 = 10;
/// How long a connection attempt may take when the URL does not say.
const DEFAULT_CONNECTION_TIMEOUT_MS: u64 = 5_000;
/// The largest AMQP frame, when the URL does not say. lapin keeps 32 frames
/// of buffer each way, zero-filled: at RabbitMQ's 128 KiB that is 8 MiB of
/// a Pi's memory for messages of a few hundred bytes. Larger messages are
/// split into more frames.
const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// An `amqp://` or `amqps://` URL whose `Display` and `Debug` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    uri: AMQPUri,
    /// Whether the text named a password (lapin fills in guest's otherwise).
    names_password: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid AMQP URL {redacted}: {reason}")]
pub struct AmqpUrlError {
    redacted: String,
    reason: String,
}

impl AmqpUrl {
    pub fn parse(text: &str) -> Result<Self, AmqpUrlError> {
        let mut uri = AMQPUri::from_str(text).map_err(|reason| AmqpUrlError {
            redacted: redact_text(text),
            reason,
        })?;
        uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECONDS);
        uri.query
            .connection_timeout
            .get_or_insert(DEFAULT_CONNECTION_TIMEOUT_MS);
        uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
        let names_password = text
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        Ok(Self {
            uri,
            names_password,
        })
    }

    /// The parsed URI, for connecting. Contains the password.
    pub fn uri(&self) -> &AMQPUri {
        &self.uri
    }

    /// Whether the URL names a password (a secret to keep from others).
    pub fn has_password(&self) -> bool {
        self.names_password
    }

    /// The full URL with its password, for libraries that take a string.
    pub fn expose(&self) -> String {
        self.uri.to_string()
    }
}

impl FromStr for AmqpUrl {
    type Err = AmqpUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authority = &self.uri.authority;
        let vhost = if self.uri.vhost == "/" {
            "%2f"
        } else {
            &self.uri.vhost
        };
        write!(
            f,
            "{}://{}@{}:{}/{}",
            self.uri.scheme, authority.userinfo.username, authority.host, authority.port, vhost
        )
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({self})")
    }
}

/// The broker's nodes, in the order to try them: one URL, or several
/// separated by commas (`amqp://u:p@nas1/vh, amqp://u:p@nas2/vh`) for a
/// cluster. Programs connect to the first that answers, and go through the
/// list again whenever they reconnect.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrls(Vec<AmqpUrl>);

impl AmqpUrls {
    pub fn parse(text: &str) -> Result<Self, AmqpUrlError> {
        let urls = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(AmqpUrl::parse)
            .collect::<Result<Vec<_>, _>>()
            // The part that failed may be half of a password cut at a
            // comma: show the whole list, redacted as one.
            .map_err(|error| AmqpUrlError {
                redacted: redact_text(text),
                reason: error.reason,
            })?;
        if urls.is_empty() {
            return Err(AmqpUrlError {
                redacted: String::new(),
                reason: "no URL given".into(),
            });
        }
        Ok(Self(urls))
    }

    /// In the order to try them; never empty.
    pub fn iter(&self) -> impl Iterator<Item = &AmqpUrl> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any of the URLs names a password.
    pub fn has_password(&self) -> bool {
        self.0.iter().any(AmqpUrl::has_password)
    }
}

impl FromStr for AmqpUrls {
    type Err = AmqpUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<AmqpUrl> for AmqpUrls {
    fn from(url: AmqpUrl) -> Self {
        Self(vec![url])
    }
}

impl fmt::Display for AmqpUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&shown.join(", "))
    }
}

impl fmt::Debug for AmqpUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrls({self})")
    }
}

/// Hides every password in `text` (one URL, or a comma-separated list that
/// did not parse), for error messages. Each URL runs from its `scheme://` to
/// the next one; its user information ends at its *last* `@`, since a
/// password may hold `@` or `,` unescaped. A list is never split before
/// redacting: a comma inside a password would cut it in two.
fn redact_text(text: &str) -> String {
    let starts: Vec<usize> = text.match_indices("://").map(|(at, _)| at).collect();
    if starts.is_empty() {
        return "(unparseable)".into();
    }
    let mut shown = String::new();
    // Where the scheme ending at `scheme_end` begins.
    let scheme_begins = |scheme_end: usize| {
        text[..scheme_end]
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '+' && c != '-' && c != '.')
            .map_or(0, |at| at + 1)
    };
    for (index, &scheme_end) in starts.iter().enumerate() {
        let authority_start = scheme_end + "://".len();
        let scheme_start = scheme_begins(scheme_end);
        if index == 0 {
            shown.push_str(&text[..scheme_start]);
        }
        // This URL runs up to where the next one's scheme begins.
        let end = starts
            .get(index + 1)
            .map_or(text.len(), |&next| scheme_begins(next));
        let url = &text[authority_start..end.max(authority_start)];
        shown.push_str(&text[scheme_start..authority_start]);
        match url.rsplit_once('@') {
            Some((userinfo, rest)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                shown.push_str(&format!("{user}@{rest}"));
            }
            // No `@` at all: a `user:pass` cut off from its host would
            // read as `host:port`; show no more than the scheme.
            None if url.contains(':') => shown.push_str("(hidden)"),
            None => shown.push_str(url),
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_hide_the_password() {
        let url = AmqpUrl::parse("amqp://hlsmux:s3cret@nas:5672/%2f").expect("valid");
        assert_eq!(url.to_string(), "amqp://hlsmux@nas:5672/%2f");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn heartbeat_defaults_but_url_wins() {
        let url = AmqpUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").expect("valid");
        assert_eq!(url.uri().query.heartbeat, Some(DEFAULT_HEARTBEAT_SECONDS));
        assert_eq!(url.uri().query.frame_max, Some(DEFAULT_FRAME_MAX));
        let url = AmqpUrl::parse("amqp://guest:guest@127.0.0.1/%2f?heartbeat=3&frame_max=131072")
            .expect("valid");
        assert_eq!(url.uri().query.heartbeat, Some(3));
        assert_eq!(url.uri().query.frame_max, Some(131_072));
        let reparsed = AmqpUrl::parse(&url.expose()).expect("exposed URL parses");
        assert_eq!(reparsed, url);
    }

    #[test]
    fn several_urls_are_kept_in_order_and_shown_without_passwords() {
        let urls = AmqpUrls::parse("amqp://w:pw1@nas1:5672/hlsmux, amqp://w:pw2@nas2:5672/hlsmux")
            .expect("valid");
        assert_eq!(urls.len(), 2);
        assert_eq!(
            urls.to_string(),
            "amqp://w@nas1:5672/hlsmux, amqp://w@nas2:5672/hlsmux"
        );
        assert!(urls.has_password() && !format!("{urls:?}").contains("pw"));
        assert!(AmqpUrls::parse(" , ").is_err());
        let error = AmqpUrls::parse("amqp://w:pw@nas1/x, http://w:pw@nas2/").expect_err("one bad");
        assert!(!error.to_string().contains("pw"), "{error}");
    }

    #[test]
    fn a_password_with_at_signs_or_commas_is_hidden_whole() {
        for text in [
            "amqp://hlsmux:Zq9x,Kv7w@Jm3p@127.0.0.1:notaport/%2f",
            "amqp://hlsmux:Zq9x@Kv7w,Jm3p@nas:5672/%2f, amqp://hlsmux:Zq9x@Kv7w,Jm3p@nas2:x/",
            "amqp://hlsmux:Zq9x,Kv7w,Jm3p@nas:notaport/",
        ] {
            let error = AmqpUrls::parse(text).expect_err("a bad port");
            let said = error.to_string();
            for secret in ["Zq9x", "Kv7w", "Jm3p"] {
                assert!(!said.contains(secret), "{said}");
            }
            assert!(said.contains("hlsmux@"), "the user stays: {said}");
        }
    }

    #[test]
    fn errors_hide_the_password_too() {
        let error = AmqpUrl::parse("http://u:pw@host/").expect_err("wrong scheme");
        assert!(!error.to_string().contains("pw"), "{error}");
    }
}

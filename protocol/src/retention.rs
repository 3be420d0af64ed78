//! How much of the pool's event history RabbitMQ keeps: the `x-max-age` and
//! `x-max-length-bytes` of the event history stream.
//!
//! A stream's arguments are fixed when it is created, and RabbitMQ refuses a
//! later declaration with other values; so the retention a program is
//! configured with applies when it is the one that creates the stream, and
//! programs configured otherwise still use the existing stream. A RabbitMQ
//! policy (`max-age`, `max-length-bytes`) shortens it later without a restart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stream age limit in RabbitMQ's notation: a positive whole number and a
/// unit, `Y` (years), `M` (months), `D` (days), `h`, `m` or `s`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamMaxAge(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "stream age {0:?} is not valid: write a whole number and one of the units Y, M, D, h, m, s (for example 7D or 12h)"
)]
pub struct StreamMaxAgeError(String);

impl FromStr for StreamMaxAge {
    type Err = StreamMaxAgeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unit_at = s.len().saturating_sub(1);
        let (number, unit) = s.split_at(unit_at);
        let number_ok = !number.is_empty()
            && number.len() <= 9
            && number.bytes().all(|b| b.is_ascii_digit())
            && number.bytes().any(|b| b != b'0');
        if number_ok && ["Y", "M", "D", "h", "m", "s"].contains(&unit) {
            Ok(Self(s.to_owned()))
        } else {
            Err(StreamMaxAgeError(s.to_owned()))
        }
    }
}

impl TryFrom<String> for StreamMaxAge {
    type Error = StreamMaxAgeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<StreamMaxAge> for String {
    fn from(age: StreamMaxAge) -> Self {
        age.0
    }
}

impl StreamMaxAge {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamMaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The event history's retention: events go when older than `max_age`, or
/// (oldest first) when the stream holds more than `max_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRetention {
    pub max_age: StreamMaxAge,
    pub max_bytes: u64,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self {
            max_age: StreamMaxAge("7D".into()),
            max_bytes: 1 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_age_notation_is_accepted_and_anything_else_refused() {
        for good in ["7D", "12h", "30m", "1Y", "6M", "90s", "100D"] {
            assert!(good.parse::<StreamMaxAge>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "D",
            "7",
            "7d",
            "0D",
            "-1D",
            "1.5h",
            "7 D",
            "1w",
            "9999999999D",
        ] {
            assert!(bad.parse::<StreamMaxAge>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_keeps_a_week_or_a_gibibyte() {
        let retention = HistoryRetention::default();
        assert_eq!(retention.max_age.as_str(), "7D");
        assert_eq!(retention.max_bytes, 1_073_741_824);
    }
}

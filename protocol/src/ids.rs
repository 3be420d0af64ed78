//! Identifiers that travel in messages and routing keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The ID of a muxer: a worker consumes the queue of its muxer ID, and a job
/// is routed to exactly one muxer ID. Several workers may share one ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MuxerId(u16);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("muxer ID must be a whole number from 1 to 65535, got {0:?}")]
pub struct MuxerIdError(String);

impl MuxerId {
    pub fn new(id: u16) -> Result<Self, MuxerIdError> {
        if id == 0 {
            return Err(MuxerIdError(id.to_string()));
        }
        Ok(Self(id))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for MuxerId {
    type Err = MuxerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s
            .trim()
            .parse::<u16>()
            .map_err(|_| MuxerIdError(s.to_owned()))?;
        Self::new(id).map_err(|_| MuxerIdError(s.to_owned()))
    }
}

impl fmt::Display for MuxerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ID of one job, also its AMQP `message_id`. A UUID: it contains no `.`,
/// so it is a single word of a topic routing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("job ID must be a UUID, got {0:?}")]
pub struct JobIdError(String);

impl JobId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| JobIdError(s.to_owned()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muxer_id_rejects_zero_and_words() {
        assert!("0".parse::<MuxerId>().is_err());
        assert!("seven".parse::<MuxerId>().is_err());
        assert!("70000".parse::<MuxerId>().is_err());
        assert_eq!("7".parse::<MuxerId>().map(MuxerId::get), Ok(7));
    }

    #[test]
    fn job_id_round_trips_through_text() {
        let id = JobId::generate();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert!(!id.to_string().contains('.'));
    }
}

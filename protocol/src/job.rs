//! The job message: what a submitter asks a muxer to produce.
//!
//! A job names its input relative to the shared media root, so the same
//! message means the same file on every Pi that mounts that root. Future
//! split encodes will add an optional time range; new optional fields keep
//! [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{JobId, MuxerId, RelativePath, RelativePathError, SCHEMA_VERSION};

/// The bitrate/resolution ladders a worker knows how to plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderName {
    /// The H.264 ladder of Apple's HLS Authoring Specification (1080p at
    /// 7800 kb/s down to 234p at 145 kb/s), trimmed to the source.
    #[default]
    Standard,
    /// The seed project's rule: source bitrate, half of it, and 200 kb/s,
    /// all at the source resolution.
    Seed,
}

impl LadderName {
    pub const ALL: [LadderName; 2] = [LadderName::Standard, LadderName::Seed];

    pub fn as_str(self) -> &'static str {
        match self {
            LadderName::Standard => "standard",
            LadderName::Seed => "seed",
        }
    }
}

impl std::str::FromStr for LadderName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &Self::ALL, Self::as_str, "ladder")
    }
}

/// How the files of an output are named.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputNaming {
    /// `master.m3u8`, and a directory per stream holding `index.m3u8`,
    /// `iframes.m3u8` and `segment_00000.ts`...
    #[default]
    Hlsmux,
    /// The seed's flat layout, for players and scripts moving from it:
    /// `manifest_master.m3u8`, `manifest_<stream>.m3u8` and
    /// `media_<stream>_00000.ts`...
    Seed,
}

impl OutputNaming {
    pub const ALL: [OutputNaming; 2] = [OutputNaming::Hlsmux, OutputNaming::Seed];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputNaming::Hlsmux => "hlsmux",
            OutputNaming::Seed => "seed",
        }
    }
}

impl std::str::FromStr for OutputNaming {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &Self::ALL, Self::as_str, "naming")
    }
}

/// The container of an output's segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentFormat {
    /// MPEG-TS (`.ts`): every player, and every segment carries its own
    /// headers.
    #[default]
    Mpegts,
    /// Fragmented MP4 (`.m4s`, with an `init.mp4` per stream, HLS version
    /// 7): what newer players and CMAF pipelines prefer.
    Fmp4,
}

impl SegmentFormat {
    pub const ALL: [SegmentFormat; 2] = [SegmentFormat::Mpegts, SegmentFormat::Fmp4];

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentFormat::Mpegts => "mpegts",
            SegmentFormat::Fmp4 => "fmp4",
        }
    }
}

impl std::str::FromStr for SegmentFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &Self::ALL, Self::as_str, "segment format")
    }
}

/// How each rung's bitrate is held (the seed's `-C` constant bitrate and
/// `-q` quality-based encoding, as streaming services run them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateControl {
    /// The rung's bitrate on average, peaks held under its maxrate and
    /// buffer (VBV): what players' bandwidth estimates expect.
    #[default]
    Vbr,
    /// The rung's bitrate, constantly (padded where the picture needs
    /// less): for links that cannot absorb peaks.
    Cbr,
    /// A constant quality (x264's CRF 23 and its peers), held under the
    /// rung's maxrate and buffer: easy scenes cost less than their
    /// bitrate, hard ones no more than the cap.
    CappedQuality,
}

impl RateControl {
    pub const ALL: [RateControl; 3] = [
        RateControl::Vbr,
        RateControl::Cbr,
        RateControl::CappedQuality,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RateControl::Vbr => "vbr",
            RateControl::Cbr => "cbr",
            RateControl::CappedQuality => "capped-quality",
        }
    }
}

impl std::str::FromStr for RateControl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &Self::ALL, Self::as_str, "rate control")
    }
}

impl std::fmt::Display for RateControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The member of `all` called `name`, or an error listing the known names.
fn parse_named<T: Copy>(
    name: &str,
    all: &[T],
    name_of: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|item| name_of(*item) == name)
        .ok_or_else(|| {
            let known: Vec<_> = all.iter().map(|item| name_of(*item)).collect();
            format!("unknown {what} {name:?}; known: {}", known.join(", "))
        })
}

/// Whether a long input may be split into chunks that several workers
/// encode at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// Split an input at least the worker's `split_min_seconds` long.
    #[default]
    Auto,
    /// Encode it whole on one worker.
    Off,
}

impl SplitMode {
    pub const ALL: [SplitMode; 2] = [SplitMode::Auto, SplitMode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            SplitMode::Auto => "auto",
            SplitMode::Off => "off",
        }
    }
}

impl std::str::FromStr for SplitMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &Self::ALL, Self::as_str, "split mode")
    }
}

/// A request to turn one input into one HLS output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub schema: u32,
    pub job_id: JobId,
    pub muxer_id: MuxerId,
    /// The input, relative to the media root.
    pub input: RelativePath,
    /// The output directory, relative to the output root.
    pub output: RelativePath,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    /// The ladder to plan; the worker's configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<LadderName>,
    /// Target segment length in seconds; the worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_seconds: Option<u32>,
    /// Encrypt every segment with AES-128 under a fresh key; the worker's
    /// default (setting `encrypt`) when absent. A worker too old to know
    /// this field refuses the job rather than publish it in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    /// How the output's files are named; the worker's default (setting
    /// `naming`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<OutputNaming>,
    /// MPEG-TS or fMP4 segments; the worker's default (setting
    /// `segment_format`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_format: Option<SegmentFormat>,
    /// The URL at which the output root is served, written before every
    /// URI of the output's playlists; the worker's default (setting
    /// `base_url`) when absent, relative URIs when neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<crate::BaseUrl>,
    /// How rung bitrates are held; the worker's default (setting
    /// `rate_control`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_control: Option<RateControl>,
    /// Whether a long input is split across the pool (`auto`) or encoded
    /// whole on one worker (`off`); the worker's default (setting
    /// `split`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitMode>,
}

/// Why a delivered message is not a job this worker can take.
/// What a job asks for, without where it is routed: two messages with
/// one job ID must carry the same identity (a redelivery, an operator's
/// `dlq retry`), or the later one is refused as `duplicate_job_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestIdentity {
    pub input: RelativePath,
    pub output: RelativePath,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    pub ladder: Option<LadderName>,
    pub segment_seconds: Option<u32>,
    pub encrypt: Option<bool>,
    pub naming: Option<OutputNaming>,
    pub segment_format: Option<SegmentFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    #[error("message is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "message has schema version {found}, newer than the {SCHEMA_VERSION} this program understands: upgrade it"
    )]
    NewerSchema { found: u32 },
    #[error("message is not a valid job: {0}")]
    Invalid(serde_json::Error),
    #[error("message of {size} bytes is larger than the {MAX_JOB_MESSAGE_BYTES} a job may be")]
    TooLarge { size: usize },
    #[error("message is not a valid job: {0}")]
    Output(#[source] RelativePathError),
}

/// A job message is a few hundred bytes; anything near this is not a job,
/// and is refused before it is parsed.
pub const MAX_JOB_MESSAGE_BYTES: usize = 64 * 1024;

impl JobRequest {
    pub fn new(muxer_id: MuxerId, input: RelativePath, output: RelativePath) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            job_id: JobId::generate(),
            muxer_id,
            input,
            output,
            submitted_at: OffsetDateTime::now_utc(),
            ladder: None,
            segment_seconds: None,
            encrypt: None,
            naming: None,
            segment_format: None,
            base_url: None,
            rate_control: None,
            split: None,
        }
    }

    /// Parses a message body, telling a newer schema apart from garbage.
    /// What this request asks for (see [`RequestIdentity`]).
    pub fn identity(&self) -> RequestIdentity {
        RequestIdentity {
            input: self.input.clone(),
            output: self.output.clone(),
            submitted_at: self.submitted_at,
            ladder: self.ladder,
            segment_seconds: self.segment_seconds,
            encrypt: self.encrypt,
            naming: self.naming,
            segment_format: self.segment_format,
        }
    }

    pub fn from_json(body: &[u8]) -> Result<Self, BadMessage> {
        if body.len() > MAX_JOB_MESSAGE_BYTES {
            return Err(BadMessage::TooLarge { size: body.len() });
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(BadMessage::NotJson)?;
        if let Some(found) = value.get("schema").and_then(serde_json::Value::as_u64)
            && found > u64::from(SCHEMA_VERSION)
        {
            return Err(BadMessage::NewerSchema {
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        let mut request: Self = serde_json::from_value(value).map_err(BadMessage::Invalid)?;
        request.output = request
            .output
            .as_output_name()
            .map_err(BadMessage::Output)?;
        Ok(request)
    }

    /// The job ID of a message that did not parse as a job, where one can be
    /// read, so that its failure can still be reported against it: its
    /// message ID, else the body's `job_id` when the body is no larger than
    /// a job may be (a larger one is never parsed: that is what makes it
    /// cheap to refuse).
    pub fn salvage_job_id(message_id: Option<&str>, body: &[u8]) -> Option<JobId> {
        if let Some(id) = message_id.and_then(|id| id.parse().ok()) {
            return Some(id);
        }
        if body.len() > MAX_JOB_MESSAGE_BYTES {
            return None;
        }
        #[derive(Deserialize)]
        struct JustTheId {
            job_id: JobId,
        }
        serde_json::from_slice::<JustTheId>(body)
            .ok()
            .map(|message| message.job_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobRequest {
        JobRequest::new(
            MuxerId::new(2).expect("valid"),
            RelativePath::parse("incoming/clip.mp4").expect("valid"),
            RelativePath::parse("incoming/clip.mp4.hls").expect("valid"),
        )
    }

    #[test]
    fn round_trips_through_json() {
        let job = sample();
        let json = serde_json::to_vec(&job).expect("serialises");
        let parsed = JobRequest::from_json(&json).expect("parses");
        assert_eq!(parsed.job_id, job.job_id);
        assert_eq!(parsed.input, job.input);
        assert_eq!(
            parsed.submitted_at.unix_timestamp(),
            job.submitted_at.unix_timestamp()
        );
    }

    #[test]
    fn garbage_and_newer_schemas_are_told_apart() {
        assert!(matches!(
            JobRequest::from_json(b"{not json"),
            Err(BadMessage::NotJson(_))
        ));
        assert!(matches!(
            JobRequest::from_json(br#"{"schema": 9}"#),
            Err(BadMessage::NewerSchema { found: 9 })
        ));
        assert!(matches!(
            JobRequest::from_json(br#"{"schema": 1, "job_id": "x"}"#),
            Err(BadMessage::Invalid(_))
        ));
    }

    #[test]
    fn an_oversized_message_is_refused_unparsed() {
        let body = vec![b' '; MAX_JOB_MESSAGE_BYTES + 1];
        assert!(matches!(
            JobRequest::from_json(&body),
            Err(BadMessage::TooLarge { .. })
        ));
    }

    #[test]
    fn an_escaping_input_is_invalid() {
        let mut value = serde_json::to_value(sample()).expect("serialises");
        value["input"] = "../../etc/passwd".into();
        let body = serde_json::to_vec(&value).expect("serialises");
        assert!(matches!(
            JobRequest::from_json(&body),
            Err(BadMessage::Invalid(_))
        ));
    }

    #[test]
    fn job_id_is_salvaged_from_property_or_body() {
        let id = JobId::generate();
        let text = id.to_string();
        assert_eq!(
            JobRequest::salvage_job_id(Some(&text), b"garbage"),
            Some(id)
        );
        let body = format!(r#"{{"job_id": "{text}", "input": 3}}"#);
        assert_eq!(JobRequest::salvage_job_id(None, body.as_bytes()), Some(id));
        assert_eq!(JobRequest::salvage_job_id(None, b"garbage"), None);
        let mut oversized = body.into_bytes();
        oversized.resize(MAX_JOB_MESSAGE_BYTES + 1, b' ');
        assert_eq!(
            JobRequest::salvage_job_id(None, &oversized),
            None,
            "an oversized body is not parsed"
        );
    }
}

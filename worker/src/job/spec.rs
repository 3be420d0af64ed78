//! What a job asks for, with this worker's defaults filled in and checked
//! once, before anything is encoded: a request this worker cannot honour
//! fails here with `bad_message`, not halfway through.

use hlsmux_protocol::{BaseUrl, JobRequest, SegmentFormat};

use crate::config::Settings;
use crate::pipeline::JobError;
use crate::pipeline::encode::OutputOptions;
use crate::pipeline::hls::layout::Layout;
use crate::pipeline::plan::codec::VideoEncoder;

/// Segment lengths a job may ask for.
const SEGMENT_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 1..=60;

/// A job's output options, valid for this worker.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub output: OutputOptions,
    pub encrypted: bool,
    /// Where the output root is served, for absolute playlist URIs.
    pub base_url: Option<BaseUrl>,
}

impl JobSpec {
    pub fn resolve(
        request: &JobRequest,
        settings: &Settings,
        encoder: VideoEncoder,
    ) -> Result<Self, JobError> {
        let segment_seconds = match request.segment_seconds {
            None => settings.encoding.segment_seconds,
            Some(seconds) if SEGMENT_SECONDS_RANGE.contains(&seconds) => seconds,
            Some(seconds) => {
                return Err(JobError::InvalidRequest(format!(
                    "segment length {seconds} s is outside {}..={} s",
                    SEGMENT_SECONDS_RANGE.start(),
                    SEGMENT_SECONDS_RANGE.end()
                )));
            }
        };
        let layout = Layout {
            naming: request.naming.unwrap_or(settings.encoding.naming),
            format: request
                .segment_format
                .unwrap_or(settings.encoding.segment_format),
        };
        if layout.format == SegmentFormat::Fmp4 && !encoder.writes_fmp4() {
            return Err(JobError::InvalidRequest(format!(
                "fMP4 segments cannot be made with {encoder} (it writes its stream headers late); submit with --segment-format mpegts, or to a muxer whose workers use another encoder"
            )));
        }
        let rate_control = request
            .rate_control
            .unwrap_or(settings.encoding.rate_control);
        encoder
            .supports(rate_control)
            .map_err(JobError::InvalidRequest)?;
        Ok(Self {
            output: OutputOptions {
                ladder: request.ladder.unwrap_or(settings.encoding.ladder),
                segment_seconds,
                layout,
                rate_control,
            },
            encrypted: request.encrypt.unwrap_or(settings.encoding.encrypt),
            base_url: request
                .base_url
                .clone()
                .or_else(|| settings.encoding.base_url.clone()),
        })
    }
}

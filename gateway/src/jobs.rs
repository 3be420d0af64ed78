//! The jobs API's work, through the CLI's own code (`hlsmux_submitter`):
//! a submission becomes the same `JobRequest` the CLI publishes, a job's
//! state comes from the same event history `hlsmux status` reads, and a
//! cancellation is the same message `hlsmux cancel` sends.

use std::path::{Path, PathBuf};

use hlsmux_protocol::{
    JobId, JobRequest, LadderName, MuxerId, RateControl, RelativePath, SegmentFormat, SplitMode,
};
use hlsmux_submitter::broker::Broker;
use hlsmux_submitter::{cancel, pool};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::index::JobIndex;

/// A submission as the API takes it: a file already under the media root
/// and the options `hlsmux submit` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The input, relative to the media root.
    pub input: String,
    /// The output directory, relative to the output root (default: the
    /// input's path plus `.hls`).
    #[serde(default)]
    pub name: Option<String>,
    /// The muxer (default: the live muxer with the fewest jobs waiting).
    #[serde(default)]
    pub muxer: Option<u16>,
    #[serde(default)]
    pub ladder: Option<LadderName>,
    #[serde(default)]
    pub segment_seconds: Option<u32>,
    #[serde(default)]
    pub segment_format: Option<SegmentFormat>,
    #[serde(default)]
    pub encrypt: Option<bool>,
    #[serde(default)]
    pub rate_control: Option<RateControl>,
    #[serde(default)]
    pub split: Option<SplitMode>,
}

/// The muxers a submission without one may go to, as `hlsmux submit`'s
/// default.
const AUTO_MUXERS: &str = "1-16";

/// Checks a submission and queues it; returns the accepted job.
pub async fn submit(
    broker: &Broker,
    index: &JobIndex,
    media_root: &Path,
    submission: Submission,
) -> Result<Value, ApiError> {
    let input = RelativePath::parse(&submission.input)
        .map_err(|error| ApiError::bad_request("input_outside_root", error.to_string()))?;
    let output = match &submission.name {
        Some(name) => RelativePath::parse(name)
            .map_err(|error| ApiError::bad_request("bad_name", error.to_string()))?,
        None => RelativePath::parse(&format!("{input}.hls"))
            .map_err(|error| ApiError::bad_request("bad_name", error.to_string()))?,
    };
    let (root, relative) = (media_root.to_owned(), input.clone());
    tokio::task::spawn_blocking(move || check_input(&root, &relative))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })??;
    let muxer = match submission.muxer {
        Some(id) => {
            let muxer = MuxerId::new(id)
                .map_err(|error| ApiError::bad_request("bad_muxer", error.to_string()))?;
            if broker.queue_state(muxer).await?.is_none() {
                return Err(hlsmux_submitter::error::CliError::Unroutable(muxer).into());
            }
            muxer
        }
        None => {
            let range = AUTO_MUXERS
                .parse()
                .map_err(|error: String| ApiError::bad_request("bad_muxer", error))?;
            broker
                .live_muxers(range)
                .await?
                .into_iter()
                .min_by_key(|(muxer, waiting)| (*waiting, *muxer))
                .map(|(muxer, _)| muxer)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no_muxer_available",
                        format!("no muxer in {AUTO_MUXERS} has a running worker"),
                    )
                })?
        }
    };
    let mut job = JobRequest::new(muxer, input, output);
    job.ladder = submission.ladder;
    job.segment_seconds = submission.segment_seconds;
    job.segment_format = submission.segment_format;
    job.encrypt = submission.encrypt;
    job.rate_control = submission.rate_control;
    job.split = submission.split;
    let publisher = broker.publisher().await?;
    broker.publish_job(&publisher, &job).await?;
    index.queued(job.clone());
    Ok(json!({
        "job_id": job.job_id,
        "state": "submitted",
        "muxer_id": job.muxer_id,
        "input": job.input,
        "output": job.output,
        "links": { "self": format!("/v1/jobs/{}", job.job_id) },
    }))
}

/// Blocking. The input must be a regular, non-empty file inside the media
/// root, symbolic links resolved (a link out of the root is refused).
fn check_input(media_root: &Path, input: &RelativePath) -> Result<(), ApiError> {
    let root = media_root.canonicalize().map_err(|error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "media_root_unavailable",
            format!(
                "the media root {} is not usable: {error}",
                media_root.display()
            ),
        )
    })?;
    let path: PathBuf = input.under(media_root);
    let resolved = path.canonicalize().map_err(|_| {
        ApiError::bad_request(
            "input_missing",
            format!("{input} does not exist under the media root"),
        )
    })?;
    if !resolved.starts_with(&root) {
        return Err(ApiError::bad_request(
            "input_outside_root",
            format!("{input} resolves outside the media root"),
        ));
    }
    let meta = std::fs::metadata(&resolved)
        .map_err(|error| ApiError::bad_request("input_unusable", format!("{input}: {error}")))?;
    if !meta.is_file() {
        return Err(ApiError::bad_request(
            "input_unusable",
            format!("{input} is not a regular file"),
        ));
    }
    if meta.len() == 0 {
        return Err(ApiError::bad_request(
            "input_unusable",
            format!("{input} is empty (0 bytes)"),
        ));
    }
    Ok(())
}

/// The longest a lookup waits for the index to read the history once.
const INDEX_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(10);

/// One job: its latest state, as `hlsmux jobs` sums it up, and its whole
/// timeline (or `queued`, for a job this gateway queued that no worker
/// has taken yet).
pub async fn job(index: &JobIndex, job: JobId) -> Result<Value, ApiError> {
    index.caught_up(INDEX_CATCH_UP).await;
    index.job(job).ok_or_else(|| not_found(job))
}

/// The jobs of the history, oldest first, filtered by state and muxer.
pub async fn jobs(
    index: &JobIndex,
    state: Option<&str>,
    muxer: Option<MuxerId>,
) -> Result<Value, ApiError> {
    index.caught_up(INDEX_CATCH_UP).await;
    let jobs: Vec<_> = index
        .summaries()
        .into_iter()
        .filter(|summary| state.is_none_or(|state| summary.state == state))
        .filter(|summary| muxer.is_none_or(|muxer| summary.muxer_id == muxer))
        .collect();
    Ok(json!({ "jobs": jobs }))
}

/// Sends a cancellation for a job that has not ended.
pub async fn cancel(
    broker: &Broker,
    index: &JobIndex,
    job: JobId,
    by: &str,
) -> Result<Value, ApiError> {
    index.caught_up(INDEX_CATCH_UP).await;
    if let Some(summary) = index.summary(job)
        && cancel::has_ended(&summary)
    {
        return Err(hlsmux_submitter::error::CliError::AlreadyEnded {
            job,
            state: summary.state,
        }
        .into());
    }
    let publisher = broker.publisher().await?;
    cancel::send(broker, &publisher, job, by).await?;
    Ok(json!({ "job_id": job, "state": "cancel_requested", "by": by }))
}

/// The pool, as `hlsmux workers --json` shows it.
pub async fn workers(broker: &Broker) -> Result<Value, ApiError> {
    let view = pool::view(broker).await?;
    Ok(serde_json::to_value(view).unwrap_or(Value::Null))
}

fn not_found(job: JobId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no job {job} in the pool's history"),
    )
}

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

use crate::Gateway;
use crate::api_error::ApiError;
use crate::index::JobIndex;
use crate::query::Query;
use crate::tokens::Caller;
use crate::upload;
use crate::webhooks::check_callback;

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
    /// Where to POST the job's `done` or `failed` event, signed with the
    /// token's webhook secret; a host the token's `callback_hosts` names.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// The muxers a submission without one may go to, as `hlsmux submit`'s
/// default.
const AUTO_MUXERS: &str = "1-16";

/// Checks a submission naming a file under the media root and queues it;
/// returns the accepted job.
pub async fn submit(
    gateway: &Gateway,
    caller: &Caller,
    submission: Submission,
) -> Result<Value, ApiError> {
    let input = RelativePath::parse(&submission.input)
        .map_err(|error| ApiError::bad_request("input_outside_root", error.to_string()))?;
    let named = named_output(&submission)?;
    let callback = callback(caller, &submission)?;
    checked_input(&gateway.media_root, &input).await?;
    let muxer = choose_muxer(&gateway.broker, submission.muxer).await?;
    let job = Queued {
        job_id: JobId::generate(),
        muxer,
        input,
        named,
        callback,
    };
    queue(gateway, caller, job, &submission).await
}

/// Receives an uploaded file into `incoming/` and queues it, the options
/// coming as the query's `filename=` and the submission's fields. Every
/// check that does not need the file is made before a byte is read.
pub async fn submit_upload(
    gateway: &Gateway,
    caller: &Caller,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Value, ApiError> {
    let (file_name, submission) = upload_submission(request.uri().query())?;
    let named = named_output(&submission)?;
    let callback = callback(caller, &submission)?;
    let muxer = choose_muxer(&gateway.broker, submission.muxer).await?;
    let declared_length = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let job_id = JobId::generate();
    let input = upload::receive(
        request.into_body(),
        declared_length,
        &gateway.media_root,
        &file_name,
        job_id,
        gateway.upload_limits,
    )
    .await?;
    checked_input(&gateway.media_root, &input).await?;
    if let Ok(meta) = tokio::fs::metadata(input.under(&gateway.media_root)).await {
        gateway.metrics.uploaded(meta.len());
    }
    let job = Queued {
        job_id,
        muxer,
        input,
        named,
        callback,
    };
    queue(gateway, caller, job, &submission).await
}

/// The submission's callback URL, checked against the caller's token.
fn callback(caller: &Caller, submission: &Submission) -> Result<Option<String>, ApiError> {
    submission
        .callback_url
        .as_deref()
        .map(|url| check_callback(caller, url))
        .transpose()
}

/// An upload's query as a submission: `filename` names the file, the rest
/// are the JSON submission's fields (`input` is the body, so not one).
fn upload_submission(query: Option<&str>) -> Result<(String, Submission), ApiError> {
    let mut fields = serde_json::Map::new();
    let mut file_name = None;
    for (key, value) in crate::query::query_pairs(query) {
        match key.as_str() {
            "filename" => file_name = Some(upload::file_name(&value)?.to_owned()),
            "input" => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    "an upload's input is its body: send ?filename=NAME, not input",
                ));
            }
            _ => {
                // Numbers and booleans as JSON has them; anything else a string.
                let parsed = serde_json::from_str::<Value>(&value)
                    .ok()
                    .filter(|v| v.is_number() || v.is_boolean())
                    .unwrap_or(Value::String(value));
                fields.insert(key, parsed);
            }
        }
    }
    let file_name = file_name.ok_or_else(|| {
        ApiError::bad_request(
            "bad_filename",
            "an upload needs ?filename=NAME (the file's name in incoming/)",
        )
    })?;
    fields.insert(
        "input".into(),
        Value::String(format!("{}/{file_name}", hlsmux_submitter::input::INCOMING)),
    );
    let submission = serde_json::from_value(Value::Object(fields)).map_err(|error| {
        ApiError::bad_request("bad_query", format!("the upload's options: {error}"))
    })?;
    Ok((file_name, submission))
}

/// The output directory the submission names, checked; none for the
/// default (the input's path plus `.hls`).
fn named_output(submission: &Submission) -> Result<Option<RelativePath>, ApiError> {
    submission
        .name
        .as_deref()
        .map(|name| {
            RelativePath::parse(name)
                .map_err(|error| ApiError::bad_request("bad_name", error.to_string()))
        })
        .transpose()
}

async fn checked_input(media_root: &Path, input: &RelativePath) -> Result<(), ApiError> {
    let (root, relative) = (media_root.to_owned(), input.clone());
    tokio::task::spawn_blocking(move || check_input(&root, &relative))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })?
}

/// The muxer asked for, if its queue exists; else the live muxer with the
/// fewest jobs waiting.
async fn choose_muxer(broker: &Broker, asked: Option<u16>) -> Result<MuxerId, ApiError> {
    if let Some(id) = asked {
        let muxer = MuxerId::new(id)
            .map_err(|error| ApiError::bad_request("bad_muxer", error.to_string()))?;
        if broker.queue_state(muxer).await?.is_none() {
            return Err(hlsmux_submitter::error::CliError::Unroutable(muxer).into());
        }
        return Ok(muxer);
    }
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
        })
}

/// A checked job, ready to queue.
struct Queued {
    job_id: JobId,
    muxer: MuxerId,
    input: RelativePath,
    named: Option<RelativePath>,
    callback: Option<String>,
}

/// Publishes the job as `hlsmux submit` does; its callback, if any, is
/// in the webhook log first, so no job ends before its callback is owed.
async fn queue(
    gateway: &Gateway,
    caller: &Caller,
    queued: Queued,
    submission: &Submission,
) -> Result<Value, ApiError> {
    let output = match queued.named {
        Some(output) => output,
        None => RelativePath::parse(&format!("{}.hls", queued.input))
            .map_err(|error| ApiError::bad_request("bad_name", error.to_string()))?,
    };
    let mut job = JobRequest::new(queued.muxer, queued.input, output);
    job.job_id = queued.job_id;
    job.ladder = submission.ladder;
    job.segment_seconds = submission.segment_seconds;
    job.segment_format = submission.segment_format;
    job.encrypt = submission.encrypt;
    job.rate_control = submission.rate_control;
    job.split = submission.split;
    if let Some(url) = &queued.callback {
        gateway
            .webhooks
            .subscribe(&gateway.broker, job.job_id, url.clone(), &caller.name)
            .await?;
    }
    let publisher = gateway.broker.publisher().await?;
    gateway.broker.publish_job(&publisher, &job).await?;
    let _ = publisher.close(200, "published".into()).await;
    gateway.index.queued(job.clone());
    Ok(json!({
        "job_id": job.job_id,
        "state": "submitted",
        "muxer_id": job.muxer_id,
        "input": job.input,
        "output": job.output,
        "callback_url": queued.callback,
        "links": { "self": format!("/v1/jobs/{}", job.job_id) },
    }))
}

/// Blocking. The input must be a regular, non-empty file inside the media
/// root, symbolic links resolved (a link out of the root is refused).
fn check_input(media_root: &Path, input: &RelativePath) -> Result<(), ApiError> {
    let root = media_root
        .canonicalize()
        .map_err(|error| ApiError::root_unavailable("media", media_root, &error))?;
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
pub async fn job(gateway: &Gateway, job: JobId) -> Result<Value, ApiError> {
    gateway.index.caught_up(INDEX_CATCH_UP).await;
    let mut found = gateway.index.job(job).ok_or_else(|| not_found(job))?;
    if let Some(callback) = gateway.webhooks.view(job) {
        found["callback"] = callback;
    }
    Ok(found)
}

/// The jobs of the history and those queued here, oldest first, filtered
/// by state, muxer and the time of their latest event.
pub async fn jobs(index: &JobIndex, query: &Query) -> Result<Value, ApiError> {
    index.caught_up(INDEX_CATCH_UP).await;
    let since = query.since.map(|since| since.unix_timestamp_nanos());
    let jobs: Vec<Value> = index
        .listing()
        .into_iter()
        .filter(|job| {
            query
                .state
                .as_deref()
                .is_none_or(|state| job.state == state)
        })
        .filter(|job| query.muxer.is_none_or(|muxer| job.muxer_id == muxer))
        .filter(|job| since.is_none_or(|since| job.updated_at >= since))
        .map(|job| job.summary)
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

//! `hlsmux jobs` and `hlsmux status`: the pool's job history, read from the
//! event history stream (no database: RabbitMQ keeps the events).

use std::collections::HashMap;
use std::time::Duration;

use hlsmux_amqp::HistoryStart;
use hlsmux_amqp::stream::{self, Stamped};
use hlsmux_protocol::{JobId, JobState, MuxerId, StatusEvent};
use serde::Serialize;

use crate::broker::Broker;
use crate::cli::{JobsArgs, PoolArgs, StatusArgs, WatchArgs};
use crate::error::CliError;
use crate::follow::{Followed, FollowedJob, follow};

/// One job as its events tell it. The `--json` line of `hlsmux jobs`.
#[derive(Debug, Serialize)]
pub struct JobSummary {
    pub job_id: JobId,
    /// `running`, `requeued`, `done` or `failed`.
    pub state: &'static str,
    pub muxer_id: MuxerId,
    /// The worker that sent the latest event.
    pub worker: String,
    pub input: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    /// Of the input, when done.
    pub media_seconds: Option<f64>,
    pub wall_seconds: Option<f64>,
    /// Media seconds per wall second, when done.
    pub realtime_factor: Option<f64>,
    /// The failure or requeue reason code, and its message.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Of the running encode.
    pub percent: Option<f64>,
}

impl JobSummary {
    fn new(event: &StatusEvent) -> Self {
        let at = rfc3339(event);
        Self {
            job_id: event.job_id,
            state: "running",
            muxer_id: event.muxer_id,
            worker: event.worker.clone(),
            input: None,
            started_at: at.clone(),
            updated_at: at,
            media_seconds: None,
            wall_seconds: None,
            realtime_factor: None,
            reason: None,
            message: None,
            percent: None,
        }
    }

    fn apply(&mut self, event: &StatusEvent) {
        self.worker = event.worker.clone();
        self.muxer_id = event.muxer_id;
        self.updated_at = rfc3339(event);
        match &event.state {
            JobState::Started { input, .. } => {
                self.state = "running";
                self.input = Some(input.clone());
                self.percent = Some(0.0);
            }
            JobState::Progress { percent, .. } => {
                self.state = "running";
                self.percent = Some(*percent);
            }
            JobState::Requeued { reason, message } => {
                self.state = "requeued";
                self.reason = Some(reason.to_string());
                self.message = Some(message.clone());
                self.percent = None;
            }
            JobState::Done {
                media_seconds,
                wall_seconds,
                reused,
                ..
            } => {
                self.state = "done";
                self.reason = None;
                self.message = None;
                self.percent = None;
                // A reused output's times are the first encode's.
                if !*reused || self.wall_seconds.is_none() {
                    self.media_seconds = Some(*media_seconds);
                    self.wall_seconds = Some(*wall_seconds);
                    self.realtime_factor =
                        (*wall_seconds > 0.0).then(|| media_seconds / wall_seconds);
                }
            }
            JobState::Failed { reason, message } => {
                self.state = "failed";
                self.reason = Some(reason.to_string());
                self.message = Some(message.clone());
                self.percent = None;
            }
        }
    }
}

fn rfc3339(event: &StatusEvent) -> String {
    event
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Every event in the history from `from`, up to now.
pub async fn read(broker: &Broker, from: HistoryStart) -> Result<Vec<StatusEvent>, CliError> {
    read_stream(broker, &broker.topology().event_history_stream(), from).await
}

/// Every message of one of the pool's streams from `from`, up to now (see
/// [`stream::read_until_quiet`]).
pub async fn read_stream<T: serde::de::DeserializeOwned + Stamped>(
    broker: &Broker,
    name: &str,
    from: HistoryStart,
) -> Result<Vec<T>, CliError> {
    let mut consumer = broker.read_stream(name, from).await?;
    Ok(stream::collect_until_quiet(&mut consumer, stream::CAUGHT_UP_QUIET).await?)
}

/// One summary per job, in the order the jobs first appear.
pub fn summarise(events: &[StatusEvent]) -> Vec<JobSummary> {
    let mut order: Vec<JobId> = Vec::new();
    let mut jobs: HashMap<JobId, JobSummary> = HashMap::new();
    // A refused duplicate says nothing about the job whose ID it reused.
    for event in events
        .iter()
        .filter(|event| !event.state.is_refused_duplicate())
    {
        let summary = jobs.entry(event.job_id).or_insert_with(|| {
            order.push(event.job_id);
            JobSummary::new(event)
        });
        summary.apply(event);
    }
    order
        .into_iter()
        .filter_map(|job| jobs.remove(&job))
        .collect()
}

pub async fn jobs(pool: &PoolArgs, args: JobsArgs) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let events = read(&broker, HistoryStart::ago(args.since.into())).await?;
    let summaries: Vec<JobSummary> = summarise(&events)
        .into_iter()
        .filter(|job| args.state.is_none_or(|state| state.as_str() == job.state))
        .filter(|job| args.muxer.is_none_or(|muxer| muxer == job.muxer_id))
        .collect();
    if args.json {
        for job in &summaries {
            println!("{}", serde_json::to_string(job).unwrap_or_default());
        }
        return Ok(());
    }
    if summaries.is_empty() {
        eprintln!("no jobs in the last {}", args.since);
        return Ok(());
    }
    println!(
        "{:<36}  {:<8}  {:>5}  {:<24}  {:>7}  {:>7}  {:>6}  REASON",
        "JOB", "STATE", "MUXER", "INPUT", "MEDIA", "WALL", "SPEED"
    );
    for job in &summaries {
        let seconds = |s: Option<f64>| s.map_or_else(|| "-".into(), |s| format!("{s:.1}s"));
        let state = match (job.state, job.percent) {
            ("running", Some(percent)) => format!("{percent:.0}%"),
            (state, _) => state.to_owned(),
        };
        println!(
            "{:<36}  {:<8}  {:>5}  {:<24}  {:>7}  {:>7}  {:>6}  {}",
            job.job_id,
            state,
            job.muxer_id,
            truncate(job.input.as_deref().unwrap_or("-"), 24),
            seconds(job.media_seconds),
            seconds(job.wall_seconds),
            job.realtime_factor
                .map_or_else(|| "-".into(), |f| format!("{f:.2}x")),
            job.reason.as_deref().unwrap_or(""),
        );
    }
    Ok(())
}

/// How far back `hlsmux watch JOB` looks for the job's first events.
const WATCH_LOOK_BACK: Duration = Duration::from_secs(24 * 3600);

pub async fn watch(pool: &PoolArgs, args: WatchArgs) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let (from, followed) = match args.job {
        Some(job) => (
            HistoryStart::ago(WATCH_LOOK_BACK),
            Followed::Jobs(vec![FollowedJob {
                job_id: job,
                label: job.to_string(),
            }]),
        ),
        None => (HistoryStart::ago(Duration::ZERO), Followed::All),
    };
    let summary = follow(
        &broker,
        from,
        None,
        followed,
        args.json,
        pool.output_root.as_deref(),
    )
    .await?;
    if summary.failed > 0 {
        return Err(CliError::JobsFailed {
            failed: summary.failed,
            total: summary.failed + summary.done,
        });
    }
    Ok(())
}

pub async fn status(pool: &PoolArgs, args: StatusArgs) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let events: Vec<StatusEvent> = read(&broker, HistoryStart::First)
        .await?
        .into_iter()
        .filter(|event| event.job_id == args.job)
        .collect();
    if events.is_empty() {
        return Err(CliError::UnknownJob(args.job));
    }
    for event in &events {
        if args.json {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
            continue;
        }
        if matches!(event.state, JobState::Progress { .. }) && !args.progress {
            continue;
        }
        println!(
            "{}  {:<9} muxer {} on {}  {}",
            rfc3339(event),
            event.state.event_state().as_str(),
            event.muxer_id,
            event.worker,
            describe(&event.state)
        );
    }
    Ok(())
}

fn describe(state: &JobState) -> String {
    match state {
        JobState::Started { input, redelivered } => {
            format!(
                "{input}{}",
                if *redelivered { " (redelivered)" } else { "" }
            )
        }
        JobState::Progress {
            percent,
            fps,
            speed,
        } => format!("{percent:.0}% {fps:.0} fps {speed:.2}x"),
        JobState::Done {
            master_playlist,
            media_seconds,
            wall_seconds,
            reused,
            encoder,
            ..
        } => format!(
            "{master_playlist}: {media_seconds:.1} s in {wall_seconds:.1} s with {encoder}{}",
            if *reused { " (earlier output)" } else { "" }
        ),
        JobState::Requeued { reason, message } => format!("{reason}: {message}"),
        JobState::Failed { reason, message } => format!("{reason}: {message}"),
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let tail: String = text
        .chars()
        .rev()
        .take(width - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

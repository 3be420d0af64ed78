//! Follows submitted jobs' status events until each is done or failed, shown
//! as progress bars on a terminal, plain lines elsewhere, or JSON lines.
//!
//! Events are read from the pool's history stream, so a lost connection
//! (a broker restart) costs nothing: the follower reconnects and reads on
//! from the last event it saw.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use hlsmux_amqp::{HistoryStart, stream_offset};
use hlsmux_protocol::{FailureReason, JobId, JobState, StatusEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lapin::options::BasicAckOptions;

use crate::broker::Broker;
use crate::error::CliError;

/// Waits between attempts to reconnect while following.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How long following keeps trying to reach a broker that went away.
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(600);
/// How far back a reader attached before publishing starts: covers a
/// broker clock somewhat ahead of this machine's.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// How each followed job ended.
#[derive(Debug, Default)]
pub struct FollowSummary {
    pub done: usize,
    pub failed: usize,
    /// Each followed job's end, in the order they ended.
    pub ends: Vec<JobEnd>,
}

/// How one job ended, for the summary table.
#[derive(Debug)]
pub struct JobEnd {
    pub job_id: JobId,
    pub label: String,
    pub state: &'static str,
    /// Why it failed, when it did.
    pub reason: Option<FailureReason>,
    /// Wall seconds when done; the reason code and message when failed.
    pub detail: String,
}

impl FollowSummary {
    /// The table `hlsmux submit --wait` prints after several jobs.
    pub fn print_table(&self) {
        eprintln!();
        eprintln!("{:<36}  {:<30}  {:<6}  DETAIL", "JOB", "INPUT", "STATE");
        for end in &self.ends {
            eprintln!(
                "{:<36}  {:<30}  {:<6}  {}",
                end.job_id, end.label, end.state, end.detail
            );
        }
        eprintln!("{} done, {} failed", self.done, self.failed);
    }
}

/// A job being followed: its input, for messages.
pub struct FollowedJob {
    pub job_id: JobId,
    pub label: String,
}

enum Display {
    Json,
    Bars(MultiProgress),
    Lines,
}

struct JobView {
    label: String,
    bar: Option<ProgressBar>,
    finished: bool,
}

/// Which jobs to follow.
pub enum Followed {
    /// These jobs, until each is done or failed.
    Jobs(Vec<FollowedJob>),
    /// Every job of the pool, until interrupted.
    All,
}

/// A reader of the event history opened before publishing what it will
/// follow (jobs, cancellations): RabbitMQ 3.10 was seen to skip an event
/// written while a reader attaches, which must not be one of ours.
pub struct Attached {
    from: HistoryStart,
    events: lapin::Consumer,
}

impl Attached {
    pub async fn before_publishing(broker: &Broker) -> Result<Self, CliError> {
        let from = HistoryStart::ago(CLOCK_MARGIN);
        Ok(Self {
            from,
            events: broker.event_history(from).await?,
        })
    }

    /// Follows `jobs` until each is done or failed.
    pub async fn follow(
        self,
        broker: &Broker,
        jobs: Vec<FollowedJob>,
        json: bool,
        output_root: Option<&Path>,
    ) -> Result<FollowSummary, CliError> {
        follow(
            broker,
            self.from,
            Some(self.events),
            Followed::Jobs(jobs),
            json,
            output_root,
        )
        .await
    }
}

/// Follows `followed` from `from` in the event history. `attached` is a
/// reader already opened at `from`: open it before publishing the jobs, so
/// that no event of theirs is written while the reader attaches.
pub async fn follow(
    broker: &Broker,
    from: HistoryStart,
    attached: Option<lapin::Consumer>,
    followed: Followed,
    json: bool,
    output_root: Option<&Path>,
) -> Result<FollowSummary, CliError> {
    let (jobs, all) = match followed {
        Followed::Jobs(jobs) => (jobs, false),
        Followed::All => (Vec::new(), true),
    };
    let display = if json {
        Display::Json
    } else if std::io::stderr().is_terminal() {
        Display::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    } else {
        Display::Lines
    };
    let new_view = |label: String| JobView {
        bar: match &display {
            Display::Bars(bars) => Some(bars.add(new_bar(&label))),
            _ => None,
        },
        label,
        finished: false,
    };
    let mut views: HashMap<JobId, JobView> = jobs
        .into_iter()
        .map(|job| (job.job_id, new_view(job.label)))
        .collect();
    let mut summary = FollowSummary::default();
    let mut start = from;
    let mut events = match attached {
        Some(events) => events,
        None => broker.event_history(start).await?,
    };
    while all || views.values().any(|view| !view.finished) {
        let delivery = match events.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => {
                events = reconnect(broker, start, &error.to_string()).await?;
                continue;
            }
            None => {
                events = reconnect(broker, start, "the broker cancelled the subscription").await?;
                continue;
            }
        };
        if let Some(offset) = stream_offset(&delivery.properties) {
            start = HistoryStart::After(offset);
        }
        // The stream counts acknowledgements as credit for more events.
        if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
            events = reconnect(broker, start, &error.to_string()).await?;
            continue;
        }
        let Ok(event) = serde_json::from_slice::<StatusEvent>(&delivery.data) else {
            tracing::warn!("ignoring an event that does not parse");
            continue;
        };
        // A later message refused for reusing a job's ID: that job goes on.
        if event.state.is_refused_duplicate() {
            continue;
        }
        if all && !views.contains_key(&event.job_id) {
            let label = match &event.state {
                JobState::Started { input, .. } => input.clone(),
                _ => event.job_id.to_string(),
            };
            views.insert(event.job_id, new_view(label));
        }
        let Some(view) = views.get_mut(&event.job_id) else {
            continue;
        };
        if view.finished {
            continue;
        }
        if let Display::Json = display {
            println!("{}", String::from_utf8_lossy(&delivery.data));
        } else {
            show(&display, view, &event, output_root);
        }
        let (state, reason, detail) = match &event.state {
            JobState::Done {
                wall_seconds,
                media_seconds,
                ..
            } => {
                summary.done += 1;
                (
                    "done",
                    None,
                    format!("{media_seconds:.1} s of video in {wall_seconds:.1} s"),
                )
            }
            JobState::Failed { reason, message } => {
                summary.failed += 1;
                ("failed", Some(*reason), format!("{reason}: {message}"))
            }
            _ => continue,
        };
        summary.ends.push(JobEnd {
            job_id: event.job_id,
            label: view.label.clone(),
            state,
            reason,
            detail,
        });
        view.finished = true;
    }
    Ok(summary)
}

fn show(display: &Display, view: &JobView, event: &StatusEvent, output_root: Option<&Path>) {
    let say = |line: String| match display {
        Display::Bars(bars) => {
            let _ = bars.println(line);
        }
        _ => eprintln!("{line}"),
    };
    let label = &view.label;
    match &event.state {
        JobState::Started { redelivered, .. } => {
            let again = if *redelivered { " (redelivered)" } else { "" };
            say(format!(
                "{label}: started on muxer {} ({}){again}",
                event.muxer_id, event.worker
            ));
        }
        JobState::Progress {
            percent,
            fps,
            speed,
        } => {
            if let Some(bar) = &view.bar {
                bar.set_position(percent.round() as u64);
                bar.set_message(format!("{fps:.0} fps, {speed:.2}x"));
            }
        }
        JobState::Done {
            master_playlist,
            wall_seconds,
            media_seconds,
            reused,
            encryption_key,
            ..
        } => {
            if let Some(bar) = &view.bar {
                bar.finish_and_clear();
            }
            let path = output_root.map_or_else(
                || PathBuf::from(master_playlist),
                |root| root.join(master_playlist),
            );
            let how = if *reused {
                "already done earlier".to_owned()
            } else {
                format!("done: {media_seconds:.1} s of video in {wall_seconds:.1} s")
            };
            say(format!("{label}: {how}"));
            if let Some(key) = encryption_key {
                say(format!("{label}: encrypted (AES-128); its key is {key}"));
            }
            // The master playlist path is the result: stdout, for scripts.
            println!("{}", path.display());
        }
        JobState::Requeued { reason, message } => {
            say(format!(
                "{label}: given back to the queue by {} ({reason}): {message}",
                event.worker
            ));
        }
        JobState::Failed { reason, message } => {
            if let Some(bar) = &view.bar {
                bar.abandon();
            }
            say(format!("{label}: failed ({reason}): {message}"));
        }
    }
}

fn new_bar(label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:30!} [{bar:30}] {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(100)
        .with_style(style)
        .with_prefix(label.to_owned())
}

/// Reads the history again from `start` on a fresh connection, retrying
/// with back-off while the broker is away.
async fn reconnect(
    broker: &Broker,
    start: HistoryStart,
    why: &str,
) -> Result<lapin::Consumer, CliError> {
    eprintln!("lost the broker connection ({why}); reconnecting (the jobs go on in the pool)");
    let give_up = tokio::time::Instant::now() + RECONNECT_GIVE_UP;
    let mut delay = RECONNECT_MIN;
    loop {
        tokio::time::sleep(delay).await;
        match broker.event_history(start).await {
            Ok(events) => {
                eprintln!("reconnected; following on");
                return Ok(events);
            }
            Err(error) if tokio::time::Instant::now() >= give_up => {
                return Err(CliError::Broker(format!(
                    "gave up following the jobs after {} s without the broker ({error}); they go on in the pool",
                    RECONNECT_GIVE_UP.as_secs()
                )));
            }
            Err(error) => {
                tracing::debug!(%error, "broker still unavailable");
                delay = (delay * 2).min(RECONNECT_MAX);
            }
        }
    }
}

//! Follows submitted jobs' status events until each is done or failed, shown
//! as progress bars on a terminal, plain lines elsewhere, or JSON lines.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use hlsmux_protocol::{JobId, JobState, StatusEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lapin::Consumer;

use crate::error::CliError;

/// How each followed job ended.
#[derive(Debug, Default)]
pub struct FollowSummary {
    pub done: usize,
    pub failed: usize,
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

pub async fn follow(
    mut events: Consumer,
    jobs: Vec<FollowedJob>,
    json: bool,
    output_root: Option<&Path>,
) -> Result<FollowSummary, CliError> {
    let display = if json {
        Display::Json
    } else if std::io::stderr().is_terminal() {
        Display::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    } else {
        Display::Lines
    };
    let mut views: HashMap<JobId, JobView> = jobs
        .into_iter()
        .map(|job| {
            let bar = match &display {
                Display::Bars(bars) => Some(bars.add(new_bar(&job.label))),
                _ => None,
            };
            (
                job.job_id,
                JobView {
                    label: job.label,
                    bar,
                    finished: false,
                },
            )
        })
        .collect();
    let mut summary = FollowSummary::default();
    while views.values().any(|view| !view.finished) {
        let delivery = match events.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Err(lost(error.to_string())),
            None => return Err(lost("the broker closed the subscription".into())),
        };
        let Ok(event) = serde_json::from_slice::<StatusEvent>(&delivery.data) else {
            tracing::warn!("ignoring an event that does not parse");
            continue;
        };
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
        match event.state {
            JobState::Done { .. } => summary.done += 1,
            JobState::Failed { .. } => summary.failed += 1,
            _ => continue,
        }
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
            // The master playlist path is the result: stdout, for scripts.
            println!("{}", path.display());
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

fn lost(detail: String) -> CliError {
    CliError::Broker(format!(
        "lost the connection while following jobs ({detail}); the jobs go on in the pool"
    ))
}

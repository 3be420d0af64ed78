//! `hlsmux cancel`: stop jobs that are queued or running.
//!
//! The cancellation goes into the pool's cancellations stream, which every
//! worker reads: the job in hand stops within a moment, a queued job fails
//! as `cancelled` when a worker takes it, without being encoded. Either
//! way nothing is published and the input stays where it is.

use hlsmux_amqp::HistoryStart;
use hlsmux_protocol::{CancelRequest, FailureReason, JobId};
use serde_json::json;

use crate::broker::Broker;
use crate::cli::{CancelArgs, PoolArgs};
use crate::control::who_asks;
use crate::error::CliError;
use crate::follow::{Attached, FollowedJob};
use crate::history::{self, JobSummary};

pub async fn run(pool: &PoolArgs, args: CancelArgs) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let summaries = history::summarise(&history::read(&broker, HistoryStart::First).await?);
    let latest = |job: JobId| summaries.iter().find(|summary| summary.job_id == job);
    // Refuse the whole command before sending anything, as submit does.
    for job in &args.jobs {
        if let Some(summary) = latest(*job).filter(|summary| has_ended(summary)) {
            return Err(CliError::AlreadyEnded {
                job: *job,
                state: summary.state,
            });
        }
    }

    let attached = if args.wait {
        Some(Attached::before_publishing(&broker).await?)
    } else {
        None
    };
    let publisher = broker.publisher().await?;
    let by = who_asks();
    for job in &args.jobs {
        send(&broker, &publisher, *job, &by).await?;
        let where_it_is = match latest(*job) {
            Some(summary) if summary.state == "running" => format!(
                "running on muxer {} ({}): it stops within seconds",
                summary.muxer_id, summary.worker
            ),
            Some(summary) => format!(
                "back in muxer {}'s queue: it fails as cancelled when a worker takes it, unencoded",
                summary.muxer_id
            ),
            None => "not started: it fails as cancelled when a worker takes it, unencoded".into(),
        };
        if args.json {
            println!(
                "{}",
                json!({ "state": "cancel_requested", "job_id": job, "by": by })
            );
        } else {
            eprintln!("{job}: cancellation sent; {where_it_is}");
        }
    }
    let Some(attached) = attached else {
        return Ok(());
    };

    let followed = args
        .jobs
        .iter()
        .map(|job| FollowedJob {
            job_id: *job,
            label: job.to_string(),
        })
        .collect();
    let summary = attached
        .follow(&broker, followed, args.json, pool.output_root.as_deref())
        .await?;
    let too_late: Vec<JobId> = summary
        .ends
        .iter()
        .filter(|end| end.reason != Some(FailureReason::Cancelled))
        .map(|end| end.job_id)
        .collect();
    if too_late.is_empty() {
        Ok(())
    } else {
        Err(CliError::EndedBeforeCancel(too_late))
    }
}

/// Sends one cancellation into the pool's cancellations stream (for the
/// CLI and the gateway alike).
pub async fn send(
    broker: &Broker,
    publisher: &lapin::Channel,
    job: JobId,
    by: &str,
) -> Result<(), CliError> {
    let request = CancelRequest::new(job, by.to_owned());
    broker
        .publish_command(
            publisher,
            &broker.topology().cancellations_exchange(),
            "",
            &format!("cancel-{job}"),
            &request,
        )
        .await
}

/// Whether the job's latest state is an end (`done` or `failed`).
pub fn has_ended(summary: &JobSummary) -> bool {
    matches!(summary.state, "done" | "failed")
}

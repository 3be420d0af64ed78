//! `hlsmux dlq`: the dead-lettered jobs, listed and retried. The messages
//! are taken from the dead-letter queue unacknowledged, so whatever is not
//! retried goes back to it when the channel closes.

use std::collections::HashSet;

use hlsmux_amqp::last_death;
use hlsmux_protocol::{JobId, JobRequest};
use lapin::Channel;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use serde_json::json;

use crate::broker::Broker;
use crate::cli::{DlqCommand, PoolArgs};
use crate::error::CliError;

/// One message of the dead-letter queue.
struct DeadLetter {
    message: BasicGetMessage,
    job: Result<JobRequest, String>,
    /// RabbitMQ's reason (`rejected`, `delivery_limit`) and death count.
    death: Option<(String, i64)>,
}

impl DeadLetter {
    fn why(&self) -> String {
        match &self.death {
            Some((reason, _)) if reason == "delivery_limit" => {
                "delivery limit reached (worker crashed or gave it back every time)".into()
            }
            Some((reason, _)) if reason == "rejected" => {
                "failed (see its failed event for the reason)".into()
            }
            Some((reason, _)) => reason.clone(),
            None => "unknown".into(),
        }
    }
}

pub async fn run(pool: &PoolArgs, command: DlqCommand) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let channel = broker.channel().await?;
    let letters = take_all(&channel, &broker.topology().dead_letter_queue()).await?;
    let result = match command {
        DlqCommand::List { json } => {
            list(&letters, json);
            Ok(())
        }
        DlqCommand::Retry { jobs, all } => retry(&broker, &letters, &jobs, all).await,
    };
    // Closing the channel returns every message not acknowledged above.
    let _ = channel.close(200, "done".into()).await;
    result
}

async fn take_all(channel: &Channel, queue: &str) -> Result<Vec<DeadLetter>, CliError> {
    let mut letters = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let job = JobRequest::from_json(&message.delivery.data).map_err(|e| e.to_string());
        let death = last_death(&message.delivery.properties);
        letters.push(DeadLetter {
            message,
            job,
            death,
        });
    }
    Ok(letters)
}

fn list(letters: &[DeadLetter], json: bool) {
    if !json && letters.is_empty() {
        eprintln!("the dead-letter queue is empty");
        return;
    }
    for letter in letters {
        match (&letter.job, json) {
            (Ok(job), true) => println!(
                "{}",
                json!({
                    "job_id": job.job_id,
                    "muxer_id": job.muxer_id,
                    "input": job.input,
                    "output": job.output,
                    "death_reason": letter.death.as_ref().map(|(reason, _)| reason),
                    "death_count": letter.death.as_ref().map(|(_, count)| count),
                })
            ),
            (Ok(job), false) => println!(
                "{}  muxer {}  {}  {}",
                job.job_id,
                job.muxer_id,
                job.input,
                letter.why()
            ),
            (Err(error), true) => println!(
                "{}",
                json!({ "job_id": null, "error": error, "death_reason": letter.death.as_ref().map(|(r, _)| r) })
            ),
            (Err(error), false) => println!("(not a job: {error})"),
        }
    }
}

async fn retry(
    broker: &Broker,
    letters: &[DeadLetter],
    wanted: &[JobId],
    all: bool,
) -> Result<(), CliError> {
    let wanted: HashSet<JobId> = wanted.iter().copied().collect();
    let publisher = broker.publisher().await?;
    let mut found = HashSet::new();
    let mut retried = 0;
    for letter in letters {
        let Ok(job) = &letter.job else { continue };
        if !all && !wanted.contains(&job.job_id) {
            continue;
        }
        found.insert(job.job_id);
        broker.publish_job(&publisher, job).await?;
        // Only once the copy is confirmed in the muxer's queue.
        letter
            .message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        eprintln!("{}: back in muxer {}'s queue", job.job_id, job.muxer_id);
        println!("{}", job.job_id);
        retried += 1;
    }
    let missing: Vec<String> = wanted.difference(&found).map(ToString::to_string).collect();
    if !missing.is_empty() {
        return Err(CliError::NotDeadLettered(missing.join(", ")));
    }
    if all && retried == 0 {
        eprintln!("the dead-letter queue holds no job to retry");
    }
    Ok(())
}

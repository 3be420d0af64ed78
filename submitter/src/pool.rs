//! `hlsmux workers`: the pool at a glance, from the workers' heartbeats
//! and the broker's own queue counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hlsmux_protocol::{Heartbeat, MuxerId};
use serde::Serialize;
use time::OffsetDateTime;

use crate::broker::Broker;
use crate::cli::{PoolArgs, WorkersArgs};
use crate::error::CliError;
use crate::history::read_stream;
use hlsmux_amqp::HistoryStart;

/// How far back heartbeats are read: a worker silent longer is not shown.
const LOOK_BACK: Duration = Duration::from_secs(600);

/// One worker: its latest heartbeat, and whether it has gone silent.
#[derive(Debug, Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// Three heartbeats missed: the worker is gone (crashed, powered off,
    /// cut off from the broker).
    pub lost: bool,
}

/// One muxer's queue, as the broker counts it.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub muxer_id: MuxerId,
    pub ready: u32,
    pub consumers: u32,
    /// Jobs in hand: its live workers that are busy or draining.
    pub in_hand: usize,
}

/// The `--json` document of `hlsmux workers`.
#[derive(Debug, Serialize)]
pub struct PoolView {
    pub workers: Vec<WorkerView>,
    pub queues: Vec<QueueView>,
}

pub async fn workers(pool: &PoolArgs, args: WorkersArgs) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let view = view(&broker).await?;
    if args.json {
        println!("{}", serde_json::to_string(&view).unwrap_or_default());
        return Ok(());
    }
    print_table(&view, OffsetDateTime::now_utc());
    Ok(())
}

/// The pool as its heartbeats and queue counts show it now (for the CLI
/// and the gateway alike).
pub async fn view(broker: &Broker) -> Result<PoolView, CliError> {
    let heartbeats: Vec<Heartbeat> = read_stream(
        broker,
        &broker.topology().heartbeat_stream(),
        HistoryStart::ago(LOOK_BACK),
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    // The latest heartbeat of each worker (host and muxer: a restarted
    // worker replaces its predecessor).
    let mut latest: BTreeMap<(MuxerId, String), Heartbeat> = BTreeMap::new();
    for heartbeat in heartbeats {
        latest.insert((heartbeat.muxer_id, heartbeat.worker.clone()), heartbeat);
    }
    let workers: Vec<WorkerView> = latest
        .into_values()
        .map(|heartbeat| WorkerView {
            lost: heartbeat.is_lost(now),
            heartbeat,
        })
        .collect();
    let muxers: BTreeSet<MuxerId> = workers.iter().map(|w| w.heartbeat.muxer_id).collect();
    let mut queues = Vec::new();
    for muxer in muxers {
        let Some(state) = broker.queue_state(muxer).await? else {
            continue;
        };
        let in_hand = workers
            .iter()
            .filter(|w| w.heartbeat.muxer_id == muxer && !w.lost && w.heartbeat.state.has_job())
            .count();
        queues.push(QueueView {
            muxer_id: muxer,
            ready: state.ready,
            consumers: state.consumers,
            in_hand,
        });
    }
    Ok(PoolView { workers, queues })
}

fn print_table(view: &PoolView, now: OffsetDateTime) {
    if view.workers.is_empty() {
        eprintln!(
            "no worker has sent a heartbeat in the last {} minutes",
            LOOK_BACK.as_secs() / 60
        );
        return;
    }
    println!(
        "{:>5}  {:<20}  {:<17}  {:<46}  {:>5}  {:<12}  {:>5}  {:<10}  LAST SEEN",
        "MUXER", "WORKER", "STATE", "JOB", "DONE", "ENCODER", "TEMP", "THROTTLED"
    );
    for worker in &view.workers {
        let heartbeat = &worker.heartbeat;
        let state = if worker.lost {
            "lost"
        } else {
            heartbeat.state.as_str()
        };
        println!(
            "{:>5}  {:<20}  {:<17}  {:<46}  {:>5}  {:<12}  {:>5}  {:<10}  {} s ago",
            heartbeat.muxer_id,
            heartbeat.worker,
            state,
            match (heartbeat.job, heartbeat.chunk) {
                (Some(job), Some(chunk)) => format!("{job} chunk {chunk}"),
                (Some(job), None) => job.to_string(),
                (None, _) => "-".into(),
            },
            heartbeat
                .percent
                .map_or_else(|| "-".into(), |p| format!("{p:.0}%")),
            heartbeat.encoder,
            heartbeat
                .temperature_celsius
                .map_or_else(|| "-".into(), |t| format!("{t:.0}°C")),
            if heartbeat.throttled.is_empty() {
                "-".to_owned()
            } else {
                heartbeat.throttled.join(",")
            },
            (now - heartbeat.at).whole_seconds(),
        );
    }
    println!();
    println!(
        "{:>5}  {:>6}  {:>8}  {:>9}",
        "MUXER", "READY", "IN HAND", "CONSUMERS"
    );
    for queue in &view.queues {
        println!(
            "{:>5}  {:>6}  {:>8}  {:>9}",
            queue.muxer_id, queue.ready, queue.in_hand, queue.consumers
        );
    }
}

//! What can go wrong at the command line, and the exit status for each.

use std::path::PathBuf;

use hlsmux_protocol::MuxerId;

/// Exit statuses of `hlsmux submit`, part of its interface.
pub mod exit {
    pub const DONE: u8 = 0;
    pub const JOB_FAILED: u8 = 1;
    pub const INPUT_ERROR: u8 = 2;
    pub const BROKER_UNREACHABLE: u8 = 3;
    /// Ctrl-C, as shells report a SIGINT.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}: no such file")]
    InputMissing(PathBuf),
    #[error("{path}: {detail}")]
    InputUnusable { path: PathBuf, detail: String },
    #[error("{pattern}: {detail} (a quoted pattern is expanded by hlsmux: `'videos/*.mp4'`)")]
    BadPattern { pattern: String, detail: String },
    #[error("media root {path} is not a directory: mount it or set HLSMUX_MEDIA_ROOT")]
    MediaRootMissing { path: PathBuf },
    #[error("cannot copy {from} into the media root at {to}: {detail}")]
    CopyFailed {
        from: PathBuf,
        to: PathBuf,
        detail: String,
    },
    #[error("--name {name:?} is not usable: {detail}")]
    BadName { name: String, detail: String },
    #[error("--name names one output, but {count} files were given")]
    NameWithManyFiles { count: usize },
    #[error(
        "no worker queue for muxer {0}: start a worker with HLSMUX_MUXER_ID={0}, or pick another --muxer"
    )]
    Unroutable(MuxerId),
    #[error(
        "muxer {0} is unknown to the pool: no worker of muxer {0} has started, and the broker definitions do not name it (start its worker, or add the Pi to the inventory and import the rendered definitions)"
    )]
    UnknownMuxer(MuxerId),
    #[error(
        "RabbitMQ at {node} would not take the message ({detail}); in a cluster, a queue may have lost the majority of its nodes: check `rabbitmqctl cluster_status` and try again"
    )]
    Refused {
        /// The node's URL with its password hidden.
        node: String,
        detail: String,
    },
    #[error("no muxer from {first} to {last} has a running worker: start one, or name --muxer")]
    NoMuxerAvailable { first: MuxerId, last: MuxerId },
    #[error(
        "cannot reach RabbitMQ at {url} ({detail}): is the broker running? (set HLSMUX_AMQP_URL)"
    )]
    BrokerUnreachable {
        /// The URL with its password hidden.
        url: String,
        detail: String,
    },
    #[error("RabbitMQ error: {0}")]
    Broker(String),
    #[error(
        "RabbitMQ refused this broker user ({detail}): submit, status, watch, jobs, workers and cancel need the submit user; drain, resume and dlq need the operator user (hlsmux-deploy renders operator/hlsmux.env)"
    )]
    NotPermitted { detail: String },
    #[error(
        "the pool has no {name} in this vhost, and this broker user may not create it: start a worker of the pool, or import the rendered definitions.json"
    )]
    PoolMissing { name: String },
    #[error("not in the dead-letter queue: {0} (see `hlsmux dlq list`)")]
    NotDeadLettered(String),
    #[error(
        "no event of job {0} in the pool's history (it keeps events 7 days unless the pool set otherwise; a job not yet started has none)"
    )]
    UnknownJob(hlsmux_protocol::JobId),
    #[error(
        "interrupted: jobs already queued go on in the pool (`hlsmux watch JOB` follows one again)"
    )]
    Interrupted,
    #[error("{failed} of {total} jobs failed")]
    JobsFailed { failed: usize, total: usize },
    #[error(
        "job {job} has already ended ({state}): nothing to cancel, nothing sent (`hlsmux status {job}` shows how)"
    )]
    AlreadyEnded {
        job: hlsmux_protocol::JobId,
        state: &'static str,
    },
    #[error("{} ended before the cancellation reached {}: {}", plural_jobs(.0.len()), if .0.len() == 1 { "it" } else { "them" }, join(.0))]
    EndedBeforeCancel(Vec<hlsmux_protocol::JobId>),
}

fn plural_jobs(count: usize) -> String {
    if count == 1 {
        "a job".into()
    } else {
        format!("{count} jobs")
    }
}

fn join(jobs: &[hlsmux_protocol::JobId]) -> String {
    jobs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::JobsFailed { .. } | CliError::EndedBeforeCancel(_) => exit::JOB_FAILED,
            CliError::Interrupted => exit::INTERRUPTED,
            CliError::BrokerUnreachable { .. }
            | CliError::Broker(_)
            | CliError::NotPermitted { .. }
            | CliError::PoolMissing { .. }
            | CliError::Refused { .. } => exit::BROKER_UNREACHABLE,
            _ => exit::INPUT_ERROR,
        }
    }
}

impl From<lapin::Error> for CliError {
    fn from(error: lapin::Error) -> Self {
        if hlsmux_amqp::is_access_refused(&error) {
            CliError::NotPermitted {
                detail: error.to_string(),
            }
        } else {
            CliError::Broker(error.to_string())
        }
    }
}

impl From<hlsmux_amqp::PublishError> for CliError {
    fn from(error: hlsmux_amqp::PublishError) -> Self {
        match error {
            hlsmux_amqp::PublishError::Broker(error) => error.into(),
            other => CliError::Broker(other.to_string()),
        }
    }
}

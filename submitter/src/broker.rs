//! The submit tool's edge to RabbitMQ: a deadpool-managed connection, the
//! exchange declarations, muxer queue lookups, job publishing and event
//! subscriptions. It never declares a muxer queue: only workers do.

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_lapin::{Config, Pool, Runtime};
use hlsmux_amqp::{
    AmqpUrls, HistoryStart, PublishError, declare, is_access_refused, is_not_found, publish_json,
    stream,
};
use hlsmux_protocol::{JobRequest, MuxerId, Topology};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ConnectionProperties, Consumer, ErrorKind, Queue};

use crate::cli::{MuxerRange, PoolArgs};
use crate::error::CliError;

/// What the broker says about one muxer's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueState {
    pub ready: u32,
    pub consumers: u32,
}

pub struct Broker {
    /// One connection pool per broker node, in the order to try them.
    pools: Vec<Pool>,
    /// The node that answered last: tried first next time.
    answering: AtomicUsize,
    urls: AmqpUrls,
    topology: Topology,
}

impl Broker {
    /// Connects and declares the pool's exchanges.
    pub async fn connect(args: &PoolArgs) -> Result<Self, CliError> {
        let name = format!(
            "hlsmux submit {} pid {}",
            args.namespace,
            std::process::id()
        );
        let mut pools = Vec::with_capacity(args.amqp_url.len());
        for url in args.amqp_url.iter() {
            let config = Config {
                url: Some(url.expose()),
                ..Config::default()
            };
            let name = name.clone();
            let pool = config
                .create_pool(
                    move || {
                        ConnectionProperties::default().with_connection_name(name.clone().into())
                    },
                    Runtime::Tokio1,
                )
                .map_err(|e| CliError::BrokerUnreachable {
                    url: url.to_string(),
                    detail: e.to_string(),
                })?;
            pools.push(pool);
        }
        let broker = Self {
            pools,
            answering: AtomicUsize::new(0),
            urls: args.amqp_url.clone(),
            topology: Topology::new(args.namespace.clone()),
        };
        broker.ensure_pool_exists().await?;
        Ok(broker)
    }

    /// Checks that the pool's exchanges and streams exist, creating them
    /// when they do not and this user may (a development broker); a
    /// least-privileged user may only check.
    async fn ensure_pool_exists(&self) -> Result<(), CliError> {
        let connection = self.connection().await?;
        let Some(missing) = declare::first_missing(&self.topology, &connection).await? else {
            return Ok(());
        };
        match declare::pool(&self.topology, &connection).await {
            Ok(()) => Ok(()),
            Err(error) if is_access_refused(&error) => Err(CliError::PoolMissing { name: missing }),
            Err(error) => Err(error.into()),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A connection to the node that answered last, or else to the first
    /// of the others that answers, in order.
    async fn connection(&self) -> Result<deadpool_lapin::Object, CliError> {
        let first = self.answering.load(Ordering::Relaxed);
        let count = self.pools.len();
        let mut last_error = String::new();
        for index in (0..count).map(|offset| (first + offset) % count) {
            match self.pools[index].get().await {
                Ok(connection) => {
                    self.answering.store(index, Ordering::Relaxed);
                    return Ok(connection);
                }
                Err(error) => {
                    last_error = match error {
                        deadpool_lapin::PoolError::Backend(error) => describe(&error),
                        other => other.to_string(),
                    };
                }
            }
        }
        Err(CliError::BrokerUnreachable {
            url: self.urls.to_string(),
            detail: last_error,
        })
    }

    pub async fn channel(&self) -> Result<Channel, CliError> {
        Ok(self.connection().await?.create_channel().await?)
    }

    /// The muxer's queue counts, or `None` when no worker ever declared it.
    pub async fn queue_state(&self, muxer: MuxerId) -> Result<Option<QueueState>, CliError> {
        Ok(self
            .existing_queue(&self.topology.muxer_queue(muxer))
            .await?
            .map(|queue| QueueState {
                ready: queue.message_count(),
                consumers: queue.consumer_count(),
            }))
    }

    /// Binds the pool's control stream for `muxer`, where this user may
    /// (a development broker as guest). The rendered definitions bind it
    /// for every Pi, and a worker binds its own muxer when it starts, so a
    /// refusal here is no error: an unbound muxer shows when the command
    /// cannot be routed.
    pub async fn ensure_control_binding(&self, muxer: MuxerId) -> Result<(), CliError> {
        let name = self.topology.control_stream();
        if self.existing_queue(&name).await?.is_none() {
            return Err(CliError::PoolMissing { name });
        }
        let channel = self.channel().await?;
        match declare::control_binding(&self.topology, &channel, muxer).await {
            Ok(()) => Ok(()),
            Err(error) if is_access_refused(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The queue named `name`, or `None` when it does not exist. A passive
    /// declaration needs no permission.
    async fn existing_queue(&self, name: &str) -> Result<Option<Queue>, CliError> {
        // A passive declare of a missing queue closes its channel: use a
        // channel of its own.
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(queue) => {
                let _ = channel.close(200, "done".into()).await;
                Ok(Some(queue))
            }
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The muxers in `range` whose queue has a consumer, with their ready
    /// jobs; an error when there is none.
    pub async fn live_muxers(&self, range: MuxerRange) -> Result<Vec<(MuxerId, u32)>, CliError> {
        let mut live = Vec::new();
        for muxer in range.ids() {
            if let Some(state) = self.queue_state(muxer).await?
                && state.consumers > 0
            {
                live.push((muxer, state.ready));
            }
        }
        if live.is_empty() {
            return Err(CliError::NoMuxerAvailable {
                first: range.first,
                last: range.last,
            });
        }
        Ok(live)
    }

    /// A channel in confirm mode for publishing jobs.
    pub async fn publisher(&self) -> Result<Channel, CliError> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    /// Publishes a job, persistent and mandatory, and waits for the broker
    /// to confirm it reached the muxer's queue.
    pub async fn publish_job(&self, channel: &Channel, job: &JobRequest) -> Result<(), CliError> {
        publish_json(
            channel,
            &self.topology.jobs_exchange(),
            &Topology::job_routing_key(job.muxer_id),
            &job.job_id.to_string(),
            job,
            true,
            hlsmux_telemetry::inject_trace_context(&tracing::Span::current()),
        )
        .await
        .map_err(|error| match error {
            PublishError::Unroutable { .. } => CliError::Unroutable(job.muxer_id),
            other => self.publish_failed(other),
        })
    }

    /// A failed publish in words, naming the node that refused it.
    fn publish_failed(&self, error: PublishError) -> CliError {
        match error {
            PublishError::Nacked { .. } | PublishError::ConfirmTimeout => CliError::Refused {
                node: self.answering_node(),
                detail: error.to_string(),
            },
            other => other.into(),
        }
    }

    /// The node that answered last, its password hidden.
    fn answering_node(&self) -> String {
        self.urls
            .iter()
            .nth(self.answering.load(Ordering::Relaxed))
            .map_or_else(|| self.urls.to_string(), ToString::to_string)
    }

    /// Publishes `message` to `exchange` with `routing_key`, persistent and
    /// mandatory, and waits for the broker to confirm it arrived: for
    /// control commands and cancellations. Never through the default
    /// exchange, which the pool's users may not write to.
    pub async fn publish_command(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        message: &impl serde::Serialize,
    ) -> Result<(), CliError> {
        publish_json(
            channel,
            exchange,
            routing_key,
            message_id,
            message,
            true,
            FieldTable::default(),
        )
        .await
        .map_err(|error| self.publish_failed(error))
    }

    /// Reads the pool's event history stream from `from`. Reading history,
    /// rather than a private queue, means a follower that lost its
    /// connection resumes where it was and misses nothing.
    pub async fn event_history(&self, from: HistoryStart) -> Result<Consumer, CliError> {
        self.read_stream(&self.topology.event_history_stream(), from)
            .await
    }

    /// Reads one of the pool's streams from `from`.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: HistoryStart,
    ) -> Result<Consumer, CliError> {
        let channel = self.channel().await?;
        Ok(stream::open(&channel, stream, from, "hlsmux-read").await?)
    }
}

/// A connection error in words a person can act on.
fn describe(error: &lapin::Error) -> String {
    match error.kind() {
        ErrorKind::IOError(io) => io.to_string(),
        ErrorKind::ProtocolError(amqp) => amqp.to_string(),
        _ => error.to_string(),
    }
}

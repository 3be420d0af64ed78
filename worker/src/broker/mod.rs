//! The worker's edge to RabbitMQ: one connection, a consuming channel with
//! prefetch 1 on the muxer's queue, a confirming channel for events, and a
//! channel of its own for each side feature (tidying, dead-letter notices,
//! drain commands, cancellations), opened afresh on each attempt so that a
//! side feature's queue being unavailable closes only its own channel.

use hlsmux_amqp::{AmqpUrl, AmqpUrls, HistoryStart, declare, stream};
use hlsmux_protocol::Topology;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};

use futures_util::StreamExt;

use crate::config::Settings;

mod chunks;
mod error;
mod outage;
pub mod outcome_ledger;
mod publisher;

pub use chunks::ChunkQueue;
pub use error::BrokerError;
pub use outage::Outage;
use outcome_ledger::OutcomeLedger;
pub use publisher::Publisher;
use std::sync::Arc;

/// How long to wait for a delivery that crossed a consumer cancellation.
const STRAY_DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One job at a time: the broker hands a worker its next job only after the
/// current one is acknowledged, so queued jobs stay free for other workers.
const PREFETCH: u16 = 1;

/// Connects to the first of `urls` that answers, in order.
async fn connect_first(
    urls: &AmqpUrls,
    properties: ConnectionProperties,
) -> Result<(Connection, AmqpUrl), BrokerError> {
    let mut last_error = None;
    for url in urls.iter() {
        match Connection::connect_uri(url.uri().clone(), properties.clone()).await {
            Ok(connection) => return Ok((connection, url.clone())),
            Err(error) => {
                if urls.len() > 1 {
                    tracing::warn!(%url, %error, "broker node unreachable; trying the next");
                }
                last_error = Some(error);
            }
        }
    }
    Err(BrokerError::Connect {
        urls: urls.clone(),
        source: last_error.unwrap_or_else(|| unreachable!("AmqpUrls is never empty")),
    })
}

/// An open connection with the worker's channels.
pub struct BrokerSession {
    connection: Connection,
    jobs: Channel,
    muxer_id: hlsmux_protocol::MuxerId,
    topology: Topology,
    events: Publisher,
    chunks: ChunkQueue,
    queue: String,
    consumer_tag: String,
}

impl BrokerSession {
    /// Connects, declares the topology and this muxer's queue, and prepares
    /// both channels.
    /// Opens a session; the outcomes it publishes go into `outcomes`, which
    /// outlives it.
    pub async fn open(
        settings: &Settings,
        worker_name: &str,
        encoder: &str,
        outcomes: Arc<OutcomeLedger>,
    ) -> Result<Self, BrokerError> {
        let properties = ConnectionProperties::default().with_connection_name(
            format!(
                "hlsmux-worker {} muxer {} on {worker_name} pid {}",
                settings.broker.namespace,
                settings.broker.muxer_id,
                std::process::id()
            )
            .into(),
        );
        let (connection, url) = connect_first(&settings.broker.amqp_url, properties).await?;
        let url = &url;
        let topology_error = |source| BrokerError::Topology {
            url: url.clone(),
            source,
        };
        let topology = Topology::new(settings.broker.namespace.clone())
            .with_history_retention(settings.broker.history_retention.clone());
        declare::pool(&topology, &connection)
            .await
            .map_err(topology_error)?;
        let jobs = connection.create_channel().await.map_err(topology_error)?;
        declare::muxer_queue(&topology, &jobs, settings.broker.muxer_id)
            .await
            .map_err(topology_error)?;
        jobs.basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(topology_error)?;
        let history = connection.create_channel().await.map_err(topology_error)?;
        let events_channel = connection.create_channel().await.map_err(topology_error)?;
        events_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(topology_error)?;
        let chunks = ChunkQueue::open(&connection, events_channel.clone(), &topology, encoder)
            .await
            .map_err(topology_error)?;
        Ok(Self {
            connection,
            jobs,
            chunks,
            events: Publisher {
                channel: events_channel,
                history,
                topology: topology.clone(),
                exchange: topology.events_exchange(),
                heartbeat_stream: topology.heartbeat_stream(),
                tidy_wait_queue: topology.tidy_wait_queue(settings.broker.muxer_id),
                muxer_id: settings.broker.muxer_id,
                worker_name: worker_name.to_owned(),
                outcomes,
            },
            queue: topology.muxer_queue(settings.broker.muxer_id),
            muxer_id: settings.broker.muxer_id,
            topology: topology.clone(),
            consumer_tag: format!("hlsmux-worker-{worker_name}-{}", std::process::id()),
        })
    }

    pub async fn consume(&self) -> Result<Consumer, BrokerError> {
        consume(&self.jobs, &self.queue, self.consumer_tag.clone()).await
    }

    /// Whether the connection still holds (a side feature's failure may
    /// have closed only its own channel).
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// A fresh channel with prefetch 1, for one side feature.
    async fn side_channel(&self) -> Result<Channel, BrokerError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(BrokerError::Lost)?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(BrokerError::Lost)?;
        Ok(channel)
    }

    /// Declares this muxer's tidy queues and consumes its due tidy requests.
    pub async fn consume_tidy(&self) -> Result<Consumer, BrokerError> {
        let channel = self.side_channel().await?;
        declare::tidy_queues(&self.topology, &channel, self.muxer_id)
            .await
            .map_err(BrokerError::Lost)?;
        let tag = format!("{}-tidy", self.consumer_tag);
        consume(&channel, &self.topology.tidy_queue(self.muxer_id), tag).await
    }

    /// Consumes the pool's dead-letter notices (shared by all workers).
    pub async fn consume_dead_letter_notices(&self) -> Result<Consumer, BrokerError> {
        let channel = self.side_channel().await?;
        let tag = format!("{}-dead-letters", self.consumer_tag);
        consume(&channel, &self.topology.dead_letter_notices_queue(), tag).await
    }

    /// Reads the pool's cancellations from the oldest kept.
    pub async fn read_cancellations(&self) -> Result<Consumer, BrokerError> {
        let channel = self.side_channel().await?;
        stream::open(
            &channel,
            &self.topology.cancellation_stream(),
            HistoryStart::First,
            &format!("{}-cancellations", self.consumer_tag),
        )
        .await
        .map_err(BrokerError::Lost)
    }

    /// Binds this muxer's commands into the pool's control stream and
    /// reads the stream from the oldest kept.
    pub async fn read_control(&self) -> Result<Consumer, BrokerError> {
        let channel = self.side_channel().await?;
        declare::control_binding(&self.topology, &channel, self.muxer_id)
            .await
            .map_err(BrokerError::Lost)?;
        stream::open(
            &channel,
            &self.topology.control_stream(),
            HistoryStart::First,
            &format!("{}-control", self.consumer_tag),
        )
        .await
        .map_err(BrokerError::Lost)
    }

    /// Cancels the consumer so the broker hands this worker no more jobs,
    /// and returns the jobs the broker pushed before the cancel arrived:
    /// they are not this worker's to start.
    pub async fn stop_consuming(
        &self,
        mut consumer: Consumer,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.jobs
            .basic_cancel(
                self.consumer_tag.as_str().into(),
                BasicCancelOptions::default(),
            )
            .await
            .map_err(BrokerError::Lost)?;
        let mut strays = Vec::new();
        while let Ok(Some(Ok(stray))) =
            tokio::time::timeout(STRAY_DELIVERY_WAIT, consumer.next()).await
        {
            strays.push(stray);
        }
        Ok(strays)
    }

    pub fn events(&self) -> &Publisher {
        &self.events
    }

    pub fn chunks(&self) -> &ChunkQueue {
        &self.chunks
    }

    /// Stops consuming and closes the connection; unacknowledged jobs go
    /// back to the queue.
    pub async fn close(self) {
        let _ = self
            .jobs
            .basic_cancel(
                self.consumer_tag.as_str().into(),
                BasicCancelOptions::default(),
            )
            .await;
        if let Err(error) = self
            .connection
            .close(200, "worker shutting down".into())
            .await
        {
            tracing::debug!(%error, "closing the broker connection");
        }
    }
}

/// Consumes `queue` on `channel` with acknowledgements, as `tag`.
async fn consume(channel: &Channel, queue: &str, tag: String) -> Result<Consumer, BrokerError> {
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::Lost)
}

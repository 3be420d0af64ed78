//! The pool's chunk queue for this worker's encoder: coordinators order
//! their split jobs' chunks into it (confirmed), and a worker takes one at
//! a time with `basic.get` when it has no job of its own in hand (so it
//! never holds a job and a chunk at once, see the app's `chunks`).

use hlsmux_amqp::{PublishError, declare, publish_json};
use hlsmux_protocol::{ChunkOrder, Topology};
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use super::error::BrokerError;

#[derive(Clone)]
pub struct ChunkQueue {
    /// Takes chunks.
    channel: Channel,
    /// Publishes orders, with confirms.
    confirmed: Channel,
    queue: String,
}

impl ChunkQueue {
    /// Declares the queue for `encoder` and opens its channels.
    pub(super) async fn open(
        connection: &Connection,
        confirmed: Channel,
        topology: &Topology,
        encoder: &str,
    ) -> lapin::Result<Self> {
        let channel = connection.create_channel().await?;
        declare::chunk_queue(topology, &channel, encoder).await?;
        Ok(Self {
            channel,
            confirmed,
            queue: topology.chunk_queue(encoder),
        })
    }

    /// Puts one chunk on the queue; `Ok` once the broker has it.
    pub async fn order(&self, order: &ChunkOrder) -> Result<(), PublishError> {
        let id = format!(
            "{}.chunk-{}",
            order.job_id().map(|id| id.to_string()).unwrap_or_default(),
            order.index
        );
        publish_json(
            &self.confirmed,
            "",
            &self.queue,
            &id,
            order,
            true,
            FieldTable::default(),
        )
        .await
    }

    /// Takes the next chunk, if one waits; the caller settles it.
    pub async fn take(&self) -> Result<Option<Delivery>, BrokerError> {
        let got = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(BrokerError::Lost)?;
        Ok(got.map(|message| message.delivery))
    }

    /// How many chunks wait (a passive declaration: no permission needed).
    pub async fn waiting(&self) -> Result<u32, BrokerError> {
        let queue = self
            .channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::Lost)?;
        Ok(queue.message_count())
    }
}

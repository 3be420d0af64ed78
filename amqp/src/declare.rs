//! Declares the pool's exchanges, queues and streams, with the names and
//! arguments `hlsmux_protocol::Topology` gives. Every declaration is
//! idempotent: each program declares what it uses on every connection.

use hlsmux_protocol::{ArgumentValue, MuxerId, QueueArguments, Topology};
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, Consumer, ExchangeKind, Queue};

use crate::replies::{is_not_found, is_precondition_failed};

/// Declares the exchanges, the dead-letter queues and the streams,
/// on a channel of their own.
pub async fn pool(topology: &Topology, connection: &Connection) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    for (exchange, kind) in pool_exchanges(topology) {
        declare_exchange(&channel, &exchange, kind).await?;
    }
    for queue in [
        topology.dead_letter_queue(),
        topology.dead_letter_notices_queue(),
    ] {
        declare_queue(&channel, &queue, &Topology::dead_letter_arguments()).await?;
        bind(&channel, &queue, &topology.dead_letter_exchange(), "").await?;
    }
    event_history(topology, connection).await?;
    declare_queue(
        &channel,
        &topology.heartbeat_stream(),
        &Topology::heartbeat_arguments(),
    )
    .await?;
    declare_queue(
        &channel,
        &topology.cancellation_stream(),
        &Topology::cancellation_arguments(),
    )
    .await?;
    declare_queue(
        &channel,
        &topology.control_stream(),
        &Topology::control_stream_arguments(),
    )
    .await?;
    declare_queue(
        &channel,
        &topology.webhook_log_stream(),
        &Topology::webhook_log_arguments(),
    )
    .await?;
    bind(
        &channel,
        &topology.webhook_log_stream(),
        &topology.webhook_records_exchange(),
        "",
    )
    .await?;
    bind(
        &channel,
        &topology.event_history_stream(),
        &topology.events_exchange(),
        Topology::ALL_EVENTS_BINDING,
    )
    .await?;
    bind(
        &channel,
        &topology.cancellation_stream(),
        &topology.cancellations_exchange(),
        "",
    )
    .await?;
    channel.close(200, "declared".into()).await
}

fn pool_exchanges(topology: &Topology) -> [(String, ExchangeKind); 6] {
    [
        (topology.webhook_records_exchange(), ExchangeKind::Fanout),
        (topology.jobs_exchange(), ExchangeKind::Direct),
        (topology.events_exchange(), ExchangeKind::Topic),
        (topology.dead_letter_exchange(), ExchangeKind::Fanout),
        (topology.cancellations_exchange(), ExchangeKind::Fanout),
        (topology.control_exchange(), ExchangeKind::Direct),
    ]
}

/// The first of the pool's exchanges, queues and streams that does not
/// exist, or `None` when all do. Passive declarations need no permission,
/// so a user that may not create them (the submit user) can still check.
pub async fn first_missing(
    topology: &Topology,
    connection: &Connection,
) -> lapin::Result<Option<String>> {
    // A passive declare of a missing name closes its channel.
    let channel = connection.create_channel().await?;
    let exists = |result: lapin::Result<()>| match result {
        Ok(()) => Ok(true),
        Err(error) if is_not_found(&error) => Ok(false),
        Err(error) => Err(error),
    };
    for (exchange, kind) in pool_exchanges(topology) {
        let found = channel
            .exchange_declare(
                exchange.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        if !exists(found)? {
            return Ok(Some(exchange));
        }
    }
    for queue in [
        topology.dead_letter_queue(),
        topology.dead_letter_notices_queue(),
        topology.event_history_stream(),
        topology.heartbeat_stream(),
        topology.cancellation_stream(),
        topology.control_stream(),
        topology.webhook_log_stream(),
    ] {
        let found = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await
            .map(|_| ());
        if !exists(found)? {
            return Ok(Some(queue));
        }
    }
    let _ = channel.close(200, "checked".into()).await;
    Ok(None)
}

/// Creates the event history stream with this program's retention
/// unless it exists: an existing stream keeps the retention it was
/// created with, whatever this program's settings say. Declared first and
/// checked only on a refusal, so that the usual cases (a fresh pool, the
/// same retention) make the broker close no channel, which client
/// libraries log as an error.
async fn event_history(topology: &Topology, connection: &Connection) -> lapin::Result<()> {
    let name = topology.event_history_stream();
    let create = connection.create_channel().await?;
    match declare_queue(&create, &name, &topology.event_history_arguments()).await {
        Ok(_) => create.close(200, "declared".into()).await,
        // It exists with another retention, which it keeps.
        Err(error) if is_precondition_failed(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Declares and binds one muxer's job queue. Only workers call this.
pub async fn muxer_queue(
    topology: &Topology,
    channel: &Channel,
    muxer: MuxerId,
) -> lapin::Result<Queue> {
    let name = topology.muxer_queue(muxer);
    let queue = declare_queue(channel, &name, &topology.muxer_queue_arguments()).await?;
    bind(
        channel,
        &name,
        &topology.jobs_exchange(),
        &Topology::job_routing_key(muxer),
    )
    .await?;
    Ok(queue)
}

/// Declares the pool's chunk queue for `encoder` (see
/// [`Topology::chunk_queue`]). Only workers call this.
pub async fn chunk_queue(
    topology: &Topology,
    channel: &Channel,
    encoder: &str,
) -> lapin::Result<Queue> {
    declare_queue(
        channel,
        &topology.chunk_queue(encoder),
        &Topology::chunk_queue_arguments(),
    )
    .await
}

/// Declares a muxer's tidy exchange, wait queue and tidy queue. Only
/// workers call this.
pub async fn tidy_queues(
    topology: &Topology,
    channel: &Channel,
    muxer: MuxerId,
) -> lapin::Result<()> {
    declare_exchange(channel, &topology.tidy_exchange(), ExchangeKind::Direct).await?;
    declare_queue(
        channel,
        &topology.tidy_wait_queue(muxer),
        &topology.tidy_wait_queue_arguments(muxer),
    )
    .await?;
    let tidy = topology.tidy_queue(muxer);
    declare_queue(channel, &tidy, &Topology::tidy_queue_arguments()).await?;
    bind(
        channel,
        &tidy,
        &topology.tidy_exchange(),
        &Topology::job_routing_key(muxer),
    )
    .await
}

/// Binds the control stream to the control exchange for one muxer, so
/// that commands for it are kept (the stream and exchange are the pool's).
/// The muxer's workers and a CLI that may do so bind it.
pub async fn control_binding(
    topology: &Topology,
    channel: &Channel,
    muxer: MuxerId,
) -> lapin::Result<()> {
    bind(
        channel,
        &topology.control_stream(),
        &topology.control_exchange(),
        &Topology::job_routing_key(muxer),
    )
    .await
}

/// Follows status events through a private queue (deleted with its
/// connection) bound with each of `bindings`. Subscribe before causing
/// the events, so that none is missed.
pub async fn subscribe_events(
    topology: &Topology,
    channel: &Channel,
    bindings: &[String],
    consumer_tag: &str,
) -> lapin::Result<Consumer> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive().auto_delete(),
            FieldTable::default(),
        )
        .await?;
    for binding in bindings {
        bind(
            channel,
            queue.name().as_str(),
            &topology.events_exchange(),
            binding,
        )
        .await?;
    }
    channel
        .basic_consume(
            queue.name().clone(),
            consumer_tag.into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// The AMQP field table of a queue's arguments.
pub fn field_table(arguments: &QueueArguments) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments.iter() {
        let value = match value {
            ArgumentValue::Text(text) => AMQPValue::LongString(LongString::from(text.as_str())),
            ArgumentValue::Integer(number) => AMQPValue::LongLongInt(*number),
        };
        table.insert(key.into(), value);
    }
    table
}

async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: &QueueArguments,
) -> lapin::Result<Queue> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions::durable(),
            field_table(arguments),
        )
        .await
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

//! The test's own corner of the real broker: a unique namespace, helpers to
//! publish and inspect, and deletion of everything it named when dropped.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hlsmux_amqp::stream::{self, Stamped};
use hlsmux_amqp::{HistoryStart, declare, publish_json, publish_json_with_expiration};
use hlsmux_protocol::{
    CancelRequest, EventState, JobId, JobRequest, MuxerId, StatusEvent, TidyRequest, Topology,
};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

/// The broker every test uses; override with `HLSMUX_TEST_AMQP_URL`.
/// How long subscribing to the pool's events may take before it is tried
/// again on a fresh connection.
const EVENTS_SUBSCRIBE_LIMIT: Duration = Duration::from_secs(20);

pub fn amqp_url() -> String {
    std::env::var("HLSMUX_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Counts RabbitMQ keeps for one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueCounts {
    pub ready: u32,
    pub unacked: u32,
    pub consumers: u32,
}

pub struct TestPool {
    /// The URLs workers and the CLI are given (comma-separated).
    urls: String,
    /// The node this harness itself talks to.
    own: BrokerNode,
    namespace: String,
    topology: Topology,
    connection: Connection,
    publisher: Channel,
    muxers: Mutex<BTreeSet<MuxerId>>,
}

/// A broker node the harness talks to: its AMQP URL, and its Erlang node
/// name for `rabbitmqctl -n` (`None`: the machine's own broker).
#[derive(Clone, Debug)]
pub struct BrokerNode {
    pub url: String,
    pub name: Option<String>,
}

impl BrokerNode {
    /// The broker every test uses (see [`amqp_url`]).
    pub fn local() -> Self {
        Self {
            url: amqp_url(),
            name: None,
        }
    }

    fn rabbitmqctl(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("rabbitmqctl");
        if let Some(name) = &self.name {
            command.args(["-n", name]);
        }
        command
    }
}

impl TestPool {
    pub async fn new(test_name: &str) -> Self {
        Self::on(test_name, &amqp_url(), BrokerNode::local()).await
    }

    /// A pool on the broker (or cluster) at `urls`, which the harness
    /// reaches through `own`.
    pub async fn on(test_name: &str, urls: &str, own: BrokerNode) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let short_name: String = test_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(30)
            .collect();
        let namespace = format!("t-{short_name}-{}", &suffix[..8]);
        let topology = Topology::new(namespace.parse().expect("valid namespace"));
        let connection = Connection::connect(&own.url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must run at {} for the tests: {e}", own.url));
        let publisher = connection.create_channel().await.expect("channel");
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        declare::pool(&topology, &connection)
            .await
            .expect("declare exchanges");
        Self {
            urls: urls.to_owned(),
            own,
            namespace,
            topology,
            connection,
            publisher,
            muxers: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn amqp_url(&self) -> String {
        self.urls.clone()
    }

    /// Opens the harness's own connection again (after its node restarted).
    pub async fn reconnect(&mut self) {
        self.connection = Connection::connect(&self.own.url, ConnectionProperties::default())
            .await
            .expect("reconnect to the broker");
        self.publisher = self.connection.create_channel().await.expect("channel");
        self.publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
    }

    /// Remembers a muxer whose queue this test makes, for clean-up.
    pub fn track_muxer(&self, muxer: MuxerId) {
        self.muxers.lock().expect("lock").insert(muxer);
    }

    /// Follows every status event of this pool from now on.
    pub async fn events(&self) -> EventLog {
        // On a connection of its own, and within a time: a broker under
        // the whole suite's load has been seen to crash a channel and
        // leave the harness's shared connection unanswering, which hung
        // a test instead of failing or retrying it.
        for attempt in 1..=3 {
            match tokio::time::timeout(EVENTS_SUBSCRIBE_LIMIT, self.subscribe_events()).await {
                Ok(Ok(log)) => return log,
                Ok(Err(error)) => eprintln!("subscribing to events, attempt {attempt}: {error}"),
                Err(_) => eprintln!("subscribing to events, attempt {attempt}: no answer"),
            }
        }
        panic!("cannot subscribe to the pool's events: the broker does not answer");
    }

    async fn subscribe_events(&self) -> lapin::Result<EventLog> {
        let connection =
            Connection::connect(&self.own.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let consumer = declare::subscribe_events(
            &self.topology,
            &channel,
            &[Topology::ALL_EVENTS_BINDING.to_owned()],
            "test-events",
        )
        .await?;
        Ok(EventLog {
            _connection: connection,
            _channel: channel,
            consumer,
            seen: Vec::new(),
        })
    }

    /// Publishes a job message directly, as a submitter would.
    pub async fn publish_job(&self, job: &JobRequest) {
        publish_json(
            &self.publisher,
            &self.topology.jobs_exchange(),
            &Topology::job_routing_key(job.muxer_id),
            &job.job_id.to_string(),
            job,
            true,
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("job published and routed");
    }

    /// Puts a tidy request in a muxer's wait queue, due after `delay`.
    pub async fn publish_tidy(&self, muxer: MuxerId, request: &TidyRequest, delay: Duration) {
        publish_json_with_expiration(
            &self.publisher,
            "",
            &self.topology.tidy_wait_queue(muxer),
            &request.job_id.to_string(),
            request,
            delay,
        )
        .await
        .expect("tidy request published and routed");
    }

    /// Publishes arbitrary bytes as a job message.
    pub async fn publish_raw(&self, muxer: MuxerId, body: &[u8], message_id: Option<JobId>) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.to_string().into());
        }
        let exchange = self.topology.jobs_exchange();
        self.publish_routed(
            &exchange,
            &Topology::job_routing_key(muxer),
            body,
            properties,
        )
        .await;
    }

    /// Puts `body` into the pool's chunk queue for `encoder`, as any
    /// program with the worker user's rights could.
    pub async fn publish_chunk_order(&self, encoder: &str, body: &[u8]) {
        let properties = BasicProperties::default().with_delivery_mode(2);
        self.publish_routed("", &self.topology.chunk_queue(encoder), body, properties)
            .await;
    }

    /// Publishes `body` as it is, mandatory and confirmed, and insists it
    /// reached a queue.
    async fn publish_routed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        let confirmation = self
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            confirmation.is_ack() && confirmation.take_message().is_none(),
            "{routing_key}: not routed"
        );
    }

    /// Puts a notice into the pool's dead-letter notices queue as RabbitMQ
    /// would write one: the dead message's body and ID, and an `x-death`
    /// entry with `reason` (`delivery_limit`, `rejected`, ...). What anyone
    /// who can publish to that queue can forge.
    pub async fn publish_dead_letter_notice(&self, body: &[u8], message_id: JobId, reason: &str) {
        use lapin::types::{AMQPValue, FieldArray, LongString};
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        death.insert(
            "queue".into(),
            AMQPValue::LongString(LongString::from(
                self.topology
                    .muxer_queue(MuxerId::new(1).expect("valid"))
                    .as_str(),
            )),
        );
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message_id.to_string().into())
            .with_headers(headers);
        let queue = self.topology.dead_letter_notices_queue();
        self.publish_routed("", &queue, body, properties).await;
    }

    /// Messages in `queue`, ready or delivered and not yet settled (0 when
    /// it does not exist).
    pub async fn messages_in(&self, queue: &str) -> u64 {
        list_queues(&self.own, &["name", "messages"])
            .await
            .iter()
            .find(|row| row["name"] == queue)
            .and_then(|row| row["messages"].as_u64())
            .unwrap_or(0)
    }

    /// Ready and consumer counts of a muxer queue (0 when it does not exist).
    pub async fn ready_and_consumers(&self, muxer: MuxerId) -> (u32, u32) {
        self.passive_counts(&self.topology.muxer_queue(muxer))
            .await
            .unwrap_or((0, 0))
    }

    /// Messages waiting in the dead-letter queue.
    pub async fn dead_letters(&self) -> u32 {
        self.passive_counts(&self.topology.dead_letter_queue())
            .await
            .map_or(0, |counts| counts.0)
    }

    /// Waits until the dead-letter queue holds at least `count` messages (a
    /// job is rejected there just after its `failed` event), and returns
    /// how many it holds then.
    pub async fn wait_for_dead_letters(&self, count: u32, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.dead_letters().await;
            if found >= count || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ready and consumer counts, or `None` when the queue does not exist.
    async fn passive_counts(&self, queue: &str) -> Option<(u32, u32)> {
        let channel = self.connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(queue) => {
                let _ = channel.close(200, "done".into()).await;
                Some((queue.message_count(), queue.consumer_count()))
            }
            Err(_) => None,
        }
    }

    /// Waits until `rabbitmqctl`'s counts for `muxer` satisfy `settled`, and
    /// returns them. RabbitMQ refreshes these statistics every few seconds,
    /// so a test first waits for counts that reflect what it did.
    pub async fn settled_queue_counts(
        &self,
        muxer: MuxerId,
        settled: impl Fn(&QueueCounts) -> bool,
        timeout: Duration,
    ) -> QueueCounts {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.queue_counts(muxer).await;
            if settled(&counts) || Instant::now() >= deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Closes, through `rabbitmqctl close_connection`, every broker
    /// connection whose client-provided name contains `name_contains` (as a
    /// broker restart or a network cut would end it). Returns how many.
    pub async fn close_connections(&self, name_contains: &str) -> usize {
        // The table format, not JSON: JSON shows pids as `#PID<...>`, which
        // close_connection does not take.
        let output = tokio::process::Command::new("rabbitmqctl")
            .args(["list_connections", "-s", "pid", "client_properties"])
            .output()
            .await
            .expect("rabbitmqctl runs");
        let listing = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut closed = 0;
        for row in listing.lines() {
            let Some((pid, properties)) = row.split_once('\t') else {
                continue;
            };
            if !properties.contains(name_contains) {
                continue;
            }
            let status = tokio::process::Command::new("rabbitmqctl")
                .args(["close_connection", pid, "closed by a hlsmux fault test"])
                .output()
                .await
                .expect("rabbitmqctl runs");
            assert!(status.status.success(), "close_connection {pid}");
            closed += 1;
        }
        closed
    }

    /// Every event in the pool's history stream (which survives broker
    /// restarts, unlike a subscription), read on a fresh connection until
    /// nothing new arrives for `quiet`.
    pub async fn history(&self, quiet: Duration) -> Vec<StatusEvent> {
        self.read_stream(&self.topology.event_history_stream(), quiet)
            .await
    }

    /// Every cancellation in the pool's cancellations stream, read as
    /// [`history`](Self::history) reads the events.
    pub async fn cancellations(&self, quiet: Duration) -> Vec<CancelRequest> {
        self.read_stream(&self.topology.cancellation_stream(), quiet)
            .await
    }

    async fn read_stream<T: serde::de::DeserializeOwned + Stamped>(
        &self,
        name: &str,
        quiet: Duration,
    ) -> Vec<T> {
        let connection = Connection::connect(&self.own.url, ConnectionProperties::default())
            .await
            .expect("connect to read a stream");
        let channel = connection.create_channel().await.expect("channel");
        let mut consumer = stream::open(&channel, name, HistoryStart::First, "test-stream-read")
            .await
            .unwrap_or_else(|error| panic!("read the {name} stream: {error}"));
        let mut messages = Vec::new();
        stream::read_until_quiet(&mut consumer, quiet, |parsed| {
            messages.push(parsed.expect("messages parse"));
            true
        })
        .await
        .unwrap_or_else(|error| panic!("read the {name} stream: {error}"));
        let _ = connection.close(200, "stream read".into()).await;
        messages
    }

    /// The name prefix of the connections of this pool's workers.
    pub fn worker_connection_name(&self) -> String {
        format!("hlsmux-worker {} ", self.topology.namespace())
    }

    /// The name prefix of the connections of this pool's `hlsmux` runs.
    pub fn cli_connection_name(&self) -> String {
        format!("hlsmux submit {} ", self.topology.namespace())
    }

    /// Waits until `muxer`'s queue holds no job, ready or unacknowledged,
    /// and fails the test if it does not within the patience.
    pub async fn assert_queue_empties(&self, muxer: MuxerId) {
        let counts = self
            .settled_queue_counts(muxer, |c| c.ready == 0 && c.unacked == 0, crate::PATIENCE)
            .await;
        assert_eq!(
            (counts.ready, counts.unacked),
            (0, 0),
            "muxer {muxer}'s queue: {counts:?}"
        );
    }

    /// Deletes `queue` (of this test's namespace), as an operator would.
    /// Declares `queue` as a plain classic queue without arguments, as a
    /// hand-made or older queue of that name would be.
    pub async fn declare_plain_queue(&self, queue: &str) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .expect("queue declared");
        let _ = channel.close(200, "declared".into()).await;
    }

    /// Makes `muxer`'s queue one that refuses every job (length 0, overflow
    /// `reject-publish`: the broker nacks), as a queue that lost its
    /// majority, or one an operator capped, does.
    pub async fn declare_refusing_muxer_queue(&self, muxer: MuxerId) {
        let queue = self.topology.muxer_queue(muxer);
        let channel = self.connection.create_channel().await.expect("channel");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-max-length".into(),
            lapin::types::AMQPValue::LongLongInt(0),
        );
        arguments.insert(
            "x-overflow".into(),
            lapin::types::AMQPValue::LongString("reject-publish".into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await
            .expect("queue declared");
        channel
            .queue_bind(
                queue.as_str().into(),
                self.topology.jobs_exchange().as_str().into(),
                Topology::job_routing_key(muxer).as_str().into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue bound");
        self.track_muxer(muxer);
        let _ = channel.close(200, "declared".into()).await;
    }

    pub async fn delete_queue(&self, queue: &str) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .expect("queue deleted");
        let _ = channel.close(200, "deleted".into()).await;
    }

    /// The `x-` arguments `queue` was declared with, as `rabbitmqctl` lists
    /// them (name to value); `None` when there is no such queue.
    pub async fn queue_arguments(
        &self,
        queue: &str,
    ) -> Option<std::collections::BTreeMap<String, serde_json::Value>> {
        let rows = list_queues(&self.own, &["name", "arguments"]).await;
        let row = rows.iter().find(|row| row["name"] == queue)?;
        // Each argument is listed as [name, type, value].
        let arguments = row["arguments"].as_array()?;
        Some(
            arguments
                .iter()
                .filter_map(|argument| {
                    let name = argument.get(0)?.as_str()?.to_owned();
                    Some((name, argument.get(2)?.clone()))
                })
                .collect(),
        )
    }

    /// The Erlang node that leads `queue` (a quorum queue or stream).
    pub async fn queue_leader(&self, queue: &str) -> Option<String> {
        list_queues(&self.own, &["name", "leader"])
            .await
            .into_iter()
            .find(|row| row["name"] == queue)
            .and_then(|row| row["leader"].as_str().map(str::to_owned))
    }

    /// All three counts, as `rabbitmqctl` reports them (the only place that
    /// shows unacknowledged messages without the management plugin).
    pub async fn queue_counts(&self, muxer: MuxerId) -> QueueCounts {
        let rows = list_queues(
            &self.own,
            &[
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ],
        )
        .await;
        let name = self.topology.muxer_queue(muxer);
        let row = rows
            .iter()
            .find(|row| row["name"] == name.as_str())
            .unwrap_or_else(|| panic!("queue {name} not listed"));
        let count = |key: &str| u32::try_from(row[key].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
        QueueCounts {
            ready: count("messages_ready"),
            unacked: count("messages_unacknowledged"),
            consumers: count("consumers"),
        }
    }

    /// Waits until `muxer`'s queue exists with at least `consumers` consumers.
    pub async fn wait_for_consumers(
        &self,
        muxer: MuxerId,
        consumers: u32,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let queue = self.topology.muxer_queue(muxer);
        while Instant::now() < deadline {
            // The queue must exist: with `consumers == 0` this waits for the
            // worker to have declared it.
            if self
                .passive_counts(&queue)
                .await
                .is_some_and(|(_, found)| found >= consumers)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let url = self.own.url.clone();
        let muxers: Vec<MuxerId> = self
            .muxers
            .lock()
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        // Drop cannot await: delete on a thread of its own with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(delete_everything(&url, topology, muxers));
            }
        });
        let _ = cleanup.join();
    }
}

/// `rabbitmqctl list_queues` of the default vhost with `fields`, one JSON
/// object per queue.
async fn list_queues(node: &BrokerNode, fields: &[&str]) -> Vec<serde_json::Value> {
    let output = node
        .rabbitmqctl()
        .args(["list_queues", "-q", "--formatter", "json"])
        .args(fields)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("rabbitmqctl JSON")
}

async fn delete_everything(url: &str, topology: Topology, muxers: Vec<MuxerId>) {
    let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    let mut queues: Vec<String> = Vec::new();
    for muxer in &muxers {
        queues.push(topology.muxer_queue(*muxer));
        queues.push(topology.tidy_wait_queue(*muxer));
        queues.push(topology.tidy_queue(*muxer));
    }
    queues.push(topology.dead_letter_queue());
    queues.push(topology.dead_letter_notices_queue());
    queues.push(topology.event_history_stream());
    queues.push(topology.heartbeat_stream());
    queues.push(topology.cancellation_stream());
    queues.push(topology.control_stream());
    queues.push(topology.webhook_log_stream());
    for queue in queues {
        let _ = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        topology.jobs_exchange(),
        topology.events_exchange(),
        topology.dead_letter_exchange(),
        topology.tidy_exchange(),
        topology.cancellations_exchange(),
        topology.control_exchange(),
        topology.webhook_records_exchange(),
    ] {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// How many of `events` are of `job` in `state`.
pub fn count_events(events: &[StatusEvent], job: JobId, state: EventState) -> usize {
    events
        .iter()
        .filter(|e| e.job_id == job && e.state.event_state() == state)
        .count()
}

/// Every status event of a test's pool, in arrival order.
pub struct EventLog {
    _connection: Connection,
    _channel: Channel,
    consumer: Consumer,
    seen: Vec<StatusEvent>,
}

impl EventLog {
    /// Waits for the first event (seen already or arriving) that matches.
    pub async fn wait_for(
        &mut self,
        what: &str,
        matches: impl Fn(&StatusEvent) -> bool,
        timeout: Duration,
    ) -> StatusEvent {
        if let Some(event) = self.seen.iter().find(|e| matches(e)) {
            return event.clone();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.consumer.next()).await;
            let Ok(Some(Ok(delivery))) = next else {
                panic!(
                    "no event {what} within {timeout:?}; events seen: {:#?}",
                    self.seen
                );
            };
            let event: StatusEvent = serde_json::from_slice(&delivery.data).expect("events parse");
            self.seen.push(event.clone());
            if matches(&event) {
                return event;
            }
        }
    }

    /// Waits for the `nth` event (counting from 1, seen already or
    /// arriving) that matches.
    pub async fn wait_for_nth(
        &mut self,
        what: &str,
        matches: impl Fn(&StatusEvent) -> bool,
        nth: usize,
        timeout: Duration,
    ) -> StatusEvent {
        let seen = std::cell::Cell::new(0);
        self.wait_for(
            what,
            |event| {
                // Every event is offered once, in order, so counting here
                // counts matches.
                matches(event) && {
                    seen.set(seen.get() + 1);
                    seen.get() == nth
                }
            },
            timeout,
        )
        .await
    }

    /// Waits for the job's `done` or `failed` event.
    pub async fn final_event(&mut self, job: JobId, timeout: Duration) -> StatusEvent {
        self.wait_for(
            &format!("done/failed for {job}"),
            |e| e.job_id == job && e.state.is_final(),
            timeout,
        )
        .await
    }

    /// Collects whatever arrives within `quiet` of the last event.
    pub async fn drain(&mut self, quiet: Duration) {
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, self.consumer.next()).await {
            let event: StatusEvent = serde_json::from_slice(&delivery.data).expect("events parse");
            self.seen.push(event);
        }
    }

    pub fn seen(&self) -> &[StatusEvent] {
        &self.seen
    }

    /// Waits for the first `progress` event of `job` (of any job when
    /// `None`): its encode is under way.
    pub async fn wait_for_encoding(&mut self, job: Option<JobId>) -> StatusEvent {
        self.wait_for(
            "encoding under way",
            |e| {
                job.is_none_or(|job| e.job_id == job)
                    && matches!(e.state, hlsmux_protocol::JobState::Progress { .. })
            },
            crate::PATIENCE,
        )
        .await
    }

    /// How many events seen so far are of `job` in `state`.
    pub fn count(&self, job: JobId, state: EventState) -> usize {
        count_events(&self.seen, job, state)
    }
}

//! Builds the worker from its settings and runs it until shutdown: connect,
//! consume one job at a time, reconnect when the broker goes away.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use lapin::Consumer;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;

use crate::broker::{BrokerError, BrokerSession};
use crate::cancellations::Cancellations;
use crate::config::Settings;
use crate::gate::{Closed, RemoteDrain, ServiceGate};
use crate::hardware::{MachineCodecs, encoder_probe, soc};
use crate::job::outcome::Ending;
use crate::job::{JobRunner, Settled};
use crate::metrics::server::Endpoints;
use crate::metrics::{self, WorkerMetrics};
use crate::quarantine::Quarantine;
use crate::state::StateTracker;
use crate::storage::{StorageConfig, StorageMonitor};
use crate::tidy::Tidier;
use crate::{dead_letters, selftest};
use hlsmux_protocol::WorkerState;
use hlsmux_protocol::{CancelRequest, Heartbeat};

/// How often the gate (drain lock) is looked at.
const GATE_POLL: Duration = Duration::from_secs(1);
/// The cancellations stream has been read to its end once it is quiet
/// this long (a stream has no end marker; its backlog arrives at once).
const CANCELLATIONS_QUIET: Duration = Duration::from_millis(300);
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "{what} {path} is not a directory: mount it, or point {key} (HLSMUX_{upper}) at the right place"
    )]
    MissingDirectory {
        what: &'static str,
        key: &'static str,
        upper: String,
        path: String,
    },
    #[error("cannot create the work directory {path}: {detail}")]
    WorkDir { path: String, detail: String },
    #[error(
        "cannot run {program} ({detail}): install ffmpeg (apt-get install ffmpeg) or set HLSMUX_{key}"
    )]
    Tool {
        program: String,
        key: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Encoder(#[from] encoder_probe::EncoderError),
}

/// A worker ready to run.
pub struct Worker {
    settings: Arc<Settings>,
    name: String,
    runner: JobRunner,
    gate: ServiceGate,
    state: Arc<StateTracker>,
    /// The video encoder chosen at start-up, for heartbeats.
    encoder: String,
    tidier: Tidier,
    quarantine: Arc<Quarantine>,
    remote_drain: Arc<RemoteDrain>,
    cancellations: Cancellations,
    storage: Arc<StorageMonitor>,
    metrics: Arc<WorkerMetrics>,
}

impl Worker {
    /// Checks what the worker needs before it takes any job.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        require_directory("media root", "media_root", &settings.media_root)?;
        require_directory("output root", "output_root", &settings.output_root)?;
        std::fs::create_dir_all(&settings.work_dir).map_err(|error| StartupError::WorkDir {
            path: settings.work_dir.display().to_string(),
            detail: error.to_string(),
        })?;
        crate::pipeline::encode::stop_orphaned_encoders(&settings.work_dir);
        require_tool(&settings.ffmpeg, "FFMPEG").await?;
        require_tool(&settings.ffprobe, "FFPROBE").await?;
        let selection = encoder_probe::select_encoder(
            &settings.ffmpeg,
            settings.encoder,
            &settings.vaapi_device,
        )
        .await?;
        let hardware_decoders = if settings.hw_decode {
            let decoders = encoder_probe::available_decoders(&settings.ffmpeg)
                .await
                .map_err(encoder_probe::EncoderError::List)?;
            Some(decoders)
        } else {
            None
        };
        let codecs = MachineCodecs {
            encoder: selection.encoder,
            hardware_decoders,
        };
        log_soc(&settings).await;
        let name = gethostname::gethostname().to_string_lossy().into_owned();
        let metrics = Arc::new(WorkerMetrics::new(settings.muxer_id, &name));
        metrics.set_encoder(&selection);
        let storage = Arc::new(StorageMonitor::new(
            storage_config(&settings, &name),
            Arc::clone(&metrics),
        ));
        let settings = Arc::new(settings);
        let quarantine = Arc::new(Quarantine::new(
            settings.quarantine_after,
            settings.quarantine_cooldown,
        ));
        let remote_drain = Arc::new(RemoteDrain::default());
        let state = Arc::new(StateTracker::new(Arc::clone(&metrics)));
        let cancellations = Cancellations::default();
        Ok(Self {
            gate: ServiceGate::new(
                settings.drain_lock.clone(),
                Arc::clone(&remote_drain),
                Arc::clone(&quarantine),
                Arc::clone(&storage),
            ),
            quarantine,
            remote_drain,
            state: Arc::clone(&state),
            encoder: selection.encoder.to_string(),
            tidier: Tidier::new(Arc::clone(&settings)),
            runner: JobRunner::new(
                Arc::clone(&settings),
                codecs,
                Arc::clone(&storage),
                Arc::clone(&metrics),
                state,
                cancellations.clone(),
                &name,
            ),
            cancellations,
            name,
            settings,
            storage,
            metrics,
        })
    }

    /// Runs until `shutdown` is cancelled, serving metrics on
    /// `metrics_listener`. Stop order: the consumer stops, a job in hand may
    /// finish within the grace period or is interrupted and given back to
    /// its queue, the connection closes, and last the HTTP server stops.
    pub async fn run(self, metrics_listener: TcpListener, shutdown: CancellationToken) {
        let endpoints = Arc::new(Endpoints {
            metrics: Arc::clone(&self.metrics),
            state: self.state.subscribe(),
            storage: Arc::clone(&self.storage),
            quarantine: Arc::clone(&self.quarantine),
            thermal_zone: self.settings.thermal_zone.clone(),
            throttling_command: self.settings.throttling_command.clone(),
        });
        let stop_server = CancellationToken::new();
        let server = tokio::spawn(metrics::server::serve(
            metrics_listener,
            endpoints,
            stop_server.clone(),
        ));
        self.consume_until_shutdown(&shutdown).await;
        stop_server.cancel();
        let _ = server.await;
        info!("worker stopped");
    }

    /// Connects, serves and reconnects until shutdown.
    async fn consume_until_shutdown(&self, shutdown: &CancellationToken) {
        let shutdown = shutdown.clone();
        let mut delay = RECONNECT_MIN;
        let mut connected_before = false;
        loop {
            let opened = tokio::select! {
                opened = BrokerSession::open(&self.settings, &self.name) => opened,
                () = shutdown.cancelled() => return,
            };
            let session = match opened {
                Ok(session) => session,
                Err(error) => {
                    let wait = with_jitter(delay);
                    error!(%error, retry_in = ?wait, "broker unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            delay = RECONNECT_MIN;
            self.metrics.broker_connected.set(1);
            if connected_before {
                self.metrics.broker_reconnects.inc();
            }
            connected_before = true;
            let served = self.serve_session(&session, &shutdown).await;
            session.close().await;
            self.metrics.broker_connected.set(0);
            match served {
                Ok(()) => return,
                Err(error) => warn!(%error, "reconnecting"),
            }
        }
    }

    /// Serves jobs, tidy requests and dead-letter notices on one session.
    /// When the side consumers lose the connection, a job in hand still
    /// runs to its end (its output is not wasted: a redelivery recognises
    /// it) before the session is given up.
    async fn serve_session(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let lost = CancellationToken::new();
        let serving = self.serve(session, shutdown, &lost);
        tokio::pin!(serving);
        let side_lost = async {
            tokio::select! {
                lost = self.tidy_originals(session, shutdown) => lost,
                lost = self.report_dead_letters(session) => lost,
                lost = self.follow_control(session) => lost,
                lost = self.follow_cancellations(session) => lost,
                lost = self.send_heartbeats(session) => lost,
            }
        };
        tokio::select! {
            served = &mut serving => served,
            error = side_lost => {
                lost.cancel();
                let _ = serving.await;
                Err(error)
            }
        }
    }

    /// Serves jobs on one broker session until shutdown (`Ok`) or until the
    /// connection fails (`Err`), consuming only while the gate is open.
    async fn serve(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
        lost: &CancellationToken,
    ) -> Result<(), BrokerError> {
        loop {
            let open = tokio::select! {
                open = self.wait_for_open_gate(shutdown) => open,
                () = lost.cancelled() => return Err(BrokerError::Lost("a side consumer failed".into())),
            };
            if !open {
                return Ok(());
            }
            let consumer = session.consume().await?;
            self.state.set(WorkerState::Idle, "consuming");
            info!(
                muxer_id = %self.settings.muxer_id,
                namespace = %self.settings.namespace,
                "worker ready, waiting for jobs"
            );
            let (consumer, stopped) = self.consume(session, consumer, shutdown, lost).await;
            if let Some(consumer) = consumer {
                session.stop_consuming(consumer).await?;
            }
            match stopped? {
                Stop::Shutdown => return Ok(()),
                Stop::GateClosed => continue,
                Stop::SessionLost => {
                    return Err(BrokerError::Lost("a side consumer failed".into()));
                }
            }
        }
    }

    /// Handles due tidy requests until the session fails. Never returns
    /// otherwise, so that it never cuts a job short.
    async fn tidy_originals(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> BrokerError {
        let mut consumer = match session.consume_tidy().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        while let Some(next) = consumer.next().await {
            match next {
                Ok(delivery) => {
                    let disposition = self.tidier.handle(&delivery, shutdown).await;
                    if let Err(error) = disposition.apply(&delivery.acker).await {
                        return BrokerError::Lost(error.to_string());
                    }
                }
                Err(error) => return BrokerError::Lost(error.to_string()),
            }
        }
        // The broker cancelled the tidy consumer (its queue was deleted):
        // jobs go on; tidying resumes with the next session.
        warn!("tidy consumer cancelled by the broker");
        std::future::pending().await
    }

    /// Reports jobs the broker dead-lettered at their delivery limit, until
    /// the session fails.
    async fn report_dead_letters(&self, session: &BrokerSession) -> BrokerError {
        let mut consumer = match session.consume_dead_letter_notices().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        while let Some(next) = consumer.next().await {
            match next {
                Ok(delivery) => {
                    let disposition =
                        dead_letters::report(&delivery, session.events(), &self.metrics).await;
                    if let Err(error) = disposition.apply(&delivery.acker).await {
                        return BrokerError::Lost(error.to_string());
                    }
                }
                Err(error) => return BrokerError::Lost(error.to_string()),
            }
        }
        warn!("dead-letter notice consumer cancelled by the broker");
        std::future::pending().await
    }

    /// Publishes a heartbeat every interval until the session fails.
    async fn send_heartbeats(&self, session: &BrokerSession) -> BrokerError {
        loop {
            let heartbeat = self.heartbeat().await;
            if let Err(error) = session.events().publish_heartbeat(&heartbeat).await {
                return BrokerError::Lost(error.to_string());
            }
            tokio::time::sleep(self.settings.heartbeat_interval).await;
        }
    }

    async fn heartbeat(&self) -> Heartbeat {
        let throttled = soc::read_throttling(&self.settings.throttling_command)
            .await
            .map(|t| {
                t.flags()
                    .filter(|(_, on)| *on)
                    .map(|(name, _)| name.to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let job = self.state.job();
        Heartbeat {
            schema: hlsmux_protocol::SCHEMA_VERSION,
            muxer_id: self.settings.muxer_id,
            worker: self.name.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            state: self.state.get(),
            job: job.map(|(job, _)| job),
            percent: job.map(|(_, percent)| percent),
            encoder: self.encoder.clone(),
            temperature_celsius: soc::read_temperature(&self.settings.thermal_zone).await,
            throttled,
            interval_seconds: self.settings.heartbeat_interval.as_secs(),
            at: time::OffsetDateTime::now_utc(),
        }
    }

    /// Keeps the remote drain setting up to date with the muxer's control
    /// queue, until the session fails.
    async fn follow_control(&self, session: &BrokerSession) -> BrokerError {
        loop {
            match session.peek_control().await {
                // No command (or a peer is peeking at it): unchanged.
                Ok(None) => {}
                Ok(Some(command)) => {
                    let next = command.drain.then(|| command.by.clone());
                    let mut current = self
                        .remote_drain
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if *current != next {
                        info!(drain = command.drain, by = %command.by, "remote command for this muxer");
                        *current = next;
                    }
                }
                Err(error) => return error,
            }
            tokio::time::sleep(GATE_POLL).await;
        }
    }

    /// Keeps the set of cancelled jobs up to date with the pool's
    /// cancellations stream, from its start, until the session fails.
    async fn follow_cancellations(&self, session: &BrokerSession) -> BrokerError {
        let mut consumer = match session.read_cancellations().await {
            Ok(consumer) => consumer,
            Err(error) => return error,
        };
        let mut caught_up = false;
        loop {
            // Timed only until the backlog is read, so an idle worker
            // does not wake for nothing.
            let next = if caught_up {
                consumer.next().await
            } else {
                match tokio::time::timeout(CANCELLATIONS_QUIET, consumer.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        caught_up = true;
                        self.cancellations.mark_caught_up();
                        continue;
                    }
                }
            };
            let Some(next) = next else { break };
            let delivery = match next {
                Ok(delivery) => delivery,
                Err(error) => return BrokerError::Lost(error.to_string()),
            };
            // Streams count acknowledgements as credit for more.
            if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                return BrokerError::Lost(error.to_string());
            }
            match serde_json::from_slice::<CancelRequest>(&delivery.data) {
                Ok(request) => {
                    if self
                        .state
                        .job()
                        .is_some_and(|(job, _)| job == request.job_id)
                    {
                        info!(job_id = %request.job_id, by = %request.by, "the job in hand is cancelled: stopping it");
                    }
                    self.cancellations.record(request);
                }
                Err(error) => {
                    warn!(%error, "skipping a message in the cancellations stream that is not a cancellation")
                }
            }
        }
        warn!("cancellations consumer cancelled by the broker");
        std::future::pending().await
    }

    /// Waits while the gate is closed, reporting why. A quarantined worker
    /// runs its self-test once the cool-down is over. False when shutdown
    /// came first.
    async fn wait_for_open_gate(&self, shutdown: &CancellationToken) -> bool {
        while let Some(reason) = self.gate.closed(false).await {
            let state = match reason {
                Closed::DrainLock(_) | Closed::RemoteDrain(_) => WorkerState::Drained,
                Closed::Quarantined(_) => WorkerState::Quarantined,
                Closed::Storage(_) => WorkerState::StorageUnhealthy,
            };
            self.state.set(state, &reason.to_string());
            if matches!(reason, Closed::Quarantined(_)) && self.quarantine.self_test_due() {
                self.self_test(shutdown).await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(GATE_POLL) => {}
                () = shutdown.cancelled() => return false,
            }
        }
        !shutdown.is_cancelled()
    }

    /// Runs the quarantine self-test: a storage probe and a small encode
    /// through the real pipeline. Passing lifts the quarantine.
    async fn self_test(&self, shutdown: &CancellationToken) {
        info!("quarantine cool-down over: running the self-test");
        let outcome = match self.storage.health(true).await {
            crate::storage::StorageHealth::Unhealthy(reason) => Err(format!("storage: {reason}")),
            crate::storage::StorageHealth::Healthy => selftest::run(&self.runner, shutdown).await,
        };
        match outcome {
            Ok(()) => {
                info!("self-test passed: taking jobs again");
                self.quarantine.lift();
            }
            Err(why) => {
                error!(%why, "self-test failed: staying quarantined for another cool-down");
                self.quarantine.extend(&why);
            }
        }
    }

    /// Takes jobs one at a time until shutdown, the gate closing, or a broker
    /// error. Hands the consumer back unless the broker already ended it.
    async fn consume(
        &self,
        session: &BrokerSession,
        mut consumer: Consumer,
        shutdown: &CancellationToken,
        lost: &CancellationToken,
    ) -> (Option<Consumer>, Result<Stop, BrokerError>) {
        loop {
            // Shutdown first: a job the broker pushed as the last one was
            // acked must not start once the worker is stopping.
            if shutdown.is_cancelled() {
                return (Some(consumer), Ok(Stop::Shutdown));
            }
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return (Some(consumer), Ok(Stop::Shutdown)),
                () = lost.cancelled() => return (None, Ok(Stop::SessionLost)),
                next = consumer.next() => next,
                () = tokio::time::sleep(GATE_POLL) => {
                    if self.gate.closed(false).await.is_some() {
                        return (Some(consumer), Ok(Stop::GateClosed));
                    }
                    continue;
                }
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return (None, Err(BrokerError::Lost(error.to_string()))),
                None => {
                    let lost = BrokerError::Lost("the broker cancelled the consumer".into());
                    return (None, Err(lost));
                }
            };
            // Storage is probed afresh before each job.
            if self.gate.closed(true).await.is_some() {
                // Not in service as this job arrived: it is not ours to start.
                let _ = Ending::NotInService
                    .disposition()
                    .apply(&delivery.acker)
                    .await;
                return (Some(consumer), Ok(Stop::GateClosed));
            }
            self.state.set(WorkerState::Busy, "job received");
            let Settled {
                disposition,
                evidence,
            } = self.run_job(&delivery, session, shutdown).await;
            if let Err(error) = disposition.apply(&delivery.acker).await {
                warn!(%error, ?disposition, "could not settle the job; the broker will redeliver it");
            }
            if let Some(reasons) = self.quarantine.record(&evidence) {
                error!(%reasons, cooldown = ?self.settings.quarantine_cooldown, "quarantining this worker: it takes no jobs until a self-test passes");
                self.metrics.quarantines.inc();
            }
            if self.gate.closed(false).await.is_some() {
                return (Some(consumer), Ok(Stop::GateClosed));
            }
            self.state.set(WorkerState::Idle, "job settled");
        }
    }

    /// Runs one job, noticing meanwhile if the worker is asked to drain.
    /// On shutdown the job has the grace period to finish; then it is
    /// interrupted (and requeued).
    async fn run_job(
        &self,
        delivery: &Delivery,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> Settled {
        let interrupt = CancellationToken::new();
        let job = self.runner.handle(delivery, session.events(), &interrupt);
        tokio::pin!(job);
        let mut grace_ends: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                settled = &mut job => return settled,
                () = tokio::time::sleep(GATE_POLL) => {
                    if let Some(reason) = self.gate.drain_requested().await {
                        self.state.set(WorkerState::Draining, &reason.to_string());
                    }
                }
                () = shutdown.cancelled(), if grace_ends.is_none() => {
                    let grace = self.settings.shutdown_grace;
                    info!(?grace, "stopping: the job in hand may finish within the grace period");
                    self.state.set(WorkerState::Draining, "shutting down");
                    grace_ends = Some(tokio::time::Instant::now() + grace);
                }
                () = sleep_until_some(grace_ends), if !interrupt.is_cancelled() => {
                    info!("grace period over: interrupting the job");
                    interrupt.cancel();
                }
            }
        }
    }
}

/// Why consuming stopped without a broker error.
enum Stop {
    Shutdown,
    GateClosed,
    /// Another channel of the session failed; reconnect.
    SessionLost,
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the storage monitor watches: the named mount points, or else the
/// media and output roots themselves.
fn storage_config(settings: &Settings, worker_name: &str) -> StorageConfig {
    let probed = if settings.storage_mounts.is_empty() {
        vec![settings.media_root.clone(), settings.output_root.clone()]
    } else {
        Vec::new()
    };
    StorageConfig {
        mounts: settings.storage_mounts.clone(),
        probed,
        mountinfo: settings.mountinfo.clone(),
        mount_command: settings.mount_command.clone(),
        probe_timeout: settings.storage_probe_timeout,
        check_interval: settings.storage_check_interval,
        // Unique per process: workers sharing a mount never race on it.
        probe_file_name: format!(".hlsmux-probe-{worker_name}-{}", std::process::id()),
    }
}

/// Logs the SoC's state at start-up, where the machine reports it.
async fn log_soc(settings: &Settings) {
    let temperature = soc::read_temperature(&settings.thermal_zone).await;
    let throttling = soc::read_throttling(&settings.throttling_command).await;
    match (temperature, throttling) {
        (None, None) => info!("no SoC temperature or throttling source on this machine"),
        (temperature, throttling) => {
            let flags: Vec<&str> = throttling
                .into_iter()
                .flat_map(|t| {
                    t.flags()
                        .filter(|(_, on)| *on)
                        .map(|(name, _)| name)
                        .collect::<Vec<_>>()
                })
                .collect();
            info!(temperature_celsius = ?temperature, throttling = ?flags, "SoC state");
        }
    }
}

fn require_directory(
    what: &'static str,
    key: &'static str,
    path: &Path,
) -> Result<(), StartupError> {
    if path.is_dir() {
        return Ok(());
    }
    Err(StartupError::MissingDirectory {
        what,
        key,
        upper: key.to_uppercase(),
        path: path.display().to_string(),
    })
}

async fn require_tool(program: &Path, key: &'static str) -> Result<(), StartupError> {
    let failed = |detail: String| StartupError::Tool {
        program: program.display().to_string(),
        key,
        detail,
    };
    let status = Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("`-version` exited with {status}")))
    }
}

/// Up to a quarter more than `delay`, so workers that lost the broker
/// together do not all knock at the same instant.
fn with_jitter(delay: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = u32::try_from(delay.as_millis() / 4)
        .unwrap_or(u32::MAX)
        .max(1);
    delay + Duration::from_millis(u64::from(nanos % spread))
}

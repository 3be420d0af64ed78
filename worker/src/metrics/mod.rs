//! The worker's Prometheus metrics. Every series carries the worker's muxer
//! ID as a constant label. Readings of hardware the machine does not have
//! (no thermal zone, no `vcgencmd`) are absent, never zero.

pub mod names;
pub mod server;

use std::collections::HashMap;
use std::path::Path;

use hlsmux_protocol::{FailureReason, MuxerId, RequeueReason};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::hardware::encoder_probe::EncoderSelection;
use crate::hardware::soc::Throttling;
use hlsmux_protocol::WorkerState;

const JOB_SECONDS_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
const PROBE_SECONDS_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// How a job's delivery ended, for `hlsmux_jobs_finished_total`.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Done,
    Failed(FailureReason),
    Requeued(RequeueReason),
    /// Given back because its ending could not be reported to the broker.
    Unreported,
}

impl Outcome {
    /// The `outcome` and `reason` labels.
    fn labels(self) -> [&'static str; 2] {
        match self {
            Outcome::Done => ["done", ""],
            Outcome::Failed(reason) => ["failed", reason.as_str()],
            Outcome::Requeued(reason) => ["requeued", reason.as_str()],
            Outcome::Unreported => ["requeued", "broker"],
        }
    }
}

pub struct WorkerMetrics {
    registry: Registry,
    pub encode_fps: Gauge,
    pub encode_speed: Gauge,
    jobs_finished: IntCounterVec,
    job_duration: Histogram,
    media_duration: Histogram,
    state: IntGaugeVec,
    encoder: IntGaugeVec,
    temperature: GaugeVec,
    throttling: IntGaugeVec,
    storage_healthy: IntGaugeVec,
    storage_free: IntGaugeVec,
    storage_mounted: IntGaugeVec,
    broker_feature_up: IntGaugeVec,
    probe_duration: HistogramVec,
    probe_failures: IntCounterVec,
    remount_attempts: IntCounterVec,
    pub broker_connected: IntGauge,
    pub broker_reconnects: IntCounter,
    pub encode_stalls: IntCounter,
    /// Outcomes the event history lost after showing them, published again.
    pub outcomes_republished: IntCounter,
    pub quarantines: IntCounter,
    /// Chunks of split jobs encoded here (the coordinator's own included).
    pub chunks_encoded: IntCounter,
    /// Messages in the chunk queue that were no chunk order.
    pub chunks_dropped: IntCounter,
    /// How long chunks waited in the queue before a worker took them.
    pub chunk_wait_seconds: Histogram,
}

impl WorkerMetrics {
    pub fn new(muxer: MuxerId, host: &str) -> Self {
        let labels = HashMap::from([("muxer_id".to_owned(), muxer.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid constant labels");
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            registry
                .register(collector)
                .expect("metric names are unique");
        };
        let gauge = |name: &str, help: &str| {
            let gauge = Gauge::with_opts(Opts::new(name, help)).expect("valid metric");
            register(Box::new(gauge.clone()));
            gauge
        };
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(gauge.clone()));
            gauge
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(counter.clone()));
            counter
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let histogram = Histogram::with_opts(opts).expect("valid metric");
            register(Box::new(histogram.clone()));
            histogram
        };

        let info = int_gauge_vec(
            names::WORKER_INFO,
            "The worker's version and host.",
            &["version", "host"],
        );
        info.with_label_values(&[env!("CARGO_PKG_VERSION"), host])
            .set(1);
        let probe_duration = HistogramVec::new(
            HistogramOpts::new(names::STORAGE_PROBE_DURATION, "Time a storage probe took.")
                .buckets(PROBE_SECONDS_BUCKETS.to_vec()),
            &["path"],
        )
        .expect("valid metric");
        register(Box::new(probe_duration.clone()));
        let temperature = GaugeVec::new(
            Opts::new(
                names::SOC_TEMPERATURE,
                "SoC temperature from the thermal zone.",
            ),
            &["zone"],
        )
        .expect("valid metric");
        register(Box::new(temperature.clone()));
        let broker_connected =
            IntGauge::new(names::BROKER_CONNECTED, "1 while connected to RabbitMQ.")
                .expect("valid metric");
        register(Box::new(broker_connected.clone()));
        let broker_reconnects = IntCounter::new(
            names::BROKER_RECONNECTS,
            "Connections opened after a lost one.",
        )
        .expect("valid metric");
        register(Box::new(broker_reconnects.clone()));
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help).expect("valid metric");
            register(Box::new(counter.clone()));
            counter
        };

        let metrics = Self {
            encode_fps: gauge(
                names::ENCODE_FPS,
                "Frames per second of the running encode.",
            ),
            encode_speed: gauge(
                names::ENCODE_SPEED,
                "Speed of the running encode, as a multiple of real time.",
            ),
            jobs_finished: counter_vec(
                names::JOBS_FINISHED,
                "Job deliveries finished, by outcome and failure reason.",
                &["outcome", "reason"],
            ),
            job_duration: histogram(
                names::JOB_DURATION,
                "Wall time of finished jobs.",
                &JOB_SECONDS_BUCKETS,
            ),
            media_duration: histogram(
                names::JOB_MEDIA_DURATION,
                "Media duration of finished jobs.",
                &JOB_SECONDS_BUCKETS,
            ),
            state: int_gauge_vec(
                names::WORKER_STATE,
                "1 for the worker's current state.",
                &["state"],
            ),
            encoder: int_gauge_vec(
                names::ENCODER_INFO,
                "Video encoders considered at start-up, and what became of each.",
                &["encoder", "result"],
            ),
            temperature,
            throttling: int_gauge_vec(
                names::SOC_THROTTLING,
                "Throttling flags from vcgencmd get_throttled (1 set, 0 clear).",
                &["flag"],
            ),
            storage_healthy: int_gauge_vec(
                names::STORAGE_HEALTHY,
                "1 while the storage target passes its checks.",
                &["path"],
            ),
            storage_free: int_gauge_vec(
                names::STORAGE_FREE_BYTES,
                "Bytes free to the worker on the volume of the output root and of the work dir.",
                &["path"],
            ),
            storage_mounted: int_gauge_vec(
                names::STORAGE_MOUNTED,
                "1 while the mount point is mounted.",
                &["path"],
            ),
            broker_feature_up: int_gauge_vec(
                names::BROKER_FEATURE_UP,
                "1 while a side feature's queue or stream serves (tidy, dead_letter_notices, control, cancellations); jobs go on without it.",
                &["feature"],
            ),
            probe_duration,
            probe_failures: counter_vec(
                names::STORAGE_PROBE_FAILURES,
                "Storage probes that failed or hung.",
                &["path"],
            ),
            remount_attempts: counter_vec(
                names::STORAGE_REMOUNTS,
                "Attempts to mount a missing mount point.",
                &["path"],
            ),
            broker_connected,
            broker_reconnects,
            outcomes_republished: counter(
                names::OUTCOMES_REPUBLISHED,
                "Job outcomes the event history lost after holding them, published again.",
            ),
            encode_stalls: counter(
                names::ENCODE_STALLS,
                "Encodes killed because ffmpeg made no progress.",
            ),
            quarantines: counter(
                names::QUARANTINES,
                "Times the worker quarantined itself after failing jobs for its own reasons.",
            ),
            chunks_encoded: counter(
                names::CHUNKS_ENCODED,
                "Chunks of split jobs this worker encoded (its own jobs' and others').",
            ),
            chunks_dropped: counter(
                names::CHUNKS_DROPPED,
                "Messages in the chunk queue that were not chunk orders, dropped.",
            ),
            chunk_wait_seconds: histogram(
                names::CHUNK_WAIT,
                "Time from a chunk's order to a worker taking it from the queue.",
                &JOB_SECONDS_BUCKETS,
            ),
            registry,
        };
        metrics.set_state(WorkerState::Idle);
        metrics
    }

    pub fn set_state(&self, current: WorkerState) {
        for state in WorkerState::ALL {
            self.state
                .with_label_values(&[state.as_str()])
                .set(i64::from(state == current));
        }
    }

    pub fn set_encoder(&self, selection: &EncoderSelection) {
        self.encoder
            .with_label_values(&[selection.encoder.ffmpeg_name(), "chosen"])
            .set(1);
        for (encoder, reason) in &selection.rejected {
            let result = if reason == crate::hardware::encoder_probe::NOT_IN_BUILD {
                "not_in_build"
            } else {
                "trial_failed"
            };
            self.encoder
                .with_label_values(&[encoder.ffmpeg_name(), result])
                .set(1);
        }
    }

    pub fn job_finished(&self, outcome: Outcome) {
        self.jobs_finished
            .with_label_values(&outcome.labels())
            .inc();
        self.encode_fps.set(0.0);
        self.encode_speed.set(0.0);
    }

    pub fn job_done(&self, wall_seconds: f64, media_seconds: f64) {
        self.job_duration.observe(wall_seconds);
        self.media_duration.observe(media_seconds);
        self.job_finished(Outcome::Done);
    }

    /// Records the SoC readings; a missing reading removes its series.
    pub fn record_soc(
        &self,
        zone: &Path,
        temperature: Option<f64>,
        throttling: Option<Throttling>,
    ) {
        let zone = zone.display().to_string();
        match temperature {
            Some(celsius) => self.temperature.with_label_values(&[&zone]).set(celsius),
            None => {
                let _ = self.temperature.remove_label_values(&[&zone]);
            }
        }
        match throttling {
            Some(throttling) => {
                for (flag, on) in throttling.flags() {
                    self.throttling
                        .with_label_values(&[flag])
                        .set(i64::from(on));
                }
            }
            None => self.throttling.reset(),
        }
    }

    pub fn storage_checked(&self, path: &Path, mounted: Option<bool>, healthy: bool) {
        let path = path.display().to_string();
        if let Some(mounted) = mounted {
            self.storage_mounted
                .with_label_values(&[&path])
                .set(i64::from(mounted));
        }
        self.storage_healthy
            .with_label_values(&[&path])
            .set(i64::from(healthy));
    }

    /// Records whether a side feature serves; returns whether it did
    /// before (so a change can be logged once).
    pub fn broker_feature(&self, feature: &str, up: bool) -> bool {
        let gauge = self.broker_feature_up.with_label_values(&[feature]);
        let before = gauge.get() == 1;
        gauge.set(i64::from(up));
        before
    }

    pub fn storage_free(&self, path: &Path, bytes: u64) {
        self.storage_free
            .with_label_values(&[&path.display().to_string()])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn storage_probed(&self, path: &Path, seconds: Option<f64>) {
        let path = path.display().to_string();
        match seconds {
            Some(seconds) => self
                .probe_duration
                .with_label_values(&[&path])
                .observe(seconds),
            None => self.probe_failures.with_label_values(&[&path]).inc(),
        }
    }

    pub fn remount_attempted(&self, path: &Path) {
        self.remount_attempts
            .with_label_values(&[&path.display().to_string()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// Reads the value of sample `name` whose labels include all of `labels`
/// from a text exposition: for tests and tools checking what is exported.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().ok()).flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::soc::parse_get_throttled;

    fn metrics() -> WorkerMetrics {
        WorkerMetrics::new(MuxerId::new(3).expect("valid"), "pi3")
    }

    #[test]
    fn every_series_carries_the_muxer_and_the_names_are_prometheus_style() {
        let metrics = metrics();
        metrics.job_done(12.0, 30.0);
        let text = metrics.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("hlsmux_"), "{line}");
            assert!(line.contains("muxer_id=\"3\""), "{line}");
        }
        let done = [("outcome", "done"), ("reason", "")];
        assert_eq!(
            sample(&text, names::JOBS_FINISHED, &done),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "hlsmux_job_duration_seconds_count", &[]),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, names::WORKER_STATE, &[("state", "idle")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, names::WORKER_STATE, &[("state", "busy")]),
            Some(0.0)
        );
    }

    #[test]
    fn absent_hardware_means_absent_series() {
        let metrics = metrics();
        let zone = Path::new("/sys/class/thermal/thermal_zone0/temp");
        metrics.record_soc(zone, None, None);
        let text = metrics.render();
        assert_eq!(sample(&text, names::SOC_TEMPERATURE, &[]), None, "{text}");
        assert_eq!(sample(&text, names::SOC_THROTTLING, &[]), None, "{text}");

        metrics.record_soc(zone, Some(61.5), parse_get_throttled("throttled=0x50005"));
        let text = metrics.render();
        assert_eq!(
            sample(&text, names::SOC_TEMPERATURE, &[("muxer_id", "3")]),
            Some(61.5)
        );
        let flag = |name| sample(&text, names::SOC_THROTTLING, &[("flag", name)]);
        assert_eq!(flag("under_voltage"), Some(1.0));
        assert_eq!(flag("frequency_capped"), Some(0.0));
        assert_eq!(flag("throttled_occurred"), Some(1.0));

        metrics.record_soc(zone, None, None);
        assert_eq!(
            sample(&metrics.render(), names::SOC_TEMPERATURE, &[]),
            None,
            "gone again"
        );
    }
}

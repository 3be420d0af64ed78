//! Builds a worker from its settings: checks what it needs before it takes any job.

use super::Worker;
use crate::cancellations::Cancellations;
use crate::config::{ServiceSettings, Settings};
use crate::hardware::soc::{SocReading, SocSensor};
use crate::hardware::{MachineCodecs, decoder_probe, encoder_probe};
use crate::health::gate::{RemoteDrain, ServiceGate};
use crate::health::quarantine::Quarantine;
use crate::health::state::StateTracker;
use crate::health::storage::{StorageConfig, StorageMonitor};
use crate::job::JobRunner;
use crate::metrics::WorkerMetrics;
use crate::tidy::Tidier;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::process::Command;
use tracing::info;

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
    #[error(
        "cannot serve metrics on {addr} ({source}): set metrics_addr (HLSMUX_METRICS_ADDR) to a free HOST:PORT, or port 0 for any"
    )]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the metrics address to {}: {source}", path.display())]
    MetricsAddrFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the metrics listener of `settings.metrics_addr` (port 0 picks a
/// free one), says where it listens, and writes the address to
/// `settings.metrics_addr_file` when one is set.
pub async fn bind_metrics(settings: &ServiceSettings) -> Result<TcpListener, StartupError> {
    let addr = settings.metrics_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Metrics { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Metrics { addr, source })?;
    info!(metrics_addr = %bound, "serving /metrics, /healthz and /readyz");
    if let Some(path) = &settings.metrics_addr_file {
        // Written whole, then renamed: a reader never sees half an address.
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, format!("{bound}\n"))
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|source| StartupError::MetricsAddrFile {
                path: path.clone(),
                source,
            })?;
    }
    Ok(listener)
}

impl Worker {
    /// Checks what the worker needs before it takes any job.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        require_directory("media root", "media_root", &settings.paths.media_root)?;
        require_directory("output root", "output_root", &settings.paths.output_root)?;
        std::fs::create_dir_all(&settings.paths.work_dir).map_err(|error| {
            StartupError::WorkDir {
                path: settings.paths.work_dir.display().to_string(),
                detail: error.to_string(),
            }
        })?;
        crate::pipeline::encode::stop_orphaned_encoders(&settings.paths.work_dir);
        require_tool(&settings.tools.ffmpeg, "FFMPEG").await?;
        require_tool(&settings.tools.ffprobe, "FFPROBE").await?;
        let selection = encoder_probe::select_encoder(
            &settings.tools.ffmpeg,
            settings.encoding.encoder,
            &settings.encoding.vaapi_device,
        )
        .await?;
        let hardware_decoders = if settings.encoding.hw_decode {
            let working = decoder_probe::trial_decoders(
                &settings.tools.ffmpeg,
                selection.encoder,
                &settings.encoding.vaapi_device,
                &settings.paths.work_dir,
            )
            .await;
            Some(working)
        } else {
            None
        };
        let codecs = MachineCodecs {
            encoder: selection.encoder,
            hardware_decoders,
        };
        log_soc(&settings).await;
        let name = gethostname::gethostname().to_string_lossy().into_owned();
        let metrics = Arc::new(WorkerMetrics::new(settings.broker.muxer_id, &name));
        metrics.set_encoder(&selection);
        let storage = Arc::new(StorageMonitor::new(
            storage_config(&settings, &name),
            Arc::clone(&metrics),
        ));
        let settings = Arc::new(settings);
        let quarantine = Arc::new(Quarantine::new(
            settings.service.quarantine_after,
            settings.service.quarantine_cooldown,
        ));
        let remote_drain = Arc::new(RemoteDrain::default());
        let state = Arc::new(StateTracker::new(Arc::clone(&metrics)));
        let cancellations = Cancellations::default();
        Ok(Self {
            outcomes: Arc::default(),
            gate: ServiceGate::new(
                settings.paths.drain_lock.clone(),
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
}

/// What the storage monitor watches: the named mount points, or else the
/// media and output roots themselves.
fn storage_config(settings: &Settings, worker_name: &str) -> StorageConfig {
    let probed = if settings.storage.storage_mounts.is_empty() {
        vec![
            settings.paths.media_root.clone(),
            settings.paths.output_root.clone(),
        ]
    } else {
        Vec::new()
    };
    StorageConfig {
        mounts: settings.storage.storage_mounts.clone(),
        probed,
        mountinfo: settings.storage.mountinfo.clone(),
        mount_command: settings.storage.mount_command.clone(),
        probe_timeout: settings.storage.storage_probe_timeout,
        check_interval: settings.storage.storage_check_interval,
        // Unique per process: workers sharing a mount never race on it.
        probe_file_name: format!(".hlsmux-probe-{worker_name}-{}", std::process::id()),
        room: vec![
            (
                settings.paths.output_root.clone(),
                settings.storage.output_min_free_bytes,
            ),
            (
                settings.paths.work_dir.clone(),
                settings.storage.work_min_free_bytes,
            ),
        ],
    }
}

/// Logs the SoC's state at start-up, where the machine reports it.
async fn log_soc(settings: &Settings) {
    let reading = SocSensor::new(&settings.soc).read().await;
    if reading == SocReading::default() {
        info!("no SoC temperature or throttling source on this machine");
    } else {
        info!(temperature_celsius = ?reading.temperature_celsius, throttling = ?reading.throttled_flags(), "SoC state");
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

//! The worker's settings in sections: each part of the worker takes only
//! the section it needs.

use std::path::PathBuf;
use std::time::Duration;

use hlsmux_amqp::AmqpUrls;
use hlsmux_protocol::{
    HistoryRetention, LadderName, MuxerId, Namespace, OutputNaming, SegmentFormat,
};

use crate::pipeline::plan::codec::EncoderChoice;

/// Effective worker settings, every value already checked, in sections:
/// each part of the worker takes only the section it needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub broker: BrokerSettings,
    pub paths: PathSettings,
    pub tools: ToolSettings,
    pub encoding: EncodingSettings,
    pub soc: SocSettings,
    pub storage: StorageSettings,
    pub service: ServiceSettings,
    pub split: SplitSettings,
}

/// When a long job is split across the pool, and whether this worker
/// encodes other workers' chunks.
#[derive(Clone, Debug)]
pub struct SplitSettings {
    /// Split unless a job says otherwise (`auto`), or never (`off`).
    pub mode: hlsmux_protocol::SplitMode,
    /// Inputs shorter than this stay whole.
    pub min_seconds: u32,
    /// About how long each chunk is (a whole number of segments).
    pub chunk_seconds: u32,
    /// Take chunks from the pool's chunk queue while no job is in hand.
    pub take_chunks: bool,
}

/// Where the pool's broker is and who this worker is in it.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    /// The broker, or its cluster's nodes in the order to try them.
    pub amqp_url: AmqpUrls,
    pub namespace: Namespace,
    pub muxer_id: MuxerId,
    /// How often the worker publishes its heartbeat.
    pub heartbeat_interval: Duration,
    /// The event history's retention, if this worker creates the stream.
    pub history_retention: HistoryRetention,
}

/// The directories the worker reads, writes and keeps its state in.
#[derive(Clone, Debug)]
pub struct PathSettings {
    /// Where job inputs are found; job messages name paths relative to it.
    pub media_root: PathBuf,
    /// Where finished HLS outputs are published.
    pub output_root: PathBuf,
    /// Local scratch space: ffmpeg logs of failed jobs.
    pub work_dir: PathBuf,
    /// While this file exists the worker takes no new jobs.
    pub drain_lock: PathBuf,
}

/// The programs the worker runs.
#[derive(Clone, Debug)]
pub struct ToolSettings {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub probe_timeout_seconds: u64,
    /// The cgroup `memory.events` whose `oom_kill` count says whether the
    /// kernel killed ffmpeg for memory; `None`: the worker's own cgroup's.
    pub memory_events: Option<PathBuf>,
}

/// How inputs are opened and outputs encoded: all an encode plan reads.
#[derive(Clone, Debug)]
pub struct EncodingSettings {
    /// The demuxers an input may be opened with (ffmpeg's format names).
    pub input_formats: String,
    pub segment_seconds: u32,
    /// The longest a keyframe interval may be (Apple's authoring
    /// specification: 2 s); segment boundaries stay keyframes.
    pub keyframe_seconds: u32,
    /// Threads ffmpeg may use; 0 lets ffmpeg decide.
    pub ffmpeg_threads: u32,
    /// The machine's cores, as the memory model counts x264's threads.
    pub cores: u32,
    /// The most memory one encode may take (`memory_budget_mib`, or half
    /// the machine's): a libx264 plan is fitted under it.
    pub memory_budget_bytes: u64,
    /// The encoder, or `auto`: the first that passes a trial at start-up.
    pub encoder: EncoderChoice,
    /// The VAAPI render node, for `h264_vaapi`.
    pub vaapi_device: String,
    pub x264_preset: String,
    pub ladder: LadderName,
    /// How outputs' files are named unless a job says otherwise.
    pub naming: OutputNaming,
    /// MPEG-TS or fMP4 segments unless a job says otherwise.
    pub segment_format: SegmentFormat,
    /// How rung bitrates are held, unless a job says otherwise.
    pub rate_control: hlsmux_protocol::RateControl,
    pub audio_bitrate_kbps: u32,
    /// The audio track to encode from inputs with several (ISO 639-2 code,
    /// `eng`); the first track when absent or not found.
    pub audio_language: Option<String>,
    /// Give a source without audio a silent stereo track, for players and
    /// pipelines that expect one; otherwise its variants are video only.
    pub silent_audio: bool,
    /// No rung's short side is longer than this: a 4K source tops out here.
    pub max_rung_lines: u32,
    /// Decode inputs in hardware where the codec allows (`muxhwdec=1`).
    pub hw_decode: bool,
    /// Encrypt outputs with AES-128 unless a job says otherwise.
    pub encrypt: bool,
    /// Where players fetch keys: empty for a path relative to the playlists,
    /// or a URL prefix to which `<output>/encryption.key` is appended.
    pub key_uri_prefix: String,
    /// The URL at which the output root is served: every URI in an
    /// output's playlists is made absolute under it (jobs may give their
    /// own). `None`: relative URIs.
    pub base_url: Option<hlsmux_protocol::BaseUrl>,
    /// An encode whose output time does not advance this long is killed
    /// and its job requeued.
    pub stall_timeout: Duration,
}

/// Where the SoC's temperature and throttling are read.
#[derive(Clone, Debug)]
pub struct SocSettings {
    /// The SoC temperature, in millidegrees Celsius.
    pub thermal_zone: PathBuf,
    /// The command that prints `throttled=0x...`.
    pub throttling_command: String,
}

/// The shared storage's mounts and how they are checked.
#[derive(Clone, Debug)]
pub struct StorageSettings {
    /// Mount points of the shared storage that must be mounted; empty
    /// means the media and output roots are only probed.
    pub storage_mounts: Vec<PathBuf>,
    pub mountinfo: PathBuf,
    /// Run as `<mount_command> <path>` for a mount point that is missing.
    pub mount_command: String,
    pub storage_probe_timeout: Duration,
    pub storage_check_interval: Duration,
    /// The output root takes no job with less room than this, nor with
    /// less than the job's own estimate.
    pub output_min_free_bytes: u64,
    /// The work dir (ffmpeg's logs, the drain lock) takes no job with less.
    pub work_min_free_bytes: u64,
    /// Another machine's staging directory for the same job that has not
    /// changed this long is taken as abandoned and removed.
    pub stale_staging: Duration,
}

/// How the worker serves the pool: requeues, tidying, shutdown, quarantine, metrics.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// How long a job the worker could not do (for its own reasons) waits
    /// before going back to the queue.
    pub requeue_delay: Duration,
    /// Move originals into `originals/` once their output is done...
    pub tidy_originals: bool,
    /// ...this long after.
    pub tidy_delay: Duration,
    /// On SIGTERM, how long a job in hand may run on before it is stopped
    /// and requeued.
    pub shutdown_grace: Duration,
    /// After this many jobs in a row fail for the worker's own reasons, it
    /// stops taking jobs; 0 never.
    pub quarantine_after: u32,
    /// How long a quarantined worker waits before its self-test.
    pub quarantine_cooldown: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (port 0: any
    /// free port)...
    pub metrics_addr: std::net::SocketAddr,
    /// ...and, when set, the file the bound address is written to once
    /// the worker listens (for supervisors and tests that ask for port 0).
    pub metrics_addr_file: Option<PathBuf>,
}

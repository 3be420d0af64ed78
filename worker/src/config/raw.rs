//! The settings as the file and environment spell them (flat keys), the
//! built-in defaults, and the checks that turn them into [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use hlsmux_amqp::AmqpUrls;
use hlsmux_protocol::HistoryRetention;
use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::sections::{
    BrokerSettings, EncodingSettings, PathSettings, ServiceSettings, Settings, SocSettings,
    SplitSettings, StorageSettings, ToolSettings,
};

/// The settings as read, before checking. Field names are the config keys
/// (and, upper-cased after `HLSMUX_`, the environment variables).
#[derive(Debug, Deserialize)]
pub(super) struct RawSettings {
    pub(super) amqp_url: String,
    pub(super) namespace: String,
    pub(super) muxer_id: String,
    pub(super) media_root: PathBuf,
    pub(super) output_root: PathBuf,
    pub(super) work_dir: PathBuf,
    pub(super) ffmpeg: PathBuf,
    pub(super) ffprobe: PathBuf,
    pub(super) segment_seconds: u32,
    pub(super) keyframe_seconds: u32,
    pub(super) ffmpeg_threads: u32,
    pub(super) memory_budget_mib: u64,
    pub(super) meminfo: PathBuf,
    pub(super) encoder: String,
    pub(super) vaapi_device: String,
    pub(super) x264_preset: String,
    pub(super) ladder: String,
    pub(super) naming: String,
    pub(super) segment_format: String,
    pub(super) rate_control: String,
    pub(super) audio_bitrate_kbps: u32,
    pub(super) audio_language: String,
    pub(super) silent_audio: bool,
    pub(super) max_rung_lines: u32,
    pub(super) probe_timeout_seconds: u64,
    pub(super) memory_events: String,
    pub(super) requeue_delay_seconds: u64,
    pub(super) hw_decode: bool,
    pub(super) drain_lock: PathBuf,
    pub(super) thermal_zone: PathBuf,
    pub(super) throttling_command: String,
    pub(super) storage_mounts: PathList,
    pub(super) mountinfo: PathBuf,
    pub(super) mount_command: String,
    pub(super) storage_probe_timeout_seconds: u64,
    pub(super) storage_check_interval_seconds: u64,
    pub(super) output_min_free_bytes: u64,
    pub(super) work_min_free_bytes: u64,
    pub(super) tidy_originals: bool,
    pub(super) tidy_delay_seconds: u64,
    pub(super) metrics_addr: String,
    pub(super) metrics_addr_file: String,
    pub(super) input_formats: String,
    pub(super) stall_timeout_seconds: u64,
    pub(super) shutdown_grace_seconds: u64,
    pub(super) quarantine_after: u32,
    pub(super) quarantine_cooldown_seconds: u64,
    pub(super) stale_staging_seconds: u64,
    pub(super) heartbeat_interval_seconds: u64,
    pub(super) history_max_age: String,
    pub(super) history_max_bytes: u64,
    pub(super) encrypt: bool,
    pub(super) key_uri_prefix: String,
    pub(super) base_url: String,
    pub(super) split: String,
    pub(super) split_min_seconds: u32,
    pub(super) chunk_seconds: u32,
    pub(super) take_chunks: bool,
}

/// A list of paths: a TOML array, or comma-separated in an environment
/// variable.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PathList {
    Many(Vec<PathBuf>),
    Joined(String),
}

impl PathList {
    fn into_paths(self) -> Vec<PathBuf> {
        match self {
            PathList::Many(paths) => paths,
            PathList::Joined(text) => text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        }
    }
}

pub(super) const DEFAULTS: &str = r#"
amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f"
namespace = "hlsmux"
muxer_id = "1"
media_root = "/srv/hlsmux/media"
output_root = "/srv/hlsmux/output"
work_dir = "/var/lib/hlsmux"
ffmpeg = "ffmpeg"
ffprobe = "ffprobe"
segment_seconds = 5
keyframe_seconds = 2
ffmpeg_threads = 0
memory_budget_mib = 0
meminfo = "/proc/meminfo"
encoder = "auto"
vaapi_device = "/dev/dri/renderD128"
x264_preset = "veryfast"
ladder = "standard"
naming = "hlsmux"
segment_format = "mpegts"
rate_control = "vbr"
audio_bitrate_kbps = 128
audio_language = ""
silent_audio = false
max_rung_lines = 1080
probe_timeout_seconds = 60
memory_events = ""
requeue_delay_seconds = 5
hw_decode = false
kernel_cmdline = "/proc/cmdline"
drain_lock = "hlsmux.lock"
thermal_zone = "/sys/class/thermal/thermal_zone0/temp"
throttling_command = "vcgencmd get_throttled"
storage_mounts = []
mountinfo = "/proc/self/mountinfo"
mount_command = ""
storage_probe_timeout_seconds = 10
storage_check_interval_seconds = 30
output_min_free_bytes = 1073741824
work_min_free_bytes = 67108864
tidy_originals = true
tidy_delay_seconds = 86400
metrics_addr = "0.0.0.0:9797"
metrics_addr_file = ""
input_formats = "mov,matroska,mpegts,mpeg,avi,flv,asf,ogg,mxf,dv,nut,h264,hevc,m4v,mpegvideo,yuv4mpegpipe"
stall_timeout_seconds = 120
shutdown_grace_seconds = 30
quarantine_after = 3
quarantine_cooldown_seconds = 600
stale_staging_seconds = 600
heartbeat_interval_seconds = 5
history_max_age = "7D"
history_max_bytes = 1073741824
encrypt = false
key_uri_prefix = ""
base_url = ""
split = "auto"
split_min_seconds = 180
chunk_seconds = 60
take_chunks = true
"#;

/// `memory_budget_mib`, or when it is 0 half of `MemTotal` in `meminfo`.
fn memory_budget_bytes(mib: u64, meminfo: &std::path::Path) -> Result<u64, ConfigError> {
    if mib > 0 {
        return Ok(mib * 1024 * 1024);
    }
    std::fs::read_to_string(meminfo)
        .ok()
        .and_then(|text| crate::pipeline::plan::memory::default_budget_bytes(&text))
        .ok_or_else(|| {
            invalid("meminfo")(format!(
                "no MemTotal in {}: point meminfo at the machine's /proc/meminfo or set memory_budget_mib",
                meminfo.display()
            ))
        })
}

impl RawSettings {
    pub(super) fn parse(self) -> Result<Settings, ConfigError> {
        if self.keyframe_seconds == 0 {
            return Err(invalid("keyframe_seconds")("must be at least 1".into()));
        }
        if self.segment_seconds == 0 {
            return Err(invalid("segment_seconds")("must be at least 1".into()));
        }
        if self.stall_timeout_seconds == 0 {
            return Err(invalid("stall_timeout_seconds")(
                "must be at least 1".into(),
            ));
        }
        let prefix = &self.key_uri_prefix;
        if !prefix.is_empty()
            && (!prefix.ends_with('/')
                || prefix
                    .chars()
                    .any(|c| c == '"' || c.is_whitespace() || c.is_control()))
        {
            return Err(invalid("key_uri_prefix")(
                "must be empty or a URL ending in `/` without quotes or spaces, e.g. https://keys.example.com/hls/".into(),
            ));
        }
        let base_url = if self.base_url.is_empty() {
            None
        } else {
            Some(
                self.base_url
                    .parse::<hlsmux_protocol::BaseUrl>()
                    .map_err(|error| invalid("base_url")(error.to_string()))?,
            )
        };
        if self.max_rung_lines < 2 {
            return Err(invalid("max_rung_lines")(
                "must be at least 2 (1080 keeps 4K sources at Full HD)".into(),
            ));
        }
        if self.input_formats.trim().is_empty() {
            return Err(invalid("input_formats")(
                "must name at least one demuxer, e.g. mov,matroska".into(),
            ));
        }
        if self.chunk_seconds == 0 {
            return Err(invalid("chunk_seconds")("must be at least 1".into()));
        }
        Ok(Settings {
            split: SplitSettings {
                mode: self.split.parse().map_err(invalid("split"))?,
                min_seconds: self.split_min_seconds,
                chunk_seconds: self.chunk_seconds,
                take_chunks: self.take_chunks,
            },
            broker: BrokerSettings {
                amqp_url: AmqpUrls::parse(&self.amqp_url)
                    .map_err(|e| invalid("amqp_url")(e.to_string()))?,
                namespace: self.namespace.parse().map_err(
                    |e: hlsmux_protocol::NamespaceError| invalid("namespace")(e.to_string()),
                )?,
                muxer_id: self
                    .muxer_id
                    .parse()
                    .map_err(|e: hlsmux_protocol::MuxerIdError| {
                        invalid("muxer_id")(e.to_string())
                    })?,
                heartbeat_interval: Duration::from_secs(self.heartbeat_interval_seconds.max(1)),
                history_retention: HistoryRetention {
                    max_age: self.history_max_age.parse().map_err(
                        |e: hlsmux_protocol::StreamMaxAgeError| {
                            invalid("history_max_age")(e.to_string())
                        },
                    )?,
                    max_bytes: self.history_max_bytes,
                },
            },
            paths: PathSettings {
                media_root: self.media_root,
                output_root: self.output_root,
                work_dir: self.work_dir.clone(),
                // A relative lock path lives in the work dir (the state dir).
                drain_lock: self.work_dir.join(self.drain_lock),
            },
            tools: ToolSettings {
                ffmpeg: self.ffmpeg,
                ffprobe: self.ffprobe,
                probe_timeout_seconds: self.probe_timeout_seconds,
                memory_events: (!self.memory_events.is_empty())
                    .then(|| PathBuf::from(&self.memory_events)),
            },
            encoding: EncodingSettings {
                input_formats: self.input_formats.split_whitespace().collect(),
                segment_seconds: self.segment_seconds,
                keyframe_seconds: self.keyframe_seconds,
                ffmpeg_threads: self.ffmpeg_threads,
                cores: std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
                memory_budget_bytes: memory_budget_bytes(self.memory_budget_mib, &self.meminfo)?,
                encoder: self.encoder.parse().map_err(invalid("encoder"))?,
                vaapi_device: self.vaapi_device,
                x264_preset: self.x264_preset,
                ladder: self.ladder.parse().map_err(invalid("ladder"))?,
                naming: self.naming.parse().map_err(invalid("naming"))?,
                segment_format: self
                    .segment_format
                    .parse()
                    .map_err(invalid("segment_format"))?,
                rate_control: self.rate_control.parse().map_err(invalid("rate_control"))?,
                audio_bitrate_kbps: self.audio_bitrate_kbps,
                audio_language: Some(self.audio_language.trim().to_owned())
                    .filter(|l| !l.is_empty()),
                silent_audio: self.silent_audio,
                max_rung_lines: self.max_rung_lines,
                hw_decode: self.hw_decode,
                encrypt: self.encrypt,
                key_uri_prefix: self.key_uri_prefix,
                base_url,
                stall_timeout: Duration::from_secs(self.stall_timeout_seconds),
            },
            soc: SocSettings {
                thermal_zone: self.thermal_zone,
                throttling_command: self.throttling_command,
            },
            storage: StorageSettings {
                storage_mounts: self.storage_mounts.into_paths(),
                mountinfo: self.mountinfo,
                mount_command: self.mount_command,
                storage_probe_timeout: Duration::from_secs(
                    self.storage_probe_timeout_seconds.max(1),
                ),
                storage_check_interval: Duration::from_secs(self.storage_check_interval_seconds),
                output_min_free_bytes: self.output_min_free_bytes,
                work_min_free_bytes: self.work_min_free_bytes,
                stale_staging: Duration::from_secs(self.stale_staging_seconds),
            },
            service: ServiceSettings {
                requeue_delay: Duration::from_secs(self.requeue_delay_seconds),
                tidy_originals: self.tidy_originals,
                tidy_delay: Duration::from_secs(self.tidy_delay_seconds),
                shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
                quarantine_after: self.quarantine_after,
                quarantine_cooldown: Duration::from_secs(self.quarantine_cooldown_seconds),
                metrics_addr: self.metrics_addr.parse().map_err(
                    |e: std::net::AddrParseError| {
                        invalid("metrics_addr")(format!("{e}: use HOST:PORT"))
                    },
                )?,
                metrics_addr_file: Some(self.metrics_addr_file)
                    .filter(|file| !file.is_empty())
                    .map(PathBuf::from),
            },
        })
    }
}

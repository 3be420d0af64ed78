//! The worker's settings: built-in defaults, overlaid by a TOML file, then by
//! `HLSMUX_*` environment variables, and parsed once into typed values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use hlsmux_amqp::AmqpUrls;
use hlsmux_protocol::{
    HistoryRetention, LadderName, MuxerId, Namespace, OutputNaming, SegmentFormat,
};

use crate::boot::{BootOptionError, BootOptions};
use crate::pipeline::codec::EncoderChoice;
use serde::Deserialize;

/// Effective worker settings, every value already checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The broker, or its cluster's nodes in the order to try them.
    pub amqp_url: AmqpUrls,
    pub namespace: Namespace,
    pub muxer_id: MuxerId,
    /// Where job inputs are found; job messages name paths relative to it.
    pub media_root: PathBuf,
    /// Where finished HLS outputs are published.
    pub output_root: PathBuf,
    /// Local scratch space: ffmpeg logs of failed jobs.
    pub work_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub segment_seconds: u32,
    /// Threads ffmpeg may use; 0 lets ffmpeg decide.
    pub ffmpeg_threads: u32,
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
    pub audio_bitrate_kbps: u32,
    /// The audio track to encode from inputs with several (ISO 639-2 code,
    /// `eng`); the first track when absent or not found.
    pub audio_language: Option<String>,
    /// Give a source without audio a silent stereo track, for players and
    /// pipelines that expect one; otherwise its variants are video only.
    pub silent_audio: bool,
    /// No rung's short side is longer than this: a 4K source tops out here.
    pub max_rung_lines: u32,
    pub probe_timeout_seconds: u64,
    /// How long a job the worker could not do (for its own reasons) waits
    /// before going back to the queue.
    pub requeue_delay: Duration,
    /// Decode inputs in hardware where the codec allows (`muxhwdec=1`).
    pub hw_decode: bool,
    /// While this file exists the worker takes no new jobs.
    pub drain_lock: PathBuf,
    /// The SoC temperature, in millidegrees Celsius.
    pub thermal_zone: PathBuf,
    /// The command that prints `throttled=0x...`.
    pub throttling_command: String,
    /// Mount points of the shared storage that must be mounted; empty
    /// means the media and output roots are only probed.
    pub storage_mounts: Vec<PathBuf>,
    pub mountinfo: PathBuf,
    /// Run as `<mount_command> <path>` for a mount point that is missing.
    pub mount_command: String,
    pub storage_probe_timeout: Duration,
    pub storage_check_interval: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Move originals into `originals/` once their output is done...
    pub tidy_originals: bool,
    /// ...this long after.
    pub tidy_delay: Duration,
    /// The demuxers an input may be opened with (ffmpeg's format names).
    pub input_formats: String,
    /// An encode whose output time does not advance this long is killed
    /// and its job requeued.
    pub stall_timeout: Duration,
    /// On SIGTERM, how long a job in hand may run on before it is stopped
    /// and requeued.
    pub shutdown_grace: Duration,
    /// After this many jobs in a row fail for the worker's own reasons, it
    /// stops taking jobs; 0 never.
    pub quarantine_after: u32,
    /// How long a quarantined worker waits before its self-test.
    pub quarantine_cooldown: Duration,
    /// Another machine's staging directory for the same job that has not
    /// changed this long is taken as abandoned and removed.
    pub stale_staging: Duration,
    /// How often the worker publishes its heartbeat.
    pub heartbeat_interval: Duration,
    /// The event history's retention, if this worker creates the stream.
    pub history_retention: HistoryRetention,
    /// Encrypt outputs with AES-128 unless a job says otherwise.
    pub encrypt: bool,
    /// Where players fetch keys: empty for a path relative to the playlists,
    /// or a URL prefix to which `<output>/encryption.key` is appended.
    pub key_uri_prefix: String,
}

/// The settings as read, before checking. Field names are the config keys
/// (and, upper-cased after `HLSMUX_`, the environment variables).
#[derive(Debug, Deserialize)]
struct RawSettings {
    amqp_url: String,
    namespace: String,
    muxer_id: String,
    media_root: PathBuf,
    output_root: PathBuf,
    work_dir: PathBuf,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    segment_seconds: u32,
    ffmpeg_threads: u32,
    encoder: String,
    vaapi_device: String,
    x264_preset: String,
    ladder: String,
    naming: String,
    segment_format: String,
    audio_bitrate_kbps: u32,
    audio_language: String,
    silent_audio: bool,
    max_rung_lines: u32,
    probe_timeout_seconds: u64,
    requeue_delay_seconds: u64,
    hw_decode: bool,
    drain_lock: PathBuf,
    thermal_zone: PathBuf,
    throttling_command: String,
    storage_mounts: PathList,
    mountinfo: PathBuf,
    mount_command: String,
    storage_probe_timeout_seconds: u64,
    storage_check_interval_seconds: u64,
    tidy_originals: bool,
    tidy_delay_seconds: u64,
    metrics_addr: String,
    input_formats: String,
    stall_timeout_seconds: u64,
    shutdown_grace_seconds: u64,
    quarantine_after: u32,
    quarantine_cooldown_seconds: u64,
    stale_staging_seconds: u64,
    heartbeat_interval_seconds: u64,
    history_max_age: String,
    history_max_bytes: u64,
    encrypt: bool,
    key_uri_prefix: String,
}

/// A list of paths: a TOML array, or comma-separated in an environment
/// variable.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PathList {
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

const DEFAULTS: &str = r#"
amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f"
namespace = "hlsmux"
muxer_id = "1"
media_root = "/srv/hlsmux/media"
output_root = "/srv/hlsmux/output"
work_dir = "/var/lib/hlsmux"
ffmpeg = "ffmpeg"
ffprobe = "ffprobe"
segment_seconds = 5
ffmpeg_threads = 0
encoder = "auto"
vaapi_device = "/dev/dri/renderD128"
x264_preset = "veryfast"
ladder = "standard"
naming = "hlsmux"
segment_format = "mpegts"
audio_bitrate_kbps = 128
audio_language = ""
silent_audio = false
max_rung_lines = 1080
probe_timeout_seconds = 60
requeue_delay_seconds = 5
hw_decode = false
kernel_cmdline = "/proc/cmdline"
drain_lock = "hlsmux.lock"
thermal_zone = "/sys/class/thermal/thermal_zone0/temp"
throttling_command = "vcgencmd get_throttled"
storage_mounts = []
mountinfo = "/proc/self/mountinfo"
mount_command = "mount"
storage_probe_timeout_seconds = 10
storage_check_interval_seconds = 30
tidy_originals = true
tidy_delay_seconds = 86400
metrics_addr = "0.0.0.0:9797"
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
"#;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(transparent)]
    Boot(#[from] BootOptionError),
}

fn invalid(key: &'static str) -> impl FnOnce(String) -> ConfigError {
    move |message| ConfigError::Invalid { key, message }
}

/// Prefix of the environment variables that override settings.
const ENV_PREFIX: &str = "HLSMUX";

/// Where an effective setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    KernelCmdline(PathBuf),
    Environment(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::KernelCmdline(path) => write!(f, "kernel command line {}", path.display()),
            Source::Environment(var) => write!(f, "environment {var}"),
        }
    }
}

/// One effective setting, for the start-up log.
#[derive(Clone, Debug)]
pub struct Origin {
    pub key: String,
    pub value: String,
    pub source: Source,
}

impl Settings {
    /// Loads, lowest to highest: built-in defaults < `file` (when given) <
    /// the kernel command line (`muxid=`, `muxhwdec=`) < `HLSMUX_*`
    /// environment. Returns where each value came from, too.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<Origin>), ConfigError> {
        let layers = |boot: Option<&str>| {
            let mut builder =
                Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
            if let Some(path) = file {
                builder =
                    builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
            }
            if let Some(boot) = boot {
                builder = builder.add_source(File::from_str(boot, FileFormat::Toml));
            }
            builder
                .add_source(Environment::with_prefix(ENV_PREFIX).try_parsing(false))
                .build()
        };
        // The command line's own path is a setting: read it without it first.
        let cmdline_path = PathBuf::from(layers(None)?.get_string("kernel_cmdline")?);
        let boot = BootOptions::read(&cmdline_path)?;
        let merged = layers(Some(&boot.as_toml()))?;
        let raw: RawSettings = merged.clone().try_deserialize()?;
        let settings = raw.parse()?;

        let in_file = match file {
            Some(path) => Some(
                Config::builder()
                    .add_source(File::from(path).format(FileFormat::Toml).required(true))
                    .build()?,
            ),
            None => None,
        };
        let mut origins: Vec<Origin> = merged
            .try_deserialize::<std::collections::HashMap<String, config::Value>>()?
            .into_iter()
            .map(|(key, value)| {
                let var = format!("{ENV_PREFIX}_{}", key.to_uppercase());
                let source = if std::env::var_os(&var).is_some() {
                    Source::Environment(var)
                } else if boot.sets(&key) {
                    Source::KernelCmdline(cmdline_path.clone())
                } else if in_file
                    .as_ref()
                    .is_some_and(|f| f.get::<config::Value>(&key).is_ok())
                {
                    Source::File(file.map(Path::to_owned).unwrap_or_default())
                } else {
                    Source::Default
                };
                let value = if key == "amqp_url" {
                    settings.amqp_url.to_string()
                } else {
                    value.to_string()
                };
                Origin { key, value, source }
            })
            .collect();
        origins.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((settings, origins))
    }
}

/// Blocking. Says so when the config `file` holds a broker password and
/// other users may read it (it should be mode 0600, owned by the worker).
pub fn exposed_secret(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode();
    if mode & 0o077 == 0 {
        return None;
    }
    let url = Config::builder()
        .add_source(File::from(file).format(FileFormat::Toml))
        .build()
        .and_then(|read| read.get_string("amqp_url"))
        .ok()?;
    let url = AmqpUrls::parse(&url).ok()?;
    url.has_password().then(|| {
        format!(
            "{} holds the broker password and other users can read it (mode {:o}): chmod 600 it",
            file.display(),
            mode & 0o777
        )
    })
}

impl RawSettings {
    fn parse(self) -> Result<Settings, ConfigError> {
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
        Ok(Settings {
            amqp_url: AmqpUrls::parse(&self.amqp_url)
                .map_err(|e| invalid("amqp_url")(e.to_string()))?,
            namespace: self
                .namespace
                .parse()
                .map_err(|e: hlsmux_protocol::NamespaceError| {
                    invalid("namespace")(e.to_string())
                })?,
            muxer_id: self
                .muxer_id
                .parse()
                .map_err(|e: hlsmux_protocol::MuxerIdError| invalid("muxer_id")(e.to_string()))?,
            media_root: self.media_root,
            output_root: self.output_root,
            work_dir: self.work_dir.clone(),
            ffmpeg: self.ffmpeg,
            ffprobe: self.ffprobe,
            segment_seconds: self.segment_seconds,
            ffmpeg_threads: self.ffmpeg_threads,
            encoder: self.encoder.parse().map_err(invalid("encoder"))?,
            vaapi_device: self.vaapi_device,
            x264_preset: self.x264_preset,
            ladder: self.ladder.parse().map_err(invalid("ladder"))?,
            naming: self.naming.parse().map_err(invalid("naming"))?,
            segment_format: self
                .segment_format
                .parse()
                .map_err(invalid("segment_format"))?,
            audio_bitrate_kbps: self.audio_bitrate_kbps,
            audio_language: Some(self.audio_language.trim().to_owned()).filter(|l| !l.is_empty()),
            silent_audio: self.silent_audio,
            max_rung_lines: self.max_rung_lines,
            probe_timeout_seconds: self.probe_timeout_seconds,
            requeue_delay: Duration::from_secs(self.requeue_delay_seconds),
            hw_decode: self.hw_decode,
            // A relative lock path lives in the work dir (the state dir).
            drain_lock: self.work_dir.join(self.drain_lock),
            thermal_zone: self.thermal_zone,
            throttling_command: self.throttling_command,
            storage_mounts: self.storage_mounts.into_paths(),
            mountinfo: self.mountinfo,
            mount_command: self.mount_command,
            storage_probe_timeout: Duration::from_secs(self.storage_probe_timeout_seconds.max(1)),
            storage_check_interval: Duration::from_secs(self.storage_check_interval_seconds),
            metrics_addr: self
                .metrics_addr
                .parse()
                .map_err(|e: std::net::AddrParseError| {
                    invalid("metrics_addr")(format!("{e}: use HOST:PORT"))
                })?,
            tidy_originals: self.tidy_originals,
            tidy_delay: Duration::from_secs(self.tidy_delay_seconds),
            input_formats: self.input_formats.split_whitespace().collect(),
            stall_timeout: Duration::from_secs(self.stall_timeout_seconds),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            quarantine_after: self.quarantine_after,
            quarantine_cooldown: Duration::from_secs(self.quarantine_cooldown_seconds),
            stale_staging: Duration::from_secs(self.stale_staging_seconds),
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_seconds.max(1)),
            history_retention: HistoryRetention {
                max_age: self.history_max_age.parse().map_err(
                    |e: hlsmux_protocol::StreamMaxAgeError| {
                        invalid("history_max_age")(e.to_string())
                    },
                )?,
                max_bytes: self.history_max_bytes,
            },
            encrypt: self.encrypt,
            key_uri_prefix: self.key_uri_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_config_file_with_a_password_is_called_out() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "amqp_url = \"amqp://hlsmux:secret@nas:5672/%2f\"\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let warning = exposed_secret(&file).expect("called out");
        assert!(
            warning.contains("chmod 600") && !warning.contains("secret@"),
            "{warning}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(exposed_secret(&file), None);
        std::fs::write(&file, "amqp_url = \"amqp://nas:5672/%2f\"\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(exposed_secret(&file), None, "no password, nothing to hide");
    }

    fn raw() -> RawSettings {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("defaults deserialise")
    }

    #[test]
    fn defaults_parse() {
        let settings = raw().parse().expect("defaults are valid");
        assert_eq!(settings.muxer_id.get(), 1);
        assert_eq!(settings.segment_seconds, 5);
        assert_eq!(settings.ladder, LadderName::Standard);
    }

    #[test]
    fn a_file_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "muxer_id = 4\nsegment_seconds = 2\n").expect("write");
        let (settings, origins) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.muxer_id.get(), 4);
        let origin = origins
            .iter()
            .find(|o| o.key == "muxer_id")
            .expect("listed");
        assert_eq!(origin.source, Source::File(path.clone()));
        assert_eq!(settings.segment_seconds, 2);
    }

    #[test]
    fn the_kernel_command_line_beats_the_file_and_is_named_as_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "root=/dev/nfs muxid=9 muxhwdec=1\n").expect("write");
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            format!(
                "muxer_id = 4\nkernel_cmdline = {:?}\n",
                cmdline.display().to_string()
            ),
        )
        .expect("write");
        let (settings, origins) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(settings.muxer_id.get(), 9);
        assert!(settings.hw_decode);
        let source = |key: &str| {
            origins
                .iter()
                .find(|o| o.key == key)
                .map(|o| o.source.clone())
        };
        assert_eq!(
            source("muxer_id"),
            Some(Source::KernelCmdline(cmdline.clone()))
        );
        assert_eq!(source("hw_decode"), Some(Source::KernelCmdline(cmdline)));
        assert_eq!(source("kernel_cmdline"), Some(Source::File(path)));
        assert_eq!(source("ladder"), Some(Source::Default));
    }

    #[test]
    fn storage_mounts_come_as_an_array_or_a_comma_separated_string() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "storage_mounts = [\"/srv/a\", \"/srv/b\"]\n").expect("write");
        let (settings, _) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(
            settings.storage_mounts,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
        std::fs::write(&path, "storage_mounts = \"/srv/a, /srv/b\"\n").expect("write");
        let (settings, _) = Settings::load(Some(&path)).expect("loads");
        assert_eq!(
            settings.storage_mounts,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut bad = raw();
        bad.muxer_id = "seven".into();
        let error = bad.parse().expect_err("non-numeric muxer");
        assert!(error.to_string().contains("muxer_id"), "{error}");

        let mut bad = raw();
        bad.ladder = "fancy".into();
        let error = bad.parse().expect_err("unknown ladder");
        assert!(error.to_string().contains("standard"), "{error}");

        let mut bad = raw();
        bad.key_uri_prefix = "https://keys.example.com/hls".into();
        let error = bad.parse().expect_err("no trailing slash");
        assert!(error.to_string().contains("key_uri_prefix"), "{error}");

        let mut bad = raw();
        bad.history_max_age = "7 days".into();
        let error = bad.parse().expect_err("not RabbitMQ's notation");
        assert!(error.to_string().contains("history_max_age"), "{error}");
    }

    #[test]
    fn the_example_config_in_deploy_parses_to_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/worker.example.toml");
        let from_example: RawSettings = Config::builder()
            .add_source(
                File::from(example.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            )
            .build()
            .and_then(Config::try_deserialize)
            .expect("example parses");
        let (example, defaults) = (
            from_example.parse().expect("valid"),
            raw().parse().expect("valid"),
        );
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let error =
            Settings::load(Some(Path::new("/nonexistent/worker.toml"))).expect_err("missing file");
        assert!(matches!(error, ConfigError::Load(_)));
    }
}

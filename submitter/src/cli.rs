//! The command line of `hlsmux`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use hlsmux_amqp::AmqpUrls;
use hlsmux_protocol::{LadderName, MuxerId, Namespace, OutputNaming, SegmentFormat};

#[derive(Parser, Debug)]
#[command(
    name = "hlsmux",
    version,
    about = "Submit videos to the hlsmux pool and follow them",
    after_help = "Examples:\n  hlsmux submit talk.mp4 --wait\n  hlsmux watch\n  hlsmux jobs --since 1day\n  hlsmux workers\n  hlsmux drain 2\n\nExit status: 0 done, 1 a job failed, 2 usage or input error (nothing queued), 3 RabbitMQ unreachable, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the pool is: the same variables the workers read.
/// Parses `--amqp-url` without clap's "invalid value '...'", which would
/// print the URL whole, password included: the error names the URL with
/// its password hidden.
#[derive(Clone, Copy, Debug)]
struct AmqpUrlsParser;

impl clap::builder::TypedValueParser for AmqpUrlsParser {
    type Value = AmqpUrls;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<AmqpUrls, clap::Error> {
        use clap::error::ErrorKind;
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::raw(ErrorKind::InvalidUtf8, "--amqp-url is not UTF-8\n"))?;
        AmqpUrls::parse(text).map_err(|error| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("--amqp-url (HLSMUX_AMQP_URL): {error}\n"),
            )
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// RabbitMQ URL, or a cluster's nodes' URLs separated by commas (the
    /// first that answers is used).
    #[arg(
        long,
        global = true,
        env = "HLSMUX_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        value_parser = AmqpUrlsParser
    )]
    pub amqp_url: AmqpUrls,
    /// Prefix of the pool's exchange and queue names.
    #[arg(
        long,
        global = true,
        env = "HLSMUX_NAMESPACE",
        default_value = "hlsmux"
    )]
    pub namespace: Namespace,
    /// The shared media root the workers read inputs from.
    #[arg(
        long,
        global = true,
        env = "HLSMUX_MEDIA_ROOT",
        default_value = "/srv/hlsmux/media"
    )]
    pub media_root: PathBuf,
    /// The shared output root, to print full paths of finished outputs.
    #[arg(long, global = true, env = "HLSMUX_OUTPUT_ROOT")]
    pub output_root: Option<PathBuf>,
    /// Log lines as `text` or `json`.
    #[arg(long, global = true, env = "HLSMUX_LOG_FORMAT", default_value = "text")]
    pub log_format: hlsmux_telemetry::LogFormat,
    /// OTLP/HTTP endpoint to export each job's trace to (none: no export).
    #[arg(long, global = true, env = "HLSMUX_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Queue videos for muxing into HLS.
    Submit(SubmitArgs),
    /// List recent jobs with their latest state, from the pool's history.
    #[command(
        after_help = "Examples:\n  hlsmux jobs\n  hlsmux jobs --since 1day --state failed\n  hlsmux jobs --muxer 2 --json"
    )]
    Jobs(JobsArgs),
    /// Show the pool: each worker's state, job in hand and health from its
    /// heartbeats (`lost` after three missed), and each muxer queue's counts.
    #[command(
        after_help = "Examples:\n  hlsmux workers\n  hlsmux workers --json | jq '.workers[] | select(.lost)'"
    )]
    Workers(WorkersArgs),
    /// Follow live events: every job of the pool (until Ctrl-C), or one job
    /// to its end. A progress bar per running job on a terminal.
    #[command(after_help = "Examples:\n  hlsmux watch\n  hlsmux watch 0b9c6c1e-... --json")]
    Watch(WatchArgs),
    /// Show one job's whole event timeline.
    #[command(after_help = "Example:\n  hlsmux status 0b9c6c1e-...")]
    Status(StatusArgs),
    /// Stop queued or running jobs: a running one stops within seconds, a
    /// queued one fails as `cancelled` when a worker takes it. Nothing is
    /// published and the inputs stay.
    #[command(
        after_help = "Examples:\n  hlsmux cancel 0b9c6c1e-...\n  hlsmux cancel 0b9c6c1e-... 5d0f7a2b-... --wait"
    )]
    Cancel(CancelArgs),
    /// Take a muxer's workers out of service: each finishes its job in hand
    /// and then takes no more, as with its drain lock file.
    #[command(after_help = "Example:\n  hlsmux drain 2")]
    Drain(MuxerArg),
    /// Put a drained muxer's workers back in service (a worker's own lock
    /// file still wins).
    #[command(after_help = "Example:\n  hlsmux resume 2")]
    Resume(MuxerArg),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  hlsmux completions bash > /etc/bash_completion.d/hlsmux\n  hlsmux completions zsh > ~/.zfunc/_hlsmux"
    )]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Look at and retry dead-lettered jobs (failed for good, or tried as
    /// often as the delivery limit allows).
    #[command(
        subcommand,
        after_help = "Examples:\n  hlsmux dlq list\n  hlsmux dlq retry --all"
    )]
    Dlq(DlqCommand),
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List the dead-lettered jobs.
    #[command(after_help = "Example:\n  hlsmux dlq list --json")]
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send dead-lettered jobs back to their muxer's queue.
    #[command(after_help = "Examples:\n  hlsmux dlq retry 0b9c6c1e-...\n  hlsmux dlq retry --all")]
    Retry {
        /// The job IDs to retry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        jobs: Vec<hlsmux_protocol::JobId>,
        /// Retry every dead-lettered job.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// How far back to look (`30m`, `1h`, `2days`; the history keeps 7 days by default).
    #[arg(long, default_value = "1h")]
    pub since: humantime::Duration,
    /// Only jobs in this state.
    #[arg(long, value_enum)]
    pub state: Option<JobStateFilter>,
    /// Only jobs of this muxer.
    #[arg(long)]
    pub muxer: Option<MuxerId>,
    /// One JSON object per job and line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum JobStateFilter {
    Running,
    Requeued,
    Done,
    Failed,
}

impl JobStateFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStateFilter::Running => "running",
            JobStateFilter::Requeued => "requeued",
            JobStateFilter::Done => "done",
            JobStateFilter::Failed => "failed",
        }
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The job ID (`hlsmux submit` prints it).
    pub job: hlsmux_protocol::JobId,
    /// Show every progress event too.
    #[arg(long)]
    pub progress: bool,
    /// The events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The job IDs (`hlsmux submit` prints them).
    #[arg(required = true)]
    pub jobs: Vec<hlsmux_protocol::JobId>,
    /// Wait until each job has stopped (exit 1 if one ended another way
    /// first).
    #[arg(long)]
    pub wait: bool,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Follow only this job, from its first event to its end.
    pub job: Option<hlsmux_protocol::JobId>,
    /// Each event as a JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WorkersArgs {
    /// One JSON document (`workers`, `queues`) instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MuxerArg {
    /// The muxer ID.
    pub muxer: MuxerId,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  hlsmux submit talk.mp4 --wait
  hlsmux submit a.mp4 b.mkv --muxer 2
  hlsmux submit 'recordings/2026-*/*.mkv' --wait
  hlsmux submit premiere.mov --encrypt --segment-length 4
  hlsmux submit talk.mp4 --name talks/day1.hls --ladder seed --segment-length 6 --wait --json
  hlsmux submit old-show.mp4 --naming seed      # the seed's file names, for players moving from it
  hlsmux submit film.mkv --segment-format fmp4  # fragmented MP4 segments (HLS version 7)")]
pub struct SubmitArgs {
    /// Video files or quoted glob patterns (`'talks/*.mp4'`). Files outside
    /// the media root are copied into its `incoming/` folder first.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Muxer ID to send the jobs to, or `auto` for the least busy muxer
    /// that has a worker.
    #[arg(long, default_value = "auto")]
    pub muxer: MuxerChoice,
    /// Muxer IDs `auto` considers.
    #[arg(long, default_value = "1-16", value_name = "FIRST-LAST")]
    pub auto_muxers: MuxerRange,
    /// Output directory name under the output root (one file only).
    /// Default: the input's path under the media root, plus `.hls`.
    #[arg(long)]
    pub name: Option<String>,
    /// Bitrate ladder (the worker's default when not given).
    #[arg(long)]
    pub ladder: Option<LadderName>,
    /// Segment length in seconds (the worker's default when not given).
    #[arg(long, value_name = "SECONDS")]
    pub segment_length: Option<u32>,
    /// How the output's files are named: `hlsmux` (master.m3u8, a directory
    /// per stream) or `seed` (the seed's flat manifest_master.m3u8 and
    /// media_ segments). The worker's default when not given.
    #[arg(long)]
    pub naming: Option<OutputNaming>,
    /// Segment container: `mpegts` (.ts) or `fmp4` (.m4s with an init.mp4
    /// per stream). The worker's default when not given.
    #[arg(long)]
    pub segment_format: Option<SegmentFormat>,
    /// The URL at which the output root is served (a CDN, another host),
    /// ending in `/`: every URI in the output's playlists becomes absolute
    /// under it, `<URL><output>/...` (the workers' setting `base_url` when
    /// not given; relative URIs when neither).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<hlsmux_protocol::BaseUrl>,
    /// How each rung's bitrate is held: `vbr` (its bitrate on average,
    /// peaks capped), `cbr` (constant) or `capped-quality` (a constant
    /// quality under the rung's cap). The workers' default when not given;
    /// a worker whose encoder cannot do it fails the job saying so.
    #[arg(long, value_name = "MODE")]
    pub rate_control: Option<hlsmux_protocol::RateControl>,
    /// `auto`: a long input (the workers' `split_min_seconds`, 3 minutes
    /// by default) is cut into chunks that every idle worker of the pool
    /// encodes at once, and stitched into one output; `off`: encoded whole
    /// by one worker. The workers' setting `split` when not given.
    #[arg(long, value_name = "MODE")]
    pub split: Option<hlsmux_protocol::SplitMode>,
    /// Encrypt the output with HLS AES-128: a fresh key per job, a fresh IV
    /// per segment (the workers' setting `encrypt` when neither is given).
    #[arg(long, conflicts_with = "no_encrypt")]
    pub encrypt: bool,
    /// Do not encrypt, whatever the workers' default.
    #[arg(long)]
    pub no_encrypt: bool,
    /// Do not check the files with this machine's ffprobe first (for paths
    /// only the workers can read, or a machine without ffmpeg).
    #[arg(long)]
    pub no_probe: bool,
    /// Follow the jobs until they finish; exit 0 when all are done, 1 when
    /// any failed.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON lines (submitted jobs, then events) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxerChoice {
    Auto,
    Id(MuxerId),
}

impl SubmitArgs {
    /// The job's `encrypt` field: asked for, refused, or the workers' default.
    pub fn encryption(&self) -> Option<bool> {
        match (self.encrypt, self.no_encrypt) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

impl FromStr for MuxerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(MuxerChoice::Auto);
        }
        s.parse()
            .map(MuxerChoice::Id)
            .map_err(|e| format!("{e}, or `auto`"))
    }
}

/// An inclusive range of muxer IDs, written `FIRST-LAST` or a single ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MuxerRange {
    pub first: MuxerId,
    pub last: MuxerId,
}

impl MuxerRange {
    pub fn ids(self) -> impl Iterator<Item = MuxerId> {
        (self.first.get()..=self.last.get()).filter_map(|id| MuxerId::new(id).ok())
    }
}

impl FromStr for MuxerRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (first, last) = s.split_once('-').unwrap_or((s, s));
        let first: MuxerId = first.parse().map_err(|e| format!("{e}"))?;
        let last: MuxerId = last.parse().map_err(|e| format!("{e}"))?;
        if last < first {
            return Err(format!("range {s} ends before it starts"));
        }
        Ok(Self { first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_shows_examples_in_its_help() {
        fn check(command: &clap::Command, path: &str) {
            let help = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                help.contains("Example"),
                "`{path}` has no examples in its --help"
            );
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "hlsmux");
    }

    #[test]
    fn muxer_choices_parse() {
        assert_eq!("auto".parse(), Ok(MuxerChoice::Auto));
        assert!(matches!("3".parse(), Ok(MuxerChoice::Id(id)) if id.get() == 3));
        assert!("x".parse::<MuxerChoice>().is_err());
    }

    #[test]
    fn muxer_ranges_parse() {
        let range: MuxerRange = "2-4".parse().expect("valid");
        assert_eq!(range.ids().map(MuxerId::get).collect::<Vec<_>>(), [2, 3, 4]);
        assert!("4-2".parse::<MuxerRange>().is_err());
        assert_eq!("5".parse::<MuxerRange>().map(|r| r.ids().count()), Ok(1));
    }
}

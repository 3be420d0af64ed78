//! `hlsmux submit`: place each file where the workers can read it, queue one
//! job per file, and optionally follow them to the end.

use std::path::PathBuf;

use hlsmux_protocol::{JobId, JobRequest, MuxerId, RelativePath};
use serde_json::json;
use tracing::Instrument;

use crate::broker::Broker;
use crate::cli::{MuxerChoice, PoolArgs, SubmitArgs};
use crate::error::CliError;
use crate::follow::{Attached, FollowedJob};
use crate::input;

/// Appended to an input's path to name its output by default, as the seed did.
const OUTPUT_SUFFIX: &str = ".hls";

pub async fn run(pool: &PoolArgs, mut args: SubmitArgs) -> Result<(), CliError> {
    args.files = input::expand_patterns(&args.files)?;
    let name = parse_name(&args)?;
    for file in &args.files {
        input::check_file(file)?;
        if !args.no_probe {
            input::probe_locally(file).await?;
        }
    }
    let broker = Broker::connect(pool).await?;
    let mut muxers = match args.muxer {
        MuxerChoice::Auto => MuxerPicker::new(broker.live_muxers(args.auto_muxers).await?),
        MuxerChoice::Id(muxer) => {
            // Fail before copying anything; the mandatory publish below
            // still decides in the end.
            if broker.queue_state(muxer).await?.is_none() {
                return Err(CliError::Unroutable(muxer));
            }
            MuxerPicker::new(vec![(muxer, 0)])
        }
    };

    let mut jobs = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let job_id = JobId::generate();
        let (path, root) = (file.clone(), pool.media_root.clone());
        let input =
            tokio::task::spawn_blocking(move || input::place_in_media_root(&path, &root, job_id))
                .await
                .map_err(|e| CliError::InputUnusable {
                    path: file.clone(),
                    detail: e.to_string(),
                })??;
        let output = match &name {
            Some(name) => name.clone(),
            None => default_output(&input)?,
        };
        let mut job = JobRequest::new(muxers.next(), input, output);
        job.job_id = job_id;
        job.ladder = args.ladder;
        job.segment_seconds = args.segment_length;
        job.encrypt = args.encryption();
        job.naming = args.naming;
        job.segment_format = args.segment_format;
        job.base_url = args.base_url.clone();
        job.rate_control = args.rate_control;
        job.split = args.split;
        jobs.push((file.clone(), job));
    }

    let attached = if args.wait {
        Some(Attached::before_publishing(&broker).await?)
    } else {
        None
    };
    let publisher = broker.publisher().await?;
    for (file, job) in &jobs {
        // One trace per job: its context travels in the message headers and
        // the worker's spans join it.
        let span = tracing::info_span!("submit", job_id = %job.job_id, input = %job.input);
        broker.publish_job(&publisher, job).instrument(span).await?;
        if args.json {
            let line = json!({
                "state": "submitted",
                "job_id": job.job_id,
                "muxer_id": job.muxer_id,
                "input": job.input,
                "output": job.output,
            });
            println!("{line}");
        } else {
            eprintln!(
                "{}: queued for muxer {} as {}",
                file.display(),
                job.muxer_id,
                job.input
            );
            if !args.wait {
                println!("{}", job.job_id);
            }
        }
    }

    let Some(attached) = attached else {
        return Ok(());
    };
    let followed = jobs
        .iter()
        .map(|(file, job)| FollowedJob {
            job_id: job.job_id,
            label: label(file),
        })
        .collect();
    let summary = attached
        .follow(&broker, followed, args.json, pool.output_root.as_deref())
        .await?;
    if jobs.len() > 1 && !args.json {
        summary.print_table();
    }
    if summary.failed > 0 {
        return Err(CliError::JobsFailed {
            failed: summary.failed,
            total: jobs.len(),
        });
    }
    Ok(())
}

/// Spreads a batch over muxers: each job goes to the muxer with the fewest
/// jobs waiting, counting the ones this batch already gave it (the lowest
/// ID on a tie).
struct MuxerPicker {
    backlog: Vec<(MuxerId, u32)>,
}

impl MuxerPicker {
    /// `backlog` is never empty.
    fn new(backlog: Vec<(MuxerId, u32)>) -> Self {
        Self { backlog }
    }

    fn next(&mut self) -> MuxerId {
        let least = self
            .backlog
            .iter_mut()
            .min_by_key(|(muxer, ready)| (*ready, *muxer))
            .expect("at least one muxer");
        least.1 += 1;
        least.0
    }
}

fn parse_name(args: &SubmitArgs) -> Result<Option<RelativePath>, CliError> {
    let Some(name) = &args.name else {
        return Ok(None);
    };
    if args.files.len() > 1 {
        return Err(CliError::NameWithManyFiles {
            count: args.files.len(),
        });
    }
    RelativePath::parse(name)
        .and_then(RelativePath::as_output_name)
        .map(Some)
        .map_err(|e| CliError::BadName {
            name: name.clone(),
            detail: e.to_string(),
        })
}

fn default_output(input: &RelativePath) -> Result<RelativePath, CliError> {
    let name = format!("{input}{OUTPUT_SUFFIX}");
    RelativePath::parse(&name)
        .and_then(RelativePath::as_output_name)
        .map_err(|e| CliError::BadName {
            name,
            detail: e.to_string(),
        })
}

fn label(file: &std::path::Path) -> String {
    file.file_name()
        .map_or_else(|| PathBuf::from(file), PathBuf::from)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_spread_by_backlog() {
        let id = |n| MuxerId::new(n).expect("valid");
        let mut picker = MuxerPicker::new(vec![(id(1), 2), (id(2), 0), (id(3), 1)]);
        let picked: Vec<u16> = (0..5).map(|_| picker.next().get()).collect();
        assert_eq!(picked, [2, 2, 3, 1, 2]);
    }

    #[test]
    fn the_default_output_is_the_input_path_plus_hls() {
        let input = RelativePath::parse("incoming/clip.mp4").expect("valid");
        assert_eq!(
            default_output(&input).expect("valid").as_str(),
            "incoming/clip.mp4.hls"
        );
    }
}

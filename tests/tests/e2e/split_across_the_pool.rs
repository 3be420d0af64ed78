//! One long video across the pool (issue 21): two workers of a muxer split
//! a 24 s 360p clip into four 6 s chunks, encode them together (the `done`
//! event names who encoded each: both did), and the stitched output
//! conforms, decodes, plays in hls.js across a join, and matches the same clip encoded whole by one worker (see
//! `split_compare`). The same in fMP4 and encrypted; a job that asks
//! `--split off` stays whole; nothing of the chunks is left behind.

use std::path::Path;

use hlsmux_protocol::{JobState, SegmentFormat};
use hlsmux_tests::conformance::{Expected, assert_conforms};
use hlsmux_tests::media::Clip;
use hlsmux_tests::split_compare::{Comparison, RungToCompare, assert_split_matches_whole};
use hlsmux_tests::split_pool::pool_of_two;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls, player};
use hlsmux_worker::metrics::{names, sample};

/// Long enough to split, short enough for a test.
fn clip() -> Clip {
    Clip {
        width: 640,
        height: 360,
        seconds: 24,
        fps: 25,
        ..Clip::default()
    }
}

/// Submits `input` with `args` and waits for its `done`.
async fn run_to_done(test: &TestEnv, input: &Path, args: &[&str]) -> JobState {
    let mut events = test.pool.events().await;
    let mut all = vec!["--muxer", "1", "--json"];
    all.extend_from_slice(args);
    let run = test.submit_ok(input, &all).await;
    let job_id = run.submitted_job_id();
    let end = events.final_event(job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    end.state
}

async fn split_then_whole(name: &str, format: SegmentFormat, encrypted: bool) {
    let test = TestEnv::new(&format!("split-pool-{name}")).await;
    let _pool = pool_of_two(&test, 2).await;
    let source = clip();
    let input = source
        .write(&test.media_root().join(format!("{name}.mp4")))
        .await;
    let mut options = vec!["--segment-format", format.as_str()];
    if encrypted {
        options.push("--encrypt");
    }
    let split_name = format!("{name}-split.hls");
    let mut split_args = options.clone();
    split_args.extend(["--name", &split_name]);
    let JobState::Done { chunks, rungs, .. } = run_to_done(&test, &input, &split_args).await else {
        unreachable!("checked")
    };
    assert_eq!(chunks.len(), 4, "24 s in 6 s chunks: {chunks:#?}");
    let starts: Vec<f64> = chunks.iter().map(|c| c.start_seconds).collect();
    assert_eq!(starts, [0.0, 6.0, 12.0, 18.0]);
    let workers: std::collections::BTreeSet<&str> =
        chunks.iter().map(|c| c.worker.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers encoded chunks: {chunks:#?}");

    let whole_name = format!("{name}-whole.hls");
    let mut whole_args = options.clone();
    whole_args.extend(["--name", &whole_name, "--split", "off"]);
    let JobState::Done {
        chunks: whole_chunks,
        ..
    } = run_to_done(&test, &input, &whole_args).await
    else {
        unreachable!("checked")
    };
    assert!(whole_chunks.is_empty(), "--split off stays whole");

    let split = test.output_root().join(&split_name);
    let whole = test.output_root().join(&whole_name);
    assert_conforms(&split.join("master.m3u8"), Expected::from(source)).await;
    hls::decode(&split.join("master.m3u8"))
        .await
        .expect("the split output decodes");
    match player::missing() {
        Some(reason) => eprintln!("not played in a browser: {reason}"),
        None => {
            // Two 2 s segments, a switch, two more: across the join at 6 s.
            player::play(&[split.join("master.m3u8")], 2, 2)
                .await
                .unwrap_or_else(|reports| panic!("hls.js did not play it: {reports}"));
        }
    }
    let rungs: Vec<RungToCompare> = rungs
        .iter()
        .map(|rung| RungToCompare {
            name: rung
                .playlist
                .split('/')
                .next()
                .expect("a rung's directory")
                .to_owned(),
            width: rung.width,
            height: rung.height,
        })
        .collect();
    assert_split_matches_whole(Comparison {
        name,
        split: &split,
        whole: &whole,
        source: &input,
        fps: source.fps,
        rungs: &rungs,
        format,
        encrypted,
    })
    .await;
    let chunk_stores = test.output_root().join(".hlsmux").join("chunks");
    let left: Vec<_> = std::fs::read_dir(&chunk_stores)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the chunks are gone once published: {left:?}"
    );
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
}

#[tokio::test]
async fn two_workers_encode_one_long_clip_together_as_one_worker_would() {
    split_then_whole("mpegts", SegmentFormat::Mpegts, false).await;
}

#[tokio::test]
async fn two_workers_split_encrypted_and_fmp4_outputs_alike() {
    split_then_whole("encrypted", SegmentFormat::Mpegts, true).await;
    split_then_whole("fmp4", SegmentFormat::Fmp4, false).await;
}

#[tokio::test]
async fn the_pool_shows_whose_chunk_a_worker_is_on_and_counts_chunks() {
    let test = TestEnv::new("split-pool-visible").await;
    let often = |options: WorkerOptions| {
        let mut options = options;
        options
            .env
            .push(("HLSMUX_HEARTBEAT_INTERVAL_SECONDS".into(), "1".into()));
        options
    };
    let workers = [
        test.worker_with(1, often(WorkerOptions::splitting(&test, 1).consumers(1)))
            .await,
        test.worker_with(1, often(WorkerOptions::splitting(&test, 1).consumers(2)))
            .await,
    ];
    let input = clip().write(&test.media_root().join("long.mp4")).await;
    let mut events = test.pool.events().await;
    let job = test
        .submit_ok(&input, &["--muxer", "1", "--json"])
        .await
        .submitted_job_id();
    // `hlsmux workers` names the chunk in hand and whose job it is.
    let wanted = format!("{job} chunk ");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let table = test.cli(&["workers"]).await.stdout;
        if table.contains(&wanted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker shown on a chunk of {job}:\n{table}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let end = events.final_event(job, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    // Every chunk is counted where it was encoded, and so is its wait.
    let mut encoded = 0.0;
    let mut waits = 0.0;
    for worker in &workers {
        let metrics = worker.metrics().await;
        encoded += sample(&metrics, names::CHUNKS_ENCODED, &[]).unwrap_or(0.0);
        waits += sample(&metrics, &format!("{}_count", names::CHUNK_WAIT), &[]).unwrap_or(0.0);
    }
    assert_eq!(encoded, 4.0, "four chunks encoded across the pool");
    assert!(waits >= 4.0, "every chunk's wait observed: {waits}");
}

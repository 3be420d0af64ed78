//! The core promise: a video submitted through the CLI comes out as
//! verified multi-bitrate HLS, and a redelivered job is not redone.

use std::time::{Duration, SystemTime};

use hlsmux_protocol::{EventState, JobRequest, JobState, MuxerId, RelativePath};

use hlsmux_tests::media::Clip;
use hlsmux_tests::{EventLog, PATIENCE, TestEnv, conformance, hls};

#[tokio::test]
async fn a_clip_with_subtitles_becomes_verified_multi_bitrate_hls() {
    let test = TestEnv::new("clip-to-hls").await;
    let _worker = test.worker(1).await;
    let subtitled = Clip {
        subtitles: true,
        ..Clip::default()
    };
    let clip = subtitled.write(&test.elsewhere().join("clip.mkv")).await;
    assert!(
        hls::stream_types(&clip)
            .await
            .contains(&"subtitle".to_owned())
    );

    let run = test
        .submit_ok(&clip, &["--muxer", "1", "--wait", "--json"])
        .await;

    let lines = run.json_lines();
    let states: Vec<&str> = lines.iter().filter_map(|l| l["state"].as_str()).collect();
    assert_eq!(states.first(), Some(&"submitted"));
    assert!(states.contains(&"started"), "{states:?}");
    assert_eq!(states.last(), Some(&"done"), "{states:?}");
    let done = lines.last().expect("done event");
    assert_eq!(done["master_playlist"], "incoming/clip.mkv.hls/master.m3u8");
    assert_eq!(done["reused"], false);

    let master_path = test.output_root().join("incoming/clip.mkv.hls/master.m3u8");
    let master = hls::read_master(&master_path);
    let rungs = done["rungs"].as_array().expect("rungs");
    let variants: Vec<_> = master.variants.iter().filter(|v| !v.is_i_frame).collect();
    assert_eq!(variants.len(), rungs.len());
    assert!(
        variants.len() >= 2,
        "a 360p source gets at least 360p and 234p"
    );
    conformance::assert_conforms(&master_path, subtitled.into()).await;

    hls::decode(&master_path)
        .await
        .expect("every variant decodes cleanly");
    // Video in the variants, the audio once in its rendition, and no
    // subtitles anywhere.
    for uri in hls::media_playlists(&master_path) {
        let media = master_path.parent().expect("dir").join(&uri);
        let types = hls::stream_types(&media).await;
        let expected = if uri.starts_with("audio/") {
            "audio"
        } else {
            "video"
        };
        assert_eq!(types, [expected], "{uri}");
    }
    assert!(hls::staging_leftovers(&test.output_root()).is_empty());
    assert_eq!(test.pool.dead_letters().await, 0);
}

/// Publishes `job` and waits for its first `done`; returns the master
/// playlist's modification time.
async fn run_to_done(test: &TestEnv, events: &mut EventLog, job: &JobRequest) -> SystemTime {
    test.pool.publish_job(job).await;
    let first = events.final_event(job.job_id, PATIENCE).await;
    assert!(
        matches!(first.state, JobState::Done { reused: false, .. }),
        "{first:#?}"
    );
    master_modified(test, job)
}

fn master_modified(test: &TestEnv, job: &JobRequest) -> SystemTime {
    std::fs::metadata(job.output.under(&test.output_root()).join("master.m3u8"))
        .and_then(|m| m.modified())
        .expect("master")
}

fn talk_job() -> JobRequest {
    JobRequest::new(
        MuxerId::new(1).expect("valid"),
        RelativePath::parse("talk.mp4").expect("valid"),
        RelativePath::parse("talks/talk.hls").expect("valid"),
    )
}

/// Waits for the worker's record that `job`'s `done` went out (written
/// just after the broker confirms the event) and returns its path.
async fn reported_record(test: &TestEnv, job: &JobRequest) -> std::path::PathBuf {
    let reported = job
        .output
        .under(&test.output_root())
        .join(".hlsmux-done-reported");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reported.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker records reported jobs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reported
}

#[tokio::test]
async fn a_redelivered_job_whose_done_went_out_is_acknowledged_silently() {
    let test = TestEnv::new("redelivered-reported").await;
    let _worker = test.worker(1).await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let job = talk_job();
    let before = run_to_done(&test, &mut events, &job).await;
    let reported = reported_record(&test, &job).await;

    // The same message again, as the broker redelivers it after a crash
    // between reporting the job done and acknowledging it.
    test.pool.publish_job(&job).await;
    test.pool.assert_queue_empties(job.muxer_id).await;
    // And again after a crash between the `done` and its record: the
    // worker finds the `done` in the event history.
    std::fs::remove_file(&reported).expect("remove the record");
    test.pool.publish_job(&job).await;
    test.pool.assert_queue_empties(job.muxer_id).await;
    events.drain(Duration::from_secs(2)).await;
    assert_eq!(
        events.count(job.job_id, EventState::Done),
        1,
        "exactly one done"
    );
    assert_eq!(
        events.count(job.job_id, EventState::Started),
        1,
        "not encoded again"
    );
    assert!(reported.exists(), "the record is restored");
    assert_eq!(
        before,
        master_modified(&test, &job),
        "the output was not rewritten"
    );
}

#[tokio::test]
async fn a_redelivered_job_whose_done_was_lost_is_reported_without_redoing_it() {
    let test = TestEnv::new("redelivered-unreported").await;
    let _worker = test.worker(1).await;
    Clip::default()
        .write(&test.media_root().join("talk.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let first = talk_job();
    run_to_done(&test, &mut events, &first).await;

    // A job whose output was published but whose `done` never went out
    // (its worker died in between): its output, with its record and
    // without the reported mark, and nothing in the event history.
    let mut lost = talk_job();
    lost.output = RelativePath::parse("talks/lost.hls").expect("valid");
    let from = first.output.under(&test.output_root());
    let to = lost.output.under(&test.output_root());
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(&to)
        .status()
        .expect("cp runs");
    assert!(copied.success());
    std::fs::remove_file(to.join(".hlsmux-done-reported")).ok();
    let record_path = to.join(".hlsmux-job.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).expect("record")).expect("JSON");
    record["job_id"] = lost.job_id.to_string().into();
    std::fs::write(&record_path, serde_json::to_vec(&record).expect("JSON")).expect("record");
    let before = master_modified(&test, &lost);

    test.pool.publish_job(&lost).await;
    let done = events.final_event(lost.job_id, PATIENCE).await;
    let JobState::Done { rungs, reused, .. } = &done.state else {
        panic!("the job is reported done: {done:#?}");
    };
    assert!(*reused, "{done:#?}");
    assert!(!rungs.is_empty(), "the earlier output's rungs are reported");
    assert_eq!(
        before,
        master_modified(&test, &lost),
        "the output was not rewritten"
    );
    assert_eq!(
        events.count(lost.job_id, EventState::Started),
        0,
        "not encoded again"
    );
}

#[tokio::test]
async fn a_second_job_never_overwrites_another_jobs_output() {
    let test = TestEnv::new("output-exists").await;
    let _worker = test.worker(1).await;
    Clip::default()
        .write(&test.media_root().join("a.mp4"))
        .await;
    let first = test
        .cli(&[
            "submit",
            &test.media_root().join("a.mp4").display().to_string(),
            "--muxer",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(first.code, Some(0), "{first:#?}");

    let second = test
        .cli(&[
            "submit",
            &test.media_root().join("a.mp4").display().to_string(),
            "--muxer",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(second.code, Some(1), "{second:#?}");
    assert!(second.stderr.contains("output_exists"), "{}", second.stderr);
    assert!(
        second.stderr.contains("--name"),
        "says what to do: {}",
        second.stderr
    );

    let third = test
        .cli(&[
            "submit",
            &test.media_root().join("a.mp4").display().to_string(),
            "--muxer",
            "1",
            "--wait",
            "--name",
            "a-again.hls",
        ])
        .await;
    assert_eq!(third.code, Some(0), "{third:#?}");
    assert!(
        third.stdout.trim().ends_with("a-again.hls/master.m3u8"),
        "{}",
        third.stdout
    );
    assert!(test.output_root().join("a-again.hls/master.m3u8").exists());
}

//! Jobs go to the muxer they are submitted for, and only there.

use hlsmux_protocol::JobState;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv};

#[tokio::test]
async fn each_worker_receives_only_its_own_muxers_jobs() {
    let test = TestEnv::new("routing").await;
    let _one = test.worker(1).await;
    let _two = test.worker(2).await;
    let mut events = test.pool.events().await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;

    let mut jobs = Vec::new();
    for (muxer, name) in [
        ("1", "for-one.hls"),
        ("2", "for-two.hls"),
        ("2", "for-two-again.hls"),
    ] {
        let run = test
            .submit_ok(&clip, &["--muxer", muxer, "--name", name, "--json"])
            .await;
        let submitted = &run.json_lines()[0];
        let job_id = submitted["job_id"]
            .as_str()
            .expect("job id")
            .parse()
            .expect("uuid");
        jobs.push((muxer.parse::<u16>().expect("number"), job_id));
    }
    for (muxer, job_id) in jobs {
        let done = events.final_event(job_id, PATIENCE).await;
        assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
        assert_eq!(
            done.muxer_id.get(),
            muxer,
            "job {job_id} ran on the wrong muxer"
        );
        for event in events.seen().iter().filter(|e| e.job_id == job_id) {
            assert_eq!(event.muxer_id.get(), muxer, "{event:#?}");
        }
    }
}

#[tokio::test]
async fn auto_sends_jobs_to_the_least_busy_muxer_that_has_a_worker() {
    let test = TestEnv::new("auto-muxer").await;
    let slow = hlsmux_tests::media::realtime_ffmpeg(test.path());
    let busy = test
        .worker_with(
            1,
            hlsmux_tests::WorkerOptions {
                ffmpeg: Some(slow),
                ..Default::default()
            },
        )
        .await;
    let _idle = test.worker(2).await;
    // Muxer 3 has a queue but no worker any more: never chosen.
    let gone = test.worker(3).await;
    gone.stop(std::time::Duration::from_secs(30)).await;

    let long = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    for name in ["busy-a.hls", "busy-b.hls"] {
        test.submit_ok(&long, &["--muxer", "1", "--name", name])
            .await;
    }
    let run = test
        .submit_ok(
            &long,
            &[
                "--muxer",
                "auto",
                "--auto-muxers",
                "1-3",
                "--name",
                "auto.hls",
                "--json",
            ],
        )
        .await;
    assert_eq!(run.json_lines()[0]["muxer_id"], 2, "{run:#?}");
    drop(busy);
}

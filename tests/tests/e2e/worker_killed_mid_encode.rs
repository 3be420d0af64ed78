//! A worker killed outright mid-encode (SIGKILL, as a crash or power loss
//! would end it): its job is redelivered to the restarted worker and
//! completes exactly once, its leftovers (staging directory, the orphaned
//! ffmpeg) are cleaned up, and no partial output ever appears.

use std::time::Duration;

use hlsmux_protocol::{EventState, JobState};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions, hls};

#[tokio::test]
async fn kill_9_mid_encode_then_restart_completes_the_job_once() {
    let test = TestEnv::new("kill-9").await;
    let slow = WorkerOptions::realtime(&test);
    let doomed = test.worker_with(1, slow.clone()).await;
    let clip = Clip {
        seconds: 6,
        ..Clip::default()
    }
    .write(&test.media_root().join("long.mp4"))
    .await;
    let mut events = test.pool.events().await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let job_id = run.submitted_job_id();
    events
        .wait_for(
            "encoding under way",
            |e| {
                e.job_id == job_id
                    && matches!(e.state, JobState::Progress { percent, .. } if percent > 10.0)
            },
            PATIENCE,
        )
        .await;
    doomed.kill().await;
    let final_dir = test.output_root().join("long.mp4.hls");
    assert!(
        !final_dir.exists(),
        "nothing published by the killed attempt"
    );
    assert_eq!(
        hls::staging_leftovers(&test.output_root()).len(),
        1,
        "the killed attempt's staging is still there (nobody cleaned it yet)"
    );

    let _restarted = test.worker_with(1, slow).await;
    let done = events.final_event(job_id, PATIENCE).await;
    assert!(
        matches!(done.state, JobState::Done { reused: false, .. }),
        "{done:#?}"
    );
    events.drain(Duration::from_secs(2)).await;
    assert_eq!(
        events.count(job_id, EventState::Done),
        1,
        "exactly one done"
    );
    assert_eq!(events.count(job_id, EventState::Started), 2, "two attempts");
    assert!(
        hls::staging_leftovers(&test.output_root()).is_empty(),
        "the dead attempt's staging is gone"
    );
    let leftovers: Vec<_> = std::fs::read_dir(test.work_dir())
        .expect("work dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pgid") || name.ends_with(".ffmpeg.log"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    hls::decode(&final_dir.join("master.m3u8"))
        .await
        .expect("the output decodes");
}

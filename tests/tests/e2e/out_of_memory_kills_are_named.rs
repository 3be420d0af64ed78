//! An encode the kernel's out-of-memory killer stops is reported as such:
//! a SIGKILL alone could be anything, so the worker reads its cgroup's
//! `memory.events` (here a file in the kernel's format, which an ffmpeg
//! stand-in updates as the kernel would before killing itself) and says
//! in the requeue that memory ran out. A SIGKILL without an OOM kill is
//! reported as a plain crash.

use hlsmux_protocol::{JobState, RequeueReason};
use hlsmux_tests::media::{Clip, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

#[tokio::test]
async fn an_encode_killed_for_memory_is_requeued_saying_so() {
    let test = TestEnv::new("oom").await;
    let events_file = test.path().join("memory.events");
    std::fs::write(
        &events_file,
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    )
    .expect("memory.events");
    let oom = test.path().join("oom-next");
    let plain = test.path().join("crash-next");
    // The job's encode (not the start-up trial) dies by SIGKILL, counted as
    // an OOM kill when `oom-next` exists, as a plain crash when
    // `crash-next` does; otherwise it runs.
    let ffmpeg = write_script(
        &test.path().join("ffmpeg-killed"),
        &format!(
            r#"case "$*" in *var_stream_map*)
  if [ -e '{oom}' ]; then
    rm -f '{oom}'
    printf 'low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n' > '{events}'
    kill -KILL $$
  fi
  if [ -e '{plain}' ]; then rm -f '{plain}'; kill -KILL $$; fi;;
esac
exec ffmpeg "$@""#,
            oom = oom.display(),
            plain = plain.display(),
            events = events_file.display(),
        ),
    );
    let _worker = test
        .worker_with(
            1,
            WorkerOptions {
                ffmpeg: Some(ffmpeg),
                env: vec![(
                    "HLSMUX_MEMORY_EVENTS".into(),
                    events_file.display().to_string(),
                )],
                ..WorkerOptions::default()
            },
        )
        .await;
    let clip = Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("big.mp4"))
    .await;
    let mut events = test.pool.events().await;

    for (marker, out_of_memory, name) in [(&oom, true, "oom.hls"), (&plain, false, "crash.hls")] {
        std::fs::write(marker, b"").expect("marker");
        let job = test
            .submit_ok(&clip, &["--muxer", "1", "--name", name, "--json"])
            .await
            .submitted_job_id();
        let requeued = events
            .wait_for(
                "the killed job requeued",
                |event| event.job_id == job && matches!(event.state, JobState::Requeued { .. }),
                PATIENCE,
            )
            .await;
        let JobState::Requeued { reason, message } = requeued.state else {
            unreachable!("matched above")
        };
        assert_eq!(reason, RequeueReason::EncoderCrashed, "{message}");
        assert_eq!(
            message.contains("out-of-memory killer") && message.contains("oom_kill 0 -> 1"),
            out_of_memory,
            "{message}"
        );
        // The next attempt runs: the job is done, once.
        let done = events.final_event(job, PATIENCE).await;
        assert!(matches!(done.state, JobState::Done { .. }), "{done:#?}");
    }
}

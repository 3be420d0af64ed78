//! Worker settings come from defaults, then the config file, then
//! `HLSMUX_*` environment variables, each overriding the one before.

use hlsmux_protocol::{JobState, MuxerId};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

#[tokio::test]
async fn the_config_file_applies_and_the_environment_overrides_it() {
    let test = TestEnv::new("config-layers").await;
    let file = test.path().join("worker.toml");
    std::fs::write(&file, "muxer_id = 5\nladder = \"seed\"\n").expect("write config");
    test.pool.track_muxer(MuxerId::new(5).expect("valid"));
    // The harness sets HLSMUX_MUXER_ID=6, which must win over the file's 5.
    let _worker = test
        .worker_with(
            6,
            WorkerOptions {
                config_file: Some(file),
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(
        test.pool
            .ready_and_consumers(MuxerId::new(5).expect("valid"))
            .await,
        (0, 0)
    );

    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let mut events = test.pool.events().await;
    let run = test
        .cli(&[
            "submit",
            clip.to_str().expect("utf-8"),
            "--muxer",
            "6",
            "--json",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    let job_id = run.json_lines()[0]["job_id"]
        .as_str()
        .expect("job id")
        .parse()
        .expect("uuid");
    let done = events.final_event(job_id, PATIENCE).await;
    let JobState::Done { rungs, .. } = done.state else {
        panic!("job done: {done:#?}");
    };
    // The file's ladder: the seed keeps the source resolution on every rung.
    assert!(rungs.len() >= 2, "{rungs:?}");
    assert!(
        rungs.iter().all(|r| (r.width, r.height) == (640, 360)),
        "{rungs:?}"
    );
}

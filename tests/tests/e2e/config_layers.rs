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
    let run = test.submit_ok(&clip, &["--muxer", "6", "--json"]).await;
    let job_id = run.submitted_job_id();
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

const PI_CMDLINE: &str = "console=tty1 root=/dev/nfs nfsroot=192.168.1.2:/srv/nfs/HLSPi4,vers=3 rw ip=dhcp rootwait elevator=deadline muxid=4 muxhwdec=1";

#[tokio::test]
async fn a_pis_kernel_command_line_overrides_the_file_but_not_the_environment() {
    let test = TestEnv::new("boot-options").await;
    let file = test.path().join("worker.toml");
    std::fs::write(&file, "muxer_id = 3\n").expect("write config");
    test.pool.track_muxer(MuxerId::new(3).expect("valid"));

    // No HLSMUX_MUXER_ID: the command line's muxid=4 beats the file's 3.
    let from_cmdline = test
        .worker_with(
            4,
            WorkerOptions {
                config_file: Some(file.clone()),
                kernel_cmdline: Some(PI_CMDLINE.into()),
                omit_muxer_env: true,
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(
        test.pool
            .ready_and_consumers(MuxerId::new(3).expect("valid"))
            .await
            .1,
        0
    );

    // With HLSMUX_MUXER_ID=5 the environment beats the command line.
    let from_env = test
        .worker_with(
            5,
            WorkerOptions {
                config_file: Some(file),
                kernel_cmdline: Some(PI_CMDLINE.into()),
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(
        test.pool
            .ready_and_consumers(MuxerId::new(4).expect("valid"))
            .await
            .1,
        1,
        "only the first worker serves muxer 4"
    );
    drop((from_cmdline, from_env));
}

#[tokio::test]
async fn a_non_numeric_muxid_stops_the_worker_with_a_clear_error() {
    let test = TestEnv::new("bad-muxid").await;
    let failure = test
        .failed_worker(
            1,
            WorkerOptions {
                kernel_cmdline: Some("root=/dev/nfs muxid=two".into()),
                omit_muxer_env: true,
                ..WorkerOptions::default()
            },
        )
        .await;
    assert_eq!(failure.code, Some(2), "{failure:#?}");
    assert!(
        failure.stderr.contains("muxid=\"two\" is not a muxer ID"),
        "{}",
        failure.stderr
    );
}

//! The CLI refuses what cannot work before anything is queued, with a
//! specific message and the documented exit status.

use hlsmux_tests::TestEnv;
use hlsmux_tests::media::Clip;

#[tokio::test]
async fn a_muxer_without_a_worker_queue_is_refused_at_the_cli() {
    let test = TestEnv::new("unroutable").await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test
        .cli(&["submit", clip.to_str().expect("utf-8"), "--muxer", "7"])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("no worker queue for muxer 7"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "no job ID printed: {}", run.stdout);

    let run = test
        .cli(&[
            "submit",
            clip.to_str().expect("utf-8"),
            "--muxer",
            "auto",
            "--auto-muxers",
            "1-3",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains("no muxer from 1 to 3 has a running worker"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_missing_file_is_refused_before_submitting() {
    let test = TestEnv::new("missing-file").await;
    let _worker = test.worker(1).await;
    let missing = test.elsewhere().join("nope.mp4");
    let run = test
        .cli(&[
            "submit",
            missing.to_str().expect("utf-8"),
            "--muxer",
            "1",
            "--wait",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("nope.mp4: no such file"),
        "{}",
        run.stderr
    );
    let (ready, _) = test
        .pool
        .ready_and_consumers(hlsmux_protocol::MuxerId::new(1).expect("valid"))
        .await;
    assert_eq!(ready, 0);
    assert_eq!(
        test.pool.dead_letters().await,
        0,
        "nothing was queued at all"
    );
}

#[tokio::test]
async fn a_pattern_matching_nothing_is_refused_before_submitting() {
    let test = TestEnv::new("empty-pattern").await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let pattern = test.elsewhere().join("*.mkv");
    let run = test
        .cli(&[
            "submit",
            clip.to_str().expect("utf-8"),
            pattern.to_str().expect("utf-8"),
            "--muxer",
            "1",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("*.mkv: it matches no file"),
        "{}",
        run.stderr
    );
    // Refused before the broker is asked anything: muxer 1 has no queue,
    // and that is not what the CLI complains about.
    assert!(run.stdout.is_empty(), "no job ID printed: {}", run.stdout);
}

#[tokio::test]
async fn an_unreachable_broker_exits_3_and_hides_the_password() {
    let test = TestEnv::new("unreachable").await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test
        .cli(&[
            "--amqp-url",
            "amqp://someone:s3cret@127.0.0.1:1/%2f",
            "submit",
            clip.to_str().expect("utf-8"),
            "--muxer",
            "1",
        ])
        .await;
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(
        run.stderr
            .contains("cannot reach RabbitMQ at amqp://someone@127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}

#[tokio::test]
async fn name_with_several_files_is_a_usage_error() {
    let test = TestEnv::new("name-many").await;
    let a = Clip::default()
        .write(&test.media_root().join("a.mp4"))
        .await;
    let b = test.media_root().join("b.mp4");
    std::fs::copy(&a, &b).expect("copy");
    let run = test
        .cli(&[
            "submit",
            a.to_str().expect("utf-8"),
            b.to_str().expect("utf-8"),
            "--name",
            "x.hls",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("--name names one output"),
        "{}",
        run.stderr
    );
}

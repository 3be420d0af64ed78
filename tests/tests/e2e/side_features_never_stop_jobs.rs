//! A side feature's queue being unavailable (here the tidy wait queue,
//! made beforehand as a plain classic queue, so the worker's declaration is
//! refused, as an older pool's or a hand-made queue would be) degrades that
//! feature, says so in `hlsmux_broker_feature_up`, and never stops the
//! worker from taking jobs; the feature comes back once its queue can be
//! declared again.

use std::time::Duration;

use hlsmux_protocol::MuxerId;
use hlsmux_tests::TestEnv;
use hlsmux_tests::media::Clip;
use hlsmux_worker::metrics::{names, sample};

#[tokio::test]
async fn an_unavailable_tidy_queue_degrades_tidying_and_jobs_go_on() {
    let test = TestEnv::new("side-feature").await;
    let muxer = MuxerId::new(1).expect("valid");
    test.pool.track_muxer(muxer);
    let tidy_wait = test.pool.topology().tidy_wait_queue(muxer);
    test.pool.declare_plain_queue(&tidy_wait).await;

    // The worker consumes its jobs (`worker` waits for that) and works.
    let worker = test.worker(1).await;
    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--wait"]).await;
    assert!(run.stdout.contains("master.m3u8"), "{run:#?}");

    let feature =
        |metrics: &str, name: &str| sample(metrics, names::BROKER_FEATURE_UP, &[("feature", name)]);
    let metrics = worker.metrics().await;
    assert_eq!(feature(&metrics, "tidy"), Some(0.0), "{metrics}");
    for serving in ["dead_letter_notices", "control", "cancellations"] {
        assert_eq!(
            feature(&metrics, serving),
            Some(1.0),
            "{serving}: {metrics}"
        );
    }

    // Once the queue can be declared as the pool needs it, tidying is back.
    test.pool.delete_queue(&tidy_wait).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if feature(&worker.metrics().await, "tidy") == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tidying never came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

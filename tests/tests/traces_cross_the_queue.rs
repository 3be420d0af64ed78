//! One trace per job, across the queue: the submit tool's span context
//! travels in the job message's AMQP headers, and every stage the worker
//! runs is recorded under the same trace ID. The job is encrypted, so
//! every stage (master and encrypt included) has a span to check.
//!
//! Worker and CLI run in this test process under one in-memory exporter;
//! nothing but the message headers connects their spans.

use std::time::Duration;

use clap::Parser;
use hlsmux_protocol::MuxerId;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{PATIENCE, TestEnv};
use hlsmux_worker::app::Worker;
use hlsmux_worker::config::Settings;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_stage_spans_carry_the_submitters_trace_id() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("hlsmux-test")));
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this test binary");

    let test = TestEnv::new("traces").await;
    let config = test.path().join("worker.toml");
    let missing = test.path().join("absent");
    std::fs::write(
        &config,
        format!(
            "amqp_url = {url:?}\nnamespace = {ns:?}\nmuxer_id = 1\nmedia_root = {media:?}\n\
             output_root = {output:?}\nwork_dir = {work:?}\nencoder = \"libx264\"\n\
             x264_preset = \"ultrafast\"\nffmpeg_threads = 1\nsegment_seconds = 2\n\
             kernel_cmdline = {missing:?}\nthermal_zone = {missing:?}\n\
             throttling_command = {missing:?}\ntidy_originals = false\n",
            url = test.pool.amqp_url(),
            ns = test.pool.namespace(),
            media = test.media_root(),
            output = test.output_root(),
            work = test.work_dir(),
        ),
    )
    .expect("write worker config");
    let muxer = MuxerId::new(1).expect("valid");
    test.pool.track_muxer(muxer);
    let (settings, _) = Settings::load(Some(&config)).expect("settings");
    let worker = Worker::build(settings).await.expect("worker builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("metrics port");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(listener, shutdown.clone()));
    assert!(test.pool.wait_for_consumers(muxer, 1, PATIENCE).await);

    let clip = Clip::default()
        .write(&test.media_root().join("clip.mp4"))
        .await;
    let cli = hlsmux_submitter::cli::Cli::parse_from([
        "hlsmux",
        "--amqp-url",
        &test.pool.amqp_url(),
        "--namespace",
        test.pool.namespace(),
        "--media-root",
        test.media_root().to_str().expect("utf-8"),
        "submit",
        clip.to_str().expect("utf-8"),
        "--muxer",
        "1",
        "--encrypt",
        "--wait",
        "--json",
    ]);
    hlsmux_submitter::run(cli).await.expect("the job is done");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the worker stops")
        .expect("the worker task ends cleanly");
    provider.force_flush().expect("flush spans");

    let spans = exporter.get_finished_spans().expect("finished spans");
    let submit = spans
        .iter()
        .find(|span| span.name == "submit")
        .unwrap_or_else(|| {
            panic!(
                "a submit span: {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    let trace_id = submit.span_context.trace_id();
    let job = spans
        .iter()
        .find(|span| span.name == "job")
        .expect("a job span");
    assert_eq!(
        job.span_context.trace_id(),
        trace_id,
        "the job joins the submitter's trace"
    );
    assert_eq!(
        job.parent_span_id,
        submit.span_context.span_id(),
        "under the submit span"
    );
    for stage in [
        "validate", "probe", "plan", "encode", "master", "encrypt", "verify", "publish",
    ] {
        let span = spans
            .iter()
            .find(|span| span.name == stage)
            .unwrap_or_else(|| panic!("a {stage} span"));
        assert_eq!(
            span.span_context.trace_id(),
            trace_id,
            "{stage} is in the job's trace"
        );
    }
}

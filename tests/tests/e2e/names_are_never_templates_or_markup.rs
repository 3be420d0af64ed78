//! The names a submitter sends are names, never templates or markup: an
//! output name holding `%` (which ffmpeg's HLS muxer would expand into
//! other directories) is refused, and so is any name holding a newline or
//! an escape (which would forge playlist lines, log lines and terminal
//! output). Each refusal is a `failed (bad_message)` whose words show the
//! name escaped, and nothing is written. A name that is merely unusual in a
//! URI is percent-encoded where the worker writes it.

use hlsmux_protocol::{FailureReason, JobId, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::media::Clip;
use hlsmux_tests::{EventLog, PATIENCE, TestEnv, TestWorker, WorkerOptions};

const KEY_SERVER: &str = "https://keys.example/hls/";

fn job(output: &str) -> JobRequest {
    JobRequest::new(
        MuxerId::new(1).expect("valid"),
        RelativePath::parse("a.mp4").expect("valid"),
        RelativePath::parse(output).expect("a name the old rules took"),
    )
}

/// A job message as a hostile submitter writes it, with `field` set to
/// `value` whatever the rules say.
fn hostile(field: &str, value: &str) -> (JobId, Vec<u8>) {
    let mut request = job("placeholder.hls");
    request.encrypt = Some(true);
    let mut json = serde_json::to_value(&request).expect("serialises");
    json[field] = serde_json::Value::String(value.to_owned());
    (
        request.job_id,
        serde_json::to_vec(&json).expect("serialises"),
    )
}

async fn refused(events: &mut EventLog, job_id: JobId) -> String {
    let end = events.final_event(job_id, PATIENCE).await;
    match end.state {
        JobState::Failed {
            reason: FailureReason::BadMessage,
            message,
        } => message,
        other => panic!("{job_id} should be refused as a bad message, got {other:#?}"),
    }
}

/// A pool whose worker names keys by a key server's URL, and `a.mp4`.
async fn pool_with_a_clip(name: &str) -> (TestEnv, TestWorker, EventLog) {
    let test = TestEnv::new(name).await;
    let worker = test
        .worker_with(
            1,
            WorkerOptions::setting("HLSMUX_KEY_URI_PREFIX", KEY_SERVER),
        )
        .await;
    let events = test.pool.events().await;
    Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("a.mp4"))
    .await;
    (test, worker, events)
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[tokio::test]
async fn percent_newlines_and_escapes_in_names_are_refused_and_shown_escaped() {
    let (test, _worker, mut events) = pool_with_a_clip("hostile-names").await;
    let muxer = MuxerId::new(1).expect("valid");

    let pattern = job("out%v/x.hls");
    test.pool.publish_job(&pattern).await;
    let said = refused(&mut events, pattern.job_id).await;
    assert!(said.contains("'%'"), "{said}");

    let (injected, body) = hostile(
        "output",
        "evil.hls\n#EXT-X-ENDLIST\nhttp://evil.example/seg.ts",
    );
    test.pool.publish_raw(muxer, &body, Some(injected)).await;
    let said = refused(&mut events, injected).await;
    assert!(!has_control(&said), "shown escaped: {said:?}");

    let (forged, body) = hostile("input", "x\u{1b}[2J\nINFO job done.mp4");
    test.pool.publish_raw(muxer, &body, Some(forged)).await;
    let said = refused(&mut events, forged).await;
    assert!(!has_control(&said), "shown escaped: {said:?}");

    // Nothing of any of them was written: no stray directory that a
    // pattern expanded into, no output, no staging.
    let written = test.outputs();
    assert!(written.is_empty(), "written: {written:?}");

    // What a person reads of them has no raw control character either.
    for id in [injected, forged] {
        let status = test.cli(&["status", &id.to_string()]).await;
        assert!(!has_control(status.stdout.trim_end()), "{status:#?}");
    }
    assert_eq!(test.pool.wait_for_dead_letters(3, PATIENCE).await, 3);
    let dlq = test.cli(&["dlq", "list"]).await;
    let listed: String = dlq.stdout.lines().collect();
    assert!(!has_control(&listed), "{dlq:#?}");

    // The CLI refuses the same names before queueing anything.
    let clip = test.media_root().join("a.mp4");
    let clip = clip.to_str().expect("UTF-8 test path");
    let run = test
        .cli(&[
            "submit",
            clip,
            "--no-probe",
            "--muxer",
            "1",
            "--name",
            "x%d.hls",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("'%'"), "{run:#?}");
}

#[tokio::test]
async fn a_base_url_that_could_break_a_playlist_is_refused_by_worker_and_cli() {
    let (test, _worker, mut events) = pool_with_a_clip("hostile-base-url").await;
    let muxer = MuxerId::new(1).expect("valid");
    for value in [
        "https://cdn.example.com/\"\n#EXT-X-ENDLIST\n/",
        "javascript:alert(1)//",
        "https://cdn.example.com/?token=x/",
    ] {
        let (job_id, body) = hostile("base_url", value);
        test.pool.publish_raw(muxer, &body, Some(job_id)).await;
        let said = refused(&mut events, job_id).await;
        assert!(said.contains("base URL"), "{value:?}: {said}");
        assert!(!has_control(&said), "shown escaped: {said:?}");
    }
    assert!(test.outputs().is_empty(), "written: {:?}", test.outputs());

    let clip = test.media_root().join("a.mp4");
    let clip = clip.to_str().expect("UTF-8 test path");
    let run = test
        .cli(&[
            "submit",
            clip,
            "--muxer",
            "1",
            "--base-url",
            "ftp://cdn.example.com/",
        ])
        .await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("http:// or https://"), "{run:#?}");
}

#[tokio::test]
async fn an_unusual_output_name_is_percent_encoded_in_the_key_uri() {
    let (test, _worker, mut events) = pool_with_a_clip("encoded-names").await;
    let mut request = job("talk #1? q&a.hls");
    request.encrypt = Some(true);
    test.pool.publish_job(&request).await;
    let end = events.final_event(request.job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");
    let output = test.output_root().join("talk #1? q&a.hls");
    let playlists: Vec<String> = std::fs::read_dir(&output)
        .expect("the output")
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("index.m3u8")).ok())
        .collect();
    assert!(
        !playlists.is_empty(),
        "media playlists in {}",
        output.display()
    );
    let expected = format!("URI=\"{KEY_SERVER}talk%20%231%3F%20q&a.hls/encryption.key\"");
    for playlist in &playlists {
        assert!(playlist.contains(&expected), "{playlist}");
    }
}

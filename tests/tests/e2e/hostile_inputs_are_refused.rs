//! Job messages are untrusted. Inputs that try to make a worker read outside
//! its media root (playlists and concat lists naming other files, links out
//! of the root, `..` and absolute paths), oversized messages and absurd
//! names or values are each refused with a specific reason; a name that
//! looks like an ffmpeg option is just a name. A canary outside the root
//! proves nothing there was opened, and the worker stays up throughout.
//! The tools read the very file that was checked: a name swapped for a
//! link out of the root after the check changes nothing.

use hlsmux_protocol::{FailureReason, JobId, JobRequest, JobState, MuxerId, RelativePath};
use hlsmux_tests::canary;
use hlsmux_tests::media::Clip;
use std::os::unix::fs::PermissionsExt;

use hlsmux_tests::{EventLog, PATIENCE, TestEnv, WorkerOptions};

fn job(input: &str) -> JobRequest {
    JobRequest::new(
        MuxerId::new(1).expect("valid"),
        RelativePath::parse(input).expect("valid"),
        RelativePath::parse(&format!("out/{}.hls", input.replace('/', "_"))).expect("valid"),
    )
}

async fn failure_of(events: &mut EventLog, job_id: JobId) -> (FailureReason, String) {
    let end = events.final_event(job_id, PATIENCE).await;
    match end.state {
        JobState::Failed { reason, message } => (reason, message),
        other => panic!("{job_id} should fail, got {other:#?}"),
    }
}

#[tokio::test]
async fn hostile_job_messages_are_refused_and_nothing_outside_the_root_is_read() {
    let test = TestEnv::new("hostile").await;
    let mut worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    let media = test.media_root();
    // The canary: a FIFO outside the media root. Anything that opened it
    // would block there (a probe would time out instead of being refused).
    let canary = test.elsewhere().join("canary.ts");
    canary::fifo(&canary);
    let canary_text = canary.display().to_string();

    std::fs::write(
        media.join("evil.m3u8"),
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{canary_text}\n#EXTINF:1,\n../elsewhere/canary.ts\n#EXT-X-ENDLIST\n"
        ),
    )
    .expect("playlist");
    std::fs::write(
        media.join("evil.mp4"),
        format!("ffconcat version 1.0\nfile '{canary_text}'\nfile ../elsewhere/canary.ts\n"),
    )
    .expect("concat list named like a video");
    std::os::unix::fs::symlink(&canary, media.join("link.mp4")).expect("link out of the root");

    for (input, reason) in [
        ("evil.m3u8", FailureReason::InputFormatRefused),
        ("evil.mp4", FailureReason::InputFormatRefused),
        ("link.mp4", FailureReason::InputOutsideRoot),
    ] {
        let job = job(input);
        test.pool.publish_job(&job).await;
        let (got, message) = failure_of(&mut events, job.job_id).await;
        assert_eq!(got, reason, "{input}: {message}");
    }

    // Messages no honest submitter sends: paths out of the root, a huge
    // message, a name no filesystem takes.
    let valid = serde_json::to_value(job("clip.mp4")).expect("serialises");
    let mut escaping = valid.clone();
    escaping["input"] = "../elsewhere/canary.ts".into();
    let mut absolute = valid.clone();
    absolute["input"] = canary_text.clone().into();
    let mut huge = valid.clone();
    huge["output"] = "x/".repeat(50_000).into();
    let mut long_name = valid.clone();
    long_name["output"] = "n".repeat(300).into();
    let mut negative_segments = valid.clone();
    negative_segments["segment_seconds"] = (-5).into();
    let mut absurd_segments = valid.clone();
    absurd_segments["segment_seconds"] = 100_000.into();
    for (what, body) in [
        ("escaping path", escaping),
        ("absolute path", absolute),
        ("huge message", huge),
        ("over-long name", long_name),
        ("negative segment length", negative_segments),
        ("absurd segment length", absurd_segments),
    ] {
        let job_id = JobId::generate();
        let mut body = body;
        body["job_id"] = job_id.to_string().into();
        let bytes = serde_json::to_vec(&body).expect("serialises");
        test.pool
            .publish_raw(MuxerId::new(1).expect("valid"), &bytes, Some(job_id))
            .await;
        let (got, message) = failure_of(&mut events, job_id).await;
        assert_eq!(got, FailureReason::BadMessage, "{what}: {message}");
    }

    // A name that looks like an option is only a name.
    Clip {
        seconds: 2,
        ..Clip::default()
    }
    .write(&media.join("-i.mp4"))
    .await;
    let dashed = job("-i.mp4");
    test.pool.publish_job(&dashed).await;
    let end = events.final_event(dashed.job_id, PATIENCE).await;
    assert!(matches!(end.state, JobState::Done { .. }), "{end:#?}");

    assert!(
        !canary::fifo_has_reader(&canary),
        "nothing holds the canary open"
    );
    assert!(worker.is_running(), "the worker is still up");
}

#[tokio::test]
async fn an_input_swapped_for_a_link_after_its_check_is_never_read() {
    let test = TestEnv::new("swapped-input").await;
    let media = test.media_root();
    // The canary: a video outside the media root, unlike the input in
    // picture size and length, so that its appearance in the output shows.
    let canary = Clip {
        width: 176,
        height: 144,
        seconds: 4,
        ..Clip::default()
    }
    .write(&test.elsewhere().join("canary.mp4"))
    .await;
    let input = Clip {
        width: 320,
        height: 240,
        seconds: 2,
        ..Clip::default()
    }
    .write(&media.join("clip.mp4"))
    .await;
    // The attacker's move, made exactly in the window between the worker's
    // check of the input and its tools opening it: an ffprobe that first
    // swaps the input's name for a link to the canary.
    let armed = test.path().join("armed");
    let swapping_ffprobe = test.path().join("swapping-ffprobe");
    std::fs::write(
        &swapping_ffprobe,
        format!(
            "#!/bin/sh\nif [ -e '{armed}' ]; then rm -f '{armed}'; mv '{input}' '{input}.gone'; ln -s '{canary}' '{input}'; fi\nexec ffprobe \"$@\"\n",
            armed = armed.display(),
            input = input.display(),
            canary = canary.display(),
        ),
    )
    .expect("script");
    std::fs::set_permissions(&swapping_ffprobe, std::fs::Permissions::from_mode(0o755))
        .expect("executable");
    let mut worker = test
        .worker_with(
            1,
            WorkerOptions::setting("HLSMUX_FFPROBE", swapping_ffprobe.display().to_string()),
        )
        .await;
    let mut events = test.pool.events().await;
    std::fs::write(&armed, b"").expect("armed");

    let swapped = job("clip.mp4");
    test.pool.publish_job(&swapped).await;
    let end = events.final_event(swapped.job_id, PATIENCE).await;
    assert!(!armed.exists(), "the swap was made");
    assert!(
        input.is_symlink(),
        "the input's name now leads to the canary"
    );
    let JobState::Done {
        rungs,
        media_seconds,
        ..
    } = end.state
    else {
        panic!("the checked file is encoded: {end:#?}");
    };
    assert!(
        media_seconds < 3.0,
        "{media_seconds} s: the 4 s canary was encoded"
    );
    let tallest = rungs.iter().map(|rung| rung.height).max().unwrap_or(0);
    assert!(
        tallest > 144,
        "the 144-line canary was encoded, not the 240-line input: {rungs:#?}"
    );
    assert!(worker.is_running(), "the worker is still up");
}

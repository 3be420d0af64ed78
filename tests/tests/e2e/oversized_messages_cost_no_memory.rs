//! A message larger than a job may be is refused without being parsed,
//! even to salvage its job ID: a 10 MB JSON body, parsed into a value
//! tree, would cost a Pi a couple of hundred megabytes. Its job ID comes
//! from the message's properties only, so its failure is still reported.

use hlsmux_protocol::{FailureReason, JobId, JobState, MAX_JOB_MESSAGE_BYTES, MuxerId};
use hlsmux_tests::{PATIENCE, TestEnv};

/// The most memory the worker may have used by the end (its peak
/// resident set): a debug build idles at a few tens of megabytes, and
/// parsing the body below would add about two hundred.
const PEAK_LIMIT_KIB: u64 = 100 * 1024;

/// The worker's peak resident set size, from the kernel.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn a_ten_megabyte_message_is_refused_unparsed_and_reported_by_its_message_id() {
    let test = TestEnv::new("oversized").await;
    let mut worker = test.worker(1).await;
    let mut events = test.pool.events().await;
    let muxer = MuxerId::new(1).expect("valid");
    // A job ID in the body, where only a full parse would find it.
    let mut body = format!(r#"{{"job_id":"{}","pad":["#, JobId::generate()).into_bytes();
    while body.len() < 10 * 1024 * 1024 {
        body.extend_from_slice(b"1,");
    }
    body.extend_from_slice(b"1]}");
    assert!(body.len() > MAX_JOB_MESSAGE_BYTES);

    // Without a message ID there is no job to report it against: it is
    // dead-lettered, and the body is never parsed looking for one.
    test.pool.publish_raw(muxer, &body, None).await;
    assert_eq!(test.pool.wait_for_dead_letters(1, PATIENCE).await, 1);
    let peak = peak_rss_kib(worker.pid().as_raw());
    assert!(
        peak < PEAK_LIMIT_KIB,
        "the worker peaked at {peak} KiB for one refused message"
    );

    // With one, its failure is reported.
    let job_id = JobId::generate();
    test.pool.publish_raw(muxer, &body, Some(job_id)).await;
    let end = events.final_event(job_id, PATIENCE).await;
    assert!(
        matches!(
            end.state,
            JobState::Failed {
                reason: FailureReason::BadMessage,
                ..
            }
        ),
        "{end:#?}"
    );
    assert_eq!(test.pool.wait_for_dead_letters(2, PATIENCE).await, 2);
    assert!(worker.is_running(), "the worker stays up");
}

//! Hardware decoding is trusted only as far as it works. Each hardware
//! decoder gets a trial decode at start-up: here, with no Pi, Debian's
//! ffmpeg has the `drm` hwaccel (a Pi 5's HEVC decoder beside libx264) but
//! no device, so the trial fails and HEVC decodes in software. And a
//! decoder that passes its trial but fails on one input (a Pi's decoder
//! meeting a stream it trips on; here an ffmpeg wrapper that decodes the
//! trial and fails the job's encode, since no real hardware is at hand)
//! costs that job one more encode, in software, never the job.

use hlsmux_protocol::JobState;
use hlsmux_tests::conformance::{Expected, assert_conforms};
use hlsmux_tests::media::{Clip, SourceCodec, write_script};
use hlsmux_tests::{PATIENCE, TestEnv, WorkerOptions};

fn hevc_clip() -> Clip {
    Clip {
        width: 320,
        height: 180,
        seconds: 2,
        codec: SourceCodec::Hevc,
        ..Clip::default()
    }
}

async fn run_hevc_job(test: &TestEnv, options: WorkerOptions, log: &std::path::Path) -> String {
    let _worker = test.worker_with(1, options).await;
    let source = hevc_clip();
    let clip = source.write(&test.media_root().join("hevc.mp4")).await;
    let mut events = test.pool.events().await;
    let run = test.submit_ok(&clip, &["--muxer", "1", "--json"]).await;
    let done = events.final_event(run.submitted_job_id(), PATIENCE).await;
    assert!(
        matches!(done.state, JobState::Done { .. }),
        "the job is done: {done:#?}"
    );
    assert_conforms(
        &test.output_root().join("hevc.mp4.hls/master.m3u8"),
        Expected::from(source),
    )
    .await;
    std::fs::read_to_string(log).expect("the worker's log")
}

fn options(env: &[(&str, String)], log: &std::path::Path) -> WorkerOptions {
    WorkerOptions {
        env: env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        log_file: Some(log.to_owned()),
        ..WorkerOptions::default()
    }
}

#[tokio::test]
async fn a_hardware_decoder_that_fails_its_trial_is_not_used() {
    let test = TestEnv::new("hwdec-trial").await;
    let log = test.path().join("worker.log");
    let env = [
        ("HLSMUX_ENCODER", "libx264".to_owned()),
        ("HLSMUX_HW_DECODE", "1".to_owned()),
    ];
    let said = run_hevc_job(&test, options(&env, &log), &log).await;
    assert!(
        said.contains("hardware decoder fails its trial") && said.contains("drm"),
        "the trial's failure is logged: {said}"
    );
    assert!(
        !said.contains("encoding it again"),
        "no decoder was used, so none failed: {said}"
    );
}

#[tokio::test]
async fn a_job_whose_hardware_decode_fails_is_encoded_again_in_software() {
    let test = TestEnv::new("hwdec-retry").await;
    let log = test.path().join("worker.log");
    // The trial decode (no -progress) passes, decoding in software; a
    // job's encode with the hardware decoder fails as a decoder would.
    let wrapper = write_script(
        &test.path().join("ffmpeg-hwdec"),
        r#"case " $* " in
  *" -hwaccel drm "*" -progress "*|*" -progress "*" -hwaccel drm "*)
    echo "[hevc @ 0x0] Failed to get a V4L2 request: hardware decode failed" >&2
    exit 1 ;;
esac
skip=0
for arg do
  shift
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  if [ "$arg" = "-hwaccel" ]; then skip=1; continue; fi
  set -- "$@" "$arg"
done
exec ffmpeg "$@""#,
    );
    let env = [
        ("HLSMUX_ENCODER", "libx264".to_owned()),
        ("HLSMUX_HW_DECODE", "1".to_owned()),
        ("HLSMUX_FFMPEG", wrapper.display().to_string()),
    ];
    let said = run_hevc_job(&test, options(&env, &log), &log).await;
    assert!(
        said.contains("hardware decoder works"),
        "the trial passed: {said}"
    );
    assert!(
        said.contains(
            "the hardware decoder failed on this input: encoding it again, decoding in software"
        ),
        "the job was encoded again: {said}"
    );
}

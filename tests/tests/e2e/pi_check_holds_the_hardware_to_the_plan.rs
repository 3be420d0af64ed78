//! `scripts/pi-check`, which an owner runs on the first real Pi, is held
//! to its own checks here with libx264 (`--board generic`): a clean run
//! reports no mismatch and exits 0; an ffmpeg that loses the forced
//! keyframes and stretches the GOP, as an old Pi kernel would, is caught
//! and the script exits 1 naming the rungs. Short clips, one-second
//! segments and rungs of at most 360 lines keep it quick.

use std::path::{Path, PathBuf};

use hlsmux_tests::TestEnv;
use hlsmux_tests::media::write_script;
use tokio::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/pi-check")
        .canonicalize()
        .expect("scripts/pi-check")
}

async fn pi_check(extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["--board", "generic", "--seconds", "3", "--skip-decoders"];
    // The kernel log needs privileges some machines do not give.
    let dmesg_works = std::process::Command::new("dmesg")
        .output()
        .is_ok_and(|output| output.status.success());
    if !dmesg_works {
        args.push("--no-dmesg");
    }
    let worker = hlsmux_tests::worker_binary();
    let output = Command::new(script())
        .args(&args)
        .arg("--worker")
        .arg(&worker)
        .args(extra)
        .env("HLSMUX_SEGMENT_SECONDS", "1")
        .env("HLSMUX_MAX_RUNG_LINES", "360")
        .env("HLSMUX_FFMPEG_THREADS", "2")
        .output()
        .await
        .expect("pi-check runs (python3)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), said)
}

#[tokio::test]
async fn a_clean_run_reports_every_rung_and_no_mismatch() {
    let (code, said) = pi_check(&[]).await;
    assert_eq!(code, Some(0), "{said}");
    for line in [
        "fifty.mp4 (1920x1080 at 50 fps) on libx264",
        "ultra-wide.mp4 (2560x1080 at 25 fps) on libx264",
        "360p_365k: a keyframe at each of 3 segment starts",
        "360p_365k: every segment decodes on its own",
        "ffmpeg peak",
        "no mismatch",
    ] {
        assert!(said.contains(line), "missing {line:?}: {said}");
    }
}

#[tokio::test]
async fn lost_forced_keyframes_are_a_mismatch() {
    let test = TestEnv::new("pi-check-keyframes").await;
    // Drops -force_key_frames and sets a 250-frame GOP.
    let wrapper = write_script(
        &test.path().join("ffmpeg-lost-keyframes"),
        r#"skip=0; next=""
for arg do
  shift
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  if [ -n "$next" ]; then set -- "$@" 250; next=""; continue; fi
  case "$arg" in
    -force_key_frames) skip=1; continue ;;
    -g|-keyint_min) next=1 ;;
  esac
  set -- "$@" "$arg"
done
exec ffmpeg "$@""#,
    );
    let (code, said) = pi_check(&["--ffmpeg", &wrapper.display().to_string()]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("MISMATCH 360p_365k: keyframes 3.000 s apart, the plan allows 1.000 s"),
        "{said}"
    );
}

//! Item 5: one batch of short jobs over one worker, then an equal batch over
//! two workers of the same muxer (ffmpeg limited to one thread each): the
//! makespans' ratio shows what a second Pi buys.

use std::path::Path;
use std::time::Instant;

use hlsmux_tests::TestEnv;

/// Seconds from `hlsmux submit` of every clip in `dir` to the last `done`.
pub async fn makespan(test: &TestEnv, dir: &Path) -> f64 {
    let pattern = dir.join("*.mp4");
    let started = Instant::now();
    let run = test
        .cli(&[
            "submit",
            pattern.to_str().expect("utf-8"),
            "--muxer",
            "1",
            "--wait",
            "--no-probe",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    started.elapsed().as_secs_f64()
}

/// `count` copies of `clip` in a new directory `name` of the media root.
pub fn batch(test: &TestEnv, clip: &Path, name: &str, count: usize) -> std::path::PathBuf {
    let dir = test.media_root().join(name);
    std::fs::create_dir_all(&dir).expect("batch dir");
    for index in 0..count {
        std::fs::copy(clip, dir.join(format!("job-{index:02}.mp4"))).expect("copy clip");
    }
    dir
}

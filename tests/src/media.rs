//! Test media, generated with ffmpeg's lavfi sources (never downloaded).

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A test clip: test-pattern video, optionally a tone and a subtitle track.
#[derive(Clone, Copy, Debug)]
pub struct Clip {
    pub width: u32,
    pub height: u32,
    pub seconds: u32,
    pub fps: u32,
    pub audio: bool,
    pub subtitles: bool,
}

impl Default for Clip {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            seconds: 3,
            fps: 25,
            audio: true,
            subtitles: false,
        }
    }
}

impl Clip {
    /// Writes the clip to `path` (container from the extension: use `.mkv`
    /// for subtitles).
    pub async fn write(self, path: &Path) -> PathBuf {
        let mut args: Vec<String> = vec![
            "-v".into(),
            "error".into(),
            "-y".into(),
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!(
                "testsrc2=size={}x{}:rate={}:duration={}",
                self.width, self.height, self.fps, self.seconds
            ),
        ];
        let mut maps = vec!["-map".to_owned(), "0:v".to_owned()];
        if self.audio {
            args.extend(["-f", "lavfi", "-i"].map(String::from));
            args.push(format!("sine=frequency=440:duration={}", self.seconds));
            maps.extend(["-map".into(), "1:a".into()]);
        }
        if self.subtitles {
            let srt = path.with_extension("srt");
            std::fs::write(
                &srt,
                "1\n00:00:00,000 --> 00:00:01,500\nhello from the subtitle track\n",
            )
            .expect("write subtitles");
            args.push("-i".into());
            args.push(srt.display().to_string());
            let index = if self.audio { 2 } else { 1 };
            maps.extend(["-map".into(), format!("{index}:s")]);
        }
        args.extend(maps);
        args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"].map(String::from));
        if self.audio {
            args.extend(["-c:a", "aac"].map(String::from));
        }
        if self.subtitles {
            args.extend(["-c:s", "srt"].map(String::from));
        }
        args.push(path.display().to_string());
        run_ffmpeg(&args).await;
        path.to_owned()
    }
}

/// A file with only an audio stream.
pub async fn audio_only(path: &Path) -> PathBuf {
    let args: Vec<String> = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:a",
        "aac",
    ]
    .map(String::from)
    .into_iter()
    .chain([path.display().to_string()])
    .collect();
    run_ffmpeg(&args).await;
    path.to_owned()
}

async fn run_ffmpeg(args: &[String]) {
    let output = Command::new("ffmpeg")
        .args(args)
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes an executable shell script (fault wrappers around real tools).
pub fn write_script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
    path.to_owned()
}

/// An ffmpeg that reads its input at real-time speed (`-re`), so an encode
/// of an N-second clip takes about N seconds: time for a test to act mid-job.
pub fn realtime_ffmpeg(dir: &Path) -> PathBuf {
    write_script(
        &dir.join("ffmpeg-realtime"),
        r#"case "$1" in -version) exec ffmpeg "$@";; esac
exec ffmpeg -re "$@""#,
    )
}

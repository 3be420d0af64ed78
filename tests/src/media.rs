//! Test media, generated with ffmpeg's lavfi sources (never downloaded).

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A test clip: test-pattern video, optionally tones and a subtitle track.
#[derive(Clone, Copy, Debug)]
pub struct Clip {
    pub width: u32,
    pub height: u32,
    pub seconds: u32,
    pub fps: u32,
    pub audio: bool,
    /// With `audio`: one tone per language, each tagged with it (`eng`);
    /// empty for one untagged track.
    pub audio_languages: &'static [&'static str],
    pub subtitles: bool,
    pub codec: SourceCodec,
    /// Degrees of rotation metadata (a display matrix; the stored picture
    /// stays as generated). Needs an `.mp4` or `.mov` path.
    pub rotation: u32,
    /// Drops every fourth frame and keeps the gaps: timestamps at a
    /// variable rate.
    pub variable_frame_rate: bool,
    /// Anamorphic: pixels this wide for their height (`(64, 45)`: a 16:9
    /// picture stored as 720x576), as the stream says.
    pub sample_aspect: Option<(u32, u32)>,
}

/// How the clip's video is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceCodec {
    H264,
    Hevc,
    /// MPEG-2 coded as interlaced fields, top field first (broadcast and
    /// DVD material). Use a `.ts` or `.mpg` path.
    InterlacedMpeg2,
}

impl Default for Clip {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            seconds: 3,
            fps: 25,
            audio: true,
            audio_languages: &[],
            subtitles: false,
            codec: SourceCodec::H264,
            rotation: 0,
            variable_frame_rate: false,
            sample_aspect: None,
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
                self.width,
                self.height,
                if self.codec == SourceCodec::InterlacedMpeg2 {
                    self.fps * 2
                } else {
                    self.fps
                },
                self.seconds
            ),
        ];
        let mut maps = vec!["-map".to_owned(), "0:v".to_owned()];
        let mut inputs = 1;
        let languages: &[&str] = match (self.audio, self.audio_languages) {
            (false, _) => &[],
            (true, []) => &[""],
            (true, languages) => languages,
        };
        for (track, language) in languages.iter().enumerate() {
            args.extend(["-f", "lavfi", "-i"].map(String::from));
            args.push(format!(
                "sine=frequency={}:duration={}",
                440 * (track + 1),
                self.seconds
            ));
            maps.extend(["-map".into(), format!("{inputs}:a")]);
            if !language.is_empty() {
                maps.push(format!("-metadata:s:a:{track}"));
                maps.push(format!("language={language}"));
            }
            inputs += 1;
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
            maps.extend(["-map".into(), format!("{inputs}:s")]);
        }
        args.extend(maps);
        let mut filters: Vec<String> = Vec::new();
        if self.variable_frame_rate {
            filters.push(r"select=not(eq(mod(n\,4)\,1))".to_owned());
            args.extend(["-vsync", "vfr"].map(String::from));
        }
        if self.codec == SourceCodec::InterlacedMpeg2 {
            // Fields from a source at twice the rate: real interlaced
            // pictures, combed wherever the pattern moves.
            filters.push("interlace=scan=tff".to_owned());
        }
        if let Some((num, den)) = self.sample_aspect {
            filters.push(format!("setsar={num}/{den}"));
        }
        if !filters.is_empty() {
            args.extend(["-vf".to_owned(), filters.join(",")]);
        }
        let codec: &[&str] = match self.codec {
            SourceCodec::H264 => &["-c:v", "libx264", "-preset", "ultrafast"],
            SourceCodec::Hevc => &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error:pools=1",
            ],
            SourceCodec::InterlacedMpeg2 => &[
                "-c:v",
                "mpeg2video",
                "-b:v",
                "2M",
                // B-frames, as broadcast MPEG-2 has them.
                "-bf",
                "2",
                "-flags",
                "+ilme+ildct",
                "-top",
                "1",
            ],
        };
        args.extend(codec.iter().map(|arg| (*arg).to_owned()));
        args.extend(["-threads", "1"].map(String::from));
        if self.audio {
            args.extend(["-c:a", "aac"].map(String::from));
        }
        if self.subtitles {
            args.extend(["-c:s", "srt"].map(String::from));
        }
        if self.rotation == 0 {
            args.push(path.display().to_string());
            run_ffmpeg(&args).await;
            return path.to_owned();
        }
        // Rotation is container metadata: written by a remux of the clip.
        let unturned = path.with_extension(format!(
            "unturned.{}",
            path.extension().and_then(|e| e.to_str()).unwrap_or("mp4")
        ));
        args.push(unturned.display().to_string());
        run_ffmpeg(&args).await;
        let remux = [
            "-v".into(),
            "error".into(),
            "-y".into(),
            "-i".into(),
            unturned.display().to_string(),
            "-c".into(),
            "copy".into(),
            "-metadata:s:v".into(),
            format!("rotate={}", self.rotation),
            path.display().to_string(),
        ];
        run_ffmpeg(&remux).await;
        let _ = std::fs::remove_file(&unturned);
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

/// Runs ffmpeg with `args`, panicking with its errors if it fails.
pub async fn run_ffmpeg(args: &[String]) {
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
/// An ffmpeg that reads its input at `rate` times real time: an N-second
/// part takes about N/`rate` seconds, so several workers' parts overlap.
pub fn paced_ffmpeg(dir: &Path, rate: u32) -> PathBuf {
    write_script(
        &dir.join(format!("ffmpeg-paced-{rate}")),
        &format!(
            r#"case "$1" in -version) exec ffmpeg "$@";; esac
exec ffmpeg -readrate {rate} "$@""#
        ),
    )
}

pub fn realtime_ffmpeg(dir: &Path) -> PathBuf {
    write_script(
        &dir.join("ffmpeg-realtime"),
        r#"case "$1" in -version) exec ffmpeg "$@";; esac
exec ffmpeg -re "$@""#,
    )
}

//! Puts a file where the workers can read it: inside the shared media root.
//! A file already there is used in place; any other file is copied into
//! `incoming/` under a temporary name and appears under its real name only
//! once complete, so no worker ever reads half a copy.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use hlsmux_protocol::{JobId, RelativePath};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;

/// Folder under the media root that receives copied inputs.
pub const INCOMING: &str = "incoming";
/// Copies at least this large show a progress bar.
const PROGRESS_BAR_BYTES: u64 = 32 * 1024 * 1024;
const COPY_BUFFER_BYTES: usize = 1024 * 1024;

/// Expands the glob patterns among `arguments` (quoted, so the shell left
/// them alone: `'videos/*.mp4'`), each into its matches in name order. An
/// argument naming an existing file is that file, even if it has `*` or `[`
/// in its name; a pattern matching nothing is an error, not an empty batch.
pub fn expand_patterns(arguments: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files: Vec<PathBuf> = Vec::with_capacity(arguments.len());
    for argument in arguments {
        let text = argument.to_string_lossy();
        let is_pattern = text.contains(['*', '?', '[']);
        if !is_pattern || argument.exists() {
            files.push(argument.clone());
            continue;
        }
        let bad_pattern = |detail: String| CliError::BadPattern {
            pattern: text.to_string(),
            detail,
        };
        let mut matches = Vec::new();
        for entry in glob::glob(&text).map_err(|e| bad_pattern(e.to_string()))? {
            let path = entry.map_err(|e| bad_pattern(e.to_string()))?;
            if path.is_file() {
                matches.push(path);
            }
        }
        if matches.is_empty() {
            return Err(bad_pattern("it matches no file".into()));
        }
        matches.sort();
        files.extend(matches);
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|file| seen.insert(file.clone()));
    Ok(files)
}

/// Checks that `file` is an existing regular file, before anything is sent.
pub fn check_file(file: &Path) -> Result<(), CliError> {
    match std::fs::metadata(file) {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(CliError::InputUnusable {
            path: file.to_owned(),
            detail: "not a regular file".into(),
        }),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            Err(CliError::InputMissing(file.to_owned()))
        }
        Err(error) => Err(CliError::InputUnusable {
            path: file.to_owned(),
            detail: error.to_string(),
        }),
    }
}

/// How long the local probe of one input may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Checks with this machine's ffprobe that `file` is media with a video
/// stream, so a wrong file is refused here, before anything is queued.
/// (`--no-probe` skips it: for paths only the workers can read, or a
/// machine without ffprobe.) Local files only, as on the workers.
pub async fn probe_locally(file: &Path) -> Result<(), CliError> {
    let unusable = |detail: String| CliError::InputUnusable {
        path: file.to_owned(),
        detail,
    };
    let run = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-protocol_whitelist", "file"])
        // JSON, not CSV: a stream with side data (a phone's display
        // matrix, a transport stream's CPB properties) prints as `video,`
        // in CSV.
        .args(["-show_entries", "stream=codec_type", "-of", "json"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Err(_) => {
            return Err(unusable(format!(
                "ffprobe did not finish within {} s; --no-probe submits it anyway",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(error)) if error.kind() == ErrorKind::NotFound => {
            return Err(unusable(
                "ffprobe is not installed on this machine: install ffmpeg, or pass --no-probe to let the workers check it".into(),
            ));
        }
        Ok(Err(error)) => return Err(unusable(format!("cannot run ffprobe: {error}"))),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr
            .lines()
            .last()
            .unwrap_or("no output")
            .trim()
            .to_owned();
        return Err(unusable(format!(
            "ffprobe cannot read it as media ({why}); --no-probe submits it anyway"
        )));
    }
    let kinds = stream_kinds(&output.stdout);
    if !kinds.iter().any(|kind| kind == "video") {
        let seen = if kinds.is_empty() {
            "nothing".to_owned()
        } else {
            kinds.join(", ")
        };
        return Err(unusable(format!(
            "it has no video stream (ffprobe sees: {seen})"
        )));
    }
    Ok(())
}

/// The `codec_type` of each stream in ffprobe's JSON, in order.
fn stream_kinds(json: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(default)]
        streams: Vec<Stream>,
    }
    #[derive(serde::Deserialize)]
    struct Stream {
        codec_type: Option<String>,
    }
    serde_json::from_slice::<Report>(json)
        .map(|report| {
            report
                .streams
                .into_iter()
                .filter_map(|stream| stream.codec_type)
                .collect()
        })
        .unwrap_or_default()
}

/// Blocking. Returns `file`'s path relative to the media root, copying it
/// into `incoming/` first when it lies outside.
pub fn place_in_media_root(
    file: &Path,
    media_root: &Path,
    job_id: JobId,
) -> Result<RelativePath, CliError> {
    let root = media_root
        .canonicalize()
        .map_err(|_| CliError::MediaRootMissing {
            path: media_root.to_owned(),
        })?;
    let unusable = |detail: String| CliError::InputUnusable {
        path: file.to_owned(),
        detail,
    };
    let resolved = file.canonicalize().map_err(|e| unusable(e.to_string()))?;
    if let Ok(inside) = resolved.strip_prefix(&root) {
        return RelativePath::from_path(inside).map_err(|e| unusable(e.to_string()));
    }
    let file_name = resolved
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| unusable("the file name is not valid UTF-8".into()))?;
    let incoming = root.join(INCOMING);
    let copy_failed = |to: &Path, detail: String| CliError::CopyFailed {
        from: file.to_owned(),
        to: to.to_owned(),
        detail,
    };
    std::fs::create_dir_all(&incoming).map_err(|e| copy_failed(&incoming, e.to_string()))?;
    let partial = incoming.join(partial_name(file_name, job_id));
    let copied =
        copy_with_progress(&resolved, &partial).map_err(|e| copy_failed(&partial, e.to_string()));
    let placed = copied.and_then(|()| {
        publish_copy(&partial, &incoming, file_name, job_id)
            .map_err(|e| copy_failed(&incoming, e.to_string()))
    });
    let _ = std::fs::remove_file(&partial);
    let placed = placed?;
    let inside = placed.strip_prefix(&root).unwrap_or(&placed);
    RelativePath::from_path(inside).map_err(|e| unusable(e.to_string()))
}

/// The name a copy into `incoming/` has until it is complete: hidden, and
/// unique to the job.
pub fn partial_name(file_name: &str, job_id: JobId) -> String {
    format!(".{file_name}.{job_id}.part")
}

/// Gives the finished copy its visible name without replacing anything: the
/// file's own name when free, else the name with the job ID's start added.
/// Shared with the gateway's uploads.
pub fn publish_copy(
    partial: &Path,
    incoming: &Path,
    file_name: &str,
    job_id: JobId,
) -> std::io::Result<PathBuf> {
    let preferred = incoming.join(file_name);
    match std::fs::hard_link(partial, &preferred) {
        Ok(()) => return Ok(preferred),
        Err(error) if error.kind() != ErrorKind::AlreadyExists => return Err(error),
        Err(_) => {}
    }
    let short_id: String = job_id.to_string().chars().take(8).collect();
    let alternative = match file_name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => format!("{stem}-{short_id}.{extension}"),
        _ => format!("{file_name}-{short_id}"),
    };
    let alternative = incoming.join(alternative);
    std::fs::hard_link(partial, &alternative)?;
    Ok(alternative)
}

fn copy_with_progress(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut source = File::open(from)?;
    let size = source.metadata()?.len();
    let bar = if size >= PROGRESS_BAR_BYTES {
        ProgressBar::new(size).with_style(
            ProgressStyle::with_template(
                "copying {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_message(
        from.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut target = File::create(to)?;
    let mut buffer = vec![0_u8; COPY_BUFFER_BYTES];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        target.write_all(&buffer[..read])?;
        bar.inc(read as u64);
    }
    target.sync_all()?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_patterns_expand_in_name_order_and_an_empty_match_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.mp4", "a.mp4", "notes.txt", "odd[1].mp4"] {
            std::fs::write(dir.path().join(name), b"video").expect("write");
        }
        let at = |name: &str| dir.path().join(name);
        let files =
            expand_patterns(&[at("*.mp4"), at("a.mp4"), at("odd[1].mp4")]).expect("expands");
        assert_eq!(files, [at("a.mp4"), at("b.mp4"), at("odd[1].mp4")]);
        let missing = at("*.mkv");
        assert!(matches!(
            expand_patterns(&[missing]),
            Err(CliError::BadPattern { detail, .. }) if detail.contains("matches no file")
        ));
        assert_eq!(
            expand_patterns(&[at("plain.mp4")]).expect("kept"),
            [at("plain.mp4")]
        );
    }

    #[test]
    fn a_file_inside_the_root_is_used_in_place() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("shows")).expect("mkdir");
        std::fs::write(root.path().join("shows/a.mp4"), b"video").expect("write");
        let placed = place_in_media_root(
            &root.path().join("shows/a.mp4"),
            root.path(),
            JobId::generate(),
        )
        .expect("placed");
        assert_eq!(placed.as_str(), "shows/a.mp4");
        assert!(!root.path().join(INCOMING).exists());
    }

    #[test]
    fn a_file_outside_is_copied_into_incoming_without_replacing_anything() {
        let root = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let file = elsewhere.path().join("clip.mp4");
        std::fs::write(&file, b"video").expect("write");
        let first = place_in_media_root(&file, root.path(), JobId::generate()).expect("first");
        assert_eq!(first.as_str(), "incoming/clip.mp4");
        let second = place_in_media_root(&file, root.path(), JobId::generate()).expect("second");
        assert_ne!(second, first);
        assert!(second.as_str().starts_with("incoming/clip-"), "{second}");
        assert!(second.as_str().ends_with(".mp4"), "{second}");
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join(INCOMING))
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(
            std::fs::read(second.under(root.path())).expect("read"),
            b"video"
        );
    }

    #[test]
    fn missing_files_and_directories_are_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            check_file(&dir.path().join("nope.mp4")),
            Err(CliError::InputMissing(_))
        ));
        assert!(matches!(
            check_file(dir.path()),
            Err(CliError::InputUnusable { .. })
        ));
    }
}

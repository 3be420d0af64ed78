//! A real player: hls.js in the system's headless Chromium, driven by
//! `tests/player/play.mjs` (Playwright, without its browser download).
//! `scripts/provision` installs Chromium and the locked npm packages.

use std::path::{Path, PathBuf};

use tokio::process::Command;

fn player_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("player")
}

/// Why the player cannot run on this machine, if it cannot.
pub fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is not installed (apt-get install chromium)"
        ));
    }
    let modules = player_dir().join("node_modules");
    for package in ["hls.js", "playwright-core"] {
        if !modules.join(package).exists() {
            return Some(format!(
                "{package} is not installed (npm ci --prefix {})",
                player_dir().display()
            ));
        }
    }
    None
}

/// Plays each master playlist in turn: playback starts, passes two
/// segments, switches rung on demand and plays `segments_after_switch`
/// more segments on the new rung (or to the end), with no hls.js error.
/// Returns each playback's report, or every report when any failed.
pub async fn play(
    masters: &[PathBuf],
    segment_seconds: u32,
    segments_after_switch: u32,
) -> Result<Vec<serde_json::Value>, String> {
    play_with_media_origin(masters, segment_seconds, segments_after_switch, None).await
}

/// As [`play`], with `media_origin` (a loopback port and the output root)
/// served as a second origin, with CORS, as a CDN serves outputs made with
/// a base URL pointing there.
pub async fn play_with_media_origin(
    masters: &[PathBuf],
    segment_seconds: u32,
    segments_after_switch: u32,
    media_origin: Option<(u16, &Path)>,
) -> Result<Vec<serde_json::Value>, String> {
    let mut command = Command::new("node");
    if let Some((port, root)) = media_origin {
        command
            .env("MEDIA_ORIGIN_PORT", port.to_string())
            .env("MEDIA_ORIGIN_ROOT", root);
    }
    let output = command
        .arg(player_dir().join("play.mjs"))
        .arg(segment_seconds.to_string())
        .arg(segments_after_switch.to_string())
        .args(masters)
        .output()
        .await
        .map_err(|error| format!("cannot run node: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let all_passed = reports.len() == masters.len()
        && reports
            .iter()
            .all(|r| r["passed"] == true && r["errors"] == serde_json::json!([]));
    if output.status.success() && all_passed {
        Ok(reports)
    } else {
        Err(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Uses the gateway's web page at `origin` with `token` as a person would
/// (`tests/player/web_page.mjs`): log in, upload `clip`, watch it reach
/// done, play it and pick a rung. Screenshots go to `screenshots`.
/// Returns the report, or the report as text when a step failed.
pub async fn use_web_page(
    origin: &str,
    token: &str,
    clip: &Path,
    screenshots: &Path,
) -> Result<serde_json::Value, String> {
    std::fs::create_dir_all(screenshots).map_err(|error| error.to_string())?;
    let output = Command::new("node")
        .arg(player_dir().join("web_page.mjs"))
        .arg(origin)
        .arg(token)
        .arg(clip)
        .arg(screenshots)
        .output()
        .await
        .map_err(|error| format!("cannot run node: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok());
    match report {
        Some(report) if output.status.success() && report["passed"] == true => Ok(report),
        _ => Err(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

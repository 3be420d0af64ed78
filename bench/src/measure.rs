//! Readings of processes and of repeated timings: resident memory and CPU
//! time from `/proc`, the median, minimum and maximum of a series, and
//! the machine the figures were taken on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The median, minimum and maximum of a series of readings.
#[derive(Clone, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.is_empty() {
            f64::NAN
        } else if sorted.len().is_multiple_of(2) {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: sorted.len(),
        }
    }

    pub fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max, "runs": self.runs })
    }

    /// `median (min–max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            self.median, self.min, self.max
        )
    }
}

/// The `p`th percentile (0–100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A process's resident memory, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds a process has used: its own, and with `children` also
/// those of the children it has waited for (ffmpeg, for a worker).
pub fn cpu_seconds(pid: u32, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |number: usize| fields.get(number - 3)?.parse::<f64>().ok();
    let mut ticks = field(14)? + field(15)?;
    if children {
        ticks += field(16)? + field(17)?;
    }
    Some(ticks / clock_ticks_per_second())
}

/// CPU seconds of this process's children that it has waited for (the
/// ffmpeg and hlsmux runs it timed).
pub fn reaped_children_cpu() -> f64 {
    let me = std::process::id();
    cpu_seconds(me, true).unwrap_or(0.0) - cpu_seconds(me, false).unwrap_or(0.0)
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Runs `work` while sampling `pid`'s resident memory every 50 ms; returns
/// its result, the wall time and the largest sample.
pub async fn sampling_rss<T>(
    pid: u32,
    work: impl std::future::Future<Output = T>,
) -> (T, Duration, f64) {
    let started = Instant::now();
    let mut peak: f64 = 0.0;
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let value = loop {
        tokio::select! {
            value = &mut work => break value,
            _ = tick.tick() => {
                peak = peak.max(rss_mib(pid).unwrap_or(0.0));
            }
        }
    };
    (value, started.elapsed(), peak)
}

/// The CPU model, core count and ffmpeg version, for the record.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let ffmpeg = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "ffmpeg": ffmpeg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_percentiles() {
        let stats = Stats::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((stats.median, stats.min, stats.max), (2.5, 1.0, 10.0));
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 100.0);
        assert_eq!(percentile(&values, 99.0), 198.0);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let pid = std::process::id();
        assert!(rss_mib(pid).is_some_and(|m| m > 0.0));
        assert!(cpu_seconds(pid, true).is_some());
    }
}

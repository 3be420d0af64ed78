//! Reading ffmpeg's `-progress` output.

/// Where an encode has got to, from ffmpeg's `-progress` report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EncodeProgress {
    /// Seconds of output written so far.
    pub out_seconds: f64,
    pub fps: f64,
    /// Multiple of real time.
    pub speed: f64,
}

impl EncodeProgress {
    pub fn percent_of(&self, duration_seconds: f64) -> f64 {
        if duration_seconds <= 0.0 {
            return 0.0;
        }
        (self.out_seconds / duration_seconds * 100.0).clamp(0.0, 100.0)
    }
}

/// Accumulates `key=value` lines; each block ends with a `progress=` line.
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: EncodeProgress,
}

impl ProgressParser {
    /// Feeds one line; returns the block's progress when the block ends.
    pub fn feed(&mut self, line: &str) -> Option<EncodeProgress> {
        let (key, value) = line.trim().split_once('=')?;
        let number = || value.trim().trim_end_matches('x').parse::<f64>().ok();
        match key {
            // Despite its name, ffmpeg reports out_time_ms in microseconds too.
            "out_time_us" => {
                if let Some(us) = number() {
                    self.current.out_seconds = (us / 1e6).max(0.0);
                }
            }
            "fps" => self.current.fps = number().unwrap_or(self.current.fps),
            "speed" => self.current.speed = number().unwrap_or(self.current.speed),
            "progress" => return Some(self.current),
            _ => {}
        }
        None
    }
}

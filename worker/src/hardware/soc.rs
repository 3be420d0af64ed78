//! The Pi's SoC temperature and throttling state, read from the kernel's
//! thermal zone and `vcgencmd get_throttled`. Where a source does not exist
//! (not a Pi, no thermal zone), the reading is absent, never a made-up zero.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::SocSettings;

/// How long `vcgencmd` may take before the reading counts as absent.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The bits of `get_throttled`, as the Raspberry Pi firmware documents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttling(u32);

impl Throttling {
    pub const FLAGS: [(&'static str, u32); 8] = [
        ("under_voltage", 0),
        ("frequency_capped", 1),
        ("throttled", 2),
        ("soft_temperature_limit", 3),
        ("under_voltage_occurred", 16),
        ("frequency_capped_occurred", 17),
        ("throttled_occurred", 18),
        ("soft_temperature_limit_occurred", 19),
    ];

    pub fn raw(self) -> u32 {
        self.0
    }

    fn bit(self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }

    pub fn under_voltage(self) -> bool {
        self.bit(0)
    }

    pub fn frequency_capped(self) -> bool {
        self.bit(1)
    }

    pub fn throttled(self) -> bool {
        self.bit(2)
    }

    pub fn soft_temperature_limit(self) -> bool {
        self.bit(3)
    }

    /// Each named flag and whether it is set.
    pub fn flags(self) -> impl Iterator<Item = (&'static str, bool)> {
        Self::FLAGS
            .into_iter()
            .map(move |(name, bit)| (name, self.bit(bit)))
    }

    /// True when anything slows the SoC down now.
    pub fn any_now(self) -> bool {
        self.0 & 0xF != 0
    }
}

/// Parses a thermal zone's `temp` file: millidegrees Celsius.
pub fn parse_thermal_zone(text: &str) -> Option<f64> {
    let millidegrees: i64 = text.trim().parse().ok()?;
    Some(millidegrees as f64 / 1000.0)
}

/// Parses `vcgencmd get_throttled` output: `throttled=0x50005`.
pub fn parse_get_throttled(text: &str) -> Option<Throttling> {
    let value = text.trim().strip_prefix("throttled=")?;
    let hex = value.strip_prefix("0x").unwrap_or(value);
    u32::from_str_radix(hex, 16).ok().map(Throttling)
}

/// Reads the temperature, or `None` where there is no thermal zone.
async fn read_temperature(thermal_zone: &Path) -> Option<f64> {
    let text = tokio::fs::read_to_string(thermal_zone).await.ok()?;
    parse_thermal_zone(&text)
}

/// Runs the throttling command (`vcgencmd get_throttled`), or `None` where
/// it does not exist or does not answer.
async fn read_throttling(command: &str) -> Option<Throttling> {
    let mut words = command.split_whitespace();
    let program = words.next()?;
    let run = Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_get_throttled(&String::from_utf8_lossy(&output.stdout))
}

/// One reading of the SoC: each part absent where the machine has no
/// source for it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SocReading {
    pub temperature_celsius: Option<f64>,
    pub throttling: Option<Throttling>,
}

impl SocReading {
    /// The throttling flags that are set (now or since boot), by name.
    pub fn throttled_flags(&self) -> Vec<&'static str> {
        self.throttling
            .into_iter()
            .flat_map(|t| t.flags().filter(|(_, on)| *on).map(|(name, _)| name))
            .collect()
    }
}

/// Reads the SoC where the settings say its sources are: the one place the
/// worker's start-up log, heartbeats, jobs and `/metrics` read it from.
#[derive(Clone, Debug)]
pub struct SocSensor {
    pub thermal_zone: PathBuf,
    throttling_command: String,
}

impl SocSensor {
    pub fn new(settings: &SocSettings) -> Self {
        Self {
            thermal_zone: settings.thermal_zone.clone(),
            throttling_command: settings.throttling_command.clone(),
        }
    }

    pub async fn read(&self) -> SocReading {
        SocReading {
            temperature_celsius: read_temperature(&self.thermal_zone).await,
            throttling: read_throttling(&self.throttling_command).await,
        }
    }

    pub async fn throttling(&self) -> Option<Throttling> {
        read_throttling(&self.throttling_command).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thermal_zone_millidegrees() {
        assert_eq!(parse_thermal_zone("48312\n"), Some(48.312));
        assert_eq!(parse_thermal_zone("-5000\n"), Some(-5.0));
        assert_eq!(parse_thermal_zone("hot\n"), None);
    }

    #[test]
    fn get_throttled_flags_now_and_occurred() {
        // Under-voltage now and throttled now, both also "has occurred".
        let throttling = parse_get_throttled("throttled=0x50005\n").expect("parses");
        assert!(throttling.under_voltage() && throttling.throttled());
        assert!(!throttling.frequency_capped() && !throttling.soft_temperature_limit());
        let set: Vec<&str> = throttling
            .flags()
            .filter(|(_, on)| *on)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            set,
            [
                "under_voltage",
                "throttled",
                "under_voltage_occurred",
                "throttled_occurred"
            ]
        );
        assert!(throttling.any_now());

        let past_only = parse_get_throttled("throttled=0x80000").expect("parses");
        assert!(!past_only.any_now());
        assert_eq!(
            parse_get_throttled("throttled=0x0").map(Throttling::raw),
            Some(0)
        );
        assert_eq!(
            parse_get_throttled("error=1 error_msg=\"Command not registered\""),
            None
        );
    }

    #[tokio::test]
    async fn readings_come_from_the_configured_sources_and_are_absent_without_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = dir.path().join("temp");
        std::fs::write(&zone, "61250\n").expect("write");
        assert_eq!(read_temperature(&zone).await, Some(61.25));
        assert_eq!(read_temperature(&dir.path().join("absent")).await, None);

        let script = dir.path().join("vcgencmd");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = get_throttled ] && echo throttled=0x20002\n",
        )
        .expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let command = format!("{} get_throttled", script.display());
        let throttling = read_throttling(&command).await.expect("reads");
        assert!(throttling.frequency_capped() && !throttling.throttled());
        assert_eq!(
            read_throttling("/nonexistent/vcgencmd get_throttled").await,
            None
        );
    }
}

//! Item 6: each rate-control mode through the pool on the same clip: its
//! wall time against `vbr`'s in the same run, and what its variants carry
//! as the master playlist measures them (AVERAGE-BANDWIDTH and the peak
//! segment's BANDWIDTH) against each rung's target (video plus audio).

use std::path::Path;

use hlsmux_protocol::{LadderName, RateControl};
use hlsmux_tests::{TestEnv, TestWorker};
use hlsmux_worker::pipeline::encode::EncodePlan;

use crate::encode;

/// One mode's runs.
pub struct ModeRuns {
    pub mode: RateControl,
    /// Wall time over `vbr`'s, run by run.
    pub wall_ratio: Vec<f64>,
    /// Each variant's AVERAGE-BANDWIDTH over its target, every run.
    pub average_to_target: Vec<f64>,
    /// Each variant's BANDWIDTH (peak segment) over its target, every run.
    pub peak_to_target: Vec<f64>,
}

pub async fn measure(
    test: &TestEnv,
    worker: &TestWorker,
    clip: &Path,
    plan: &EncodePlan,
    repeats: usize,
) -> Vec<ModeRuns> {
    let mut targets: Vec<f64> = plan
        .rungs
        .iter()
        .map(|rung| f64::from(rung.video_kbps + plan.audio_kbps) * 1000.0)
        .collect();
    targets.sort_by(f64::total_cmp);
    let mut runs: Vec<ModeRuns> = RateControl::ALL
        .iter()
        .map(|mode| ModeRuns {
            mode: *mode,
            wall_ratio: vec![],
            average_to_target: vec![],
            peak_to_target: vec![],
        })
        .collect();
    for run in 0..repeats {
        let mut walls = vec![];
        for mode in RateControl::ALL {
            let name = format!("rate-{mode}-{run}.hls");
            let pooled = encode::through_pool(
                test,
                worker,
                clip,
                LadderName::Standard,
                &name,
                &["--rate-control", mode.as_str()],
            )
            .await;
            walls.push(pooled.cost.wall);
            let master =
                std::fs::read_to_string(test.output_root().join(&name).join("master.m3u8"))
                    .expect("master playlist");
            let mut variants = variant_rates(&master);
            variants.sort_by(|a, b| a.1.total_cmp(&b.1));
            let entry = runs
                .iter_mut()
                .find(|r| r.mode == mode)
                .expect("every mode");
            for ((peak, average), target) in variants.iter().zip(&targets) {
                entry.average_to_target.push(average / target);
                entry.peak_to_target.push(peak / target);
            }
        }
        for (entry, wall) in runs.iter_mut().zip(&walls) {
            entry.wall_ratio.push(wall / walls[0]);
        }
    }
    runs
}

/// (BANDWIDTH, AVERAGE-BANDWIDTH) of each variant of a master playlist.
fn variant_rates(master: &str) -> Vec<(f64, f64)> {
    master
        .lines()
        .filter_map(|line| line.strip_prefix("#EXT-X-STREAM-INF:"))
        .map(|attributes| {
            let value = |name: &str| -> f64 {
                attributes
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(name))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            (value("BANDWIDTH="), value("AVERAGE-BANDWIDTH="))
        })
        .collect()
}

//! Item 9: one long video across the pool. A 120 s 720p30 clip through the
//! pool, whole on one worker, then split on two (one ffmpeg thread each,
//! as the machine has two cores): the split job's wall time over the
//! whole one's. What the two workers' time exceeds half the whole by is
//! the split's overhead as a share of the job: seek lead-ins, the audio
//! (one part, encoded by the coordinator), the stitch, verify, and the
//! wait for the last chunk.

use hlsmux_protocol::LadderName;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions};

use crate::encode;
use crate::measure::Stats;

/// 30 s chunks: four of the 120 s clip, two for each worker.
const CHUNK_SECONDS: &str = "30";

pub struct PoolSplit {
    /// Whole, on one worker, seconds.
    pub one: Vec<f64>,
    /// Split, on two workers, seconds.
    pub two: Vec<f64>,
}

impl PoolSplit {
    /// Two workers' wall time over one's, run by run.
    pub fn ratios(&self) -> Vec<f64> {
        self.two.iter().zip(&self.one).map(|(t, o)| t / o).collect()
    }

    /// Prints item 9's rows of the table.
    pub fn print(&self) {
        let rows = [
            (
                "9. 120 s 720p: split on 2 workers / whole on 1, wall",
                Stats::of(&self.ratios()).show(3),
                "<= 0.60",
            ),
            (
                "   wall s, 1 worker whole / 2 workers split",
                format!(
                    "{} / {}",
                    Stats::of(&self.one).show(1),
                    Stats::of(&self.two).show(1)
                ),
                "",
            ),
            (
                "   split overhead, share of the split job's wall",
                Stats::of(&self.overhead_shares()).show(3),
                "",
            ),
        ];
        for (item, value, target) in rows {
            println!("{item:<50} {value:<30} {target}");
        }
    }

    /// The share of the split job's wall time beyond half the whole one.
    pub fn overhead_shares(&self) -> Vec<f64> {
        self.two
            .iter()
            .zip(&self.one)
            .map(|(t, o)| (t - o / 2.0) / t)
            .collect()
    }
}

fn worker(consumers: u32) -> WorkerOptions {
    let mut env = encode::worker_env();
    env.retain(|(key, _)| key != "HLSMUX_FFMPEG_THREADS");
    env.extend(
        [
            ("HLSMUX_FFMPEG_THREADS", "1"),
            ("HLSMUX_SPLIT_MIN_SECONDS", "60"),
            ("HLSMUX_CHUNK_SECONDS", CHUNK_SECONDS),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    WorkerOptions {
        env,
        expected_consumers: Some(consumers),
        ..WorkerOptions::default()
    }
}

pub async fn measure(repeats: usize) -> PoolSplit {
    let test = TestEnv::new("bench-split-pool").await;
    let clip = Clip {
        width: 1280,
        height: 720,
        seconds: 120,
        fps: 30,
        ..Clip::default()
    }
    .write(&test.media_root().join("bench-720p30-120s.mp4"))
    .await;
    let first = test.worker_with(1, worker(1)).await;
    let mut one = vec![];
    for run in 0..repeats {
        let name = format!("whole-{run}.hls");
        let pooled = encode::through_pool(
            &test,
            &first,
            &clip,
            LadderName::Standard,
            &name,
            &["--split", "off"],
        )
        .await;
        one.push(pooled.cost.wall);
    }
    let _second = test.worker_with(1, worker(2)).await;
    let mut two = vec![];
    for run in 0..repeats {
        let name = format!("split-{run}.hls");
        let pooled = encode::through_pool(
            &test,
            &first,
            &clip,
            LadderName::Standard,
            &name,
            &["--split", "auto"],
        )
        .await;
        two.push(pooled.cost.wall);
    }
    PoolSplit { one, two }
}

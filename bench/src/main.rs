//! `hlsmux-bench`: the pool measured against plain ffmpeg and against the
//! seed's design, in one run, as ratios (absolute times on a shared machine
//! vary; ratios taken in one run hold). Prints a table, writes JSON.

mod dispatch;
mod encode;
mod gateway;
mod measure;
mod memory;
mod pool_split;
mod rate_control;
mod split;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hlsmux_protocol::LadderName;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, WorkerOptions};
use serde_json::json;

use hlsmux_worker::pipeline::split::grid::ChunkGrid;
use measure::{Stats, cpu_seconds, percentile, rss_mib};

#[derive(Parser, Debug)]
#[command(
    name = "hlsmux-bench",
    about = "Measure hlsmux against plain ffmpeg and the seed's pipeline (needs RabbitMQ and ffmpeg, as the tests do)",
    after_help = "Example:\n  scripts/bench            (builds in release and runs this)"
)]
struct Args {
    /// Runs of each timed item.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Jobs in the dispatch latency item.
    #[arg(long, default_value_t = 200)]
    dispatch_jobs: usize,
    /// Seconds the idle worker's CPU is watched.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Jobs per batch in the throughput item.
    #[arg(long, default_value_t = 20)]
    batch_jobs: usize,
    /// `GET /v1/jobs/{id}` requests timed in item 10.
    #[arg(long, default_value_t = 500)]
    gateway_requests: usize,
    /// Run only item 9 (one long video across two workers), which takes
    /// longest, and print it.
    #[arg(long)]
    only_pool_split: bool,
    /// Run only item 10 (the gateway) and print it.
    #[arg(long)]
    only_gateway: bool,
    /// Where the results go as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let started = time::OffsetDateTime::now_utc();
    if args.only_pool_split {
        let split = pool_split::measure(args.repeats).await;
        split.print();
        return;
    }
    if args.only_gateway {
        gateway::measure(args.gateway_requests).await.print();
        return;
    }

    // Items 1, 2, 3 and 4 share one worker, set up as the plain ffmpeg runs are.
    let test = TestEnv::new("bench").await;
    let worker = test
        .worker_with(
            1,
            WorkerOptions {
                env: encode::worker_env(),
                ..WorkerOptions::default()
            },
        )
        .await;
    let pid = u32::try_from(worker.pid().as_raw()).expect("pid");

    eprintln!("4. idle worker: {} s", args.idle_seconds);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_mib(pid).unwrap_or(f64::NAN);
    let cpu_before = cpu_seconds(pid, false).unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_cpu_percent =
        (cpu_seconds(pid, false).unwrap_or(0.0) - cpu_before) / args.idle_seconds as f64 * 100.0;

    let clip = Clip {
        width: 1280,
        height: 720,
        seconds: 20,
        fps: 30,
        ..Clip::default()
    }
    .write(&test.media_root().join("bench-720p30.mp4"))
    .await;
    let source = encode::Source::probe(clip.clone()).await;
    let scratch = tempfile::tempdir().expect("scratch dir");

    eprintln!("1. job overhead: {} runs each", args.repeats);
    let plan = source.plan(LadderName::Standard);
    let (mut overhead, mut pool_walls, mut plain_walls, mut peaks, mut own_shares) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..args.repeats {
        // Alternately first, so neither side always meets a cold cache.
        let name = format!("overhead-{run}.hls");
        let (plain, pooled) = if run % 2 == 0 {
            let plain = encode::plain(&plan, scratch.path(), run).await;
            let pooled =
                encode::through_pool(&test, &worker, &clip, LadderName::Standard, &name, &[]).await;
            (plain, pooled)
        } else {
            let pooled =
                encode::through_pool(&test, &worker, &clip, LadderName::Standard, &name, &[]).await;
            (encode::plain(&plan, scratch.path(), run).await, pooled)
        };
        overhead.push(pooled.cost.wall / plain.wall);
        pool_walls.push(pooled.cost.wall);
        plain_walls.push(plain.wall);
        peaks.push(pooled.worker_peak_rss);
        own_shares.push(pooled.worker_own_cpu / pooled.cost.cpu * 100.0);
    }

    eprintln!("2. against the seed's pipeline: {} runs each", args.repeats);
    let (mut seed_wall, mut seed_cpu) = (vec![], vec![]);
    for run in 0..args.repeats {
        let seed = encode::seed_pipeline(&source, scratch.path(), run).await;
        let pooled = encode::through_pool(
            &test,
            &worker,
            &clip,
            LadderName::Seed,
            &format!("seed-{run}.hls"),
            &[],
        )
        .await;
        seed_wall.push(pooled.cost.wall / seed.wall);
        seed_cpu.push(pooled.cost.cpu / seed.cpu);
    }

    eprintln!("6. rate control modes: {} runs each", args.repeats);
    let modes = rate_control::measure(&test, &worker, &clip, &plan, args.repeats).await;

    eprintln!("7. ffmpeg's peak memory, 1080p30 source, libx264");
    let source_1080 = Clip {
        width: 1920,
        height: 1080,
        seconds: 10,
        fps: 30,
        ..Clip::default()
    }
    .write(&scratch.path().join("bench-1080p30.mp4"))
    .await;
    let small_board = memory::planned_peak(&source_1080, 1024, scratch.path()).await;
    let roomy = memory::planned_peak(&source_1080, 64 * 1024, scratch.path()).await;

    eprintln!(
        "8. split on one worker against whole: {} runs each",
        args.repeats
    );
    let long_clip = Clip {
        width: 1280,
        height: 720,
        seconds: 60,
        fps: 30,
        ..Clip::default()
    }
    .write(&scratch.path().join("bench-720p30-60s.mp4"))
    .await;
    let long_source = encode::Source::probe(long_clip).await;
    let long_plan = long_source.plan(LadderName::Standard);
    let grid = ChunkGrid::new(
        long_source.media.duration_seconds,
        encode::SEGMENT_SECONDS,
        20,
    );
    let mut split_overhead = vec![];
    for _ in 0..args.repeats {
        let seconds = long_source.media.duration_seconds;
        split_overhead
            .push(split::split_to_whole(&long_plan, seconds, scratch.path(), &grid).await);
    }

    eprintln!(
        "9. one 120 s video, two workers against one: {} runs each",
        args.repeats
    );
    let pool_split = pool_split::measure(args.repeats).await;

    eprintln!("10. gateway: status latency and memory with 200 followers");
    let gateway = gateway::measure(args.gateway_requests).await;

    eprintln!("3. dispatch latency: {} jobs", args.dispatch_jobs);
    let latencies = dispatch::latencies(&test, args.dispatch_jobs).await;
    drop(worker);
    drop(test);

    eprintln!("5. pool throughput: {} jobs per batch", args.batch_jobs);
    let test = TestEnv::new("bench-pool").await;
    let short = Clip::default()
        .write(&test.media_root().join("short.mp4"))
        .await;
    let _first = test.worker(1).await;
    let mut one = vec![];
    for run in 0..args.repeats {
        let dir = throughput::batch(&test, &short, &format!("one-{run}"), args.batch_jobs);
        one.push(throughput::makespan(&test, &dir).await);
    }
    let _second = test
        .worker_with(
            1,
            WorkerOptions {
                expected_consumers: Some(2),
                ..WorkerOptions::default()
            },
        )
        .await;
    let mut two = vec![];
    for run in 0..args.repeats {
        let dir = throughput::batch(&test, &short, &format!("two-{run}"), args.batch_jobs);
        two.push(throughput::makespan(&test, &dir).await);
    }
    let scaling: Vec<f64> = two.iter().zip(&one).map(|(t, o)| t / o).collect();

    let rows = [
        (
            "1. job overhead: pool / plain ffmpeg (wall)",
            Stats::of(&overhead).show(3),
            "<= 1.03",
        ),
        (
            "   pool wall s / plain ffmpeg wall s",
            format!(
                "{} / {}",
                Stats::of(&pool_walls).show(2),
                Stats::of(&plain_walls).show(2)
            ),
            "",
        ),
        (
            "2. pool / seed pipeline, wall",
            Stats::of(&seed_wall).show(3),
            "<= 0.5",
        ),
        (
            "2. pool / seed pipeline, CPU",
            Stats::of(&seed_cpu).show(3),
            "<= 0.5",
        ),
        (
            "3. dispatch latency p50 / p99, ms",
            format!(
                "{:.1} / {:.1}",
                percentile(&latencies, 50.0),
                percentile(&latencies, 99.0)
            ),
            "p50 <= 20",
        ),
        ("4. worker RSS idle, MiB", format!("{idle_rss:.1}"), "<= 15"),
        (
            "4. worker RSS during an encode, MiB (not ffmpeg)",
            Stats::of(&peaks).show(1),
            "",
        ),
        (
            "4. worker CPU idle, % of a core",
            format!("{idle_cpu_percent:.3}"),
            "~ 0",
        ),
        (
            "4. worker's own share of a job's CPU, %",
            Stats::of(&own_shares).show(2),
            "",
        ),
        (
            "5. makespan, 2 workers / 1 worker",
            Stats::of(&scaling).show(3),
            "",
        ),
        (
            "   makespan s, 1 worker / 2 workers",
            format!("{} / {}", Stats::of(&one).show(1), Stats::of(&two).show(1)),
            "",
        ),
    ];
    let memory_rows = [&small_board, &roomy].map(|run| {
        (
            format!(
                "7. ffmpeg peak MiB, {} MiB board ({} rungs)",
                run.ram_mib, run.rungs
            ),
            format!(
                "{:.0} (plan estimated {:.0})",
                run.peak_mib, run.estimate_mib
            ),
            if run.ram_mib == 1024 { "< 600" } else { "" },
        )
    });
    let split_row = (
        format!(
            "8. split in {} chunks here / whole, wall",
            grid.chunks.len()
        ),
        Stats::of(&split_overhead).show(3),
        "",
    );
    let mode_rows: Vec<(String, String, &str)> = modes
        .iter()
        .flat_map(|runs| {
            [
                (
                    format!("6. {}: wall / vbr wall", runs.mode),
                    Stats::of(&runs.wall_ratio).show(3),
                    "",
                ),
                (
                    format!("6. {}: AVERAGE-BANDWIDTH / target", runs.mode),
                    Stats::of(&runs.average_to_target).show(3),
                    "",
                ),
                (
                    format!("6. {}: BANDWIDTH (peak) / target", runs.mode),
                    Stats::of(&runs.peak_to_target).show(3),
                    "",
                ),
            ]
        })
        .collect();
    println!("\n{:<50} {:<30} target", "item", "median (min–max)");
    for (item, value, target) in rows {
        println!("{item:<50} {value:<30} {target}");
    }
    for (item, value, target) in &mode_rows {
        println!("{item:<50} {value:<30} {target}");
    }
    for (item, value, target) in &memory_rows {
        println!("{item:<50} {value:<30} {target}");
    }
    println!("{:<50} {:<30} {}", split_row.0, split_row.1, split_row.2);
    pool_split.print();
    gateway.print();

    let memory_json: Vec<serde_json::Value> = [&small_board, &roomy]
        .iter()
        .map(|run| {
            json!({
                "board_ram_mib": run.ram_mib,
                "rungs": run.rungs,
                "plan_estimate_mib": run.estimate_mib,
                "peak_mib": run.peak_mib,
            })
        })
        .collect();
    let results = json!({
        "started_at": started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "machine": measure::machine(),
        "settings": { "preset": encode::PRESET, "threads": encode::THREADS, "segment_seconds": encode::SEGMENT_SECONDS, "repeats": args.repeats },
        "job_overhead_ratio": Stats::of(&overhead).json(),
        "pool_wall_seconds": Stats::of(&pool_walls).json(),
        "plain_ffmpeg_wall_seconds": Stats::of(&plain_walls).json(),
        "seed_wall_ratio": Stats::of(&seed_wall).json(),
        "seed_cpu_ratio": Stats::of(&seed_cpu).json(),
        "dispatch_ms": { "p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0), "jobs": latencies.len() },
        "worker_idle_rss_mib": idle_rss,
        "worker_encode_peak_rss_mib": Stats::of(&peaks).json(),
        "worker_idle_cpu_percent": idle_cpu_percent,
        "worker_own_cpu_share_percent": Stats::of(&own_shares).json(),
        "makespan_ratio_two_to_one": Stats::of(&scaling).json(),
        "makespan_one_worker_seconds": Stats::of(&one).json(),
        "makespan_two_workers_seconds": Stats::of(&two).json(),
        "ffmpeg_peak_memory": memory_json,
        "split_here_to_whole_wall_ratio": Stats::of(&split_overhead).json(),
        "split_two_workers_to_one_wall_ratio": Stats::of(&pool_split.ratios()).json(),
        "split_one_worker_whole_seconds": Stats::of(&pool_split.one).json(),
        "split_two_workers_seconds": Stats::of(&pool_split.two).json(),
        "split_overhead_share": Stats::of(&pool_split.overhead_shares()).json(),
        "gateway": gateway.json(),
        "rate_control": modes.iter().map(|runs| json!({
            "mode": runs.mode.as_str(),
            "wall_ratio_to_vbr": Stats::of(&runs.wall_ratio).json(),
            "average_bandwidth_to_target": Stats::of(&runs.average_to_target).json(),
            "peak_bandwidth_to_target": Stats::of(&runs.peak_to_target).json(),
        })).collect::<Vec<_>>(),
    });
    if let Some(parent) = args.json.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&args.json, format!("{text}\n")).expect("write results");
    eprintln!("results: {}", args.json.display());
}

//! A long input encoded in chunks and stitched comes out as the same input
//! encoded whole would (issue 21's core: its parts run one after another
//! on one worker here, through the worker's own stages). A 24 s clip in
//! two 12 s chunks: it conforms; every rung has as many segments, each as
//! long within a frame; as many pictures and audio frames; its video
//! timestamps advance by exactly one frame everywhere, the join included;
//! its MPEG-TS continuity counters run on across the join; and its
//! pictures are as close to the source as the whole encode's (mean SSIM
//! within 0.005 in every rung; x264 restarting its rate control at a chunk
//! costs the starved lowest rung about 0.003 per join on a clip this
//! short). The same holds encrypted, and in fMP4 segments.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hlsmux_protocol::{LadderName, RateControl, SegmentFormat};
use hlsmux_tests::conformance::{Expected, assert_conforms};
use hlsmux_tests::produce::produce_here;
use hlsmux_tests::split_compare::{Comparison, RungToCompare, assert_split_matches_whole};
use hlsmux_tests::split_pool::long_clip;
use hlsmux_worker::config::Settings;
use hlsmux_worker::pipeline::encode::{EncodePlan, OutputOptions};
use hlsmux_worker::pipeline::hls::layout::Layout;
use hlsmux_worker::pipeline::input::probe::probe;
use hlsmux_worker::pipeline::plan::codec::VideoEncoder;
use hlsmux_worker::pipeline::split::grid::ChunkGrid;

const SEGMENT_SECONDS: u32 = 2;
const CHUNK_SECONDS: u32 = 12;

/// The worker's plan for `input` (x264's default preset for the worker,
/// with B-frames, one thread).
async fn plan(input: &Path, format: SegmentFormat) -> (EncodePlan, f64) {
    let mut settings = Settings::defaults().expect("defaults").encoding;
    settings.ffmpeg_threads = 1;
    let media = probe(
        Path::new("ffprobe"),
        input,
        input,
        &settings.input_formats,
        Duration::from_secs(60),
    )
    .await
    .expect("probes");
    let options = OutputOptions {
        ladder: LadderName::Standard,
        segment_seconds: SEGMENT_SECONDS,
        layout: Layout {
            format,
            ..Layout::default()
        },
        rate_control: RateControl::Vbr,
    };
    let plan = EncodePlan::new(
        &settings,
        input.to_owned(),
        &media,
        options,
        VideoEncoder::Libx264,
        None,
    );
    (plan, media.duration_seconds)
}

/// Splits and encodes whole, and compares rung by rung.
async fn compare(name: &str, format: SegmentFormat, encrypted: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let source = long_clip();
    let input = source.write(&dir.path().join(format!("{name}.mp4"))).await;
    let (plan, seconds) = plan(&input, format).await;
    let grid = ChunkGrid::new(seconds, SEGMENT_SECONDS, CHUNK_SECONDS);
    assert_eq!(grid.chunks.len(), 2, "{grid:?}");
    let whole: PathBuf = dir.path().join("whole");
    let split: PathBuf = dir.path().join("split");
    produce_here(&plan, seconds, &whole, None, encrypted).await;
    produce_here(&plan, seconds, &split, Some(&grid), encrypted).await;
    assert!(!split.join(".parts").exists(), "the parts are gone");
    assert_conforms(&split.join("master.m3u8"), Expected::from(source)).await;
    let rungs: Vec<RungToCompare> = plan
        .rungs
        .iter()
        .map(|rung| RungToCompare {
            name: rung.name(),
            width: rung.width,
            height: rung.height,
        })
        .collect();
    assert_split_matches_whole(Comparison {
        name,
        split: &split,
        whole: &whole,
        source: &input,
        fps: source.fps,
        rungs: &rungs,
        format,
        encrypted,
    })
    .await;
}

#[tokio::test]
async fn chunks_stitched_are_the_whole_encode_in_mpeg_ts() {
    compare("mpegts", SegmentFormat::Mpegts, false).await;
}

#[tokio::test]
async fn chunks_stitched_are_the_whole_encode_encrypted_and_in_fmp4() {
    compare("encrypted", SegmentFormat::Mpegts, true).await;
    compare("fmp4", SegmentFormat::Fmp4, false).await;
}

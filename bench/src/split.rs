//! Item 8: what splitting costs on one worker. The same plan through the
//! worker's stages twice, whole and in chunks run one after another here
//! (each chunk seeks and decodes a lead-in, the audio is its own run, then
//! the stitch), so the difference is the split's own overhead: what a pool
//! of N workers pays on top of 1/N of the encode once chunks are spread.

use std::path::Path;

use hlsmux_tests::produce::produce_here;
use hlsmux_worker::pipeline::encode::EncodePlan;
use hlsmux_worker::pipeline::split::grid::ChunkGrid;

/// The split's wall time over the whole encode's, for one run of each.
pub async fn split_to_whole(
    plan: &EncodePlan,
    seconds: f64,
    scratch: &Path,
    grid: &ChunkGrid,
) -> f64 {
    let (whole_dir, split_dir) = (scratch.join("whole"), scratch.join("split"));
    let whole = produce_here(plan, seconds, &whole_dir, None, false).await;
    let split = produce_here(plan, seconds, &split_dir, Some(grid), false).await;
    let _ = std::fs::remove_dir_all(&whole_dir);
    let _ = std::fs::remove_dir_all(&split_dir);
    split.as_secs_f64() / whole.as_secs_f64()
}

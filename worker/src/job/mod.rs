//! One delivered job message, from start to settlement: `handle` parses it
//! and reports its ending, `spec` fixes what the job asks for, `produce`
//! drives the pipeline, and `outcome` decides how the broker is told.

mod handle;
pub mod outcome;
mod produce;
mod spec;

pub use handle::{JobRunner, Settled};

/// Runs filesystem work off the async threads: the media and output roots
/// may be network mounts that stall.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

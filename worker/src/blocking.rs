//! Filesystem work off the async threads: the media and output roots may
//! be network mounts that stall.

/// Runs `work` on a blocking thread; a panic in it goes on in the caller.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

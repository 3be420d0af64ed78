//! The job's input: resolved beneath the media root and checked
//! (`validate`), then read by ffprobe (`probe`).

pub mod probe;
pub mod validate;

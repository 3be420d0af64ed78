//! The hlsmux worker: consumes its muxer's job queue and turns each input
//! video into multi-bitrate HLS on the shared output root.
//!
//! Layers, each importing only those below it:
//! - `app`: builds the worker and runs it (sessions, the job consumer, the
//!   side tasks), and `preview` (`hlsmux-worker plan`), on top of
//! - `job` (one delivery: spec, produce, and `outcome`, the one place that
//!   decides ack, dead-letter or requeue), `tidy`, `dead_letters` and
//!   `cancellations` (what the side tasks do with their messages), on top of
//! - `health` (gate, quarantine and its self-test, storage, state), on
//! - `pipeline` (the stages: input, plan, encode, hls, publish), `broker`
//!   (the worker's edge to RabbitMQ), `hardware`, `metrics` and `config`.
//!
//! `tests/tests/e2e/layers_import_downward.rs` checks that no module imports
//! one that imports it back.

pub mod app;
pub mod blocking;
pub mod boot;
pub mod broker;
pub mod cancellations;
pub mod config;
pub mod dead_letters;
pub mod hardware;
pub mod health;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod preview;
pub mod shutdown;
pub mod tidy;

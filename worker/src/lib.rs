//! The hlsmux worker: consumes its muxer's job queue and turns each input
//! video into multi-bitrate HLS on the shared output root.
//!
//! `pipeline` holds the stages of one job; `job` drives them for a
//! delivery; `broker` and `disposition` are the edge to RabbitMQ; `app`
//! builds and runs the whole worker.

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
pub mod shutdown;
pub mod tidy;

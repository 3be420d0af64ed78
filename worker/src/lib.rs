pub mod config;
pub mod pipeline;

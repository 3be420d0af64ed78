//! `hlsmux-deploy`: the pool's inventory (one TOML file) and everything
//! rendered from it: netboot (DHCP, TFTP, NFS), the worker's unit and
//! settings, Prometheus targets and RabbitMQ definitions.

pub mod cli;
pub mod inventory;
pub mod plan;
pub mod render;
pub mod secrets;

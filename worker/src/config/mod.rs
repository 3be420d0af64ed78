//! The worker's settings: built-in defaults, overlaid by a TOML file, the
//! kernel command line, then `HLSMUX_*` environment variables (`load`),
//! checked once (`raw`) into typed sections (`sections`).

mod error;
mod load;
mod raw;
mod sections;

pub use error::ConfigError;
pub use load::{Origin, Source, exposed_secret};
pub use sections::{
    BrokerSettings, EncodingSettings, PathSettings, ServiceSettings, Settings, SocSettings,
    StorageSettings, ToolSettings,
};

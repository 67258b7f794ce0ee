//! The embedded sinks, which need no external service: [`Console`] and [`JsonlFile`], and
//! their serde configurations ([`ConsoleConfig`], [`JsonlFileConfig`]).

mod config;
mod console;
mod jsonl;

pub use config::{serde_duration, ConfigError, ConsoleConfig, JsonlFileConfig};
pub use console::{Console, ConsoleFormat, ConsoleTarget};
pub use jsonl::JsonlFile;

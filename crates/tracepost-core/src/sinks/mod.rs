//! The embedded sinks, which need no external service: [`Console`] and [`JsonlFile`].

mod console;
mod jsonl;

pub use console::{Console, ConsoleTarget};
pub use jsonl::JsonlFile;

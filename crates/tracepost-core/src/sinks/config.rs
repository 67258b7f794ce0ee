//! Serde configurations of the embedded sinks, for settings kept in a file.
//!
//! ```
//! use tracepost_core::sinks::{ConsoleConfig, JsonlFileConfig};
//!
//! let console: ConsoleConfig = serde_json::from_str(r#"{"target": "stdout", "format": "json"}"#).unwrap();
//! let sink = console.build();
//! # drop(sink);
//! let files: JsonlFileConfig = serde_json::from_str(r#"{"dir": "/var/lib/app/events", "max_files": 20}"#).unwrap();
//! let sink = files.build().unwrap();
//! # drop(sink);
//!
//! // Unknown fields are refused, by name:
//! let typo = serde_json::from_str::<JsonlFileConfig>(r#"{"dir": "x", "max_file": 20}"#).unwrap_err();
//! assert!(typo.to_string().contains("unknown field `max_file`"));
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::{Console, ConsoleFormat, ConsoleTarget, JsonlFile};

/// Why a sink configuration was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sink setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, as spelled in the configuration file.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// [`Console`]'s settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConsoleConfig {
    /// `stderr` (default) or `stdout`.
    pub target: ConsoleTarget,
    /// `text` (default) or `json` lines.
    pub format: ConsoleFormat,
    /// Also print metric-window events (default false).
    pub metric_windows: bool,
}

impl ConsoleConfig {
    /// The sink.
    pub fn build(&self) -> Console {
        let mut c = Console::default()
            .output_format(self.format)
            .with_metric_windows(self.metric_windows);
        if self.target == ConsoleTarget::Stdout {
            c = c.stdout();
        }
        c
    }
}

/// [`JsonlFile`]'s settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JsonlFileConfig {
    /// The directory written to (created if missing). Required.
    pub dir: PathBuf,
    /// Rotate after this many bytes (default 64 MiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Keep at most this many files (default 10).
    #[serde(default = "default_max_files")]
    pub max_files: usize,
}

fn default_max_file_bytes() -> u64 {
    64 << 20
}

fn default_max_files() -> usize {
    10
}

impl JsonlFileConfig {
    /// Defaults for files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JsonlFileConfig {
            dir: dir.into(),
            max_file_bytes: default_max_file_bytes(),
            max_files: default_max_files(),
        }
    }

    /// The sink; fails on a zero limit or an empty directory.
    pub fn build(&self) -> Result<JsonlFile, ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError {
                field: "dir",
                reason: "empty path".into(),
            });
        }
        if self.max_file_bytes == 0 {
            return Err(ConfigError {
                field: "max_file_bytes",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_files == 0 {
            return Err(ConfigError {
                field: "max_files",
                reason: "must be at least 1".into(),
            });
        }
        Ok(JsonlFile::new(&self.dir)
            .max_file_bytes(self.max_file_bytes)
            .max_files(self.max_files))
    }
}

/// Durations in configuration files, as humantime strings (`"250ms"`, `"5s"`, `"2h 30m"`,
/// `"14days"`) or as a number of seconds. For `#[serde(with = …)]` in sink configs.
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(u64),
        Text(String),
    }

    fn parse<E: serde::de::Error>(r: Repr) -> Result<Duration, E> {
        match r {
            Repr::Secs(s) => Ok(Duration::from_secs(s)),
            Repr::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                E::custom(format_args!(
                    "invalid duration {t:?}: {e} (write e.g. \"500ms\", \"5s\", \"14days\")"
                ))
            }),
        }
    }

    /// Reads a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parse(Repr::deserialize(d)?)
    }

    /// Writes a duration as a humantime string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// The same for an optional duration (absent or `null`: `None`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        /// Reads an optional duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<super::Repr>::deserialize(d)? {
                None => Ok(None),
                Some(r) => super::parse(r).map(Some),
            }
        }
    }
}

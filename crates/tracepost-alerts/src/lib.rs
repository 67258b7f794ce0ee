#![doc = include_str!("../docs.md")]

#[cfg(feature = "axum")]
mod admin;
mod alert;
mod config;
mod engine;
mod known;
mod rules;
#[cfg(feature = "webhook")]
pub mod webhook;

#[cfg(feature = "axum")]
pub use admin::{admin_router, TEST_ALERT_INTERVAL};
pub use alert::{truncate_chars, Alert, AlertKind};
pub use config::{
    AlertRules, ConfigError, ErrorRateRule, HealthRule, NewIssueRule, RuleFilter, SpikeRule,
};
pub use engine::{
    send_test_alert, test_alert_event, AlertEngine, AlertEngineBuilder, AlertStats, AlertsError,
    Clock, ManualClock, Notifier, SystemClock,
};
pub use known::KNOWN_FILE;
pub use rules::TEST_ATTRIBUTE;

//! Errors, and how they are classified for the pipeline's retry logic.

use tracepost_core::{SinkError, SinkErrorKind};

/// An error from the Postgres sink or store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The configuration (URL, schema name, …) is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An error reported by Postgres or by the connection.
    #[error("postgres: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool in time.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A schema migration failed.
    #[error("migration {version} failed: {}", describe(.source))]
    Migration {
        /// The migration's version.
        version: i32,
        /// The error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl PgError {
    /// True when retrying later can help (connection loss, pool timeout, serialization
    /// failure, deadlock, server shutting down, too many connections).
    pub fn is_temporary(&self) -> bool {
        match self {
            PgError::Config(_) => false,
            PgError::Pool(_) => true,
            PgError::Postgres(e) | PgError::Migration { source: e, .. } => {
                classify(e) == Class::Temporary
            }
        }
    }

    /// The SQLSTATE code, when the server reported one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Postgres(e) | PgError::Migration { source: e, .. } => {
                e.code().map(|c| c.code())
            }
            _ => None,
        }
    }

    /// True when the server refuses everything until someone fixes it, whatever the data:
    /// authentication (SQLSTATE class 28: `28P01`, `28000`), privileges and schema (class 42:
    /// `42501` insufficient privilege, `42P01` undefined table, …), a missing database
    /// (`3D000`) or schema (`3F000`). The pipeline keeps the batch and retries slowly.
    pub fn is_refused(&self) -> bool {
        self.code().is_some_and(|c| refusal_kind(c).is_some())
    }

    /// The error for the pipeline: what went wrong ([`SinkErrorKind`]) and whether to
    /// retry (refused, temporary, or permanent: bad data, split to find the row).
    pub(crate) fn into_sink_error(self) -> SinkError {
        let message = self.to_string();
        let code = self.code().unwrap_or("").to_owned();
        let error = if let Some(kind) = refusal_kind(&code) {
            SinkError::refused(message).with_kind(kind)
        } else if self.is_temporary() {
            SinkError::temporary(message)
        } else if code.starts_with("54") {
            SinkError::permanent(message).with_kind(SinkErrorKind::PayloadTooLarge)
        } else if code.starts_with("22") || code.starts_with("23") {
            SinkError::permanent(message)
        } else {
            SinkError::permanent(message).with_kind(SinkErrorKind::Other)
        };
        error.with_source(self)
    }
}

/// The kind of a SQLSTATE that refuses everything (see [`PgError::is_refused`]), if it is one.
pub(crate) fn refusal_kind(code: &str) -> Option<SinkErrorKind> {
    match code {
        "42501" => Some(SinkErrorKind::PermissionDenied),
        "3D000" | "3F000" | "42P01" => Some(SinkErrorKind::NotFound),
        c if c.starts_with("28") => Some(SinkErrorKind::Unauthenticated),
        c if c.starts_with("42") => Some(SinkErrorKind::Other),
        _ => None,
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Postgres(e),
            other => PgError::Pool(other.to_string()),
        }
    }
}

/// How an error affects a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retry the whole batch later.
    Temporary,
    /// Some row's data is bad: split the batch to find it. The reason is a metric label.
    Data(&'static str),
    /// Retrying won't help, and it is not about one row (permissions, missing table, …).
    Permanent,
}

/// Classifies an error by its SQLSTATE class; errors without one (I/O, closed connection,
/// timeouts) are temporary.
pub(crate) fn classify(e: &tokio_postgres::Error) -> Class {
    match e.code() {
        None => Class::Temporary,
        Some(_) if is_missing_partition(e) => Class::Temporary,
        Some(code) => class_of(code.code()),
    }
}

/// The class of a SQLSTATE.
pub(crate) fn class_of(code: &str) -> Class {
    match code.get(..2).unwrap_or("") {
        // connection exception, transaction rollback (serialization failure, deadlock),
        // insufficient resources (too many connections), operator intervention (admin or
        // crash shutdown, cannot connect now), system error.
        "08" | "40" | "53" | "57" | "58" => Class::Temporary,
        // object not in prerequisite state: lock not available, object in use.
        "55" => Class::Temporary,
        "22" => Class::Data("invalid_data"),
        "23" => Class::Data("constraint"),
        "54" => Class::Data("too_large"),
        _ => Class::Permanent,
    }
}

/// "no partition of relation … found for row": the partition was dropped (by retention,
/// perhaps in another instance) after this sink created it.
pub(crate) fn is_missing_partition(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == "23514" && db.message().contains("no partition"))
}

/// The server's message with its detail, or the client error with its cause.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        s
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        for temporary in [
            "40001", // serialization_failure
            "40P01", // deadlock_detected
            "57P01", // admin_shutdown
            "57P02", // crash_shutdown
            "57P03", // cannot_connect_now
            "08006", // connection_failure
            "08001", // sqlclient_unable_to_establish_sqlconnection
            "53300", // too_many_connections
            "55P03", // lock_not_available
        ] {
            assert_eq!(class_of(temporary), Class::Temporary, "{temporary}");
        }
        assert_eq!(class_of("22P05"), Class::Data("invalid_data")); // untranslatable character
        assert_eq!(class_of("22021"), Class::Data("invalid_data")); // bad encoding
        assert_eq!(class_of("23502"), Class::Data("constraint")); // not null
        assert_eq!(class_of("54000"), Class::Data("too_large")); // index row too large
        assert_eq!(class_of("42P01"), Class::Permanent); // undefined table
        assert_eq!(class_of("42501"), Class::Permanent); // insufficient privilege
        assert_eq!(class_of(""), Class::Permanent);
    }

    #[test]
    fn refusals_are_classified_by_what_went_wrong() {
        use tracepost_core::SinkErrorClass;
        for (code, kind) in [
            ("28P01", SinkErrorKind::Unauthenticated), // invalid_password
            ("28000", SinkErrorKind::Unauthenticated), // invalid_authorization_specification
            ("42501", SinkErrorKind::PermissionDenied), // insufficient_privilege
            ("3D000", SinkErrorKind::NotFound),        // invalid_catalog_name (no database)
            ("3F000", SinkErrorKind::NotFound),        // invalid_schema_name
            ("42P01", SinkErrorKind::NotFound),        // undefined_table
            ("42703", SinkErrorKind::Other),           // undefined_column (schema out of date)
        ] {
            assert_eq!(refusal_kind(code), Some(kind), "{code}");
        }
        for not_refused in ["22P05", "23502", "40001", "08006", "54000", ""] {
            assert_eq!(refusal_kind(not_refused), None, "{not_refused}");
        }
        let e = PgError::Config("bad".into()).into_sink_error();
        assert_eq!(e.class(), SinkErrorClass::Permanent);
        let e = PgError::Pool("timed out".into()).into_sink_error();
        assert_eq!(e.class(), SinkErrorClass::Temporary);
    }
}

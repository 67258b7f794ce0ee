//! Errors, and how they are classified for the pipeline's retry logic.

use tracepost_core::SinkError;

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

    pub(crate) fn into_sink_error(self) -> SinkError {
        let message = self.to_string();
        if self.is_temporary() {
            SinkError::temporary(message).with_source(self)
        } else {
            SinkError::permanent(message).with_source(self)
        }
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
}

//! [`IngestError`]: the one error answer of every ingest route (browser events, and the
//! server-to-server routes that reuse it).
//!
//! Its JSON body is part of the wire contract:
//!
//! ```json
//! {"error": {"status": 400, "code": "invalid_field", "message": "must be a string",
//!            "field": "/events/0/name"}}
//! ```
//!
//! `field` is a JSON pointer (RFC 6901) into the request body, present when one field failed.
//! A `429` also carries a `Retry-After` header (whole seconds).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// A rejected ingest request: the status, a stable `snake_case` code, a human message and,
/// when one field of the body failed, its JSON pointer. Render it with
/// [`IngestError::to_response`] (or [`IngestError::body`] for the JSON alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

/// The JSON body of an [`IngestError`]: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The `error` member of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    /// The HTTP status (4xx), repeated for clients that lost it.
    pub status: u16,
    /// A stable `snake_case` code (`invalid_field`, `rate_limited`, …): see the book's ingest
    /// page for the list.
    pub code: String,
    /// What failed, for a person.
    pub message: String,
    /// The JSON pointer (RFC 6901) of the field that failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IngestError {
    /// An error with `status`, `code` and `message`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        IngestError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// `400 malformed_json`: the body is not JSON (the message says where).
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// `400 missing_field` at `pointer`.
    pub fn missing_field(pointer: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "missing_field", "is required").with_field(pointer)
    }

    /// `400 invalid_field` at `pointer`: `message` says what is wrong with it.
    pub fn invalid_field(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_field", message).with_field(pointer)
    }

    /// `401` with `code` (`missing_key`, `invalid_key`, `missing_token`, `invalid_token`,
    /// `expired_token`).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// `403 origin_not_allowed`.
    pub fn origin_not_allowed(origin: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "origin {:?} is not in the allow-list",
                tracepost_core::truncate_utf8(origin, 200)
            ),
        )
    }

    /// `413 body_too_large`: the body is over `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// `408 body_timeout`: the body did not arrive whole within `timeout` (the route's
    /// `body_read_timeout` setting).
    pub fn body_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {} (body_read_timeout)",
                humantime::format_duration(timeout)
            ),
        )
    }

    /// `413 decompressed_too_large`: the body inflates to more than `limit` bytes.
    pub fn decompressed_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed_too_large",
            format!("the body decompresses to more than {limit} bytes"),
        )
    }

    /// `415 unsupported_media_type`.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {:?} is not accepted: send application/json or text/plain",
                tracepost_core::truncate_utf8(got, 100)
            ),
        )
    }

    /// `415 unsupported_encoding`.
    pub fn unsupported_encoding(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding {:?} is not accepted: send gzip or identity",
                tracepost_core::truncate_utf8(got, 100)
            ),
        )
    }

    /// `429 rate_limited`, retry after `seconds` (at least 1). `what` names the limit
    /// (`"client address"`, `"key"`).
    pub fn rate_limited(what: &str, seconds: u64) -> Self {
        // The message and the header say the same: a wait under a second rounds up to 1 s
        // (`Retry-After: 0` would invite an immediate retry).
        let seconds = seconds.max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for this {what}; retry after {seconds} s"),
        );
        e.retry_after = Some(seconds);
        e
    }

    /// `503 overloaded`, retry after 1 s: the pipeline's queues have no room for the batch
    /// (see `TracepostHandle::has_room_for`), so it is refused whole rather than accepted and
    /// dropped. Every client retries a 503.
    pub fn overloaded(full: &tracepost_core::pipeline::QueueFull) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("{full}: the batch was not accepted; retry after 1 s"),
        )
        .with_retry_after(1)
    }

    /// Asks the client to retry after `seconds` (at least 1): a `Retry-After` header.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Names the field that failed (a JSON pointer).
    pub fn with_field(mut self, pointer: impl Into<String>) -> Self {
        self.field = Some(pointer.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON pointer of the failed field, when one failed.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// `Retry-After` in seconds (429 only).
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                status: self.status.as_u16(),
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }

    /// The answer: status, `Content-Type: application/json`, `Retry-After` when set, and the
    /// JSON body.
    pub fn to_response(&self) -> Response<Bytes> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(field) = &self.field {
            write!(f, " (at {field})")?;
        }
        Ok(())
    }
}

impl std::error::Error for IngestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape_is_the_contracts() {
        let e = IngestError::invalid_field("/events/0/name", "must be a string");
        let r = e.to_response();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.body().as_ref(),
            br#"{"error":{"status":400,"code":"invalid_field","message":"must be a string","field":"/events/0/name"}}"#
        );
        let e = IngestError::rate_limited("key", 0);
        let r = e.to_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            e.message(),
            "too many requests for this key; retry after 1 s"
        );
        assert!(!String::from_utf8_lossy(r.body()).contains("field"));
    }
}

//! Deciding *whether* a request failed, separately from reporting it (the idea of tower-http's
//! `classify`): the finisher asks [`classify`] and then records and reports what it answers.

use std::borrow::Cow;

use super::panic::PanicDetail;

/// Decides which response statuses count as failures. The default, [`ServerErrors`], says
/// 5xx; implemented for closures too (`|status| status >= 500 || status == 429`).
pub trait ClassifyStatus: Send + Sync + 'static {
    /// True if a response with `status` is a failure (kept with its snapshot and reported as an
    /// `error` event).
    fn is_failure(&self, status: u16) -> bool;
}

/// The default classifier: 5xx statuses are failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl ClassifyStatus for ServerErrors {
    fn is_failure(&self, status: u16) -> bool {
        status >= 500
    }
}

impl<F: Fn(u16) -> bool + Send + Sync + 'static> ClassifyStatus for F {
    fn is_failure(&self, status: u16) -> bool {
        self(status)
    }
}

/// What went wrong before the response head, beyond the status code.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The handler panicked; the adapter answered 500.
    Panic(PanicDetail),
    /// The service returned an error instead of a response (the message of that error).
    Service(String),
}

/// How the response body ended, as the adapter saw it.
#[derive(Debug, Clone)]
pub enum BodyEnd {
    /// The body reached its end.
    Complete,
    /// The body returned an error mid-stream (its message); the client saw a cut response.
    Error(String),
    /// Producing the body panicked mid-stream; the client saw a cut response.
    Panic(PanicDetail),
    /// The body was dropped before its end: the client went away, or the server sent all of
    /// it without polling the end (resolved with the response's known length, see
    /// [`ResponseCapture::set_body_len`](super::ResponseCapture::set_body_len)).
    Dropped,
}

/// The status label recorded for a request whose client went away before the end of its
/// response (nginx's "499 Client Closed Request"): not the status the handler chose, which the
/// client never fully received.
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// The verdict on one finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The status recorded in metrics and snapshots: the status sent, except 500 when the
    /// server failed after sending the head (body error or panic) and
    /// [`STATUS_CLIENT_CLOSED`] when the client went away first.
    pub status: u16,
    /// True when the server failed (counted in the error rate, always reported).
    pub failed: bool,
    /// The OpenTelemetry-style `error.type` of the request, `None` for a success: `panic`,
    /// `service_error`, `body_error`, `aborted` (the client went away; not a server failure),
    /// or the status code (`"503"`) when only the status says it failed.
    pub error_type: Option<Cow<'static, str>>,
}

/// Classifies a request from the status sent, the failure before the head (if any) and how the
/// body ended. `BodyEnd::Dropped` means the client went away before the end (the caller has
/// already turned a drop after the whole body into `Complete`).
pub fn classify(
    status: u16,
    failure: Option<&Failure>,
    end: &BodyEnd,
    statuses: &dyn ClassifyStatus,
) -> Classification {
    let failed = |status: u16, ty: &'static str| Classification {
        status,
        failed: true,
        error_type: Some(Cow::Borrowed(ty)),
    };
    match (failure, end) {
        (Some(Failure::Panic(_)), _) => failed(status, "panic"),
        (Some(Failure::Service(_)), _) => failed(status, "service_error"),
        (None, BodyEnd::Panic(_)) => failed(500, "panic"),
        (None, BodyEnd::Error(_)) => failed(500, "body_error"),
        // A failing status stays a failure even when the client left before its end.
        (None, BodyEnd::Complete | BodyEnd::Dropped) if statuses.is_failure(status) => {
            Classification {
                status,
                failed: true,
                error_type: Some(Cow::Owned(status.to_string())),
            }
        }
        (None, BodyEnd::Dropped) => Classification {
            status: STATUS_CLIENT_CLOSED,
            failed: false,
            error_type: Some(Cow::Borrowed("aborted")),
        },
        (None, BodyEnd::Complete) => Classification {
            status,
            failed: false,
            error_type: None,
        },
    }
}

/// Whether a response with `status` to `method` has no body to send (so dropping its body
/// unpolled is not an abort).
pub(crate) fn has_no_body(method: &str, status: u16) -> bool {
    method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_panics_and_aborts_each_get_their_label() {
        let c = |status, failure: Option<&Failure>, end: BodyEnd| {
            let c = classify(status, failure, &end, &ServerErrors);
            (
                c.status,
                c.failed,
                c.error_type.as_deref().map(str::to_owned),
            )
        };
        assert_eq!(c(200, None, BodyEnd::Complete), (200, false, None));
        assert_eq!(c(404, None, BodyEnd::Complete), (404, false, None));
        assert_eq!(
            c(503, None, BodyEnd::Complete),
            (503, true, Some("503".into()))
        );
        assert_eq!(
            c(200, None, BodyEnd::Error("reset".into())),
            (500, true, Some("body_error".into()))
        );
        assert_eq!(
            c(200, None, BodyEnd::Panic(PanicDetail::default())),
            (500, true, Some("panic".into()))
        );
        assert_eq!(
            c(200, None, BodyEnd::Dropped),
            (499, false, Some("aborted".into()))
        );
        let panic = Failure::Panic(PanicDetail::default());
        assert_eq!(
            c(500, Some(&panic), BodyEnd::Complete),
            (500, true, Some("panic".into()))
        );
        let strict = |s: u16| s >= 400;
        assert!(classify(404, None, &BodyEnd::Complete, &strict).failed);
        assert_eq!(
            c(503, None, BodyEnd::Dropped),
            (503, true, Some("503".into())),
            "a 5xx whose client left is still a 5xx"
        );
    }
}

//! `http` 1.x requests and responses as core's capture sees them.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, Version};
use smallvec::SmallVec;
use tracepost_core::capture::{HeaderList, RequestHead, Route};
use tracepost_core::metrics::http::normalize_method;

use crate::layer::Config;

/// The request's headers as `http` holds them: cloning a pair costs no allocation (standard
/// names are static, values share the connection's buffer), so the head lends them to the
/// capture instead of converting each one.
///
/// Up to [`INLINE_HEADERS`] pairs live inside the head's one boxed allocation (a request of a
/// browser or a load balancer sends about ten), more spill to the heap.
struct HttpHeaders(SmallVec<[(HeaderName, HeaderValue); INLINE_HEADERS]>);

/// Header pairs kept without a second allocation; the box stays within 1 KiB (glibc serves
/// blocks up to that size from its per-thread cache).
const INLINE_HEADERS: usize = 12;
const _: () = assert!(std::mem::size_of::<HttpHeaders>() <= 1024);

impl HeaderList for HttpHeaders {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (k, v) = &self.0[i];
        (k.as_str().as_bytes(), v.as_bytes())
    }
}

/// The capture's head of `parts`.
pub(crate) fn request_head(parts: &http::request::Parts) -> RequestHead {
    let method: Cow<'static, str> = match normalize_method(parts.method.as_str()) {
        "_OTHER" => Cow::Owned(parts.method.as_str().to_owned()),
        standard => Cow::Borrowed(standard),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // Filled in place: the inline array is not moved into the box afterwards.
    let mut headers = Box::new(HttpHeaders(SmallVec::new()));
    headers
        .0
        .extend(parts.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    RequestHead::new(method, target)
        .version(version(parts.version))
        .lend_headers(headers)
        .client_address(client_address(parts))
}

/// The request's route: from the layer's route function, else axum's `MatchedPath`, else
/// unknown. `owned` keeps a route function's answer alive while the route borrows it.
pub(crate) fn route<'a>(
    config: &Config,
    parts: &'a http::request::Parts,
    owned: &'a mut Option<String>,
) -> Route<'a> {
    let (found, known) = match &config.route_fn {
        Some(f) => {
            *owned = f(parts);
            (owned.as_deref(), true)
        }
        None => (matched_path(parts), cfg!(feature = "axum")),
    };
    match (found, known) {
        (Some(r), _) => Route::Matched(r),
        (None, true) => Route::Unmatched,
        (None, false) => Route::Unknown,
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

#[cfg(feature = "axum")]
fn matched_path(parts: &http::request::Parts) -> Option<&str> {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
}

#[cfg(not(feature = "axum"))]
fn matched_path(_parts: &http::request::Parts) -> Option<&str> {
    None
}

#[cfg(feature = "axum")]
fn client_address(parts: &http::request::Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(not(feature = "axum"))]
fn client_address(parts: &http::request::Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<std::net::SocketAddr>()
        .map(|a| a.ip())
}

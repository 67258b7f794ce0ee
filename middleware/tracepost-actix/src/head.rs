//! actix-web's request (`http` 0.2 types) as core's capture sees it.

use std::borrow::Cow;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Version;
use smallvec::SmallVec;
use tracepost_core::capture::{HeaderList, RequestHead};
use tracepost_core::metrics::http::normalize_method;

/// The request's headers as actix holds them: cloning a pair costs no allocation for standard
/// names and shares the value's buffer, so the head lends them instead of converting each one.
///
/// Up to [`INLINE_HEADERS`] pairs live inside the head's one boxed allocation (a request of a
/// browser or a load balancer sends about ten), more spill to the heap.
struct ActixHeaders(SmallVec<[(HeaderName, HeaderValue); INLINE_HEADERS]>);

/// Header pairs kept without a second allocation; the box stays within 1 KiB (glibc serves
/// blocks up to that size from its per-thread cache).
const INLINE_HEADERS: usize = 12;
const _: () = assert!(std::mem::size_of::<ActixHeaders>() <= 1024);

impl HeaderList for ActixHeaders {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        let (k, v) = &self.0[i];
        (k.as_str().as_bytes(), v.as_bytes())
    }
}

/// The capture's head of `req`.
pub(crate) fn request_head(req: &ServiceRequest) -> RequestHead {
    let method: Cow<'static, str> = match normalize_method(req.method().as_str()) {
        "_OTHER" => Cow::Owned(req.method().as_str().to_owned()),
        standard => Cow::Borrowed(standard),
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // Filled in place: the inline array is not moved into the box afterwards.
    let mut headers = Box::new(ActixHeaders(SmallVec::new()));
    headers
        .0
        .extend(req.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
    RequestHead::new(method, target)
        .version(version(req.version()))
        .lend_headers(headers)
        .client_address(req.peer_addr().map(|a| a.ip()))
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

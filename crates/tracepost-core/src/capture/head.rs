//! The request and response heads a framework adapter hands to the capture: plain strings and
//! bytes, no `http` crate types (actix-web 4 uses `http` 0.2, hyper 1 and axum `http` 1.x).

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;

/// One header as received: its name (lowercase for HTTP/2 and for `http`'s types) and value.
/// `Bytes` so that an adapter whose headers already are `Bytes` hands them over without a copy.
pub type Header = (Bytes, Bytes);

/// Headers an adapter lends to the capture without converting them: the capture only reads
/// them when a request keeps its snapshot (and for `traceparent`, `x-request-id`,
/// `content-type` and `content-encoding`), so copying every header of every request into
/// [`Bytes`] would cost allocations for nothing. `Vec<Header>` implements it; the tower adapter
/// implements it for its own list of `http` 1.x header pairs.
pub trait HeaderList: Send + Sync + 'static {
    /// How many entries (a repeated header counts once per value).
    fn count(&self) -> usize;
    /// Entry `i` (`i < count()`): the name and the value as bytes.
    fn entry(&self, i: usize) -> (&[u8], &[u8]);
}

impl HeaderList for Vec<Header> {
    fn count(&self) -> usize {
        self.len()
    }

    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        (&self[i].0, &self[i].1)
    }
}

/// The head of a request: what the capture needs from it, in framework-neutral form (strings
/// and bytes).
///
/// Built by the adapter once per request, before the handler runs:
///
/// ```
/// use tracepost_core::capture::RequestHead;
/// let head = RequestHead::new("POST", "/users/7?page=2")
///     .version("HTTP/1.1")
///     .header("content-type", "application/json");
/// assert_eq!((head.path(), head.query()), ("/users/7", Some("page=2")));
/// ```
#[derive(Default)]
pub struct RequestHead {
    method: Cow<'static, str>,
    /// The request target as received: path, then `?query` if any.
    target: String,
    query_start: Option<usize>,
    version: Option<&'static str>,
    headers: Vec<Header>,
    lent: Option<Box<dyn HeaderList>>,
    client: Option<IpAddr>,
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("headers", &self.iter_headers().count())
            .field("client", &self.client)
            .finish()
    }
}

impl RequestHead {
    /// A head for `method` (`GET`, `PROPFIND`, …) and the request target `path?query`.
    /// A `&'static str` method (`http::Method::as_str` of a standard method is not, but
    /// [`normalize_method`](crate::metrics::http::normalize_method) gives one) costs no
    /// allocation.
    pub fn new(method: impl Into<Cow<'static, str>>, target: impl Into<String>) -> Self {
        let target = target.into();
        let query_start = target.find('?');
        RequestHead {
            method: method.into(),
            target,
            query_start,
            ..Default::default()
        }
    }

    /// Sets the protocol version as shown in snapshots (`HTTP/1.1`, `HTTP/2.0`, …).
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Adds one header (repeat for repeated headers, in the order received).
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Lends the headers as the adapter holds them (see [`HeaderList`]); read before any added
    /// with [`header`](Self::header).
    pub fn lend_headers(mut self, headers: Box<dyn HeaderList>) -> Self {
        self.lent = Some(headers);
        self
    }

    /// Sets the client's address (the peer of the connection, or what a trusted proxy said).
    pub fn client_address(mut self, ip: Option<IpAddr>) -> Self {
        self.client = ip;
        self
    }

    /// The method as received.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query string.
    pub fn path(&self) -> &str {
        &self.target[..self.query_start.unwrap_or(self.target.len())]
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.query_start.map(|i| &self.target[i + 1..])
    }

    /// The protocol version, if set.
    pub fn http_version(&self) -> Option<&'static str> {
        self.version
    }

    /// The headers (name, value), in the order received.
    pub fn iter_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let lent = self.lent.as_deref();
        let n = lent.map_or(0, |l| l.count());
        (0..n)
            .filter_map(move |i| lent.map(|l| l.entry(i)))
            .chain(self.headers.iter().map(|(k, v)| (&k[..], &v[..])))
    }

    /// The first value of the header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter_headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of the header `name` as text, if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The client's address, if known.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }
}

/// A request id kept inline (no allocation): 1 to 128 visible ASCII characters.
#[derive(Clone, Copy)]
pub(crate) struct RequestId {
    len: u8,
    buf: [u8; 128],
}

impl RequestId {
    /// A valid received id, or `None`.
    pub(crate) fn received(value: &[u8]) -> Option<Self> {
        if value.is_empty() || value.len() > 128 || !value.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let mut buf = [0u8; 128];
        buf[..value.len()].copy_from_slice(value);
        Some(RequestId {
            len: value.len() as u8,
            buf,
        })
    }

    /// A fresh UUIDv7, hyphenated.
    pub(crate) fn generate(rng: &mut impl rand::Rng) -> Self {
        let mut buf = [0u8; 128];
        let id = crate::event::new_id_with(crate::event::Timestamp::now(), rng);
        let n = id.hyphenated().encode_lower(&mut buf).len();
        RequestId { len: n as u8, buf }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

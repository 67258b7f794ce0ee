//! A captured request, again: as a `curl` command (redacted values left as shell
//! placeholders) and replayed against a configured base URL under safety rules.

use std::time::Duration;

use reqwest::Url;
use tracepost_core::redact::REDACTED;
use tracepost_core::RequestSnapshot;

/// Headers never copied into a replay or a curl command: hop-by-hop, computed by the client,
/// or carrying the original connection's identity.
const SKIP_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "accept-encoding",
    "x-request-id",
    "traceparent",
];

/// Largest replayed response body kept for display.
pub const MAX_REPLAY_BODY: usize = 64 * 1024;

/// What a replay may do. Safe by default: no base URL (replay off), `GET` and `HEAD` only,
/// and paths under `/tracepost` refused.
#[derive(Debug, Clone)]
pub struct ReplayPolicy {
    pub(crate) base: Option<Url>,
    pub(crate) methods: Vec<String>,
    pub(crate) deny_paths: Vec<String>,
    pub(crate) timeout: Duration,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy {
            base: None,
            methods: vec!["GET".into(), "HEAD".into()],
            deny_paths: vec!["/tracepost".into()],
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a replay was refused: `field` names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `base_url`, `method`, `path` or `host`.
    pub rule: &'static str,
    /// What the rule says.
    pub message: String,
}

fn refuse(rule: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        rule,
        message: message.into(),
    }
}

impl ReplayPolicy {
    /// The URL a replay of `r` would hit, or the rule that forbids it.
    pub fn target(&self, r: &RequestSnapshot) -> Result<Url, Refused> {
        let base = self.base.as_ref().ok_or_else(|| {
            refuse(
                "base_url",
                "replay is off: configure ConsoleBuilder::replay_base_url",
            )
        })?;
        if !self
            .methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&r.method))
        {
            return Err(refuse(
                "method",
                format!(
                    "{} is not replayed (allowed: {}); see ConsoleBuilder::replay_methods",
                    r.method,
                    self.methods.join(", ")
                ),
            ));
        }
        let path = r.path.as_str();
        if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
            return Err(refuse("path", format!("{path:?} is not an absolute path")));
        }
        // Dot segments (plain or percent-encoded) would be resolved by the URL parser after
        // the deny-list check (`/a/../tracepost/…`): never replayed.
        if path.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == "." || seg == ".."
        }) {
            return Err(refuse("path", format!("{path} has dot segments")));
        }
        if let Some(d) = self.deny_paths.iter().find(|d| {
            path == d.as_str() || path.starts_with(&format!("{}/", d.trim_end_matches('/')))
        }) {
            return Err(refuse("path", format!("{path} is on the deny-list ({d})")));
        }
        // The path is appended to the base's path, never resolved as a URL: a captured path
        // like `/http://elsewhere/` stays a path on the base's host.
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query(None);
        if let Some(q) = &r.query {
            url.set_query(Some(q));
        }
        if url.scheme() != base.scheme()
            || url.host_str() != base.host_str()
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return Err(refuse("host", format!("{url} is not on {base}")));
        }
        Ok(url)
    }

    /// The headers a replay sends: the captured ones, minus hop-by-hop headers and any
    /// value that was redacted (it is not known any more).
    pub fn headers(r: &RequestSnapshot) -> Vec<(String, String)> {
        r.request_headers
            .iter()
            .filter(|(k, v)| {
                !SKIP_HEADERS.contains(&k.to_ascii_lowercase().as_str()) && !v.contains(REDACTED)
            })
            .cloned()
            .collect()
    }
}

/// The outcome of one replay.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The URL requested.
    pub url: String,
    /// The response status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8), at most [`MAX_REPLAY_BODY`] bytes.
    pub body: String,
    /// True when the body was longer.
    pub truncated: bool,
    /// Time to the full (capped) body, ms.
    pub duration_ms: f64,
}

/// Sends the replay (no redirects followed: a redirect could leave the host).
pub async fn send(
    client: &reqwest::Client,
    policy: &ReplayPolicy,
    r: &RequestSnapshot,
) -> Result<Replayed, Refused> {
    let url = policy.target(r)?;
    let method = reqwest::Method::from_bytes(r.method.as_bytes())
        .map_err(|_| refuse("method", format!("{:?} is not a method", r.method)))?;
    let mut req = client
        .request(method.clone(), url.clone())
        .timeout(policy.timeout);
    for (k, v) in ReplayPolicy::headers(r) {
        req = req.header(k, v);
    }
    if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
        if let Some(b) = &r.request_body {
            if b.encoding == "utf8" && !b.truncated {
                req = req.body(b.text.clone());
            }
        }
    }
    let started = std::time::Instant::now();
    let mut resp = req
        .send()
        .await
        .map_err(|e| refuse("send", format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| refuse("send", format!("{url}: reading the body: {e}")))?
    {
        let room = MAX_REPLAY_BODY - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Replayed {
        url: url.to_string(),
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        truncated,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// A POSIX-shell single-quoted word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell variable a redacted header value becomes: `Authorization` → `AUTHORIZATION`.
fn placeholder(name: &str) -> String {
    let v: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("${{{v}}}")
}

/// A `curl` command that sends the captured request to `origin` (`http://host:port`):
/// redacted header values become shell variables (`-H "Authorization: Bearer
/// ${AUTHORIZATION}"`), redacted body fields stay `[REDACTED]`.
pub fn curl(r: &RequestSnapshot, origin: &str) -> String {
    let mut url = format!("{}{}", origin.trim_end_matches('/'), r.path);
    if let Some(q) = &r.query {
        url.push('?');
        url.push_str(q);
    }
    let mut parts = vec!["curl".to_owned()];
    if r.method != "GET" {
        if r.method == "HEAD" {
            parts.push("--head".into());
        } else {
            parts.push(format!("-X {}", sh_quote(&r.method)));
        }
    }
    parts.push(sh_quote(&url));
    for (k, v) in &r.request_headers {
        if SKIP_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        if v.contains(REDACTED) {
            // Double quotes so the shell fills in the variable; the rest escaped for them.
            let esc = |s: &str| s.replace(['\\', '"', '$', '`'], "");
            let value = v
                .split(REDACTED)
                .map(esc)
                .collect::<Vec<_>>()
                .join(&placeholder(k));
            parts.push(format!("-H \"{}: {value}\"", esc(k)));
        } else {
            parts.push(format!("-H {}", sh_quote(&format!("{k}: {v}"))));
        }
    }
    if let Some(b) = &r.request_body {
        if b.encoding == "utf8" && !b.text.is_empty() {
            parts.push(format!("--data-raw {}", sh_quote(&b.text)));
        }
    }
    parts.join(" \\\n  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(method: &str, path: &str) -> RequestSnapshot {
        RequestSnapshot {
            method: method.into(),
            path: path.into(),
            route: path.into(),
            query: Some("page=2".into()),
            status: 500,
            request_headers: vec![
                ("authorization".into(), "Bearer [REDACTED]".into()),
                ("accept".into(), "application/json".into()),
                ("host".into(), "shop.example".into()),
                ("x-note".into(), "it's".into()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn safe_by_default() {
        let mut p = ReplayPolicy::default();
        assert_eq!(p.target(&snap("GET", "/a")).unwrap_err().rule, "base_url");
        p.base = Some(Url::parse("http://127.0.0.1:3000/").unwrap());
        assert_eq!(
            p.target(&snap("GET", "/users/7")).unwrap().as_str(),
            "http://127.0.0.1:3000/users/7?page=2"
        );
        assert_eq!(
            p.target(&snap("POST", "/checkout")).unwrap_err().rule,
            "method"
        );
        assert_eq!(
            p.target(&snap("GET", "/tracepost/console"))
                .unwrap_err()
                .rule,
            "path"
        );
        assert_eq!(
            p.target(&snap("GET", "//evil.example/x")).unwrap_err().rule,
            "path"
        );
        assert_eq!(p.target(&snap("GET", "relative")).unwrap_err().rule, "path");
        // Dot segments would be resolved after the deny-list check (a tester's finding).
        for sneaky in [
            "/a/../tracepost/console/logout",
            "/a/%2e%2e/tracepost/x",
            "/a/%2E%2E/tracepost/x",
            "/./tracepost/console",
        ] {
            assert_eq!(
                p.target(&snap("GET", sneaky)).unwrap_err().rule,
                "path",
                "{sneaky}"
            );
        }
        // A scheme-relative or absolute URL smuggled in the path never changes the host.
        let u = p.target(&snap("GET", "/http://evil.example/")).unwrap();
        assert_eq!(u.host_str(), Some("127.0.0.1"));
        let h = ReplayPolicy::headers(&snap("GET", "/"));
        assert_eq!(
            h,
            [
                ("accept".into(), "application/json".into()),
                ("x-note".into(), "it's".into())
            ]
        );
    }

    #[test]
    fn curl_leaves_placeholders() {
        let c = curl(&snap("GET", "/users/7"), "http://127.0.0.1:3000");
        assert!(c.contains("'http://127.0.0.1:3000/users/7?page=2'"), "{c}");
        assert!(
            c.contains("-H \"authorization: Bearer ${AUTHORIZATION}\""),
            "{c}"
        );
        assert!(c.contains(r"-H 'x-note: it'\''s'"), "{c}");
        assert!(!c.contains("host:"), "{c}");
    }
}

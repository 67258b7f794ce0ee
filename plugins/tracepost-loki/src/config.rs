//! [`LokiConfig`]: where to push, how to encode, which limits to enforce.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tracepost_core::sinks::serde_duration;

use crate::labels::{valid_label_name, RESERVED_LABELS};

/// How a push request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PushEncoding {
    /// `application/x-protobuf`, a `logproto.PushRequest` compressed as a raw snappy block.
    /// What Promtail and Grafana Alloy send; the cheapest for Loki to decode. The default.
    #[default]
    Protobuf,
    /// `application/json` (`{"streams":[{"stream":{..},"values":[[ns, line, {..}]]}]}`).
    Json {
        /// Compress the body with gzip (`Content-Encoding: gzip`).
        gzip: bool,
    },
}

/// How each event is written into its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LineFormat {
    /// One JSON object: the event's schema minus the fields that are stream labels. Query with
    /// `| json` (nested fields flatten to `request_route`, `error_type`, …). The default.
    #[default]
    Json,
    /// `key=value` pairs with the same flattened names as `| json` produces; request headers,
    /// bodies and breadcrumbs are left out. Query with `| logfmt`.
    Logfmt,
}

/// Credentials sent with every push.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// `Authorization: Basic …` (Grafana Cloud: the instance id and an access token).
    Basic {
        /// The user name.
        username: String,
        /// The password (never printed by `Debug`).
        password: String,
    },
    /// `Authorization: Bearer …`.
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(_) => f.debug_tuple("Bearer").field(&"<redacted>").finish(),
        }
    }
}

/// Limits enforced before sending, so that Loki never rejects data the sink could have fixed.
///
/// The defaults are Loki 3.x's default per-tenant limits. In a configuration file every
/// field is optional; `max_age` and `max_future` are durations (`"7days"`), `null` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Longest line in bytes; longer lines are shortened with a visible marker
    /// (`tracepost_truncated`), or refused when [`truncate_lines`](Self::truncate_lines) is
    /// off. Loki: `max_line_size`, default 256 KB. When Loki refuses a line for its size
    /// (400 `Max entry size …`), the sink learns Loki's limit and shortens later lines to it.
    pub max_line_bytes: usize,
    /// Shorten longer lines with a marker (default, like Loki's `max_line_size_truncate`);
    /// off: reject them before sending (reason `line_too_long`).
    pub truncate_lines: bool,
    /// Most labels per stream, static labels included. Loki: `max_label_names_per_series`,
    /// default 15 (30 before 3.0).
    pub max_labels: usize,
    /// Longest label name. Loki: `max_label_name_length`, default 1024.
    pub max_label_name_bytes: usize,
    /// Longest label value; longer values are cut. Loki: `max_label_value_length`, default 2048.
    pub max_label_value_bytes: usize,
    /// Longest structured-metadata value; longer values are cut (Loki's
    /// `max_structured_metadata_size` default of 64 KB is per entry). Default 1024.
    pub max_metadata_value_bytes: usize,
    /// Largest uncompressed push; a batch that encodes larger is sent as several pushes.
    /// Keep it well under Loki's `ingestion_burst_size_mb` (default 6 MB). Default 1 MiB.
    pub max_push_bytes: usize,
    /// Events older than this are rejected by the sink (reason `too_old`) instead of failing
    /// the push. Loki: `reject_old_samples_max_age`, default 1 week. `None`: send everything.
    /// Zero is refused when the sink is built (it would reject every event).
    #[serde(deserialize_with = "serde_duration::option::deserialize")]
    pub max_age: Option<Duration>,
    /// Events further in the future are rejected (reason `too_new`). Loki:
    /// `creation_grace_period`, default 10 minutes. `None`: send everything.
    #[serde(deserialize_with = "serde_duration::option::deserialize")]
    pub max_future: Option<Duration>,
}

/// Why a zero `max_age` is refused: every event is older than "now" when it is encoded.
const ZERO_MAX_AGE: &str = "limits.max_age must be above zero (a zero age rejects every \
     event as too old); use none to turn the age check off";

/// The environment variables [`Limits::from_env`] reads, with the field each sets.
pub const LIMITS_ENV: [(&str, &str); 9] = [
    ("LOKI_MAX_LINE_BYTES", "max_line_bytes"),
    ("LOKI_TRUNCATE_LINES", "truncate_lines"),
    ("LOKI_MAX_LABELS", "max_labels"),
    ("LOKI_MAX_LABEL_NAME_BYTES", "max_label_name_bytes"),
    ("LOKI_MAX_LABEL_VALUE_BYTES", "max_label_value_bytes"),
    ("LOKI_MAX_METADATA_VALUE_BYTES", "max_metadata_value_bytes"),
    ("LOKI_MAX_PUSH_BYTES", "max_push_bytes"),
    ("LOKI_MAX_AGE", "max_age"),
    ("LOKI_MAX_FUTURE", "max_future"),
];

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 256 * 1024,
            truncate_lines: true,
            max_labels: 15,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_metadata_value_bytes: 1024,
            max_push_bytes: 1 << 20,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_future: Some(Duration::from_secs(10 * 60)),
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_line_bytes`] (at least 1024).
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n.max(1024);
        self
    }

    /// Sets [`Limits::max_labels`] (at least 4: the built-in labels).
    pub fn max_labels(mut self, n: usize) -> Self {
        self.max_labels = n.max(4);
        self
    }

    /// Sets [`Limits::max_label_name_bytes`] (at least 16).
    pub fn max_label_name_bytes(mut self, n: usize) -> Self {
        self.max_label_name_bytes = n.max(16);
        self
    }

    /// Sets [`Limits::max_label_value_bytes`] (at least 16).
    pub fn max_label_value_bytes(mut self, n: usize) -> Self {
        self.max_label_value_bytes = n.max(16);
        self
    }

    /// Sets [`Limits::max_metadata_value_bytes`] (at least 16).
    pub fn max_metadata_value_bytes(mut self, n: usize) -> Self {
        self.max_metadata_value_bytes = n.max(16);
        self
    }

    /// Sets [`Limits::max_push_bytes`] (at least 4 KiB).
    pub fn max_push_bytes(mut self, n: usize) -> Self {
        self.max_push_bytes = n.max(4096);
        self
    }

    /// Sets [`Limits::truncate_lines`].
    pub fn truncate_lines(mut self, on: bool) -> Self {
        self.truncate_lines = on;
        self
    }

    /// These limits, overridden by the environment variables in [`LIMITS_ENV`] that are set
    /// (`LOKI_MAX_LINE_BYTES=4096`, `LOKI_MAX_AGE=1h`, `LOKI_MAX_AGE=none`, …): to match a
    /// Loki's per-tenant limits without rebuilding. A malformed value is an error naming the
    /// variable.
    ///
    /// ```
    /// use tracepost_loki::Limits;
    ///
    /// let vars = [("LOKI_MAX_LINE_BYTES", "4096"), ("LOKI_MAX_AGE", "1h")];
    /// let get = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    /// let limits = Limits::default().overridden_by(get).unwrap();
    /// assert_eq!(limits.max_line_bytes, 4096);
    /// assert_eq!(limits.max_age, Some(std::time::Duration::from_secs(3600)));
    /// ```
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.overridden_by(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), with the variables from `get`.
    pub fn overridden_by(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let bytes = |name: &str| -> Result<Option<usize>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        ConfigError::Invalid(format!(
                            "{name}: expected a number of bytes, got {v:?}"
                        ))
                    })
                })
                .transpose()
        };
        let duration = |name: &str| -> Result<Option<Option<Duration>>, ConfigError> {
            get(name)
                .map(|v| match v.trim() {
                    "none" | "" => Ok(None),
                    t => humantime::parse_duration(t).map(Some).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "{name}: expected a duration (\"1h\", \"7days\") or \"none\", got {v:?}: {e}"
                        ))
                    }),
                })
                .transpose()
        };
        if let Some(n) = bytes("LOKI_MAX_LINE_BYTES")? {
            self = self.max_line_bytes(n);
        }
        if let Some(v) = get("LOKI_TRUNCATE_LINES") {
            self.truncate_lines = match v.trim() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "LOKI_TRUNCATE_LINES: expected true or false, got {v:?}"
                    )))
                }
            };
        }
        if let Some(n) = bytes("LOKI_MAX_LABELS")? {
            self = self.max_labels(n);
        }
        if let Some(n) = bytes("LOKI_MAX_LABEL_NAME_BYTES")? {
            self = self.max_label_name_bytes(n);
        }
        if let Some(n) = bytes("LOKI_MAX_LABEL_VALUE_BYTES")? {
            self = self.max_label_value_bytes(n);
        }
        if let Some(n) = bytes("LOKI_MAX_METADATA_VALUE_BYTES")? {
            self = self.max_metadata_value_bytes(n);
        }
        if let Some(n) = bytes("LOKI_MAX_PUSH_BYTES")? {
            self = self.max_push_bytes(n);
        }
        if let Some(d) = duration("LOKI_MAX_AGE")? {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::Invalid(format!(
                    "LOKI_MAX_AGE: {ZERO_MAX_AGE}"
                )));
            }
            self.max_age = d;
        }
        if let Some(d) = duration("LOKI_MAX_FUTURE")? {
            self.max_future = d;
        }
        Ok(self)
    }

    /// Sets [`Limits::max_age`] (`Some(Duration::ZERO)` is refused when the sink is built).
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }

    /// Sets [`Limits::max_future`].
    pub fn max_future(mut self, d: Option<Duration>) -> Self {
        self.max_future = d;
        self
    }
}

/// Everything the Loki sink needs. Start with [`LokiConfig::new`] and chain the setters.
///
/// ```
/// use std::time::Duration;
/// use tracepost_loki::{LineFormat, LokiConfig, LokiSink};
///
/// let config = LokiConfig::new("http://loki:3100")
///     .tenant("team-a")
///     .static_label("cluster", "eu-1")
///     .line_format(LineFormat::Logfmt)
///     .timeout(Duration::from_secs(5));
/// let sink = LokiSink::with_config(config).expect("valid config");
/// # drop(sink);
/// ```
///
/// From a configuration file (serde: TOML, JSON, …; unknown fields are refused, by name;
/// durations are strings like `"10s"`):
///
/// ```
/// use tracepost_loki::{LokiConfig, LokiSink};
///
/// let config: LokiConfig = serde_json::from_str(r#"{
///     "url": "https://logs-prod-eu-west-0.grafana.net",
///     "tenant": "team-a",
///     "auth": {"basic": {"username": "123456", "password": "glc_secret"}},
///     "static_labels": {"cluster": "eu-1"},
///     "line_format": "logfmt",
///     "timeout": "5s",
///     "limits": {"max_line_bytes": 65536}
/// }"#).unwrap();
/// assert!(!format!("{config:?}").contains("glc_secret"));
/// # if cfg!(feature = "rustls") { LokiSink::with_config(config).unwrap(); }
/// ```
#[derive(Clone, Deserialize)]
#[serde(try_from = "LokiConfigFile")]
#[non_exhaustive]
pub struct LokiConfig {
    /// Loki's base URL (`http://loki:3100`); `/loki/api/v1/push` is appended unless the URL
    /// already has a path.
    pub url: String,
    /// The sink's name in the pipeline's metrics (default `loki`).
    pub name: String,
    /// Protobuf + snappy (default) or JSON.
    pub encoding: PushEncoding,
    /// JSON (default) or logfmt lines.
    pub line_format: LineFormat,
    /// Send trace/span/request/session/user ids, fingerprint and route as structured metadata
    /// (default true). Turn off for Loki older than 2.9, or 2.9 without
    /// `allow_structured_metadata`.
    pub structured_metadata: bool,
    /// Labels added to every stream (bounded by construction: they never vary).
    pub static_labels: Vec<(String, String)>,
    /// The tenant, sent as `X-Scope-OrgID` (multi-tenant Loki).
    pub tenant: Option<String>,
    /// Basic or bearer credentials.
    pub auth: Option<Auth>,
    /// Extra headers sent with every push.
    pub headers: Vec<(String, String)>,
    /// Deadline of one push, from connecting to reading the response (default 10 s).
    pub timeout: Duration,
    /// Deadline of the TCP connect (default 3 s).
    pub connect_timeout: Duration,
    /// Limits enforced before sending.
    pub limits: Limits,
}

impl fmt::Debug for LokiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let name = k.to_ascii_lowercase();
                let sensitive = ["auth", "cookie", "token", "key", "secret", "password"]
                    .iter()
                    .any(|word| name.contains(word));
                (
                    k.as_str(),
                    if sensitive { "<redacted>" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("LokiConfig")
            .field("url", &display_url(&self.url))
            .field("name", &self.name)
            .field("encoding", &self.encoding)
            .field("line_format", &self.line_format)
            .field("structured_metadata", &self.structured_metadata)
            .field("static_labels", &self.static_labels)
            .field("tenant", &self.tenant)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

impl LokiConfig {
    /// Defaults for the Loki at `url` (`http://loki:3100`).
    pub fn new(url: impl Into<String>) -> Self {
        LokiConfig {
            url: url.into(),
            name: "loki".into(),
            encoding: PushEncoding::default(),
            line_format: LineFormat::default(),
            structured_metadata: true,
            static_labels: Vec::new(),
            tenant: None,
            auth: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            limits: Limits::default(),
        }
    }

    /// Sets the sink's name (to run two Loki sinks side by side).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the body encoding.
    pub fn encoding(mut self, encoding: PushEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Sets the line format.
    pub fn line_format(mut self, format: LineFormat) -> Self {
        self.line_format = format;
        self
    }

    /// Turns structured metadata on (default) or off (Loki < 2.9).
    pub fn structured_metadata(mut self, on: bool) -> Self {
        self.structured_metadata = on;
        self
    }

    /// Adds a label to every stream. Keep the value constant: it is part of every stream's
    /// identity.
    pub fn static_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.static_labels.retain(|(n, _)| *n != name);
        self.static_labels.push((name, value.into()));
        self
    }

    /// Sets the tenant (`X-Scope-OrgID`).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Uses basic authentication.
    pub fn basic_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Basic {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Uses a bearer token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    /// Adds a header sent with every push.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the deadline of one push.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the TCP connect deadline.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The push endpoint: `url` plus `/loki/api/v1/push` unless it already has a path.
    pub fn push_url(&self) -> String {
        let url = self.url.trim_end_matches('/');
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        if after_scheme.contains('/') {
            url.to_owned()
        } else {
            format!("{url}/loki/api/v1/push")
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let builtin = 4;
        if builtin + self.static_labels.len() > self.limits.max_labels {
            return Err(ConfigError::TooManyLabels {
                count: builtin + self.static_labels.len(),
                max: self.limits.max_labels,
            });
        }
        for (name, value) in &self.static_labels {
            let reason = if !valid_label_name(name) {
                Some("not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
            } else if RESERVED_LABELS.contains(&name.as_str()) {
                Some("set by the sink from each event")
            } else if name.len() > self.limits.max_label_name_bytes {
                Some("name longer than limits.max_label_name_bytes")
            } else if value.is_empty() {
                Some("empty value (Loki drops empty labels)")
            } else if value.len() > self.limits.max_label_value_bytes {
                Some("value longer than limits.max_label_value_bytes")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::InvalidLabel {
                    name: name.clone(),
                    reason,
                });
            }
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid("timeout must be above zero".into()));
        }
        if self.limits.max_age.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Invalid(ZERO_MAX_AGE.into()));
        }
        Ok(())
    }
}

/// [`LokiConfig`] as written in a configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LokiConfigFile {
    url: String,
    name: Option<String>,
    #[serde(default)]
    encoding: EncodingFile,
    #[serde(default)]
    line_format: LineFormat,
    structured_metadata: Option<bool>,
    #[serde(default)]
    static_labels: BTreeMap<String, String>,
    tenant: Option<String>,
    auth: Option<AuthFile>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "serde_duration::option::deserialize")]
    connect_timeout: Option<Duration>,
    #[serde(default)]
    limits: Limits,
}

/// `encoding = "protobuf" | "json" | "json_gzip"`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum EncodingFile {
    #[default]
    Protobuf,
    Json,
    JsonGzip,
}

/// `auth = { basic = { username = "…", password = "…" } }` or `auth = { bearer = "…" }`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum AuthFile {
    Basic { username: String, password: String },
    Bearer(String),
}

impl TryFrom<LokiConfigFile> for LokiConfig {
    type Error = ConfigError;

    fn try_from(f: LokiConfigFile) -> Result<Self, ConfigError> {
        let mut c = LokiConfig::new(f.url);
        if let Some(name) = f.name {
            c.name = name;
        }
        c.encoding = match f.encoding {
            EncodingFile::Protobuf => PushEncoding::Protobuf,
            EncodingFile::Json => PushEncoding::Json { gzip: false },
            EncodingFile::JsonGzip => PushEncoding::Json { gzip: true },
        };
        c.line_format = f.line_format;
        if let Some(on) = f.structured_metadata {
            c.structured_metadata = on;
        }
        c.static_labels = f.static_labels.into_iter().collect();
        c.tenant = f.tenant;
        c.auth = f.auth.map(|a| match a {
            AuthFile::Basic { username, password } => Auth::Basic { username, password },
            AuthFile::Bearer(token) => Auth::Bearer(token),
        });
        c.headers = f.headers.into_iter().collect();
        if let Some(t) = f.timeout {
            c.timeout = t;
        }
        if let Some(t) = f.connect_timeout {
            c.connect_timeout = t;
        }
        c.limits = f.limits;
        c.validate()?;
        Ok(c)
    }
}

/// Why a [`LokiConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL could not be parsed, or its scheme is not supported.
    InvalidUrl(String),
    /// A static label is invalid.
    InvalidLabel {
        /// The label name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The built-in labels plus the static labels exceed `limits.max_labels`.
    TooManyLabels {
        /// How many labels streams would have.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A header name or value is invalid.
    InvalidHeader(String),
    /// Another setting is invalid.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidUrl(e) => write!(f, "invalid Loki URL: {e}"),
            ConfigError::InvalidLabel { name, reason } => {
                write!(f, "invalid static label {name:?}: {reason}")
            }
            ConfigError::TooManyLabels { count, max } => write!(
                f,
                "streams would have {count} labels (4 built-in + static), more than the limit of {max}"
            ),
            ConfigError::InvalidHeader(e) => write!(f, "invalid header: {e}"),
            ConfigError::Invalid(e) => write!(f, "invalid setting: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `url` with the credentials of its userinfo masked (`https://user:***@host/…`, or `***@`
/// when the userinfo is a bare token), for error messages and `Debug`: a Grafana Cloud URL
/// often carries its access token there, and errors reach `/health`.
pub(crate) fn display_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let masked = match rest[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            return format!("{scheme}://{masked}@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_url_appends_the_path_only_to_a_base_url() {
        assert_eq!(
            LokiConfig::new("http://loki:3100").push_url(),
            "http://loki:3100/loki/api/v1/push"
        );
        assert_eq!(
            LokiConfig::new("http://loki:3100/").push_url(),
            "http://loki:3100/loki/api/v1/push"
        );
        assert_eq!(
            LokiConfig::new("https://gw.example/custom/push").push_url(),
            "https://gw.example/custom/push"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let c = LokiConfig::new("http://loki:3100")
            .basic_auth("12345", "s3cr3t-password")
            .header("Authorization", "Bearer hidden-token")
            .header("X-Team", "visible");
        let s = format!("{c:?}");
        assert!(!s.contains("s3cr3t-password"), "{s}");
        assert!(!s.contains("hidden-token"), "{s}");
        assert!(s.contains("12345") && s.contains("visible"), "{s}");
        let b = format!("{:?}", LokiConfig::new("x").bearer_token("tok-abc"));
        assert!(!b.contains("tok-abc"), "{b}");
    }

    #[test]
    fn limits_from_the_environment() {
        let vars = [
            ("LOKI_MAX_LINE_BYTES", "4096"),
            ("LOKI_TRUNCATE_LINES", "false"),
            ("LOKI_MAX_AGE", "none"),
            ("LOKI_MAX_FUTURE", "5m"),
            ("LOKI_MAX_PUSH_BYTES", "65536"),
        ];
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let l = Limits::default().overridden_by(get).unwrap();
        assert_eq!(l.max_line_bytes, 4096);
        assert!(!l.truncate_lines);
        assert_eq!(l.max_age, None);
        assert_eq!(l.max_future, Some(Duration::from_secs(300)));
        assert_eq!(l.max_push_bytes, 65536);
        assert_eq!(l.max_labels, Limits::default().max_labels);
        for (name, bad) in [
            ("LOKI_MAX_LINE_BYTES", "4k"),
            ("LOKI_MAX_AGE", "soon"),
            ("LOKI_TRUNCATE_LINES", "maybe"),
        ] {
            let e = Limits::default()
                .overridden_by(|n| (n == name).then(|| bad.to_owned()))
                .unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
        // A zero age would reject every event as too old: refused, from the environment
        // and from code or a file alike.
        for zero in ["0s", "0", "0ms"] {
            let e = Limits::default()
                .overridden_by(|n| (n == "LOKI_MAX_AGE").then(|| zero.to_owned()))
                .unwrap_err();
            assert!(e.to_string().contains("LOKI_MAX_AGE"), "{e}");
        }
        let zero_age =
            LokiConfig::new("http://l").limits(Limits::default().max_age(Some(Duration::ZERO)));
        assert!(matches!(zero_age.validate(), Err(ConfigError::Invalid(_))));
        // Every variable is read.
        for (name, _) in LIMITS_ENV {
            let e = Limits::default().overridden_by(|n| (n == name).then(|| "x".to_owned()));
            assert!(e.is_err(), "{name}");
        }
    }

    #[test]
    fn static_labels_are_validated() {
        let too_many = (0..12).fold(LokiConfig::new("http://l"), |c, i| {
            c.static_label(format!("l{i}"), "v")
        });
        assert!(matches!(
            too_many.validate(),
            Err(ConfigError::TooManyLabels { count: 16, max: 15 })
        ));
        for bad in ["1abc", "a-b", "__name__", "level", ""] {
            let c = LokiConfig::new("http://l").static_label(bad, "v");
            assert!(
                matches!(c.validate(), Err(ConfigError::InvalidLabel { .. })),
                "{bad}"
            );
        }
        assert!(LokiConfig::new("http://l")
            .static_label("cluster", "eu-1")
            .validate()
            .is_ok());
    }

    #[test]
    fn userinfo_credentials_are_masked_in_debug_and_messages() {
        for (url, shown) in [
            (
                "https://123:glc_SECRET@logs.example/loki/api/v1/push",
                "https://123:***@logs.example/loki/api/v1/push",
            ),
            ("http://glc_SECRET@loki:3100", "http://***@loki:3100"),
            ("http://loki:3100/a@b", "http://loki:3100/a@b"),
            ("http://loki:3100", "http://loki:3100"),
        ] {
            assert_eq!(display_url(url), shown);
            let debug = format!("{:?}", LokiConfig::new(url));
            assert!(!debug.contains("glc_SECRET"), "{debug}");
        }
        let mut c = LokiConfig::new("http://loki:3100");
        c.headers = vec![
            ("X-Auth-Token".into(), "hdr_SECRET".into()),
            ("X-Grafana-Api-Key".into(), "hdr_SECRET".into()),
            ("X-Scope-OrgID".into(), "tenant-1".into()),
        ];
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hdr_SECRET") && debug.contains("tenant-1"),
            "{debug}"
        );
    }
}

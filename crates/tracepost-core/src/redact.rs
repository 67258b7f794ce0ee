//! Redaction of secrets: by name (headers, attribute and field keys, query, JSON, form and
//! multipart keys) and by shape (credential-looking values in any string).
//!
//! The pipeline's redact stage runs [`Redactor::event`] on every event, whatever captured it;
//! the other methods are its parts. Every method is idempotent: redacting twice gives the
//! same text as redacting once, and [`REDACTED`] is never touched again.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};

use crate::event::{CapturedBody, Event, RequestSnapshot};

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// The default longest string scanned for credential shapes: 8 MiB. The rules run on the
/// `regex` crate, whose matching is linear in the input (no backtracking), so this bounds the
/// work per string rather than guarding against a pathological pattern; it is large enough
/// that ordinary large events (a 1 MiB log message) are kept byte-exact.
pub const DEFAULT_MAX_SCAN_BYTES: usize = 8 * 1024 * 1024;

/// A rule that finds a credential by its shape in free text (a `Bearer …` token, a JWT, an AWS
/// access key…). Built-in rules are listed by [`Redactor::rule_names`]; add your own with
/// [`Redactor::rule`].
///
/// If the pattern has a capture group named `secret`, only that group is replaced (so
/// `Bearer [REDACTED]` keeps its scheme); otherwise the whole match is.
#[derive(Clone)]
pub struct ValueRule {
    name: Arc<str>,
    regex: Regex,
    anchors: Vec<String>,
    /// Called with (the whole match, the secret): false keeps the match as it is.
    check: Option<fn(&str, &str) -> bool>,
}

impl std::fmt::Debug for ValueRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueRule")
            .field("name", &self.name)
            .field("pattern", &self.regex.as_str())
            .finish_non_exhaustive()
    }
}

impl ValueRule {
    /// A rule named `name` (used by [`Redactor::without_rule`]) matching the regular
    /// expression `pattern` (syntax of the [`regex`] crate: linear time, no backtracking).
    ///
    /// # Errors
    /// The pattern does not compile.
    pub fn new(name: impl Into<String>, pattern: &str) -> Result<Self, regex::Error> {
        Ok(ValueRule {
            name: Arc::from(name.into()),
            regex: Regex::new(pattern)?,
            anchors: Vec::new(),
            check: None,
        })
    }

    /// Literal strings of which at least one occurs (ASCII case-insensitively) in every
    /// match. The redactor runs the rule's regex only on strings containing an anchor, which
    /// keeps the common case — no secret — to one pass of a multi-string search over the text.
    /// A rule without anchors runs on every string.
    pub fn anchors<I, S>(mut self, anchors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.anchors = anchors.into_iter().map(Into::into).collect();
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn builtin(
        name: &'static str,
        pattern: &str,
        anchors: &[&str],
        check: Option<fn(&str, &str) -> bool>,
    ) -> Self {
        let mut rule = ValueRule::new(name, pattern)
            .unwrap_or_else(|e| panic!("built-in rule {name}: {e}"))
            .anchors(anchors.iter().copied());
        rule.check = check;
        rule
    }
}

/// A token after `Bearer`/`Basic` is only taken for a credential if it does not read like a
/// word: it has a digit, a symbol, or a capital letter after its first character. This keeps
/// "Basic information" intact and masks `Bearer s3cr3t`.
fn looks_random(token: &str) -> bool {
    token.char_indices().any(|(i, c)| {
        c.is_ascii_digit() || !c.is_ascii_alphanumeric() || (i > 0 && c.is_ascii_uppercase())
    })
}

/// An `assignment` match is a source location, not a secret, when a file name
/// (`secret_store.rs`, `token.js`: a name ending in `.` and 1 to 4 letters) is followed by
/// `:` and a line (and column) number: `src/secret_store.rs:10:5` in a backtrace.
fn not_a_location(whole: &str, secret: &str) -> bool {
    let Some(key) = whole.strip_suffix(secret).and_then(|k| k.strip_suffix(':')) else {
        return true;
    };
    let is_file = key.rsplit_once('.').is_some_and(|(_, ext)| {
        (1..=4).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphabetic())
    });
    let is_line = secret
        .split(':')
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    !(is_file && is_line)
}

/// The built-in rules, compiled once per process. Shapes follow the public secret-scanner
/// rule sets (gitleaks, GitHub secret scanning) for each provider's documented token format.
static BUILTIN: LazyLock<Vec<ValueRule>> = LazyLock::new(|| {
    vec![
        ValueRule::builtin(
            "private-key",
            r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|\z)",
            &["PRIVATE KEY"],
            None,
        ),
        ValueRule::builtin(
            "url-credentials",
            r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/]+:(?P<secret>[^\s@/]+)@",
            &["://"],
            None,
        ),
        ValueRule::builtin(
            "bearer",
            // `Bearer Bearer <token>` (a common client bug) still masks the token, and so do
            // the other ways a scheme meets its token in text: `Bearer: t`, `bearer=t`, and
            // URL- or form-encoded (`Bearer%20t`, `Bearer+t`, `Bearer%3A%20t`, with `%2F`-style
            // escapes inside).
            r"(?i:\bbearer)(?:(?:\s*[:=]\s*|\s+|%20|\+|%3[aAdD](?:%20|\+)?)(?i:bearer\b))*(?:\s*[:=]\s*|\s+|%20|\+|%3[aAdD](?:%20|\+)?)(?P<secret>[A-Za-z0-9._~+/=%-]{6,})",
            &["bearer"],
            Some(|_, token| looks_random(token)),
        ),
        ValueRule::builtin(
            "basic",
            r"(?i:\bbasic)(?:(?:\s*[:=]\s*|\s+|%20|\+|%3[aAdD](?:%20|\+)?)(?i:basic\b))*(?:\s*[:=]\s*|\s+|%20|\+|%3[aAdD](?:%20|\+)?)(?P<secret>[A-Za-z0-9+/%]{6,}={0,2})",
            &["basic"],
            Some(|_, token| looks_random(token)),
        ),
        ValueRule::builtin(
            "jwt",
            r"\bey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
            &[".ey"],
            None,
        ),
        ValueRule::builtin(
            "aws-access-key",
            r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
            &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
            None,
        ),
        ValueRule::builtin(
            "github-token",
            // No `\b` before the prefix: `x_ghp_…` glued to a word is a token too.
            r"(?:gh[pousr]_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82})",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            None,
        ),
        ValueRule::builtin(
            "stripe-key",
            // No `\b` on either side: glued to a word (`s_sk_live_…`, `…_prod`) it is a key too.
            r"(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,99}",
            &[
                "sk_live_", "rk_live_", "sk_test_", "rk_test_", "sk_prod_", "rk_prod_",
            ],
            None,
        ),
        ValueRule::builtin(
            "slack-token",
            r"xox[baprse]-[0-9A-Za-z-]{10,}",
            &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-"],
            None,
        ),
        ValueRule::builtin(
            // tracepost's own project API keys (`tpk_` + 64 hex digits, the log routes').
            "tracepost-api-key",
            r"tpk_[0-9a-fA-F]{64}",
            &["tpk_"],
            None,
        ),
        ValueRule::builtin("google-api-key", r"AIza[0-9A-Za-z_-]{35}", &["AIza"], None),
        ValueRule::builtin(
            "assignment",
            // A bare value does not start with `:`, so a Rust path (`auth::token::verify`,
            // `jsonwebtoken::decode`, in messages and backtraces) is not an assignment.
            r#"(?i)\b[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)[a-z0-9_.-]*["']?\s*[=:]\s*(?P<secret>"[^"]*"|'[^']*'|[^\s"',;&)\]}:][^\s"',;&)\]}]*)"#,
            &[
                "password",
                "passwd",
                "pwd",
                "secret",
                "token",
                "apikey",
                "api_key",
                "api-key",
                "accesskey",
                "access_key",
                "access-key",
                "privatekey",
                "private_key",
                "private-key",
                "credential",
            ],
            Some(not_a_location),
        ),
    ]
});

/// Decides which headers and keys are secret and which values look like credentials, and
/// masks them.
///
/// Defaults:
/// - **headers** `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`,
///   `x-auth-token`, `forwarded`, `x-forwarded-for`, `x-real-ip`, and any header whose name
///   contains a secret key pattern;
/// - **keys** (attributes and `tracing` fields at any depth, query, JSON, form and multipart
///   keys) containing `password`, `passwd`, `secret`, `token`, `api_key`, `apikey`, `api-key`,
///   `auth`, `credential`, `session`, `private_key`, `signature` or `card`
///   (case-insensitive);
/// - **values** matching the built-in [rules](Redactor::rule_names) anywhere in a string:
///   `Bearer`/`Basic` credentials, JWTs, AWS access key ids, GitHub, Stripe, Slack and Google
///   API keys, PEM private keys, passwords in URLs, and `password=…`-style assignments.
///
/// Strings longer than [`max_scan_bytes`](Redactor::max_scan_bytes) are cut there before any
/// rule runs, so the cost per event is bounded and nothing unscanned is kept.
#[derive(Clone)]
pub struct Redactor {
    headers: Vec<String>,
    key_patterns: Vec<String>,
    rules: Vec<ValueRule>,
    max_scan: usize,
    keys: Option<AhoCorasick>,
    anchors: Option<AhoCorasick>,
    /// The key patterns and the anchors, lowercased, for a SIMD search (Teddy) of lowercased
    /// text; `None` where the CPU or the number of patterns rules it out (then `keys` and
    /// `anchors` search).
    keys_packed: Option<packed::Searcher>,
    anchors_packed: Option<packed::Searcher>,
    /// For each anchor pattern, the index of its rule.
    anchor_rule: Vec<usize>,
    /// Rules without anchors, which run on every string.
    unanchored: u64,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("headers", &self.headers)
            .field("key_patterns", &self.key_patterns)
            .field("rules", &self.rule_names())
            .field("max_scan_bytes", &self.max_scan)
            .finish()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        let mut r = Redactor {
            headers: [
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
                "x-api-key",
                "x-auth-token",
                "forwarded",
                "x-forwarded-for",
                "x-real-ip",
            ]
            .map(String::from)
            .to_vec(),
            key_patterns: [
                "password",
                "passwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "api-key",
                "auth",
                "credential",
                "session",
                "private_key",
                "signature",
                "card",
            ]
            .map(String::from)
            .to_vec(),
            rules: BUILTIN.clone(),
            max_scan: DEFAULT_MAX_SCAN_BYTES,
            keys: None,
            anchors: None,
            keys_packed: None,
            anchors_packed: None,
            anchor_rule: Vec::new(),
            unanchored: 0,
        };
        r.compile();
        r
    }
}

/// The most bytes of an event's short strings searched at once (see `Redactor::none_masked`);
/// above it each string is searched on its own, so a large message is not copied.
const JOINED_MAX: usize = 16 * 1024;

/// The largest text body searched together with the snapshot's short strings: 4 KiB.
const JOINED_BODY_MAX: usize = 4 * 1024;

thread_local! {
    /// The buffer the short strings are joined in for one search, reused by the thread.
    static JOINED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// At most this many value rules (they are tracked in a 64-bit mask).
const MAX_RULES: usize = 64;

impl Redactor {
    /// A redactor that masks nothing.
    pub fn none() -> Self {
        let mut r = Redactor::default();
        r.headers.clear();
        r.key_patterns.clear();
        r.rules.clear();
        r.compile();
        r
    }

    fn compile(&mut self) {
        let ci = |patterns: &[&str]| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                // A few dozen short patterns: the DFA is small and the fastest to search.
                .kind(Some(AhoCorasickKind::DFA))
                .build(patterns)
                .ok()
        };
        let keys: Vec<&str> = self.key_patterns.iter().map(String::as_str).collect();
        self.keys = if keys.is_empty() { None } else { ci(&keys) };
        // Lowercased patterns find in lowercased text exactly what the ASCII-case-insensitive
        // automaton finds in the text.
        let lower = |patterns: &[&str]| {
            packed::Config::new()
                .builder()
                .extend(patterns.iter().map(|p| p.to_ascii_lowercase()))
                .build()
        };
        self.keys_packed = if keys.is_empty() { None } else { lower(&keys) };
        self.rules.truncate(MAX_RULES);
        let mut anchors = Vec::new();
        self.anchor_rule.clear();
        self.unanchored = 0;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.anchors.is_empty() {
                self.unanchored |= 1 << i;
            }
            for a in &rule.anchors {
                anchors.push(a.as_str());
                self.anchor_rule.push(i);
            }
        }
        self.anchors = if anchors.is_empty() {
            None
        } else {
            ci(&anchors)
        };
        self.anchors_packed = if anchors.is_empty() {
            None
        } else {
            lower(&anchors)
        };
    }

    /// Also masks the header `name` (case-insensitive).
    pub fn header(mut self, name: &str) -> Self {
        self.headers.push(name.to_ascii_lowercase());
        self
    }

    /// Stops masking the header `name` by name (a key pattern may still match it).
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|h| !h.eq_ignore_ascii_case(name));
        self
    }

    /// Also masks keys and header names containing `pattern` (case-insensitive).
    pub fn key_pattern(mut self, pattern: &str) -> Self {
        self.key_patterns.push(pattern.to_ascii_lowercase());
        self.compile();
        self
    }

    /// Stops masking keys containing `pattern` (for example `card` if `discarded` is one of
    /// your field names).
    pub fn without_key_pattern(mut self, pattern: &str) -> Self {
        self.key_patterns
            .retain(|p| !p.eq_ignore_ascii_case(pattern));
        self.compile();
        self
    }

    /// Adds a value rule, run after the existing ones. At most 64 rules are kept.
    ///
    /// ```
    /// use tracepost_core::redact::{Redactor, ValueRule};
    ///
    /// let acme = ValueRule::new("acme-key", r"\bacme_[0-9a-f]{32}\b").unwrap().anchors(["acme_"]);
    /// let r = Redactor::default().rule(acme);
    /// let key = format!("acme_{}", "0123456789abcdef".repeat(2));
    /// assert_eq!(r.text(&format!("key {key} refused")), "key [REDACTED] refused");
    /// ```
    pub fn rule(mut self, rule: ValueRule) -> Self {
        self.rules.retain(|r| r.name != rule.name);
        self.rules.push(rule);
        self.compile();
        self
    }

    /// Removes the value rule called `name` (built-in or added).
    pub fn without_rule(mut self, name: &str) -> Self {
        self.rules.retain(|r| &*r.name != name);
        self.compile();
        self
    }

    /// The names of the value rules, in the order they run.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| &*r.name).collect()
    }

    /// The longest string (in bytes) scanned for credential shapes; a longer one is cut to
    /// this length, marker included, before the rules run. Default
    /// [`DEFAULT_MAX_SCAN_BYTES`]; at least 256.
    pub fn max_scan_bytes(mut self, n: usize) -> Self {
        self.max_scan = n.max(256);
        self
    }

    /// True if the header `name` is masked: it is listed, or contains a key pattern.
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) || self.is_secret_key(name)
    }

    /// True if the header `name` is one of the listed ones (not counting key patterns).
    fn is_listed_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// True if the key `key` (an attribute, field, query, JSON, form or multipart key) is masked.
    pub fn is_secret_key(&self, key: &str) -> bool {
        self.keys.as_ref().is_some_and(|k| k.is_match(key))
    }

    /// The header value to keep: [`REDACTED`] for a secret header, else the value with
    /// credential-shaped parts masked.
    pub fn header_value(&self, name: &str, value: &str) -> String {
        if self.is_secret_header(name) {
            REDACTED.to_owned()
        } else {
            self.text(value).into_owned()
        }
    }

    /// `text` with every credential-shaped part masked by the value rules (borrowed when
    /// nothing matched). Longer than `max_scan_bytes`, it is cut first.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        if text.len() > self.max_scan {
            let marker = format!(
                "…[{} bytes cut: longer than the redaction scan limit]",
                text.len()
            );
            let keep = crate::truncate_utf8(text, self.max_scan.saturating_sub(marker.len()));
            out = Cow::Owned(format!("{keep}{marker}"));
        }
        let mut mask = self.unanchored;
        if let Some(ac) = &self.anchors {
            // The common case, no anchor at all, takes one plain search.
            if mask == 0 && !ac.is_match(out.as_ref()) {
                return out;
            }
            for m in ac.find_overlapping_iter(out.as_ref()) {
                mask |= 1 << self.anchor_rule[m.pattern().as_usize()];
            }
        }
        if mask == 0 {
            return out;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if mask & (1 << i) != 0 {
                if let Some(replaced) = apply_rule(rule, &out) {
                    out = Cow::Owned(replaced);
                }
            }
        }
        out
    }

    fn string(&self, s: &mut String) {
        if let Cow::Owned(new) = self.text(s) {
            *s = new;
        }
    }

    /// Masks a JSON value in place: values of secret keys at any depth become [`REDACTED`],
    /// and every string is scanned by the value rules.
    pub fn json(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::String(s) => self.string(s),
            _ => {}
        }
    }

    /// Masks a map of attributes or fields in place, as [`Redactor::json`] does. Keys are
    /// input too: a key with a credential shape (`{"sk_live_…": 1}`, `"password=hunter2"`)
    /// is masked by the value rules like any string (`"[REDACTED]"`, `"password=[REDACTED]"`);
    /// when two keys mask to the same text, the later ones get ` #2`, ` #3`… so that no value
    /// is lost.
    pub fn map(&self, map: &mut Map<String, Value>) {
        if map.keys().any(|k| matches!(self.text(k), Cow::Owned(_))) {
            let old = std::mem::take(map);
            for (k, v) in old {
                let masked = match self.text(&k) {
                    Cow::Owned(new) => Some(new),
                    Cow::Borrowed(_) => None,
                };
                let mut key = masked.unwrap_or(k);
                if map.contains_key(&key) {
                    let base = key.clone();
                    let mut n = 2;
                    while map.contains_key(&key) {
                        key = format!("{base} #{n}");
                        n += 1;
                    }
                }
                map.insert(key, v);
            }
        }
        for (k, v) in map.iter_mut() {
            if self.is_secret_key(k) {
                if v.as_str() != Some(REDACTED) {
                    *v = Value::String(REDACTED.to_owned());
                }
            } else {
                self.json(v);
            }
        }
    }

    /// A query string (or form body) with the values of secret keys masked and the other
    /// values scanned; order is kept.
    pub fn query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if self.is_secret_key(&percent_decode_lossy(k)) => {
                    out.push_str(&self.query_key(k));
                    out.push('=');
                    out.push_str(REDACTED);
                }
                Some((k, v)) => {
                    out.push_str(&self.query_key(k));
                    out.push('=');
                    out.push_str(&self.text(v));
                }
                None => out.push_str(&self.query_key(pair)),
            }
        }
        out
    }

    /// A query or form key (as sent, percent-encoded) with credential-shaped parts of its
    /// decoded text masked (re-encoded then); the key as sent when nothing is masked.
    fn query_key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let decoded = percent_decode_lossy(key);
        match self.text(&decoded) {
            Cow::Borrowed(_) => match self.text(key) {
                // A shape only visible encoded (rare): mask the text as sent.
                Cow::Owned(masked) => Cow::Owned(masked),
                Cow::Borrowed(_) => Cow::Borrowed(key),
            },
            Cow::Owned(masked) => {
                Cow::Owned(form_urlencoded::byte_serialize(masked.as_bytes()).collect())
            }
        }
    }

    /// `key=value` text as the `tracing` layer writes breadcrumbs (logfmt: values with spaces
    /// are double-quoted): values of secret keys are masked, then the value rules run.
    pub fn logfmt(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let key_start = rest[..eq]
                .rfind(|c: char| c.is_whitespace())
                .map_or(0, |i| i + 1);
            let key = &rest[key_start..eq];
            let after = &rest[eq + 1..];
            let value_len = if let Some(q) = after.strip_prefix('"') {
                closing_quote(q).map_or(after.len(), |i| i + 2)
            } else {
                after.find(char::is_whitespace).unwrap_or(after.len())
            };
            out.push_str(&rest[..=eq]);
            if !key.is_empty() && self.is_secret_key(key) {
                out.push_str(REDACTED);
            } else {
                out.push_str(&after[..value_len]);
            }
            rest = &after[value_len..];
        }
        out.push_str(rest);
        match self.text(&out) {
            Cow::Borrowed(_) => out,
            Cow::Owned(o) => o,
        }
    }

    /// Redacts a captured body by content type: JSON by key (a cut, invalid document by a
    /// textual scan of its keys), forms by field name, `multipart/form-data` by part name
    /// (file parts become `[file name.ext, N bytes, type]`), and every text by the value rules.
    pub fn body(&self, content_type: Option<&str>, text: &str) -> String {
        self.body_cow(content_type, text).into_owned()
    }

    /// [`Redactor::body`], borrowing `text` when nothing in it is masked.
    fn body_cow<'a>(&self, content_type: Option<&str>, text: &'a str) -> Cow<'a, str> {
        self.body_cow_checked(content_type, text, false)
    }

    /// [`Redactor::body_cow`]; `clean` says that a search over `text` found neither a rule
    /// anchor nor a key pattern in it.
    fn body_cow_checked<'a>(
        &self,
        content_type: Option<&str>,
        text: &'a str,
        clean: bool,
    ) -> Cow<'a, str> {
        let ct = content_type.unwrap_or("");
        // With no anchor in it, within the scan limit and every rule anchored, no rule can
        // change the text.
        let rules_find_nothing = clean && self.unanchored == 0 && text.len() <= self.max_scan;
        if contains_ignore_ascii_case(ct, "json") {
            let nothing = if rules_find_nothing {
                // The rest of `json_needs_nothing`: keys and anchors are known absent.
                memchr::memchr(b'\\', text.as_bytes()).is_none()
            } else {
                self.json_needs_nothing(text)
            };
            if nothing {
                // Nothing in the document can be masked: keep it as sent (no parse, no
                // re-serialization, key order and spacing intact).
                return Cow::Borrowed(text);
            }
            match serde_json::from_str::<Value>(text) {
                Ok(mut v) => {
                    self.json(&mut v);
                    Cow::Owned(serde_json::to_string(&v).unwrap_or_default())
                }
                Err(_) => Cow::Owned(self.text(&self.json_text(text)).into_owned()),
            }
        } else if starts_with_ignore_ascii_case(ct, "application/x-www-form-urlencoded") {
            Cow::Owned(self.query(text))
        } else if starts_with_ignore_ascii_case(ct, "multipart/") {
            match boundary(ct) {
                Some(b) => Cow::Owned(self.multipart(&b, text.as_bytes())),
                None => self.text(text),
            }
        } else if rules_find_nothing {
            Cow::Borrowed(text)
        } else {
            self.text(text)
        }
    }

    /// Redacts a captured body in place (see [`Redactor::body`]). A multipart body kept as
    /// base64 (because a file part is binary) is decoded, redacted by part, and kept as text.
    /// A body of a textual type (JSON, form, `text/*`, XML) kept as base64 because it is not
    /// valid UTF-8 is decoded, its invalid bytes replaced by U+FFFD, redacted, and kept as
    /// text: base64 would carry its secrets past the rules.
    pub fn captured_body(&self, body: &mut CapturedBody) {
        self.captured_body_checked(body, false);
    }

    /// [`Redactor::captured_body`]; `clean` says that a search over the body's text found
    /// neither a rule anchor nor a key pattern in it.
    fn captured_body_checked(&self, body: &mut CapturedBody, clean: bool) {
        let ct = body.content_type.as_deref();
        match body.encoding.as_str() {
            "utf8" => {
                let redacted = match self.body_cow_checked(ct, &body.text, clean) {
                    Cow::Owned(new) => Some(new),
                    Cow::Borrowed(_) => None,
                };
                if let Some(new) = redacted {
                    body.text = new;
                }
            }
            "base64" if ct.is_some_and(is_textual) => {
                body.text = match base64::engine::general_purpose::STANDARD.decode(&body.text) {
                    Ok(bytes) => self.body(ct, &String::from_utf8_lossy(&bytes)),
                    Err(_) => "[body not decodable: not kept]".to_owned(),
                };
                body.encoding = "utf8".to_owned();
            }
            "base64" if ct.is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/")) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(&body.text);
                body.text = match (decoded, ct.and_then(boundary)) {
                    (Ok(bytes), Some(b)) => self.multipart(&b, &bytes),
                    (Ok(bytes), None) => {
                        format!(
                            "[{} bytes of multipart without a boundary: not kept]",
                            bytes.len()
                        )
                    }
                    (Err(_), _) => "[multipart body not decodable: not kept]".to_owned(),
                };
                body.encoding = "utf8".to_owned();
            }
            _ => {}
        }
    }

    /// Redacts a request snapshot in place: method, path, query (keys and values), header
    /// names and values, bodies, and the client address.
    pub fn request(&self, r: &mut RequestSnapshot) {
        let plain = self.none_masked(|visit| request_strings(r, visit));
        self.request_checked(r, plain, None);
    }

    /// [`Redactor::request`]; `plain` says that one search over all of the snapshot's short
    /// strings (method, path, client address, header names and values) found no rule anchor,
    /// so the value rules would change none of them. `names_plain`, when known, says whether no
    /// key pattern occurs in the header names and joined bodies ([`request_key_strings`]); else
    /// they are searched here (only if `plain`).
    fn request_checked(&self, r: &mut RequestSnapshot, plain: bool, names_plain: Option<bool>) {
        if !plain {
            self.string(&mut r.method);
            self.string(&mut r.path);
            if let Some(a) = &mut r.client_address {
                self.string(a);
            }
        }
        if let Some(q) = &mut r.query {
            *q = self.query(q);
        }
        // One search over every header name for the key patterns, instead of one per name.
        // One search over every header name and the small text bodies for the key patterns,
        // instead of one per name and one per body.
        let names_plain = plain
            && names_plain.unwrap_or_else(|| {
                !self.joined_match(self.keys.as_ref(), self.keys_packed.as_ref(), |visit| {
                    request_key_strings(r, visit)
                })
            });
        for (k, v) in r
            .request_headers
            .iter_mut()
            .chain(r.response_headers.iter_mut())
        {
            // A header name is input too (`sk_live_…: 1`).
            if !plain {
                self.string(k);
            }
            let secret = if plain && names_plain {
                self.is_listed_header(k)
            } else {
                self.is_secret_header(k)
            };
            if secret {
                if v != REDACTED {
                    *v = REDACTED.to_owned();
                }
            } else if !plain {
                self.string(v);
            }
        }
        for b in [&mut r.request_body, &mut r.response_body]
            .into_iter()
            .flatten()
        {
            // Neither an anchor nor a key pattern in a body searched with the rest.
            let clean = plain && names_plain && joined_body(b);
            self.captured_body_checked(b, clean);
        }
    }

    /// Redacts a whole event in place: message, attributes (keys and values, at any depth),
    /// error type, message, backtrace and location, breadcrumbs (target, message and
    /// `key=value` fields), the request snapshot, and the
    /// envelope's strings that input can set (`user_id`, `session_id`, `request_id`, and the
    /// resource's `service`, `environment`, `release`, `host`: the ingest routes take them
    /// from the client).
    pub fn event(&self, e: &mut Event) {
        // The usual event has nothing to mask in its short strings: one search over all of
        // them (instead of one per string) tells, and then none is searched again.
        let (plain, names_plain) = self.event_plain(e);
        if !plain {
            self.string(&mut e.message);
            for id in [&mut e.user_id, &mut e.session_id, &mut e.request_id]
                .into_iter()
                .flatten()
            {
                self.string(id);
            }
            self.string(&mut e.resource.service);
            for field in [
                &mut e.resource.environment,
                &mut e.resource.release,
                &mut e.resource.host,
            ]
            .into_iter()
            .flatten()
            {
                self.string(field);
            }
        }
        self.map(&mut e.attributes);
        if let Some(err) = &mut e.error {
            if !plain {
                self.string(&mut err.message);
                self.string(&mut err.error_type);
                // A browser's stack becomes the backtrace: its function names and files are
                // input.
                for field in [&mut err.backtrace, &mut err.location]
                    .into_iter()
                    .flatten()
                {
                    self.string(field);
                }
            }
        }
        for b in &mut e.breadcrumbs {
            if !plain {
                self.string(&mut b.target);
            }
            if b.message.contains('=') {
                b.message = self.logfmt(&b.message);
            } else if !plain {
                self.string(&mut b.message);
            }
        }
        if let Some(r) = &mut e.request {
            self.request_checked(r, plain, names_plain);
        }
    }

    /// [`Redactor::none_masked`] over the strings of `e` (its own, [`event_own_strings`], and
    /// its request's, [`request_strings`]) and, when that holds, whether no key pattern occurs
    /// in its request's header names and joined bodies (the search
    /// [`Redactor::request_checked`] would make): both from one joined, lowercased buffer that
    /// holds those names and bodies first, so the key search reads a prefix of it instead of a
    /// copy of its own.
    fn event_plain(&self, e: &Event) -> (bool, Option<bool>) {
        if self.unanchored != 0 {
            return (false, None);
        }
        let Some(anchors) = self.anchors.as_ref() else {
            return (true, None);
        };
        self.with_joined(
            |j| {
                if let Some(r) = &e.request {
                    request_key_strings(r, &mut |s| j.add(s));
                }
                let names = j.buf.len();
                event_own_strings(e, &mut |s| j.add(s));
                if let Some(r) = &e.request {
                    request_value_strings(r, &mut |s| j.add(s));
                }
                names
            },
            |buf, short, over, names| {
                let plain = short && !over && !search(anchors, self.anchors_packed.as_ref(), buf);
                let names_plain = plain.then(|| {
                    !self
                        .keys
                        .as_ref()
                        .is_some_and(|k| search(k, self.keys_packed.as_ref(), &buf[..names]))
                });
                (plain, names_plain)
            },
        )
        // The thread's buffer in use: as if it matched.
        .unwrap_or((false, None))
    }

    /// True when the value rules can change none of the strings `strings` visits: every rule
    /// has anchors, every string is within the scan limit (so none is cut), and no anchor
    /// occurs in any of them. Decided by one search over the strings joined (NUL-separated)
    /// in a reused per-thread buffer: an anchor inside one string is inside the joined text,
    /// so a joined text without any proves each string free of them (a match across a
    /// separator only costs the per-string searches). False, to search string by string, when
    /// the strings add up to more than [`JOINED_MAX`] bytes.
    fn none_masked(&self, strings: impl FnOnce(&mut dyn FnMut(&str))) -> bool {
        if self.unanchored != 0 {
            return false;
        }
        let Some(anchors) = self.anchors.as_ref() else {
            return true;
        };
        self.with_joined(
            |j| strings(&mut |s| j.add(s)),
            |buf, short, over, ()| {
                short && !over && !search(anchors, self.anchors_packed.as_ref(), buf)
            },
        )
        .unwrap_or(false)
    }

    /// Whether `ac` (or its lowercased `packed` twin, searching the lowercased text) matches
    /// in any of the strings `strings` visits, searched once over them joined; true (as if it
    /// matched) when they add up to more than [`JOINED_MAX`] bytes or the thread's buffer is
    /// in use. False without an automaton.
    fn joined_match(
        &self,
        ac: Option<&AhoCorasick>,
        packed: Option<&packed::Searcher>,
        strings: impl FnOnce(&mut dyn FnMut(&str)),
    ) -> bool {
        let Some(ac) = ac else {
            return false;
        };
        self.with_joined(
            |j| strings(&mut |s| j.add(s)),
            |buf, _, over, ()| over || search(ac, packed, buf),
        )
        .unwrap_or(true)
    }

    /// Joins the strings `fill` adds into the thread's buffer ([`Joined`]), lowercases it in
    /// place, all at once (a loop the compiler vectorises; the automata ignore ASCII case
    /// anyway), and hands `then` the text, whether every string was within the scan limit,
    /// whether they overflowed the buffer, and what `fill` returned. `None` when the thread's
    /// buffer is in use.
    fn with_joined<F, T>(
        &self,
        fill: impl FnOnce(&mut Joined<'_>) -> F,
        then: impl FnOnce(&[u8], bool, bool, F) -> T,
    ) -> Option<T> {
        JOINED.with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            let mut j = Joined::new(&mut buf, self.max_scan);
            let filled = fill(&mut j);
            let (short, over) = (j.short, j.over);
            buf.make_ascii_lowercase();
            Some(then(&buf, short, over, filled))
        })
    }

    /// Whether `ac` matches in `text`: through its packed twin on a lowercased copy when the
    /// text is long enough for it and short enough to be copied ([`JOINED_MAX`]), else
    /// directly.
    fn contains(
        &self,
        ac: Option<&AhoCorasick>,
        packed: Option<&packed::Searcher>,
        text: &str,
    ) -> bool {
        if packed.is_some_and(|p| text.len() >= p.minimum_len()) && text.len() < JOINED_MAX {
            self.joined_match(ac, packed, |visit| visit(text))
        } else {
            ac.is_some_and(|a| a.is_match(text))
        }
    }

    /// True when no key and no string of the JSON (or JSON-ish) `text` can be masked, decided
    /// on the raw text: it has no escape (so every key and string is a plain substring of it),
    /// no key pattern and no rule anchor anywhere, every rule has anchors, and it is within the
    /// scan limit (so no string would be cut). Whatever the document's structure, the tree walk
    /// would then change nothing, so the body is kept byte for byte.
    fn json_needs_nothing(&self, text: &str) -> bool {
        text.len() <= self.max_scan
            && self.unanchored == 0
            && memchr::memchr(b'\\', text.as_bytes()).is_none()
            && !self.contains(self.keys.as_ref(), self.keys_packed.as_ref(), text)
            && !self.contains(self.anchors.as_ref(), self.anchors_packed.as_ref(), text)
    }

    /// Masks `"key": value` pairs in JSON-ish text whose key is secret (for invalid JSON).
    fn json_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('"') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let key = &after[..end];
            let tail = &after[end + 1..];
            let colon = tail.trim_start();
            out.push('"');
            out.push_str(key);
            out.push('"');
            if colon.starts_with(':') && self.is_secret_key(key) {
                let ws = tail.len() - colon.len();
                out.push_str(&tail[..ws]);
                out.push(':');
                out.push_str(&format!("\"{REDACTED}\""));
                let value = colon[1..].trim_start();
                // Skip the value: a string, or everything up to the next , } or ].
                let skip = if let Some(v) = value.strip_prefix('"') {
                    v.find('"').map(|i| i + 2).unwrap_or(value.len())
                } else {
                    value.find([',', '}', ']']).unwrap_or(value.len())
                };
                rest = &value[skip..];
            } else {
                rest = tail;
            }
        }
        out.push_str(rest);
        out
    }

    /// Redacts a `multipart/form-data` body part by part. A body cut by the capture cap
    /// ends in a part without its closing delimiter; it is redacted like the others.
    fn multipart(&self, boundary: &str, body: &[u8]) -> String {
        let delim = format!("--{boundary}");
        let finder = memchr::memmem::Finder::new(delim.as_bytes());
        let mut out = String::with_capacity(body.len().min(64 * 1024));
        let Some(first) = finder.find(body) else {
            return self.text(&String::from_utf8_lossy(body)).into_owned();
        };
        out.push_str(&self.text(&String::from_utf8_lossy(&body[..first])));
        let mut pos = first;
        loop {
            // `pos` is at a delimiter.
            out.push_str(&delim);
            let mut p = pos + delim.len();
            if body[p..].starts_with(b"--") {
                out.push_str(&String::from_utf8_lossy(&body[p..]));
                return out;
            }
            let line_end = if body[p..].starts_with(b"\r\n") {
                2
            } else if body[p..].starts_with(b"\n") {
                1
            } else {
                0
            };
            out.push_str(&String::from_utf8_lossy(&body[p..p + line_end]));
            p += line_end;
            let (head_len, sep_len) = match memchr::memmem::find(&body[p..], b"\r\n\r\n") {
                Some(i) => (i, 4),
                None => match memchr::memmem::find(&body[p..], b"\n\n") {
                    Some(i) => (i, 2),
                    None => (body.len() - p, 0),
                },
            };
            let head = String::from_utf8_lossy(&body[p..p + head_len]);
            out.push_str(&self.text(&head));
            out.push_str(&String::from_utf8_lossy(
                &body[p + head_len..p + head_len + sep_len],
            ));
            let start = p + head_len + sep_len;
            let next = finder.find(&body[start..]).map(|i| start + i);
            // The content ends before the line break that precedes the next delimiter.
            let (end, cut) = match next {
                Some(n) => {
                    let mut e = n;
                    if e > start && body[e - 1] == b'\n' {
                        e -= 1;
                        if e > start && body[e - 1] == b'\r' {
                            e -= 1;
                        }
                    }
                    (e, false)
                }
                None => (body.len(), true),
            };
            let content = &body[start..end];
            let disposition = part_header(&head, "content-disposition").unwrap_or_default();
            let name = header_param(&disposition, "name");
            let filename = header_param(&disposition, "filename");
            if let Some(file) = filename {
                if is_file_placeholder(content) {
                    out.push_str(&String::from_utf8_lossy(content));
                } else {
                    let ty = part_header(&head, "content-type")
                        .unwrap_or_else(|| "unknown type".to_owned());
                    let size = if cut {
                        format!("{} bytes (cut)", content.len())
                    } else {
                        format!("{} bytes", content.len())
                    };
                    out.push_str(&format!("[file {file}, {size}, {ty}]"));
                }
            } else if name.as_deref().is_some_and(|n| self.is_secret_key(n)) && !content.is_empty()
            {
                out.push_str(REDACTED);
            } else {
                let ct = part_header(&head, "content-type");
                out.push_str(&self.body(ct.as_deref(), &String::from_utf8_lossy(content)));
            }
            match next {
                Some(n) => {
                    out.push_str(&String::from_utf8_lossy(&body[end..n]));
                    pos = n;
                }
                None => return out,
            }
        }
    }
}

/// Visits the strings of `r` that [`Redactor::request`] passes through the value rules one by
/// one: method, path, client address, header names and values, and the bodies that are
/// searched with them ([`joined_body`]).
fn request_strings(r: &RequestSnapshot, visit: &mut dyn FnMut(&str)) {
    request_value_strings(r, visit);
    request_key_strings(r, visit);
}

/// The strings of `r` that are searched for key patterns as well: header names and the
/// bodies searched with the short strings ([`joined_body`]).
fn request_key_strings(r: &RequestSnapshot, visit: &mut dyn FnMut(&str)) {
    for (k, _) in r.request_headers.iter().chain(&r.response_headers) {
        visit(k);
    }
    for b in [&r.request_body, &r.response_body].into_iter().flatten() {
        if joined_body(b) {
            visit(&b.text);
        }
    }
}

/// The rest of [`request_strings`]: method, path, client address and header values.
fn request_value_strings(r: &RequestSnapshot, visit: &mut dyn FnMut(&str)) {
    visit(&r.method);
    visit(&r.path);
    if let Some(a) = &r.client_address {
        visit(a);
    }
    for (_, v) in r.request_headers.iter().chain(&r.response_headers) {
        visit(v);
    }
}

/// Whether `body` is searched together with the snapshot's short strings: a text body of at
/// most [`JOINED_BODY_MAX`] bytes (the usual API request or response). Larger ones, and
/// bodies kept as base64, are searched on their own.
fn joined_body(body: &CapturedBody) -> bool {
    body.encoding == "utf8" && body.text.len() <= JOINED_BODY_MAX
}

/// Visits the strings of `e` that [`Redactor::event`] passes through the value rules one by
/// one, but its request's ([`request_strings`]).
fn event_own_strings(e: &Event, visit: &mut dyn FnMut(&str)) {
    visit(&e.message);
    for s in [&e.user_id, &e.session_id, &e.request_id]
        .into_iter()
        .flatten()
    {
        visit(s);
    }
    visit(&e.resource.service);
    for s in [
        &e.resource.environment,
        &e.resource.release,
        &e.resource.host,
    ]
    .into_iter()
    .flatten()
    {
        visit(s);
    }
    if let Some(err) = &e.error {
        visit(&err.message);
        visit(&err.error_type);
        for s in [&err.backtrace, &err.location].into_iter().flatten() {
            visit(s);
        }
    }
    for b in &e.breadcrumbs {
        visit(&b.target);
        visit(&b.message);
    }
}

/// Strings joined NUL-separated into the thread's buffer for one search, up to
/// [`JOINED_MAX`] bytes (`over` past it), noting whether all are within the scan limit.
struct Joined<'a> {
    buf: &'a mut Vec<u8>,
    max_scan: usize,
    /// Every string added is at most `max_scan` bytes.
    short: bool,
    /// The strings added more than [`JOINED_MAX`] bytes: not all are in `buf`.
    over: bool,
}

impl<'a> Joined<'a> {
    fn new(buf: &'a mut Vec<u8>, max_scan: usize) -> Self {
        buf.clear();
        Joined {
            buf,
            max_scan,
            short: true,
            over: false,
        }
    }

    fn add(&mut self, s: &str) {
        self.short &= s.len() <= self.max_scan;
        if self.buf.len() + s.len() >= JOINED_MAX {
            self.over = true;
        } else if !self.over {
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(0);
        }
    }
}

/// Whether `ac` matches in `text` (lowercased), through its lowercased `packed` twin when
/// `text` is long enough for it (below Teddy's minimum length the packed searcher falls back
/// to Rabin-Karp, slower than the automaton on short text).
fn search(ac: &AhoCorasick, packed: Option<&packed::Searcher>, text: &[u8]) -> bool {
    match packed {
        Some(p) if text.len() >= p.minimum_len() => p.find(text).is_some(),
        _ => ac.is_match(text),
    }
}

/// Replaces what `rule` matches in `text`; `None` when nothing changed.
fn apply_rule(rule: &ValueRule, text: &str) -> Option<String> {
    let group = rule.regex.capture_names().any(|n| n == Some("secret"));
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for caps in rule.regex.captures_iter(text) {
        let m = if group {
            match caps.name("secret") {
                Some(m) => m,
                None => continue,
            }
        } else {
            caps.get(0).expect("group 0 always matches")
        };
        let secret = m.as_str();
        let whole = caps.get(0).map_or(secret, |w| w.as_str());
        if text[m.start()..].starts_with(REDACTED)
            || rule.check.is_some_and(|check| !check(whole, secret))
        {
            continue;
        }
        out.push_str(&text[last..m.start()]);
        match secret.chars().next() {
            Some(q @ ('"' | '\'')) if secret.len() >= 2 && secret.ends_with(q) => {
                out.push(q);
                out.push_str(REDACTED);
                out.push(q);
            }
            _ => out.push_str(REDACTED),
        }
        last = m.end();
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// The index of the closing `"` in `s` (which follows an opening quote), honouring `\"`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// `boundary` from a `multipart/…; boundary=…` content type (quoted or not).
fn boundary(content_type: &str) -> Option<String> {
    header_param(content_type, "boundary").filter(|b| !b.is_empty() && b.len() <= 200)
}

/// A parameter `name=value` or `name="value"` of a header value (case-insensitive name).
fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned(),
        )
    })
}

/// The value of header `name` among a multipart part's header lines.
fn part_header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn is_file_placeholder(content: &[u8]) -> bool {
    content.starts_with(b"[file ") && content.ends_with(b"]") && !content.contains(&b'\n')
}

/// A query or form key as `application/x-www-form-urlencoded` decodes it (`+` is a space,
/// `%XX` a byte, invalid UTF-8 replaced).
fn percent_decode_lossy(s: &str) -> String {
    form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(key, _)| key.into_owned())
        .unwrap_or_default()
}

/// Whether `haystack` contains `needle` (ASCII case-insensitively), without lowercasing a copy.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Whether `text` starts with `prefix` (ASCII case-insensitively).
fn starts_with_ignore_ascii_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Whether a body of this content type is text that the rules read (JSON, forms, `text/*`,
/// XML): such a body is redacted even when it is not valid UTF-8.
fn is_textual(content_type: &str) -> bool {
    let ct = content_type.trim_start().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.starts_with("application/x-www-form-urlencoded")
        || ct.contains("json")
        || ct.contains("xml")
}

#[cfg(test)]
mod tests;

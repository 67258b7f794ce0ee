//! Redaction of secrets in headers, query strings and JSON or form bodies.

use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Decides which headers and keys are secret, and masks them.
///
/// Defaults: the headers `authorization`, `proxy-authorization`, `cookie`, `set-cookie`,
/// `x-api-key`, `x-auth-token`, `forwarded`, `x-forwarded-for`, `x-real-ip`; and any query,
/// JSON or form key containing `password`, `passwd`, `secret`, `token`, `api_key`, `apikey`,
/// `api-key`, `auth`, `credential`, `session`, `private_key`, `signature` or `card`
/// (case-insensitive).
#[derive(Debug, Clone)]
pub struct Redactor {
    headers: Vec<String>,
    key_patterns: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor {
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
        }
    }
}

impl Redactor {
    /// A redactor that masks nothing.
    pub fn none() -> Self {
        Redactor {
            headers: Vec::new(),
            key_patterns: Vec::new(),
        }
    }

    /// Also masks the header `name` (case-insensitive).
    pub fn header(mut self, name: &str) -> Self {
        self.headers.push(name.to_ascii_lowercase());
        self
    }

    /// Also masks query, JSON and form keys containing `pattern` (case-insensitive).
    pub fn key_pattern(mut self, pattern: &str) -> Self {
        self.key_patterns.push(pattern.to_ascii_lowercase());
        self
    }

    /// True if the header `name` is masked.
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// True if the query/JSON/form key `key` is masked.
    pub fn is_secret_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.key_patterns.iter().any(|p| key.contains(p.as_str()))
    }

    /// The header value to keep: itself, or [`REDACTED`].
    pub fn header_value(&self, name: &str, value: &str) -> String {
        if self.is_secret_header(name) {
            REDACTED.to_owned()
        } else {
            value.to_owned()
        }
    }

    /// A query string (or form body) with the values of secret keys masked; order is kept.
    pub fn query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if self.is_secret_key(&percent_decode_lossy(k)) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        out
    }

    /// A JSON document with the values of secret keys masked, at any depth.
    pub fn json(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret_key(k) {
                        *v = Value::String(REDACTED.to_owned());
                    } else {
                        self.json(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }

    /// Redacts a captured body by content type. JSON that does not parse (for example because
    /// it was truncated) is masked by key with a textual scan, so a secret is never kept just
    /// because the body was cut.
    pub fn body(&self, content_type: Option<&str>, text: &str) -> String {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        if ct.contains("json") {
            match serde_json::from_str::<Value>(text) {
                Ok(mut v) => {
                    self.json(&mut v);
                    serde_json::to_string(&v).unwrap_or_default()
                }
                Err(_) => self.json_text(text),
            }
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            self.query(text)
        } else {
            text.to_owned()
        }
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
}

/// A query or form key as `application/x-www-form-urlencoded` decodes it (`+` is a space,
/// `%XX` a byte, invalid UTF-8 replaced).
fn percent_decode_lossy(s: &str) -> String {
    form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(key, _)| key.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_default_headers_case_insensitively() {
        let r = Redactor::default();
        assert_eq!(r.header_value("Authorization", "Bearer abc"), REDACTED);
        assert_eq!(r.header_value("X-Forwarded-For", "1.2.3.4"), REDACTED);
        assert_eq!(r.header_value("content-type", "text/plain"), "text/plain");
    }

    #[test]
    fn masks_secret_query_keys_only() {
        let r = Redactor::default();
        assert_eq!(
            r.query("page=2&access_token=abc&Password=x&q=shoes"),
            "page=2&access_token=[REDACTED]&Password=[REDACTED]&q=shoes"
        );
        assert_eq!(r.query("api%5Fkey=1"), "api%5Fkey=[REDACTED]");
        // Every encoding form decoding admits: an escape as the key's last three characters,
        // lowercase escapes, `+` for a space-free key, and escapes that are not UTF-8.
        for (query, want) in [
            ("passwor%64=hunter2", "passwor%64=[REDACTED]"),
            (
                "%70%61%73%73%77%6f%72%64=hunter2",
                "%70%61%73%73%77%6f%72%64=[REDACTED]",
            ),
            ("api%5fkey=1&q=%ff", "api%5fkey=[REDACTED]&q=%ff"),
            ("%ff%fe=1&token=2", "%ff%fe=1&token=[REDACTED]"),
            ("q=a+b&x=%", "q=a+b&x=%"),
        ] {
            assert_eq!(r.query(query), want, "{query}");
        }
    }

    #[test]
    fn masks_nested_json_and_truncated_json() {
        let r = Redactor::default();
        let mut v = json!({"user": {"name": "ann", "password": "hunter2"}, "items": [{"card_number": "4111"}]});
        r.json(&mut v);
        assert_eq!(
            v,
            json!({"user": {"name": "ann", "password": REDACTED}, "items": [{"card_number": REDACTED}]})
        );
        let cut = r#"{"name": "ann", "password": "hunter2", "token": 12345, "note": "cut her"#;
        let masked = r.body(Some("application/json"), cut);
        assert!(
            !masked.contains("hunter2") && !masked.contains("12345"),
            "{masked}"
        );
        assert!(masked.contains("\"name\": \"ann\""), "{masked}");
    }

    #[test]
    fn masks_form_bodies() {
        let r = Redactor::default();
        let body = r.body(
            Some("application/x-www-form-urlencoded"),
            "user=ann&password=hunter2",
        );
        assert_eq!(body, "user=ann&password=[REDACTED]");
    }
}

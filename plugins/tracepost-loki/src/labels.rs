//! Stream labels: a small, bounded set in Prometheus' `{name="value", …}` form.

use tracepost_core::{Event, Kind, Level};

/// The labels the sink sets from each event. Every one has a bounded set of values:
/// the pipeline's service and environment, 5 levels, 9 kinds (`span` included).
pub const RESERVED_LABELS: [&str; 4] = ["service", "environment", "level", "kind"];

/// The structured-metadata names the sink writes (when enabled).
pub const METADATA_NAMES: [&str; 7] = [
    "trace_id",
    "span_id",
    "request_id",
    "session_id",
    "user_id",
    "fingerprint",
    "route",
];

/// True for a valid Prometheus/Loki label name that is not reserved (`__…`).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    !name.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub use tracepost_core::truncate_utf8;

/// Appends `value` escaped for a double-quoted label value (`\\`, `\"`, `\n`).
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// What identifies an event's stream. Only bounded values go in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamKey<'a> {
    pub service: &'a str,
    pub environment: Option<&'a str>,
    pub level: Level,
    pub kind: Kind,
}

impl<'a> StreamKey<'a> {
    pub fn of(event: &'a Event) -> Self {
        StreamKey {
            service: &event.resource.service,
            environment: event
                .resource
                .environment
                .as_deref()
                .filter(|e| !e.is_empty()),
            level: event.level,
            kind: event.kind,
        }
    }

    /// The stream's labels as name/value pairs, sorted by name, values cut to `max_value`.
    pub fn pairs(
        &self,
        static_labels: &'a [(String, String)],
        max_value: usize,
    ) -> Vec<(&'a str, &'a str)> {
        let service = if self.service.is_empty() {
            "unknown_service"
        } else {
            self.service
        };
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(4 + static_labels.len());
        pairs.push(("service", truncate_utf8(service, max_value)));
        if let Some(env) = self.environment {
            pairs.push(("environment", truncate_utf8(env, max_value)));
        }
        pairs.push(("level", self.level.as_str()));
        pairs.push(("kind", self.kind.as_str()));
        pairs.extend(static_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs
    }
}

/// `{a="1", b="2"}` from pairs sorted by name.
pub fn render_labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(16 + pairs.len() * 24);
    out.push('{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(&mut out, value);
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        for ok in ["a", "_a", "cluster", "k8s_ns", "A1_b"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "__name__", "é"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn renders_sorted_escaped_labels() {
        let s = render_labels(&[("a", "x\"y"), ("b", "back\\slash\nnl")]);
        assert_eq!(s, r#"{a="x\"y", b="back\\slash\nnl"}"#);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }

    #[test]
    fn stream_key_ignores_high_cardinality_fields() {
        let mut a = Event::new(Kind::Error, Level::Error, "boom for user 1");
        a.resource.service = "shop".into();
        a.user_id = Some("u1".into());
        let mut b = Event::new(Kind::Error, Level::Error, "other message");
        b.resource.service = "shop".into();
        b.user_id = Some("u2".into());
        b.trace_id = Some("abc".into());
        assert_eq!(StreamKey::of(&a), StreamKey::of(&b));
        let statics = vec![("cluster".to_string(), "eu".to_string())];
        assert_eq!(
            render_labels(&StreamKey::of(&a).pairs(&statics, 2048)),
            r#"{cluster="eu", kind="error", level="error", service="shop"}"#
        );
    }
}

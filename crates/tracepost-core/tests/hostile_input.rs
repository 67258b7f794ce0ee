//! Hostile input through the real pipeline into real sinks (the NDJSON file and the console):
//! secrets planted as keys — attribute keys at every depth, header names, query parameter
//! names, stack frames, breadcrumb targets — appear in no sink's output, and control
//! characters cannot forge lines or colours on the console.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tracepost_core::sinks::{Console, JsonlFile};
use tracepost_core::{
    Breadcrumb, ErrorDetail, Event, Kind, Level, RequestSnapshot, Timestamp, Tracepost,
};

/// A `Write` the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const STRIPE: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const STRIPE_2: &str = "sk_live_9zX88QqLyjWDarjtT1zdp7zz";
const GITHUB: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn hostile_event() -> Event {
    let mut e = Event::new(Kind::Error, Level::Error, "checkout failed");
    e.attributes = json!({
        STRIPE: 1,
        STRIPE_2: 2,
        "password=hunter2": "x",
        "nested": {"deeper": [{GITHUB: "y", "ok": "kept"}], "token=hunter2": true},
    })
    .as_object()
    .unwrap()
    .clone();
    e.error = Some(ErrorDetail {
        error_type: "TypeError".into(),
        message: "boom".into(),
        backtrace: Some(format!(
            "   0: {STRIPE}\n             at app.js:1:2\n   1: checkout\n             at app.js:3:4"
        )),
        location: Some(format!("https://shop.example/{STRIPE}.js:1:2")),
    });
    e.breadcrumbs.push(Breadcrumb {
        timestamp: Timestamp::now(),
        level: Level::Info,
        target: "password=hunter2".into(),
        message: "step".into(),
    });
    e.request = Some(RequestSnapshot {
        method: "POST".into(),
        route: "/checkout".into(),
        path: "/checkout".into(),
        query: Some(format!("{STRIPE}=1&password%3Dhunter2=2&page=3")),
        status: 500,
        request_headers: vec![
            (STRIPE.into(), "1".into()),
            ("x-request".into(), "fine".into()),
        ],
        ..RequestSnapshot::default()
    });
    e
}

#[tokio::test]
async fn secrets_planted_as_keys_reach_no_sink() {
    let dir = tempfile::tempdir().unwrap();
    let console = Shared::default();
    let tp = Tracepost::builder()
        .service("shop")
        .sink(JsonlFile::new(dir.path()))
        .sink(Console::default().writer(console.clone()))
        .build()
        .unwrap();
    tp.handle().capture(hostile_event());
    tp.shutdown(Duration::from_secs(5)).await;

    let mut ndjson = String::new();
    for f in JsonlFile::files(dir.path()).unwrap() {
        ndjson.push_str(&std::fs::read_to_string(f).unwrap());
    }
    let console = String::from_utf8(console.0.lock().clone()).unwrap();
    assert!(ndjson.contains("checkout failed") && console.contains("checkout failed"));
    for (name, out) in [("ndjson", &ndjson), ("console", &console)] {
        for secret in ["sk_live_", "hunter2", "ghp_"] {
            assert!(!out.contains(secret), "{name} has {secret}:\n{out}");
        }
    }
    let stored: serde_json::Value = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
    let attrs = &stored["attributes"];
    // Two keys that mask to the same text keep both values.
    let mut values = [&attrs["[REDACTED]"], &attrs["[REDACTED] #2"]].map(|v| v.as_i64());
    values.sort();
    assert_eq!(values, [Some(1), Some(2)], "{attrs}");
    // A secret-named key keeps its name's shape, its value masked.
    assert_eq!(attrs["password=[REDACTED]"], "[REDACTED]");
    assert_eq!(attrs["nested"]["deeper"][0]["[REDACTED]"], "y");
    assert_eq!(attrs["nested"]["deeper"][0]["ok"], "kept");
    let query = stored["request"]["query"].as_str().unwrap();
    assert!(query.ends_with("&page=3"), "{query}");
}

#[test]
fn console_lines_cannot_be_forged_or_coloured() {
    let forged = "2026-11-29T00:00:00Z ERROR log forged";
    let mut e = Event::new(
        Kind::Log,
        Level::Warn,
        format!("ok\n{forged}\r\x1b[31mred\x1b]0;title\x07\u{9b}2J\u{2028}x\u{202e}y\x7f"),
    );
    e.attributes
        .insert(format!("key\n{forged}"), json!("v\u{9b}1m\u{85}"));
    e.request = Some(RequestSnapshot {
        method: "GET".into(),
        path: format!("/a\r\n{forged}"),
        request_headers: vec![("x-h".into(), format!("v\n{forged}"))],
        ..RequestSnapshot::default()
    });
    e.breadcrumbs.push(Breadcrumb {
        timestamp: Timestamp::now(),
        level: Level::Info,
        target: "t\n".into(),
        message: format!("m\n{forged}"),
    });
    let out = Console::format(&e);
    // The lines the format makes, and no other: the event, the request, one header, the
    // breadcrumbs heading and one breadcrumb.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[1].starts_with("    request: GET /a\\r\\n2026"),
        "{out}"
    );
    for line in &lines[1..] {
        assert!(line.starts_with("    "), "a forged line: {line:?}");
    }
    for c in [
        '\x1b', '\r', '\x07', '\x7f', '\u{9b}', '\u{85}', '\u{2028}', '\u{202e}',
    ] {
        assert!(!out.contains(c), "{c:?} reached the console: {out:?}");
    }
    assert!(lines[0].contains(r"ok\n2026-11-29T00:00:00Z ERROR log forged\r\x1b[31mred"));
    assert!(lines[0].contains(r"\u{9b}2J\u{2028}x\u{202e}y\x7f"));
}

#[test]
fn sink_errors_quoting_a_remote_answer_stay_on_one_line() {
    // tracepost logs sink errors itself (`sink is down`, `error = %error`): a remote answer
    // that echoes event text must not forge lines in that log either.
    let e = tracepost_core::SinkError::permanent(
        "HTTP 400: bad stream {service=\"x\n2026-11-29T00:00:00Z ERROR forged\x1b[2J\"}",
    );
    let shown = e.to_string();
    assert!(!shown.contains(['\n', '\x1b']), "{shown:?}");
    assert!(
        shown.contains(r#"x\n2026-11-29T00:00:00Z ERROR forged\x1b[2J"#),
        "{shown}"
    );
}

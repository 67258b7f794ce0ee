//! The sink behaviour suite against the in-process Loki receiver (which decodes pushes the
//! way Loki does), reached through a TCP proxy for outages; plus the config file.

mod receiver;

use std::time::Duration;

use receiver::{Receiver, Reply};
use tracepost_core::testing::suite::{self, Capabilities, Harness, Stored};
use tracepost_core::testing::TcpProxy;
use tracepost_core::Event;
use tracepost_loki::{Limits, LokiConfig, LokiSink};
use uuid::Uuid;

struct Loki {
    rx: Receiver,
    proxy: TcpProxy,
}

const POISON: &str = "poison-for-loki";

impl Loki {
    async fn new() -> Option<Loki> {
        let rx = Receiver::start().await;
        rx.reject_lines_containing(POISON, "entry rejected: invalid");
        let proxy = TcpProxy::start(rx.addr, true).await.unwrap();
        Some(Loki { rx, proxy })
    }
}

impl Harness for Loki {
    type Sink = LokiSink;
    async fn sink(&self) -> LokiSink {
        // Room for the suite's 1 MiB message in one line (Loki's own max_line_size is
        // configurable the same way).
        let limits = Limits::default()
            .max_line_bytes(4 << 20)
            .max_push_bytes(8 << 20);
        LokiSink::with_config(
            LokiConfig::new(format!("http://{}", self.proxy.addr()))
                .limits(limits)
                .timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_millis(500)),
        )
        .unwrap()
    }
    async fn read_back(&self) -> Vec<Stored> {
        self.rx
            .accepted()
            .iter()
            .map(|(_, entry)| {
                let line: serde_json::Value = serde_json::from_str(&entry.line).unwrap();
                Stored {
                    id: line["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
                    message: line["message"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }
    fn capabilities(&self) -> Capabilities {
        // Loki keeps identical entries once only when their timestamp and line match; the
        // receiver keeps every accepted push, so the sink is append-only here. Entries are
        // read back in the order Loki received them.
        Capabilities::all().idempotent(false)
    }
    async fn set_refusing(&self, on: bool) {
        self.rx
            .standing(on.then_some(Reply::Status(401, None, "invalid API key")));
    }
    async fn set_reachable(&self, on: bool) {
        self.proxy.set_up(on);
    }
    fn bad_event(&self, i: usize) -> Event {
        suite::event(POISON, i)
    }
}

tracepost_core::sink_behaviour_suite!(Loki::new());

#[test]
fn config_from_toml_builds_and_typos_name_the_field() {
    let c: LokiConfig = toml::from_str(
        r#"
        url = "http://loki:3100"
        name = "loki-eu"
        tenant = "team-a"
        encoding = "json_gzip"
        line_format = "logfmt"
        timeout = "5s"
        static_labels = { cluster = "eu-1" }
        headers = { "X-Team" = "payments", Authorization = "Bearer hidden-token" }
        auth = { bearer = "tok-secret" }

        [limits]
        max_line_bytes = 65536
        max_age = "2days"
        "#,
    )
    .unwrap();
    assert_eq!(c.name, "loki-eu");
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.limits.max_line_bytes, 65536);
    assert_eq!(c.limits.max_age, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(c.static_labels, [("cluster".to_owned(), "eu-1".to_owned())]);
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("tok-secret") && !debug.contains("hidden-token"),
        "{debug}"
    );
    let sink = LokiSink::with_config(c).unwrap();
    assert!(!format!("{sink:?}").contains("tok-secret"));

    let basic: LokiConfig = serde_json::from_str(
        r#"{"url": "http://loki:3100", "auth": {"basic": {"username": "u", "password": "pw-secret"}}}"#,
    )
    .unwrap();
    assert!(!format!("{basic:?}").contains("pw-secret"));

    for (text, needle) in [
        (
            "url = \"http://l\"\ntenatn = \"a\"",
            "unknown field `tenatn`",
        ),
        (
            "url = \"http://l\"\n[limits]\nmax_line = 5",
            "unknown field `max_line`",
        ),
        (
            "url = \"http://l\"\nencoding = \"xml\"",
            "unknown variant `xml`",
        ),
        (
            "url = \"http://l\"\ntimeout = \"fast\"",
            "invalid duration \"fast\"",
        ),
        ("tenant = \"a\"", "missing field `url`"),
        (
            "url = \"http://l\"\nstatic_labels = { level = \"x\" }",
            "invalid static label \"level\"",
        ),
    ] {
        let e = toml::from_str::<LokiConfig>(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

/// No panicking constructor: a bad URL is one readable line.
#[test]
fn a_bad_url_is_an_error_not_a_panic() {
    for bad in [
        "loki:3100",
        "http://",
        "http:/loki",
        "ftp://loki",
        "not a url",
    ] {
        let e = LokiSink::new(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid Loki URL") && !e.contains('\n'),
            "{bad}: {e}"
        );
    }
}

//! The OpenTelemetry JS logs SDK (from npm: `clients/javascript/otel`'s package-lock.json,
//! installed by scripts/setup.sh with `npm ci`) exports logs with its OTLP/HTTP (JSON)
//! exporter to the quickstart's `POST /tracepost/v1/logs`: they arrive in the NDJSON file
//! with their attributes, resource, scope, levels and the span's trace id, redacted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{have, Quickstart};

const KEY: &str = "tpk_5555555555555555555555555555555555555555555555555555555555555555";

#[test]
fn node_sdk_exports_logs_with_attributes_and_trace_ids() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/javascript/otel");
    if !have("node") {
        return;
    }
    if !dir.join("node_modules/@opentelemetry/sdk-logs").is_dir() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "run `npm ci` in {} (scripts/setup.sh does)",
            dir.display()
        );
        eprintln!(
            "SKIPPED: run `npm ci` in {} (scripts/setup.sh does)",
            dir.display()
        );
        return;
    }
    let qs = Quickstart::start(&[("TRACEPOST_API_KEY", KEY)]);
    let out = Command::new("node")
        .arg(dir.join("otel_example.js"))
        .env("TP_URL", format!("http://{}/tracepost", qs.addr))
        .env("TP_KEY", KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let trace_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TRACE_ID "))
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"))
        .trim()
        .to_owned();
    let events = qs.wait_for(2, Duration::from_secs(10), |e| e["service"] == "otel-node");
    assert_eq!(events.len(), 2, "{events:?}");
    let find = |m: &str| events.iter().find(|e| e["message"] == m).unwrap();
    let (warn, err) = (find("payment retried"), find("payment failed"));
    assert_eq!(warn["level"], "warn");
    assert_eq!(err["level"], "error");
    for e in [warn, err] {
        assert_eq!(e["trace_id"], trace_id.as_str(), "{e}");
        assert_eq!(e["span_id"].as_str().map(str::len), Some(16), "{e}");
        assert_eq!(e["environment"], "test", "{e}");
        assert_eq!(e["attributes"]["order.id"], 7, "{e}");
        assert_eq!(e["attributes"]["otel.scope.name"], "shop.checkout", "{e}");
        assert_eq!(e["attributes"]["ingest.project"], "quickstart", "{e}");
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("hunter2-planted"), "{all}");
}

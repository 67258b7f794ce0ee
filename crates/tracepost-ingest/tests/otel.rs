//! The OpenTelemetry Python SDK (from PyPI; scripts/setup.sh installs it into a venv, its
//! python at `$TRACEPOST_OTEL_PYTHON`, default `~/.cache/tracepost-otel-venv/bin/python`)
//! exports logs to `POST /tracepost/v1/logs` with its OTLP/HTTP protobuf exporter: they
//! arrive with their attributes, resource, scope, levels and the span's trace id, redacted.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tracepost_core::testing::MemorySink;
use tracepost_core::{Level, Tracepost};
use tracepost_ingest::logs::StaticKeys;
use tracepost_ingest::{LogIngest, LogIngestConfig};

const KEY: &str = "tpk_4444444444444444444444444444444444444444444444444444444444444444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_logs_with_attributes_and_trace_ids() {
    let python = std::env::var("TRACEPOST_OTEL_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/tracepost-otel-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    if !Path::new(&python).exists() {
        let what = format!("{python} is missing (scripts/setup.sh installs the OpenTelemetry SDK)");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what}; it is required under CI=true");
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPING the OpenTelemetry SDK test: {what}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    let sink = MemorySink::new("memory");
    let tp = Tracepost::builder()
        .service("host-app")
        .sink(sink.clone())
        .build()
        .unwrap();
    let store = StaticKeys::new([("otel", KEY)], false);
    let logs = LogIngest::new(tp.handle(), LogIngestConfig::new(), Arc::new(store)).unwrap();
    let app: axum::Router = tracepost_ingest::logs_router(logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python/otel_example.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .env("TP_URL", format!("http://{addr}/tracepost"))
        .env("TP_KEY", KEY);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TRACE_ID "))
        .unwrap()
        .trim()
        .to_owned();
    tp.shutdown(Duration::from_secs(5)).await;
    let events = sink.stored();
    assert_eq!(events.len(), 2, "{events:?}");
    let warn = events
        .iter()
        .find(|e| e.message == "payment retried")
        .unwrap();
    let err = events
        .iter()
        .find(|e| e.message == "payment failed")
        .unwrap();
    assert_eq!(warn.level, Level::Warn);
    assert_eq!(err.level, Level::Error);
    for e in [warn, err] {
        assert_eq!(e.trace_id.as_deref(), Some(trace_id.as_str()));
        assert_eq!(e.span_id.as_ref().map(String::len), Some(16));
        assert_eq!(e.resource.service, "otel-python");
        assert_eq!(e.resource.environment.as_deref(), Some("test"));
        assert_eq!(e.attributes["order.id"], 7);
        assert_eq!(e.attributes["otel.scope.name"], "shop.checkout");
        assert_eq!(e.attributes["ingest.project"], "otel");
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("hunter2-planted"), "{all}");
}

/// Without the SDK the test above says so loudly outside CI, and fails under `CI=true`
/// (run as a child process of this test binary, with the python path pointing nowhere).
#[test]
fn a_missing_sdk_skips_loudly_and_fails_under_ci() {
    let run = |ci: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "python_sdk_exports_logs_with_attributes_and_trace_ids",
            "--nocapture",
        ])
        .env(
            "TRACEPOST_OTEL_PYTHON",
            "/nonexistent/tracepost-otel/python",
        );
        match ci {
            Some(v) => cmd.env("CI", v),
            None => cmd.env_remove("CI"),
        };
        cmd.output().unwrap()
    };
    let out = run(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("!!! SKIPPING the OpenTelemetry SDK test: /nonexistent/tracepost-otel/python is missing"),
        "{stderr}"
    );
    let out = run(Some("true"));
    assert!(
        !out.status.success(),
        "under CI=true a missing SDK must fail the test"
    );
}

//! Redaction on every event, in one place: secrets planted in every place an event can carry
//! them — `tracing` fields and span fields, a JSON body, a form body, a multipart part, a
//! query string, headers, a response body, a free-text message with a bearer token, an error
//! message with a JWT, an event captured directly — go through the real axum layer, the
//! tracing layer and the pipeline into the NDJSON, console, Loki and Postgres sinks, and none
//! of them appears in anything a sink stored.

mod support;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use support::{read_events, send, serve, wait_for_event};
use tracepost::prelude::*;
use tracepost::sinks::{Console, JsonlFile};
use tracepost::{
    Batch, BatchOptions, ErrorDetail, Event, Kind, Level, Sink, SinkError, SinkOptions,
    SinkOutcome, Tracepost,
};
use tracepost_loki::{LokiConfig, LokiSink, PushEncoding};
use tracing_subscriber::prelude::*;

/// The planted secrets. Credential-shaped ones are assembled at run time, so that no
/// complete credential literal sits in the repository.
struct Secrets {
    field_password: String,
    field_stripe: String,
    span_token: String,
    span_url_password: String,
    json_password: String,
    json_nested_token: String,
    form_password: String,
    multipart_password: String,
    multipart_file: String,
    query_token: String,
    header_auth: String,
    header_cookie: String,
    header_custom_bearer: String,
    response_token: String,
    message_bearer: String,
    error_jwt: String,
    direct_aws: String,
    direct_github: String,
    direct_password: String,
    breadcrumb_secret: String,
}

fn repeat(pattern: &str, n: usize) -> String {
    pattern.repeat(n.div_ceil(pattern.len()))[..n].to_owned()
}

static S: LazyLock<Secrets> = LazyLock::new(|| Secrets {
    field_password: "hunter2-field".into(),
    field_stripe: format!("sk_{}_{}", "live", repeat("4eC39HqLyjWDarjtT1zd", 24)),
    span_token: "span-tok-9f8e7d".into(),
    span_url_password: "urlpass-55aa".into(),
    json_password: "json-pw-77".into(),
    json_nested_token: "nested-tok-31".into(),
    form_password: "form-pw-42".into(),
    multipart_password: "multi-pw-13".into(),
    multipart_file: "FILE-CONTENT-SECRET".into(),
    query_token: "query-tok-68".into(),
    header_auth: "hdr-auth-5d1c".into(),
    header_cookie: "cookie-sid-8b".into(),
    header_custom_bearer: "Xq91bearerInHdr".into(),
    response_token: "resp-tok-0c4".into(),
    message_bearer: "Msg7Bearer0Tok".into(),
    error_jwt: [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiJyZWRhY3Rpb24tdGVzdCJ9",
        "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg",
    ]
    .join("."),
    direct_aws: format!("AKIA{}", repeat("Q2YZ3WX4VU5TS6RP", 16)),
    direct_github: format!("ghp_{}", repeat("aB3dE5fG7h", 36)),
    direct_password: "direct-pw-99".into(),
    breadcrumb_secret: "crumb-pw-24".into(),
});

impl Secrets {
    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("tracing field password", &self.field_password),
            ("tracing field api_key", &self.field_stripe),
            ("span field token", &self.span_token),
            ("span field URL password", &self.span_url_password),
            ("JSON body password", &self.json_password),
            ("JSON body nested token", &self.json_nested_token),
            ("form body password", &self.form_password),
            ("multipart password part", &self.multipart_password),
            ("multipart file part", &self.multipart_file),
            ("query token", &self.query_token),
            ("authorization header", &self.header_auth),
            ("cookie header", &self.header_cookie),
            ("bearer in a custom header", &self.header_custom_bearer),
            ("response body token", &self.response_token),
            ("bearer in a message", &self.message_bearer),
            ("JWT in an error message", &self.error_jwt),
            ("AWS key in a direct event", &self.direct_aws),
            ("GitHub token in a direct event", &self.direct_github),
            ("password in a direct event", &self.direct_password),
            ("password in a breadcrumb", &self.breadcrumb_secret),
        ]
    }
}

fn fail_with_token() -> impl IntoResponse {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "boom", "access_token": S.response_token})),
    )
}

async fn login(_body: String) -> impl IntoResponse {
    let via = format!("https://svc:{}@auth.internal/v1", S.span_url_password);
    let span = tracing::info_span!("auth", session_token = %S.span_token, via = %via);
    let _g = span.enter();
    tracing::debug!(
        "checking credentials password={} for ann",
        S.breadcrumb_secret
    );
    tracing::warn!(password = %S.field_password, api_key = %S.field_stripe, "login");
    fail_with_token()
}

async fn message() -> impl IntoResponse {
    tracing::info!("calling upstream with Bearer {}", S.message_bearer);
    let err = std::io::Error::other(format!("token {} expired", S.error_jwt));
    tracing::error!(error = %err, "verify failed");
    StatusCode::INTERNAL_SERVER_ERROR
}

fn app() -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/form", post(|_: String| async { fail_with_token() }))
        .route(
            "/upload",
            post(|_: axum::body::Bytes| async { fail_with_token() }),
        )
        .route("/search", get(|| async { fail_with_token() }))
        .route("/message", get(message))
}

/// What the console sink prints: its own formatting of each event.
#[derive(Clone, Default)]
struct ConsoleOutput(Arc<Mutex<Vec<String>>>);

impl Sink for ConsoleOutput {
    fn name(&self) -> &str {
        "console"
    }
    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        self.0
            .lock()
            .extend(batch.iter().map(|e| Console::format(e)));
        Ok(SinkOutcome::default())
    }
}

/// Loki's push endpoint (JSON encoding), keeping every body.
async fn loki_stand_in() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = Router::new().route(
        "/loki/api/v1/push",
        post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    (serve(app).await, bodies)
}

/// Every row of every table of the sink's schema, as text.
async fn postgres_dump(url: &str) -> String {
    let c = support::pg::client(url).await.expect("database reachable");
    let tables = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'tracepost'",
            &[],
        )
        .await
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let name: String = t.get(0);
        for row in c
            .query(&format!("SELECT t::text FROM tracepost.\"{name}\" t"), &[])
            .await
            .unwrap()
        {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

fn multipart() -> (String, Vec<u8>) {
    let mut b = Vec::new();
    b.extend_from_slice(b"--BnD\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n");
    b.extend_from_slice(
        format!(
            "--BnD\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{}\r\n",
            S.multipart_password
        )
        .as_bytes(),
    );
    b.extend_from_slice(b"--BnD\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"scan.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    // Binary: the captured body is not UTF-8, so the layer keeps it as base64.
    b.extend_from_slice(&[0xff, 0xfe, 0x00]);
    b.extend_from_slice(S.multipart_file.as_bytes());
    b.extend_from_slice(b"\r\n--BnD--\r\n");
    ("multipart/form-data; boundary=BnD".into(), b)
}

#[tokio::test]
async fn no_planted_secret_reaches_any_sink() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleOutput::default();
    let (loki_addr, loki_bodies) = loki_stand_in().await;
    let fast =
        SinkOptions::default().batch(BatchOptions::new(100, 1 << 20, Duration::from_millis(20)));
    let loki = LokiSink::with_config(
        LokiConfig::new(format!("http://{loki_addr}")).encoding(PushEncoding::Json { gzip: false }),
    )
    .unwrap();
    let mut builder = Tracepost::builder()
        .service("redaction")
        .sink_with(JsonlFile::new(dir.path()), fast.clone())
        .sink_with(console.clone(), fast.clone())
        .sink_with(loki, fast.clone());
    let pg = support::pg::create_db("redaction").await;
    if let Some(url) = &pg {
        let sink = tracepost_postgres::PostgresSink::connect(url)
            .await
            .unwrap();
        builder = builder.sink_with(sink, fast.clone());
    }
    let tp = builder.build().unwrap();
    let _g =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(tp.tracing_layer()));
    let addr = serve(app().layer(tp.layer())).await;

    let json_body = json!({"user": "ann", "password": S.json_password, "profile": {"recovery": {"token": S.json_nested_token}}})
        .to_string();
    send(
        addr,
        "POST",
        "/login",
        &[("content-type", "application/json")],
        json_body.as_bytes(),
    )
    .await;
    send(
        addr,
        "POST",
        "/form",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("user=ann&password={}", S.form_password).as_bytes(),
    )
    .await;
    let (ct, body) = multipart();
    send(addr, "POST", "/upload", &[("content-type", &ct)], &body).await;
    send(
        addr,
        "GET",
        &format!("/search?q=shoes&access_token={}", S.query_token),
        &[
            ("authorization", &format!("Bearer {}", S.header_auth)),
            ("cookie", &format!("sid={}", S.header_cookie)),
            (
                "x-debug-upstream",
                &format!("Bearer {}", S.header_custom_bearer),
            ),
        ],
        b"",
    )
    .await;
    send(addr, "GET", "/message", &[], b"").await;
    tp.handle().capture(
        Event::new(
            Kind::Error,
            Level::Error,
            format!("deploy key {} leaked", S.direct_github),
        )
        .with_attribute("credentials", json!({"aws": {"key_id": S.direct_aws}}))
        .with_attribute("db", json!({"user": "app", "password": S.direct_password}))
        .with_error(ErrorDetail {
            error_type: "config".into(),
            message: format!("bad aws key {}", S.direct_aws),
            ..Default::default()
        }),
    );

    // Every planted place produced an event (so the test cannot pass by capturing nothing).
    let within = Duration::from_secs(5);
    for (what, pred) in [
        (
            "the login log",
            Box::new(|e: &Value| e["message"] == "login") as Box<dyn Fn(&Value) -> bool>,
        ),
        (
            "the login request",
            Box::new(|e: &Value| e["request"]["route"] == "/login"),
        ),
        (
            "the form request",
            Box::new(|e: &Value| e["request"]["route"] == "/form"),
        ),
        (
            "the upload request",
            Box::new(|e: &Value| e["request"]["route"] == "/upload"),
        ),
        (
            "the search request",
            Box::new(|e: &Value| e["request"]["route"] == "/search"),
        ),
        (
            "the bearer message",
            Box::new(|e: &Value| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("calling upstream"))
            }),
        ),
        (
            "the JWT error",
            Box::new(|e: &Value| e["message"] == "verify failed"),
        ),
        (
            "the direct event",
            Box::new(|e: &Value| e["error"]["type"] == "config"),
        ),
    ] {
        assert!(
            wait_for_event(dir.path(), within, pred).await.is_some(),
            "no event for {what}"
        );
    }
    let report = tp.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed);

    let events = read_events(dir.path());
    let find = |pred: &dyn Fn(&Value) -> bool| events.iter().find(|e| pred(e)).unwrap().clone();
    // What is kept is still useful: redacted in place, the rest intact.
    let login = find(&|e| e["message"] == "login");
    assert_eq!(login["attributes"]["password"], "[REDACTED]");
    assert_eq!(login["attributes"]["api_key"], "[REDACTED]");
    assert_eq!(login["attributes"]["session_token"], "[REDACTED]");
    assert_eq!(
        login["attributes"]["via"],
        "https://svc:[REDACTED]@auth.internal/v1"
    );
    let login_req = find(&|e| e["request"]["route"] == "/login");
    let crumbs = login_req["breadcrumbs"].as_array().unwrap();
    assert!(
        crumbs
            .iter()
            .any(|c| c["message"] == "checking credentials password=[REDACTED] for ann"),
        "{crumbs:?}"
    );
    let req_body: Value = serde_json::from_str(
        login_req["request"]["request_body"]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(req_body["user"], "ann");
    assert_eq!(req_body["profile"]["recovery"]["token"], "[REDACTED]");
    let upload = find(&|e| e["request"]["route"] == "/upload");
    let upload_body = &upload["request"]["request_body"];
    assert_eq!(upload_body["encoding"], "utf8");
    assert!(
        upload_body["text"]
            .as_str()
            .unwrap()
            .contains("[file scan.bin, 22 bytes, application/octet-stream]"),
        "{upload_body}"
    );
    let search = find(&|e| e["request"]["route"] == "/search");
    assert_eq!(
        search["request"]["query"],
        "q=shoes&access_token=[REDACTED]"
    );
    let message = find(&|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("calling upstream"))
    });
    assert_eq!(
        message["message"],
        "calling upstream with Bearer [REDACTED]"
    );

    let mut stored = vec![
        (
            "NDJSON",
            JsonlFile::files(dir.path())
                .unwrap()
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap())
                .collect::<String>(),
        ),
        ("console", console.0.lock().join("\n")),
        ("Loki", loki_bodies.lock().join("\n")),
    ];
    if let Some(url) = &pg {
        stored.push(("Postgres", postgres_dump(url).await));
    }
    for (sink, text) in &stored {
        assert!(
            text.contains("[REDACTED]"),
            "{sink} stored nothing redacted: {text}"
        );
        for (place, secret) in S.all() {
            assert!(
                !text.contains(secret),
                "{sink} stored the {place} ({secret})"
            );
        }
    }
}

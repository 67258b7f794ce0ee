//! The query API's contract over a real SQLite store and a real HTTP server: the token, one
//! JSON error body naming what failed for every bad input (axum's plain-text rejections
//! never leak), 404s, 503 from a store that's gone, `OwnRoute` on every response, and an
//! OpenAPI document describing every route.

mod common;

use std::sync::Arc;

use common::{dataset, get, serve, PgDb, TOKEN};
use serde_json::{json, Value};
use tower::ServiceExt;
use tracepost_api::ApiConfig;
use tracepost_core::store::Store;
use tracepost_core::testing::TcpProxy;
use tracepost_core::{Event, Sink, Timestamp};
use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteSink;

async fn sqlite_api() -> (tempfile::TempDir, SqliteSink, String) {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(dir.path());
    let events: Vec<Arc<Event>> = dataset(Timestamp::now().unix_nanos() - 3_600_000_000_000)
        .into_iter()
        .map(Arc::new)
        .collect();
    sink.send(events).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sink.store().clone());
    let base = serve(store, ApiConfig::new(TOKEN)).await;
    (dir, sink, base)
}

#[tokio::test]
async fn refuses_to_start_open() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(dir.path());
    for token in ["", "   ", "short-token"] {
        let store: Arc<dyn Store> = Arc::new(sink.store().clone());
        let e = tracepost_api::router::<()>(store, ApiConfig::new(token)).unwrap_err();
        assert!(e.to_string().contains("at least 16 characters"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required() {
    let (_dir, _sink, base) = sqlite_api().await;
    let c = common::client();
    for (auth, what) in [
        (None, "send the admin token"),
        (Some("Bearer nope"), "wrong admin token"),
        (Some(&*format!("Bearer {TOKEN}x")), "wrong admin token"),
        (Some(&*format!("Basic {TOKEN}")), "send the admin token"),
    ] {
        for path in ["/events", "/issues", "/histogram", "/tail", "/issues/fp-1"] {
            let mut req = c.get(format!("{base}/tracepost/api{path}"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["field"], "authorization");
            assert!(body["error"].as_str().unwrap().contains(what), "{body}");
        }
    }
    // The document needs no token.
    let r = c
        .get(format!("{base}/tracepost/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// `/events?attrs=` with 999 attributes, URL-encoded.
static ATTRS_999: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| attrs_query("/events", 999));
/// `/histogram?attrs=` with 33 attributes (one over the limit).
static ATTRS_33_HISTOGRAM: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| attrs_query("/histogram", 33));

fn attrs_query(route: &str, n: usize) -> String {
    let attrs: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| (format!("k{i}"), serde_json::json!(i)))
        .collect();
    let json = serde_json::Value::Object(attrs).to_string();
    let encoded: String = json
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{route}?attrs={encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field() {
    let (_dir, _sink, base) = sqlite_api().await;
    let cases: &[(&str, &str)] = &[
        ("/events?colour=red", "colour"),
        ("/events?limit=5&limit=6", "limit"),
        ("/events?cursor=nope", "cursor"),
        ("/events?cursor=12_zz", "cursor"),
        // A tester's inputs: a time past the nanosecond range overflowed (a 500), and a
        // filter of 999 attributes went past SQLite's expression depth (a 500).
        (
            "/events?cursor=9223372036854775807_00000000000000000000000000000000",
            "cursor",
        ),
        (
            "/events?cursor=-5_00000000000000000000000000000000",
            "cursor",
        ),
        (ATTRS_999.as_str(), "attrs"),
        (ATTRS_33_HISTOGRAM.as_str(), "attrs"),
        ("/events?since=yesterday", "since"),
        ("/events?until=2026-13-01T00:00:00Z", "until"),
        ("/events?since=1969-12-31T23:59:59Z", "since"),
        ("/events?since=9999-12-31T23:59:59Z", "since"),
        ("/events?level=loud", "level"),
        ("/events?min_level=loud", "min_level"),
        ("/events?kind=error,nope", "kind"),
        ("/events?attrs=%5B1%5D", "attrs"),
        ("/events?attrs=%7B%22a%22%3A%22%5Cu0000%22%7D", "attrs"),
        ("/events?service=a%00b", "service"),
        ("/events?limit=0", "limit"),
        ("/events?limit=", "limit"),
        ("/events?until=", "until"),
        ("/events?since=%202026-11-29T00:00:00Z", "since"),
        ("/events?cursor=", "cursor"),
        ("/events?min_level=", "min_level"),
        ("/issues?since=", "since"),
        ("/histogram?bucket_secs=", "bucket_secs"),
        ("/events?limit=10001", "limit"),
        ("/events?limit=-1", "limit"),
        ("/events?limit=ten", "limit"),
        ("/histogram?bucket_secs=0", "bucket_secs"),
        ("/histogram?bucket_secs=1e300", "bucket_secs"),
        ("/histogram?bucket_secs=NaN", "bucket_secs"),
        ("/histogram?limit=3", "limit"),
        (
            "/histogram?bucket_secs=0.001&since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z",
            "bucket_secs",
        ),
        ("/issues?limit=0", "limit"),
        ("/issues?limit=1001", "limit"),
        ("/issues?kind=error", "kind"),
        ("/issues?since=x", "since"),
        ("/events/not-a-uuid", "id"),
        ("/events/0191c7a0-0000-7000-8000-000000000000?x=1", "x"),
        ("/issues/fp-1?x=1", "x"),
        ("/tail?nope=1", "nope"),
        ("/tail?level=loud", "level"),
    ];
    for (path, field) in cases {
        let (status, body) = get(&format!("{base}/tracepost/api{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], *field, "{path}: {body}");
        assert!(!body["error"].as_str().unwrap().is_empty(), "{path}");
    }
    let (status, body) = get(&format!(
        "{base}/tracepost/api/events/0191c7a0-0000-7000-8000-000000000000"
    ))
    .await;
    assert_eq!((status, &body["field"]), (404, &json!("id")));
    // The status body.
    let c = common::client();
    for (body, ct) in [
        ("{\"status\":\"fixed\"}", "application/json"),
        ("{\"status\":\"resolved\",\"x\":1}", "application/json"),
        ("not json", "text/plain"),
        ("", "application/json"),
    ] {
        let r = c
            .post(format!("{base}/tracepost/api/issues/fp-1/status"))
            .bearer_auth(TOKEN)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["field"], "status", "{body:?}");
    }
    // Any other path under /tracepost/api: a JSON 404.
    for path in ["/nope", "/events/1/2", "/issues/a/b/c"] {
        let (status, body) = get(&format!("{base}/tracepost/api{path}")).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("no route"),
            "{body}"
        );
    }
    // A method a route doesn't serve: 405, the JSON body, and Allow.
    for (method, path) in [
        (reqwest::Method::DELETE, "/events"),
        (reqwest::Method::POST, "/issues"),
        (reqwest::Method::GET, "/issues/fp-1/status"),
        (reqwest::Method::PUT, "/openapi.json"),
    ] {
        let r = c
            .request(method.clone(), format!("{base}/tracepost/api{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert!(r.headers().contains_key("allow"), "{method} {path}: Allow");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("not allowed"), "{v}");
    }
    let r = c
        .post(format!("{base}/tracepost/api/issues/fp-404/status"))
        .bearer_auth(TOKEN)
        .json(&json!({"status": "ignored"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_marked_as_tracepost_s_own() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(dir.path());
    let store: Arc<dyn Store> = Arc::new(sink.store().clone());
    let app: axum::Router = tracepost_api::router(store, ApiConfig::new(TOKEN)).unwrap();
    for (path, auth, status) in [
        ("/tracepost/api/events", true, 200),
        ("/tracepost/api/events?x=1", true, 400),
        ("/tracepost/api/events", false, 401),
        ("/tracepost/api/openapi.json", false, 200),
    ] {
        let mut req = axum::http::Request::get(path);
        if auth {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        let r = app
            .clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert!(
            r.extensions()
                .get::<tracepost_core::capture::OwnRoute>()
                .is_some(),
            "{path}: OwnRoute"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_is_a_503() {
    let Some(db) = PgDb::new("the 503 test").await else {
        return;
    };
    // The real server behind a proxy the test can cut.
    let url = db.url();
    let (host, rest) = url.split_once('@').unwrap();
    let (hostport, name) = rest.split_once('/').unwrap();
    let target = tokio::net::lookup_host(hostport)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(target, true).await.unwrap();
    let pg = PostgresSink::builder(format!("{host}@{}/{name}", proxy.addr()))
        .connect()
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(pg.store().clone());
    let base = serve(store, ApiConfig::new(TOKEN)).await;
    let (status, _) = get(&format!("{base}/tracepost/api/events")).await;
    assert_eq!(status, 200);
    proxy.set_up(false);
    for path in ["/events", "/issues", "/histogram", "/issues/fp-1"] {
        let (status, body) = get(&format!("{base}/tracepost/api{path}")).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
    }
    proxy.set_up(true);
    // Back: answers again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = get(&format!("{base}/tracepost/api/events")).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A database that is gone refuses every question until someone fixes it: 503 too.
    db.drop_db().await;
    for path in ["/events", "/issues", "/issues/fp-1"] {
        let (status, body) = get(&format!("{base}/tracepost/api{path}")).await;
        assert_eq!(status, 503, "{path}: {body}");
    }
    drop(pg);
}

#[tokio::test]
async fn the_document_describes_every_route() {
    let doc = serde_json::to_value(tracepost_api::openapi_document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let want = [
        ("/tracepost/api/events", "get"),
        ("/tracepost/api/events/{id}", "get"),
        ("/tracepost/api/histogram", "get"),
        ("/tracepost/api/issues", "get"),
        ("/tracepost/api/issues/{fingerprint}", "get"),
        ("/tracepost/api/issues/{fingerprint}/status", "post"),
        ("/tracepost/api/tail", "get"),
        ("/tracepost/api/analytics", "get"),
        ("/tracepost/api/analytics/funnel", "get"),
    ];
    assert_eq!(paths.len(), want.len(), "{:?}", paths.keys());
    for (path, method) in want {
        let op = &paths[path][method];
        assert!(op.is_object(), "{path} {method}");
        for status in ["400", "401"] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{path} {status}"
            );
        }
        assert_eq!(op["security"][0]["admin_token"], json!([]), "{path}");
    }
    let names = |path: &str| -> Vec<String> {
        paths[path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (path, params) in [
        (
            "/tracepost/api/analytics",
            &["since", "until", "bucket_secs", "limit"][..],
        ),
        (
            "/tracepost/api/analytics/funnel",
            &["since", "until", "steps"][..],
        ),
    ] {
        let got = names(path);
        for p in params {
            assert!(got.contains(&(*p).to_owned()), "{path} lacks {p}");
        }
    }
    let events = names("/tracepost/api/events");
    for p in [
        "kind",
        "level",
        "min_level",
        "service",
        "since",
        "until",
        "q",
        "attrs",
        "fingerprint",
        "trace_id",
        "user_id",
        "request_id",
        "session_id",
        "limit",
        "cursor",
    ] {
        assert!(events.contains(&p.to_owned()), "/events lacks {p}");
    }
    assert!(names("/tracepost/api/histogram").contains(&"bucket_secs".to_owned()));
    assert_eq!(names("/tracepost/api/issues"), ["since", "limit"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

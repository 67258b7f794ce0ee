//! The README's first command, end to end: start the quickstart binary, `curl /panic`, and
//! find the error in the console, in the NDJSON file and in the SQLite store within 2 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::Quickstart;

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn curl_panic_shows_up_in_the_console_and_the_ndjson_file() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("QUICKSTART_ADDR", "127.0.0.1:0")
        .env("TRACEPOST_DATA", data.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The banner on stdout says where it listens.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("listening on http://")
            .nth(1)
            .map(|a| a.trim().to_owned());
        line.clear();
    }
    let addr = addr.expect("the banner names the address");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let stderr = stderr.clone();
        let mut pipe = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            while pipe.read_line(&mut line).unwrap_or(0) > 0 {
                stderr.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
    }

    let response = http(
        &addr,
        &format!("GET /panic HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n"),
    );
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    let sent = Instant::now();

    let mut event = None;
    while sent.elapsed() < Duration::from_secs(2) && event.is_none() {
        for f in tracepost::sinks::JsonlFile::files(data.path()).unwrap_or_default() {
            for l in std::fs::read_to_string(f).unwrap().lines() {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                if e["error"]["type"] == "panic" {
                    event = Some(e);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let event = event.expect("the NDJSON file holds the panic within 2 s");
    assert!(event["error"]["backtrace"]
        .as_str()
        .unwrap()
        .contains("quickstart::panic"));
    let auth = event["request"]["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap();
    assert_eq!(auth[1], "[REDACTED]");
    assert_eq!(
        event["breadcrumbs"][0]["message"],
        "about to look up the cart"
    );

    // The same panic in the SQLite store, found by a query (another process reading the
    // file the app writes: WAL mode).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = tracepost::sinks::sqlite::SqliteSink::new(data.path())
        .store()
        .clone();
    let filter = tracepost::store::EventFilter::new()
        .kind(tracepost::Kind::Error)
        .message_contains("CART MUST BE LOADED");
    let stored = loop {
        let page = rt.block_on(store.events(&filter, 10, None));
        match page {
            Ok(p) if !p.events.is_empty() => break p.events,
            _ if sent.elapsed() > Duration::from_secs(2) => {
                panic!("the SQLite store holds no panic within 2 s: {page:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(stored[0].id.to_string(), event["id"].as_str().unwrap());
    assert_eq!(stored[0].error.as_ref().unwrap().error_type, "panic");

    let console = loop {
        let text = stderr.lock().unwrap().clone();
        if text.contains("breadcrumbs:") || sent.elapsed() > Duration::from_secs(2) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        console.contains("ERROR error panic in GET /panic: cart must be loaded before checkout"),
        "{console}"
    );
    assert!(console.contains("authorization: [REDACTED]"), "{console}");
    assert!(console.contains("at quickstart::panic"), "{console}");
    assert!(console.contains("about to look up the cart"), "{console}");
    assert!(
        !console.contains("s3cret") && !serde_json::to_string(&event).unwrap().contains("s3cret")
    );

    // The health endpoint reports every sink up.
    let health = http(
        &addr,
        &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains(r#""status":"up""#)
            && health.contains(r#""name":"jsonl""#)
            && health.contains(r#""name":"sqlite""#),
        "{health}"
    );

    // SIGTERM: graceful shutdown flushes and exits cleanly.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the quickstart did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// The quickstart on a free port with its own data directory (`common::Quickstart`).
fn start() -> Quickstart {
    Quickstart::start(&[])
}

fn get(addr: &str, path: &str) -> String {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// The series of `http_server_request_duration_seconds_count` in the quickstart's `/metrics`,
/// as (route, status, count).
fn request_counts(addr: &str) -> Vec<(String, String, u64)> {
    get(addr, "/metrics")
        .lines()
        .filter_map(|l| l.strip_prefix("http_server_request_duration_seconds_count{"))
        .map(|l| {
            let (labels, count) = l.rsplit_once("} ").unwrap();
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            (
                label("http_route"),
                label("http_response_status_code"),
                count.trim().parse().unwrap(),
            )
        })
        .collect()
}

/// Every router the quickstart merges (tracepost's own among them) sits inside the layer, so
/// an unknown path is measured as `_unmatched`; tracepost's own routes (the script, a refused
/// browser batch, the console, `/metrics`, `/health`) mark their responses and are not
/// measured as the app's requests. The fault this guards against: axum's `Router::merge`
/// keeps the *merged-in* router's default fallback, so a router merged after
/// `.layer(tp.layer())` silently took unmatched requests out of the metrics (CI's 5xx ratio
/// was 3/7 instead of 3/8).
#[test]
fn unmatched_requests_are_measured_and_tracepost_routes_are_not() {
    let qs = start();
    let addr = qs.addr.as_str();
    assert!(get(addr, "/no/such/path").starts_with("HTTP/1.1 404"));
    assert!(get(addr, "/users/7").starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/tracepost/tp.js").starts_with("HTTP/1.1 200"));
    let refused = http(
        addr,
        &format!(
            "POST /tracepost/v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    );
    assert!(refused.starts_with("HTTP/1.1 4"), "{refused}");
    assert!(get(addr, "/tracepost/console/login").starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/tracepost/console/issues").starts_with("HTTP/1.1 3"));
    assert!(get(addr, "/health").starts_with("HTTP/1.1 200"));

    // The metrics are recorded when the response ends: wait for the two app requests.
    let deadline = Instant::now() + Duration::from_secs(5);
    let counts = loop {
        let counts = request_counts(addr);
        if counts.iter().map(|c| c.2).sum::<u64>() >= 2 || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut routes: Vec<_> = counts
        .iter()
        .map(|(r, s, n)| format!("{r} {s} {n}"))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        ["/users/{id} 200 1", "_unmatched 404 1"],
        "{counts:?}"
    );
}

/// `/rrweb.js`, the recorder the demo page loads: by default a redirect to the pinned rrweb
/// build on jsDelivr (so the demo records on first run), `off` an empty script, a path that
/// file; rrweb-player is served from `QUICKSTART_RRWEB_PLAYER` only when it is set.
#[test]
fn the_demo_page_records_with_rrweb_from_the_cdn_unless_told_otherwise() {
    let header = |response: &str, name: &str| {
        response
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
    };
    let status = |response: &str| response.split(' ').nth(1).unwrap_or("").to_owned();

    let qs = start();
    let r = get(&qs.addr, "/rrweb.js");
    assert_eq!(status(&r), "307", "{r}");
    assert_eq!(
        header(&r, "location").as_deref(),
        Some(quickstart::RRWEB_CDN),
        "{r}"
    );
    assert!(quickstart::RRWEB_CDN.contains("rrweb@2.2.2/"), "pinned");
    // Without QUICKSTART_RRWEB_PLAYER the console loads rrweb-player from its CDN URL.
    assert_eq!(status(&get(&qs.addr, quickstart::PLAYER_JS)), "404");
    drop(qs);

    let qs = Quickstart::start(&[("QUICKSTART_RRWEB_JS", "off")]);
    let r = get(&qs.addr, "/rrweb.js");
    assert_eq!(status(&r), "200", "{r}");
    assert!(
        r.ends_with("// session replay is off (QUICKSTART_RRWEB_JS=off)\n"),
        "{r}"
    );
    drop(qs);

    let dir = tempfile::tempdir().unwrap();
    let rrweb = dir.path().join("rrweb.js");
    std::fs::write(&rrweb, "window.rrweb = {};\n").unwrap();
    std::fs::create_dir_all(dir.path().join("umd")).unwrap();
    std::fs::write(dir.path().join("umd/rrweb-player.min.js"), "/* player */\n").unwrap();
    let qs = Quickstart::start(&[
        ("QUICKSTART_RRWEB_JS", rrweb.to_str().unwrap()),
        ("QUICKSTART_RRWEB_PLAYER", dir.path().to_str().unwrap()),
    ]);
    let r = get(&qs.addr, "/rrweb.js");
    assert_eq!(status(&r), "200", "{r}");
    assert!(r.ends_with("\r\n\r\nwindow.rrweb = {};\n"), "{r}");
    let r = get(&qs.addr, quickstart::PLAYER_JS);
    assert_eq!(status(&r), "200", "{r}");
    assert!(r.ends_with("/* player */\n"), "{r}");
    // The stylesheet is missing from this directory: a 404 that names it.
    let r = get(&qs.addr, quickstart::PLAYER_CSS);
    assert_eq!(status(&r), "404", "{r}");
    assert!(r.contains("dist/style.css"), "{r}");
    drop(qs);

    let qs = Quickstart::start(&[("QUICKSTART_RRWEB_JS", "https://example.org/rrweb.js")]);
    let r = get(&qs.addr, "/rrweb.js");
    assert_eq!(status(&r), "307", "{r}");
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("https://example.org/rrweb.js")
    );
}

//! The chapter's promise: run the app, request `/boom`, and the panic is captured — a 500 for
//! the client, the error on the console and in `./tracepost-data/events-*.ndjson` with its
//! request and breadcrumb.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn boom_is_captured_with_its_request_and_breadcrumb() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_my-app"))
        .current_dir(dir.path())
        .env("ADDR", &addr)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let console = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("my-app did not start: {e}"),
        }
    };
    stream
        .write_all(b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");

    // The event reaches the NDJSON file within a batch linger.
    let event = loop {
        let found = std::fs::read_dir(dir.path().join("tracepost-data"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("events-"))
            .flat_map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
            .find(|e| e["kind"] == "error" && e["request"]["route"] == "/boom");
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no error event in tracepost-data"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["service"], "my-app");
    assert_eq!(event["error"]["type"], "panic");
    assert_eq!(event["error"]["message"], "this route fails on purpose");
    assert_eq!(event["request"]["status"], 500);
    assert_eq!(
        event["breadcrumbs"][0]["message"], "about to fail on purpose",
        "{event:#}"
    );

    // The console sink batches on its own; give it the same linger, then stop the app (it
    // handles ctrl-c only) and read what it printed.
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap();
    child.wait().unwrap();
    let console = console.join().unwrap().join("\n");
    assert!(
        console.contains("panic in GET /boom: this route fails on purpose"),
        "{console}"
    );
}

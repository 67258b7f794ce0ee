//! Property tests of the parsers at the door: batch JSON (generated, then byte-mutated,
//! sometimes gzipped, through the whole `POST /v1/events` handler), stack traces and upload
//! tokens. No input may panic, and every refusal must be a 4xx with the error body.
//!
//! Each property runs `TP_FUZZ_CASES` cases (default 5 000, so 20 000 in the normal suite).
//! The 1M-input run (4 × 250 000):
//!
//! ```text
//! TP_FUZZ_CASES=250000 cargo test --release -p tracepost-ingest --test fuzz
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use tracepost_core::Tracepost;
use tracepost_ingest::stack::{parse_stack, to_backtrace, MAX_FRAMES, MAX_LINE};
use tracepost_ingest::{ErrorBody, Ingest, IngestConfig, TokenSigner};

fn cases() -> u32 {
    std::env::var("TP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Short text with the characters that matter to the parsers, and some non-ASCII.
const TEXT: &str = "[a-zA-Z0-9 :@()<>/.,\"\\\\{}\\[\\]é€😀\\n-]{0,24}";

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0u64..2_000_000_000_000).prop_map(Value::from),
        TEXT.prop_map(Value::from),
        "[a-z_]{1,12}".prop_map(Value::from),
        (0usize..300).prop_map(|n| Value::from("x".repeat(n))),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,10}", json(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A field value: mostly plausible, sometimes anything.
fn field(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        24 => plausible.prop_map(Some),
        1 => json().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn event() -> impl Strategy<Value = Value> {
    let ty = prop_oneof![
        3 => Just("error"),
        3 => Just("pageview"),
        3 => Just("track"),
        2 => Just("identify"),
        2 => Just("vital"),
        1 => Just("other"),
    ]
    .prop_map(Value::from);
    (
        field(ty),
        field((0u64..2_000_000_000_000).prop_map(Value::from)),
        field("[A-Za-z]{1,10}".prop_map(Value::from)),
        field(TEXT.prop_map(Value::from)),
        field(small_stack().prop_map(Value::from)),
        field(prop_oneof![Just("LCP"), Just("CLS"), Just("XYZ")].prop_map(Value::from)),
        field(prop_oneof![
            4 => (0.0..10_000.0f64).prop_map(Value::from),
            1 => any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ]),
        field(object()),
        field("[a-z0-9]{1,300}".prop_map(Value::from)),
    )
        .prop_map(
            |(ty, ts, name, message, stack, vital, value, props, user)| {
                let ty_is_vital = ty.as_ref().and_then(Value::as_str) == Some("vital");
                let mut m = Map::new();
                for (k, v) in [
                    ("type", ty),
                    ("ts", ts),
                    ("name", if ty_is_vital { vital } else { name }),
                    ("message", message),
                    ("stack", stack),
                    ("value", value),
                    ("props", props.clone()),
                    ("extra", props),
                    ("user_id", user),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            },
        )
}

fn batch() -> impl Strategy<Value = Value> {
    (
        field("[a-z0-9-]{1,70}".prop_map(Value::from)),
        field((0u64..2_000_000_000_000).prop_map(Value::from)),
        field("[a-z0-9-]{1,70}".prop_map(Value::from)),
        field("[a-z0-9-]{1,70}".prop_map(Value::from)),
        field(
            ("https://shop\\.example/[a-z/?=&]{0,30}", TEXT)
                .prop_map(|(url, title)| serde_json::json!({"url": url, "title": title})),
        ),
        prop_oneof![
            16 => prop::collection::vec(event(), 1..5).prop_map(Value::Array),
            1 => prop::collection::vec(event(), 49..52).prop_map(Value::Array),
            1 => Just(Value::Array(Vec::new())),
            1 => json(),
        ],
    )
        .prop_map(|(id, sent, session, visitor, page, events)| {
            let mut m = Map::new();
            for (k, v) in [
                ("batch_id", id),
                ("sent_at", sent),
                ("session_id", session),
                ("visitor_id", visitor),
                ("page", page),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m.insert("events".into(), events);
            Value::Object(m)
        })
}

/// Byte edits: (position fraction, op, byte).
fn mutations() -> impl Strategy<Value = Vec<(f64, u8, u8)>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((0.0..1.0f64, 0u8..3, any::<u8>()), 1..8),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[(f64, u8, u8)]) -> Vec<u8> {
    for &(at, op, b) in edits {
        let i = ((bytes.len() as f64) * at) as usize;
        match op {
            0 if i < bytes.len() => bytes[i] = b,
            1 => bytes.insert(i.min(bytes.len()), b),
            _ if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => {}
        }
    }
    bytes
}

fn stack() -> impl Strategy<Value = String> {
    stack_of(25)
}

/// A stack for a batch: short (whole batches must fit the body limit to get past it).
fn small_stack() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(Error: [a-z ]{0,20}\\n)?(    at [a-zA-Z.]{1,12} \\(https://shop\\.example/[a-z]{1,8}\\.js:[0-9]{1,4}:[0-9]{1,4}\\)\\n){0,8}",
        4 => "([a-zA-Z]{0,12}@https://shop\\.example/[a-z]{1,8}\\.js:[0-9]{1,4}:[0-9]{1,4}\\n){0,8}",
        1 => stack_of(4),
    ]
}

fn stack_of(max_lines: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("    at ".to_owned()),
        Just("at async ".to_owned()),
        Just("@".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(":".to_owned()),
        Just(", ".to_owned()),
        Just("eval at ".to_owned()),
        Just("https://shop.example/assets/app.js".to_owned()),
        Just("https://u:p@h/a.js?token=x#f".to_owned()),
        "[0-9]{1,12}",
        "[A-Za-z_.<>/]{1,20}",
        TEXT.prop_map(|s: String| s),
        (0usize..2 * MAX_LINE).prop_map(|n| "(".repeat(n)),
        (0usize..2 * MAX_LINE).prop_map(|n| "a".repeat(n)),
    ];
    prop::collection::vec(
        prop::collection::vec(piece, 0..7).prop_map(|p| p.concat()),
        0..max_lines,
    )
    .prop_map(|lines| lines.join("\n"))
}

struct Door {
    ingest: Ingest,
    rt: tokio::runtime::Runtime,
    _tp: Tracepost,
}

fn door() -> &'static Door {
    static DOOR: OnceLock<Door> = OnceLock::new();
    DOOR.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tp = Tracepost::builder().service("fuzz").build().unwrap();
        let config = IngestConfig::new()
            .key("pk_fuzz")
            .max_body_bytes(64 * 1024)
            .per_client_limit(u32::MAX, u32::MAX)
            .per_key_limit(u32::MAX, u32::MAX)
            .dedup(16, Duration::from_secs(1));
        let ingest = rt.block_on(async { Ingest::new(tp.handle(), config).unwrap() });
        Door {
            ingest,
            rt,
            _tp: tp,
        }
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn batches_never_panic_and_every_refusal_is_a_4xx_with_the_error_body() {
    let door = door();
    let strategy = (batch(), mutations(), 0u8..8, 0u8..8);
    let stats: [AtomicU64; 6] = Default::default();
    runner()
        .run(&strategy, |(value, edits, encoding, content_type)| {
            let mut body = mutate(serde_json::to_vec(&value).unwrap(), &edits);
            let mut headers = HeaderMap::new();
            headers.insert(
                "content-type",
                match content_type {
                    0 => "application/json",
                    1..=6 => "text/plain;charset=UTF-8",
                    _ => "application/x-www-form-urlencoded",
                }
                .parse()
                .unwrap(),
            );
            match encoding {
                0 => {
                    body = gzip(&body);
                    headers.insert("content-encoding", "gzip".parse().unwrap());
                }
                1 => {
                    // gzip, then mutated: a broken stream.
                    body = mutate(gzip(&body), &edits);
                    headers.insert("content-encoding", "gzip".parse().unwrap());
                }
                _ => {}
            }
            let response = door.rt.block_on(door.ingest.events(
                &headers,
                Some("key=pk_fuzz"),
                Some("127.0.0.1".parse().unwrap()),
                http_body_util::Full::new(Bytes::from(body)),
            ));
            let status = response.status().as_u16();
            let slot = match status {
                202 => 0,
                200 => 1,
                400 => 2,
                413 => 3,
                415 => 4,
                _ => 5,
            };
            if stats[slot].fetch_add(1, Relaxed) < 8 && std::env::var_os("TP_FUZZ_SHOW").is_some() {
                eprintln!("{status}: {}", String::from_utf8_lossy(response.body()));
            }
            prop_assert!(
                matches!(status, 200 | 202 | 400..=499),
                "status {status}: {:?}",
                response.body()
            );
            if status >= 400 {
                let parsed: ErrorBody = serde_json::from_slice(response.body())
                    .map_err(|e| TestCaseError::fail(format!("error body: {e}")))?;
                prop_assert_eq!(parsed.error.status, status);
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "batches: {} cases: 202={} 200={} 400={} 413={} 415={} other={}",
        cases(),
        stats[0].load(Relaxed),
        stats[1].load(Relaxed),
        stats[2].load(Relaxed),
        stats[3].load(Relaxed),
        stats[4].load(Relaxed),
        stats[5].load(Relaxed)
    );
    // The generator reaches both sides of the door.
    assert!(stats[0].load(Relaxed) > 0 && stats[2].load(Relaxed) > 0);
}

#[test]
fn stacks_never_panic_and_stay_bounded() {
    let frames_seen = AtomicU64::new(0);
    runner()
        .run(&stack(), |s| {
            let frames = parse_stack(&s);
            prop_assert!(frames.len() <= MAX_FRAMES);
            for f in &frames {
                prop_assert!(f.file.as_ref().is_none_or(|x| x.len() <= MAX_LINE));
                prop_assert!(f.function.as_ref().is_none_or(|x| x.len() <= MAX_LINE));
            }
            frames_seen.fetch_add(frames.len() as u64, Relaxed);
            let _ = to_backtrace(&frames);
            Ok(())
        })
        .unwrap();
    let frames_seen = frames_seen.load(Relaxed);
    eprintln!("stacks: {} cases, {frames_seen} frames", cases());
    assert!(frames_seen > 0);
}

#[test]
fn arbitrary_stack_text_never_panics() {
    runner()
        .run(&"\\PC{0,200}", |s| {
            let frames = parse_stack(&s);
            prop_assert!(frames.len() <= MAX_FRAMES);
            Ok(())
        })
        .unwrap();
}

#[test]
fn only_untouched_tokens_pass() {
    let signer = TokenSigner::new(
        "fuzz",
        vec!["0123456789abcdef0123456789abcdef".into()],
        Duration::from_secs(600),
    );
    let now = SystemTime::now();
    let origin = "https://shop.example";
    let valid = signer.mint_at(origin, now).unwrap().token;
    let strategy = prop_oneof![
        1 => TEXT.prop_map(|s| s.into_bytes()),
        1 => "[A-Za-z0-9_.-]{0,300}".prop_map(|s| s.into_bytes()),
        4 => mutations()
            .prop_filter("at least one edit", |e| !e.is_empty())
            .prop_map({
                let valid = valid.clone();
                move |e| mutate(valid.clone().into_bytes(), &e)
            }),
    ];
    let passed = AtomicU64::new(0);
    runner()
        .run(&strategy, |bytes| {
            let token = String::from_utf8_lossy(&bytes).into_owned();
            match signer.verify_at(&token, Some(origin), None, now) {
                Ok(()) => {
                    // Only the token itself (an edit may have restored it) passes.
                    prop_assert_eq!(&token, &valid);
                    passed.fetch_add(1, Relaxed);
                }
                Err(e) => prop_assert_eq!(e.status().as_u16(), 401),
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "tokens: {} cases, {} untouched",
        cases(),
        passed.load(Relaxed)
    );
}

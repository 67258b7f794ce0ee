//! The browser script's size budget (issue 10): `tp.js` is at most 3 KB (3,000 bytes) once
//! gzipped at the best compression level — the level the ingest route serves it with — so
//! adding it to a page costs less than a small image. The opt-in `tp-vitals.js` gets its own,
//! smaller budget.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

fn gzipped_len(file: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/tracepost-ingest/js")
        .join(file);
    let source = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&source).unwrap();
    let len = gz.finish().unwrap().len();
    println!("{file}: {} bytes, {len} gzipped", source.len());
    len
}

#[test]
fn tp_js_is_at_most_3_kb_gzipped() {
    let len = gzipped_len("tp.js");
    assert!(
        len <= 3000,
        "tp.js is {len} bytes gzipped; the budget is 3,000"
    );
}

#[test]
fn tp_vitals_js_is_at_most_1_5_kb_gzipped() {
    let len = gzipped_len("tp-vitals.js");
    assert!(
        len <= 1500,
        "tp-vitals.js is {len} bytes gzipped; the budget is 1,500"
    );
}

#[test]
fn tp_replay_js_is_at_most_4_kb_gzipped() {
    // Opt-in and loaded next to rrweb (~100 KB gzipped): its own budget.
    let len = gzipped_len("tp-replay.js");
    assert!(
        len <= 4000,
        "tp-replay.js is {len} bytes gzipped; the budget is 4,000"
    );
}

//! Real recordings: Chromium runs rrweb 1.x and 2.x from npm on `browser/page.html` (input,
//! mouse, selection, scroll, resize, DOM and CSS mutations, shadow DOM, adopted stylesheets,
//! custom elements, an iframe, custom events, annotations), and every event of both
//! recordings parses and serializes back to equal JSON.
//!
//! Needs `scripts/setup.sh` (Chromium and `npm ci` in `tests/browser`); skipped without them
//! unless `CI=true`, where their absence fails the test.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tracepost_rrweb::{parse_segment, EventData, Limits};

fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"))
}

/// Records with every rrweb version, or `None` (skip) when the tools are missing outside CI.
fn record() -> Option<tempfile::TempDir> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = browser_dir().join("node_modules/playwright-core").exists()
        && Path::new(&chromium).exists();
    if !ready {
        let why = "Chromium or the npm packages of crates/tracepost-rrweb/tests/browser are missing: run scripts/setup.sh";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("node")
        .arg(browser_dir().join("record.mjs"))
        .arg(out.path())
        .status()
        .expect("run node");
    assert!(status.success(), "record.mjs failed: {status}");
    Some(out)
}

/// `type` or `type/source` of every event.
fn kinds(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| match e["type"].as_i64() {
            Some(3) => format!("3/{}", e["data"]["source"]),
            t => format!("{}", t.unwrap()),
        })
        .collect()
}

#[test]
fn real_recordings_round_trip() {
    let Some(dir) = record() else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("rrweb-1."))
            && names.iter().any(|n| n.starts_with("rrweb-2.")),
        "a 1.x and a 2.x recording: {names:?}"
    );
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let original: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        let events =
            parse_segment(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), original.len());
        for (i, (event, json)) in events.iter().zip(&original).enumerate() {
            let back = serde_json::to_value(event).unwrap();
            assert_eq!(&back, json, "{name}: event {i} changed in the round trip");
            // Everything these versions emit is known: no `Unknown` fallbacks.
            let known = !matches!(event.data, EventData::Unknown(..))
                && !matches!(
                    event.data,
                    EventData::IncrementalSnapshot(tracepost_rrweb::IncrementalData::Unknown(..))
                );
            assert!(known, "{name}: event {i} parsed as unknown: {json}");
        }
        let seen = kinds(&original);
        // Meta, FullSnapshot, Custom; Mutation, MouseMove, MouseInteraction, Scroll,
        // ViewportResize, Input, StyleSheetRule, StyleDeclaration.
        let mut expected: Vec<&str> = vec![
            "2", "4", "5", "3/0", "3/1", "3/2", "3/3", "3/4", "3/5", "3/8", "3/13",
        ];
        if name.starts_with("rrweb-2.") {
            // Selection, AdoptedStyleSheet, CustomElement (2.0+), Annotation (2.2+).
            expected.extend(["3/14", "3/15", "3/16", "8"]);
        } else {
            // The console plugin bundled in rrweb-all 1.x.
            expected.push("6");
        }
        for k in expected {
            assert!(seen.contains(k), "{name}: no event of kind {k} in {seen:?}");
        }
        // rrweb's default masking: the typed password is in no event.
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cret-pass"),
            "{name}"
        );
        eprintln!("{name}: {} events, kinds {seen:?}", events.len());
    }
}

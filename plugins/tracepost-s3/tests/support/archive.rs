//! Reads an archive back: every `events/…ndjson.gz` object, gunzipped, one event per line —
//! through the store (a download) or straight from the files a directory-backed store wrote.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use tracepost_core::object_store::ObjectStore;
use tracepost_core::testing::suite::Stored;
use uuid::Uuid;

/// The events of one archive object, in order.
pub fn parse_object(key: &str, gz: &[u8]) -> Vec<serde_json::Value> {
    assert!(key.ends_with(".ndjson.gz"), "{key}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("a complete gzip stream of UTF-8");
    assert!(text.ends_with('\n'), "{key}: the last line is complete");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every archived event as `(key, event JSON)`, downloaded through the store.
pub async fn read_lines<S: ObjectStore>(store: &S) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for key in store.list("events/").await.unwrap() {
        let gz = store
            .get(&key)
            .await
            .unwrap()
            .expect("listed object exists");
        out.extend(
            parse_object(&key, &gz)
                .into_iter()
                .map(|e| (key.clone(), e)),
        );
    }
    out
}

/// Every file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The suite's view of an archive written under `root` (the `events/` tree on disk).
pub fn read_back_dir(root: &Path) -> Vec<Stored> {
    files(&root.join("events"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .flat_map(|p| parse_object(&p.to_string_lossy(), &std::fs::read(&p).unwrap()))
        .map(|e| Stored {
            id: e["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
            message: e["message"].as_str().unwrap().to_owned(),
        })
        .collect()
}

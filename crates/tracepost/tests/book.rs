//! The book stays true to the code:
//! - every Rust listing is included from a compiled file, with its `use` lines (the file's
//!   `imports` anchor, or `use` lines inside the region), so it compiles as pasted;
//! - the configuration page names every public setter of every builder, so a new setting
//!   cannot be added without documenting it.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name`, as mdBook includes them.
fn region(text: &str, anchor: &str) -> Option<Vec<String>> {
    let mut lines = text.lines();
    lines.find(|l| l.trim() == format!("// ANCHOR: {anchor}"))?;
    let mut out = Vec::new();
    for l in lines {
        if l.trim() == format!("// ANCHOR_END: {anchor}") {
            return Some(out);
        }
        out.push(l.to_string());
    }
    None
}

/// (page, info string, lines) of every fenced block whose info string starts with `rust`.
fn rust_blocks() -> Vec<(PathBuf, String, Vec<String>)> {
    let mut out = Vec::new();
    let dir = root().join("book/src");
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    for page in pages {
        let text = read(&page);
        let mut block: Option<(String, Vec<String>)> = None;
        for line in text.lines() {
            match &mut block {
                None => {
                    if let Some(info) = line.strip_prefix("```") {
                        if info.starts_with("rust") {
                            block = Some((info.to_string(), Vec::new()));
                        }
                    }
                }
                Some(_) if line.starts_with("```") => {
                    let (info, lines) = block.take().unwrap();
                    out.push((page.clone(), info, lines));
                }
                Some((_, lines)) => lines.push(line.to_string()),
            }
        }
    }
    out
}

#[test]
fn every_listing_is_compiled_code_with_its_imports() {
    let blocks = rust_blocks();
    assert!(blocks.len() > 15, "found only {} listings", blocks.len());
    let mut problems = Vec::new();
    for (page, info, lines) in &blocks {
        let page_name = page.file_name().unwrap().to_string_lossy().to_string();
        if info.contains("ignore") {
            problems.push(format!(
                "{page_name}: a `{info}` listing: include compiled code instead"
            ));
        }
        let mut includes = Vec::new();
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            match line
                .trim()
                .strip_prefix("{{#include ")
                .and_then(|l| l.strip_suffix("}}"))
            {
                Some(inc) => includes.push(inc.to_string()),
                None => problems.push(format!(
                    "{page_name}: hand-written line in a listing: {line:?} (include it from compiled code)"
                )),
            }
        }
        for inc in &includes {
            let (file, anchor) = match inc.split_once(':') {
                Some((f, a)) => (f, Some(a)),
                None => (inc.as_str(), None),
            };
            let path = root().join("book/src").join(file);
            let compiled = ["/src/", "/examples/", "/tests/"]
                .iter()
                .any(|d| file.contains(d));
            if !compiled || !file.ends_with(".rs") {
                problems.push(format!("{page_name}: {file} is not a compiled source file"));
                continue;
            }
            let text = read(&path);
            let Some(anchor) = anchor else { continue };
            let Some(lines) = region(&text, anchor) else {
                problems.push(format!("{page_name}: {file} has no anchor {anchor}"));
                continue;
            };
            if anchor == "imports" {
                continue;
            }
            let has_uses = lines.iter().any(|l| l.trim_start().starts_with("use "));
            let has_imports = includes.contains(&format!("{file}:imports"));
            if !has_uses && !has_imports {
                problems.push(format!(
                    "{page_name}: {file}:{anchor} is shown without its `use` lines \
                     (include {file}:imports in the same listing)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The names of the `pub fn`s of `impl <ty> {` in `source` that take `self` and return
/// `Self`: the builder's setters.
fn setters(source: &str, ty: &str) -> Vec<String> {
    let header = format!("\nimpl {ty} {{\n");
    let start = source
        .find(&header)
        .unwrap_or_else(|| panic!("no `impl {ty} {{`"));
    let body = &source[start + header.len()..];
    let body = &body[..body.find("\n}\n").expect("end of impl")];
    let mut names = Vec::new();
    for (i, _) in body.match_indices("pub fn ") {
        let rest = &body[i + "pub fn ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let signature = &rest[..rest.find('{').unwrap_or(rest.len())];
        let params = &signature[signature.find('(').unwrap_or(0)..];
        let takes_self = params
            .trim_start_matches('(')
            .trim_start()
            .trim_start_matches("mut ")
            .starts_with("self");
        if takes_self && signature.trim_end().ends_with("-> Self") {
            names.push(name);
        }
    }
    names
}

#[test]
fn configuration_page_lists_every_setter() {
    let page = read(&root().join("book/src/configuration.md"));
    let sources = [
        ("crates/tracepost-core/src/pipeline/builder.rs", "Builder"),
        (
            "crates/tracepost-core/src/pipeline/options.rs",
            "SinkOptions",
        ),
        (
            "crates/tracepost-core/src/pipeline/options.rs",
            "RetryOptions",
        ),
        (
            "crates/tracepost-core/src/pipeline/spool.rs",
            "SpoolOptions",
        ),
        (
            "crates/tracepost-core/src/capture/policy.rs",
            "SnapshotPolicy",
        ),
        ("crates/tracepost-core/src/redact.rs", "Redactor"),
        (
            "crates/tracepost-ingest/src/logs/config.rs",
            "LogIngestConfig",
        ),
        ("crates/tracepost-core/src/sinks/console.rs", "Console"),
        ("crates/tracepost-core/src/sinks/jsonl.rs", "JsonlFile"),
        (
            "plugins/tracepost-opendal/src/lib.rs",
            "OpendalStoreBuilder",
        ),
        ("plugins/tracepost-s3/src/lib.rs", "S3Config"),
        ("crates/tracepost-rrweb/src/segment.rs", "Limits"),
        ("crates/tracepost-console/src/lib.rs", "ConsoleBuilder"),
        ("middleware/tracepost-tower/src/layer.rs", "TracepostLayer"),
        ("crates/tracepost-ingest/src/config.rs", "IngestConfig"),
        ("crates/tracepost-ingest/src/replay.rs", "ReplayConfig"),
        (
            "middleware/tracepost-tracing/src/lib.rs",
            "TracepostTracingLayer",
        ),
        (
            "crates/tracepost-alerts/src/engine.rs",
            "AlertEngineBuilder",
        ),
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for (file, ty) in sources {
        for name in setters(&read(&root().join(file)), ty) {
            seen += 1;
            if !page.contains(&format!("{name}(")) {
                missing.push(format!("{ty}::{name} ({file})"));
            }
        }
    }
    // The facade's extension methods: the layer, the routers, browser tokens and the test alert.
    for name in [
        "layer()",
        "tracing_layer()",
        "metrics_router()",
        "health_router()",
        "ingest_router()",
        "token_router(",
        "ingest()",
        "browser_token()",
        "send_test_alert()",
        "alerts_admin_router(",
    ] {
        if !page.contains(&format!("tp.{name}")) {
            missing.push(format!("tp.{name}"));
        }
    }
    if !page.contains("tp.console(store)") {
        missing.push("tp.console(store)".into());
    }
    assert!(
        seen > 40,
        "found only {seen} setters: is the parser still right?"
    );
    assert!(
        missing.is_empty(),
        "book/src/configuration.md does not document: {}",
        missing.join(", ")
    );
}

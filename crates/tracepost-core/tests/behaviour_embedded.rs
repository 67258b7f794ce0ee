//! The behaviour suite on the embedded sinks, and their serde configurations.

// ANCHOR: imports
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracepost_core::sinks::{
    Console, ConsoleConfig, ConsoleFormat, ConsoleTarget, JsonlFile, JsonlFileConfig,
};
use tracepost_core::testing::suite::{Capabilities, Harness, Stored};
use tracepost_core::Event;
// ANCHOR_END: imports

fn stored_from_ndjson(text: &str) -> Vec<Stored> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let e: Event = serde_json::from_str(l).expect("each line is one event");
            Stored::from(&e)
        })
        .collect()
}

// ANCHOR: harness
/// `JsonlFile` in a scratch directory. An outage replaces the directory with a plain file
/// (a volume gone), so the sink cannot write until it is put back.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn events_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }
    fn parked(&self) -> PathBuf {
        self.dir.path().join("events.unmounted")
    }
}

impl Harness for Files {
    type Sink = JsonlFile;
    async fn sink(&self) -> JsonlFile {
        JsonlFile::new(self.events_dir())
    }
    async fn read_back(&self) -> Vec<Stored> {
        let dir = self.events_dir();
        if !dir.is_dir() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for f in JsonlFile::files(&dir).unwrap() {
            out.extend(stored_from_ndjson(&std::fs::read_to_string(f).unwrap()));
        }
        out
    }
    fn capabilities(&self) -> Capabilities {
        // Append-only; the file is written in arrival order.
        Capabilities::none().ordered(true).outage(true)
    }
    async fn set_reachable(&self, on: bool) {
        let (dir, parked) = (self.events_dir(), self.parked());
        if on {
            std::fs::remove_file(&dir).unwrap();
            if parked.exists() {
                std::fs::rename(&parked, &dir).unwrap();
            }
        } else {
            if dir.exists() {
                std::fs::rename(&dir, &parked).unwrap();
            }
            std::fs::write(&dir, b"not a directory").unwrap();
        }
    }
}

mod jsonl {
    use super::*;
    tracepost_core::sink_behaviour_suite!(async {
        Some(Files {
            dir: tempfile::tempdir().unwrap(),
        })
    });
}
// ANCHOR_END: harness

/// A `Vec<u8>` shared with the console sink.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Console` in JSON mode writing into memory.
struct Terminal {
    out: Captured,
}

impl Harness for Terminal {
    type Sink = Console;
    async fn sink(&self) -> Console {
        Console::default()
            .output_format(ConsoleFormat::Json)
            .writer(self.out.clone())
    }
    async fn read_back(&self) -> Vec<Stored> {
        let bytes = self.out.0.lock().unwrap().clone();
        stored_from_ndjson(&String::from_utf8(bytes).expect("UTF-8 output"))
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::none().ordered(true)
    }
}

mod console {
    use super::*;
    tracepost_core::sink_behaviour_suite!(async {
        Some(Terminal {
            out: Captured::default(),
        })
    });
}

/// The text format keeps non-ASCII and long messages whole.
#[tokio::test]
async fn console_text_keeps_non_ascii_and_large_messages() {
    use tracepost_core::{Kind, Level, Sink};
    let out = Captured::default();
    let sink = Console::default().writer(out.clone());
    let large = "東京🚀".repeat(100_000);
    let batch = vec![
        Arc::new(Event::new(Kind::Log, Level::Error, "naïve café שלום")),
        Arc::new(Event::new(Kind::Log, Level::Error, large.clone())),
    ];
    sink.send(batch).await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("ERROR log naïve café שלום\n"), "{text:.200}");
    assert!(text.contains(&format!("ERROR log {large}\n")));
}

#[test]
fn configs_deserialize_from_toml_and_json_and_build() {
    let c: ConsoleConfig = toml::from_str("target = \"stdout\"\nformat = \"json\"\n").unwrap();
    assert_eq!(c.target, ConsoleTarget::Stdout);
    assert_eq!(c.format, ConsoleFormat::Json);
    let debug = format!("{:?}", c.build());
    assert!(
        debug.contains("Stdout") && debug.contains("Json"),
        "{debug}"
    );
    let c: ConsoleConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, ConsoleConfig::default());

    let f: JsonlFileConfig =
        toml::from_str("dir = \"/tmp/tp-events\"\nmax_file_bytes = 1048576\n").unwrap();
    assert_eq!(f.max_files, 10);
    let sink = f.build().unwrap();
    assert_eq!(sink.dir(), std::path::Path::new("/tmp/tp-events"));
}

#[test]
fn config_typos_and_bad_values_name_the_field() {
    let e = toml::from_str::<ConsoleConfig>("targte = \"stdout\"").unwrap_err();
    assert!(e.to_string().contains("unknown field `targte`"), "{e}");
    let e = toml::from_str::<ConsoleConfig>("target = \"printer\"").unwrap_err();
    assert!(e.to_string().contains("printer"), "{e}");
    let e = serde_json::from_str::<JsonlFileConfig>(r#"{"dir": "x", "max_fles": 3}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `max_fles`"), "{e}");
    let e = serde_json::from_str::<JsonlFileConfig>(r#"{"max_files": 3}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `dir`"), "{e}");
    let e = toml::from_str::<JsonlFileConfig>("dir = \"x\"\nmax_files = 0")
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid sink setting `max_files`: must be at least 1"
    );
}

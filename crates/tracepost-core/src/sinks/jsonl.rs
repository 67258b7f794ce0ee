use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::sink::{Batch, Sink, SinkError, SinkOutcome};

/// Appends events as newline-delimited JSON (one event per line, the schema of the book's
/// "Event schema" page) to rotating files in a directory.
///
/// Files are named `events-<unix-millis>.ndjson`; a new file starts when the current one
/// passes `max_file_bytes` (default 64 MiB), and the oldest are deleted beyond `max_files`
/// (default 10). Each batch is written with one `write` and flushed.
#[derive(Debug)]
pub struct JsonlFile {
    dir: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
    state: Mutex<Option<Current>>,
    /// The buffer a batch is written into, kept between batches (at most [`KEPT_BUFFER`]
    /// bytes of capacity): a fresh one per batch is a large allocation, its growth copies, and
    /// freeing it makes the allocator consolidate its free lists.
    buf: std::sync::Mutex<Vec<u8>>,
}

/// The largest batch buffer kept for the next batch: 4 MiB.
const KEPT_BUFFER: usize = 4 << 20;

#[derive(Debug)]
struct Current {
    path: PathBuf,
    file: tokio::fs::File,
    size: u64,
}

impl JsonlFile {
    /// Writes under `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JsonlFile {
            dir: dir.into(),
            max_file_bytes: 64 << 20,
            max_files: 10,
            state: Mutex::new(None),
            buf: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Rotates after this many bytes.
    pub fn max_file_bytes(mut self, n: u64) -> Self {
        self.max_file_bytes = n.max(1);
        self
    }

    /// Keeps at most this many files.
    pub fn max_files(mut self, n: usize) -> Self {
        self.max_files = n.max(1);
        self
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The event files in the directory, oldest first.
    pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("events-") && n.ends_with(".ndjson"))
            })
            .collect();
        // Names embed the creation time in fixed-width millis: lexical order is age order.
        files.sort();
        Ok(files)
    }

    async fn open_new(&self) -> std::io::Result<Current> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let mut millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut path;
        loop {
            path = self.dir.join(format!("events-{millis:015}.ndjson"));
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                break;
            }
            millis += 1;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let dir = self.dir.clone();
        let keep = self.max_files;
        tokio::task::spawn_blocking(move || {
            if let Ok(files) = JsonlFile::files(&dir) {
                for old in files.iter().take(files.len().saturating_sub(keep)) {
                    let _ = std::fs::remove_file(old);
                }
            }
        })
        .await
        .ok();
        Ok(Current {
            path,
            file,
            size: 0,
        })
    }
}

impl Sink for JsonlFile {
    fn name(&self) -> &str {
        "jsonl"
    }

    async fn send(&self, batch: Batch) -> Result<SinkOutcome, SinkError> {
        let mut buf = std::mem::take(&mut *self.buf.lock().unwrap_or_else(|p| p.into_inner()));
        buf.clear();
        for e in &batch {
            crate::event::json::write_event(&mut buf, e)
                .map_err(|err| SinkError::permanent(err.to_string()))?;
            buf.push(b'\n');
        }
        let result = self.append(&buf).await;
        if buf.capacity() <= KEPT_BUFFER {
            *self.buf.lock().unwrap_or_else(|p| p.into_inner()) = buf;
        }
        result
    }

    async fn shutdown(&self) -> Result<(), SinkError> {
        if let Some(c) = self.state.lock().await.as_mut() {
            c.file.sync_data().await?;
        }
        Ok(())
    }
}

impl JsonlFile {
    /// Appends `buf` (whole lines) to the current file, rotating first if it is full or gone.
    async fn append(&self, buf: &[u8]) -> Result<SinkOutcome, SinkError> {
        let mut state = self.state.lock().await;
        let rotate = match &*state {
            None => true,
            Some(c) => c.size >= self.max_file_bytes || !c.path.exists(),
        };
        if rotate {
            *state = Some(self.open_new().await?);
        }
        let current = state.as_mut().expect("opened above");
        current.file.write_all(buf).await?;
        current.file.flush().await?;
        current.size += buf.len() as u64;
        Ok(SinkOutcome::default())
    }
}

//! The fingerprints already announced, remembered across restarts: a file in the data dir
//! (`alerts/known_fingerprints`, one per line, appended) and, optionally, the issues of a
//! [`Store`](tracepost_core::store::Store) (the Postgres `issues` table, SQLite's).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The file under the data dir.
pub const KNOWN_FILE: &str = "alerts/known_fingerprints";

pub(crate) struct KnownIssues {
    set: HashSet<String>,
    file: Option<(PathBuf, File)>,
}

impl KnownIssues {
    pub(crate) fn in_memory() -> Self {
        KnownIssues {
            set: HashSet::new(),
            file: None,
        }
    }

    /// Loads (or creates) `data_dir/alerts/known_fingerprints`.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KNOWN_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut set = HashSet::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                let line = line.trim();
                if !line.is_empty() {
                    set.insert(line.to_owned());
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(KnownIssues {
            set,
            file: Some((path, file)),
        })
    }

    /// Adds fingerprints known elsewhere (a store's issues), without writing them.
    pub(crate) fn extend(&mut self, fingerprints: impl IntoIterator<Item = String>) {
        self.set.extend(fingerprints);
    }

    /// True (and remembered, on disk too) when `fingerprint` was not known.
    pub(crate) fn insert(&mut self, fingerprint: &str) -> bool {
        if self.set.contains(fingerprint) {
            return false;
        }
        self.set.insert(fingerprint.to_owned());
        if let Some((path, file)) = &mut self.file {
            // One short line per new issue; a failed write only risks announcing it again.
            let line = format!("{}\n", fingerprint.replace(['\n', '\r'], " "));
            if let Err(e) = file.write_all(line.as_bytes()) {
                tracing::warn!(target: "tracepost::alerts", path = %path.display(), error = %e,
                    "cannot remember a new issue; it may be announced again after a restart");
            }
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

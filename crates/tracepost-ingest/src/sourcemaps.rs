//! Resolving minified frames to their original file, line and function with the host's
//! source maps (getsentry's `sourcemap` crate).
//!
//! A frame in `https://host/assets/app.js` is looked up in `{dir}/assets/app.js.map`, then in
//! `{dir}/app.js.map`. When the minified script itself is in the directory too
//! (`{dir}/assets/app.js`), the original function name is recovered from it (the map alone
//! only names identifiers, not the enclosing function). Maps are parsed once and kept in a
//! small LRU cache (misses too); files over [`MAX_MAP_BYTES`] are ignored. Only plain path
//! segments are used: `..`, absolute paths and drive letters never leave the directory.

use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sourcemap::{DecodedMap, SourceView};

use crate::stack::Frame;

/// Source maps (and minified scripts) larger than this are not loaded.
pub const MAX_MAP_BYTES: u64 = 32 * 1024 * 1024;
/// How many parsed maps (or known misses) are cached.
pub const CACHE_ENTRIES: usize = 64;

struct Loaded {
    map: DecodedMap,
    minified: Option<SourceView>,
}

/// The source maps of one directory.
pub struct SourceMaps {
    dir: PathBuf,
    cache: Mutex<lru::LruCache<String, Option<Arc<Loaded>>>>,
}

impl std::fmt::Debug for SourceMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceMaps")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SourceMaps {
    /// The maps in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SourceMaps {
            dir: dir.into(),
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).expect("non-zero"),
            )),
        }
    }

    /// Resolves each frame that has a script URL, line and column and a map; the others are
    /// left as they are.
    pub fn resolve(&self, frames: &mut [Frame]) {
        for frame in frames {
            let (Some(file), Some(line), Some(col)) = (&frame.file, frame.line, frame.col) else {
                continue;
            };
            if line == 0 || col == 0 {
                continue;
            }
            let Some(loaded) = self.load(file) else {
                continue;
            };
            let Some(token) = loaded.map.lookup_token(line - 1, col - 1) else {
                continue;
            };
            let function = loaded
                .minified
                .as_ref()
                .and_then(|sv| {
                    loaded.map.get_original_function_name(
                        line - 1,
                        col - 1,
                        frame.function.as_deref(),
                        Some(sv),
                    )
                })
                .map(str::to_owned);
            if let Some(source) = token.get_source() {
                frame.file = Some(source.to_owned());
            }
            frame.line = Some(token.get_src_line() + 1);
            frame.col = Some(token.get_src_col() + 1);
            if let Some(f) = function {
                frame.function = Some(f);
            }
            frame.mapped = true;
        }
    }

    fn load(&self, url: &str) -> Option<Arc<Loaded>> {
        if let Some(hit) = self.cache.lock().get(url) {
            return hit.clone();
        }
        let loaded = self.read(url).map(Arc::new);
        self.cache.lock().put(url.to_owned(), loaded.clone());
        loaded
    }

    fn read(&self, url: &str) -> Option<Loaded> {
        let rel = relative_path(url)?;
        let name = rel.file_name()?.to_owned();
        for script in [self.dir.join(&rel), self.dir.join(&name)] {
            let mut map_path = script.clone().into_os_string();
            map_path.push(".map");
            let Some(bytes) = read_capped(Path::new(&map_path)) else {
                continue;
            };
            let Ok(map) = sourcemap::decode_slice(&bytes) else {
                tracing::warn!(path = %Path::new(&map_path).display(), "tracepost ingest: not a source map");
                continue;
            };
            let minified = read_capped(&script)
                .and_then(|b| String::from_utf8(b).ok())
                .map(SourceView::from_string);
            return Some(Loaded { map, minified });
        }
        None
    }
}

fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MAP_BYTES {
        return None;
    }
    std::fs::read(path).ok()
}

/// The path of a script URL inside the maps directory: its URL path, plain segments only.
fn relative_path(url: &str) -> Option<PathBuf> {
    let url = url.split(['?', '#']).next()?;
    let path = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            &after[after.find('/')?..]
        }
        None => url,
    };
    let mut out = PathBuf::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let mut parts = Path::new(seg).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(c)), None) if !seg.contains('\\') && !seg.contains(':') => {
                out.push(c)
            }
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_directory() {
        assert_eq!(
            relative_path("https://h/assets/app.js?v=1").unwrap(),
            PathBuf::from("assets/app.js")
        );
        assert_eq!(relative_path("https://h/../etc/passwd"), None);
        assert_eq!(
            relative_path("https://h/a/..%2f/x.js").unwrap(),
            PathBuf::from("a/..%2f/x.js")
        );
        assert_eq!(relative_path("https://h/"), None);
        assert_eq!(relative_path("https://h/c:/x.js"), None);
    }

    #[test]
    fn a_minified_frame_resolves() {
        // Generated by hand: app.min.js is `function a(b){throw new Error(b)}a("x")` on one
        // line, from src/app.js where `fail` spans lines 1-3.
        let dir = tempfile::tempdir().unwrap();
        let minified = "function a(b){throw new Error(b)}a(\"x\");\n";
        let mut builder = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
        let src = builder.add_source("src/app.js");
        builder.add_raw(0, 0, 0, 0, Some(src), None, false);
        let name = builder.add_name("fail");
        builder.add_raw(0, 9, 0, 9, Some(src), Some(name), false);
        builder.add_raw(0, 14, 1, 2, Some(src), None, false);
        builder.add_raw(0, 33, 3, 0, Some(src), Some(name), false);
        let map = builder.into_sourcemap();
        let mut out = Vec::new();
        map.to_writer(&mut out).unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/app.min.js.map"), out).unwrap();
        std::fs::write(dir.path().join("assets/app.min.js"), minified).unwrap();
        let maps = SourceMaps::new(dir.path());
        let mut frames = vec![Frame {
            function: Some("a".into()),
            file: Some("https://shop.example/assets/app.min.js".into()),
            line: Some(1),
            col: Some(15),
            in_app: true,
            mapped: false,
        }];
        maps.resolve(&mut frames);
        assert_eq!(frames[0].file.as_deref(), Some("src/app.js"));
        assert_eq!(frames[0].line, Some(2));
        assert_eq!(frames[0].col, Some(3));
        assert_eq!(frames[0].function.as_deref(), Some("fail"));
        assert!(frames[0].mapped);
        // A script without a map is left alone (and the miss is cached).
        let mut other = vec![Frame {
            file: Some("https://shop.example/other.js".into()),
            line: Some(1),
            col: Some(1),
            ..Frame::default()
        }];
        maps.resolve(&mut other);
        assert!(!other[0].mapped);
    }
}

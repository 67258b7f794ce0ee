//! Resolving minified frames to their original file, line and function with the host's
//! source maps (getsentry's `sourcemap` crate).
//!
//! A frame in `https://host/assets/app.js` is looked up in `{dir}/assets/app.js.map`, then in
//! `{dir}/app.js.map`. When the minified script itself is in the directory too
//! (`{dir}/assets/app.js`), the original function name is recovered from it (the map alone
//! only names identifiers, not the enclosing function). Only plain path segments are used:
//! `..`, absolute paths and drive letters never leave the directory.
//!
//! Cost bounds, since any holder of the public key can send frames: a frame's URL is reduced to
//! its path (host and query ignored) and the map file it leads to is found with at most two
//! `stat`s, cached ([`LOCATE_ENTRIES`]); parsed maps are cached **by map file**
//! ([`CACHE_ENTRIES`]), so frames from many hosts or directories that fall back to one
//! `{dir}/app.js.map` parse it once; and one batch may parse at most [`COLD_LOADS_PER_BATCH`]
//! maps that are not cached yet — its other frames stay minified (a tester's batch of 50 frames
//! from 50 hosts took 38 s of CPU before). Files over [`MAX_MAP_BYTES`] are ignored.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sourcemap::{DecodedMap, SourceView};

use crate::stack::Frame;

/// Source maps (and minified scripts) larger than this are not loaded.
pub const MAX_MAP_BYTES: u64 = 32 * 1024 * 1024;
/// How many parsed maps (or unreadable map files) are cached, by map file.
pub const CACHE_ENTRIES: usize = 64;
/// The most bytes of map files kept parsed at once (a parsed map takes about 6× its file in
/// memory, so about 400 MiB): the least recently used are dropped past it.
pub const CACHE_BYTES: u64 = 64 << 20;
/// How many script paths are cached with the map file they lead to (or none).
pub const LOCATE_ENTRIES: usize = 4096;
/// How many maps one batch may parse that are not in the cache yet.
pub const COLD_LOADS_PER_BATCH: usize = 4;

struct Loaded {
    map: DecodedMap,
    minified: Option<SourceView>,
}

/// The source maps of one directory.
pub struct SourceMaps {
    dir: PathBuf,
    /// Script path (relative to `dir`) → the map file it resolves to, if any.
    located: Mutex<lru::LruCache<PathBuf, Option<PathBuf>>>,
    /// Map file → its parsed map (`None`: not a readable source map) and the file's size.
    cache: Mutex<Cached>,
    /// Maps parsed so far (for tests and the cost bound).
    parsed: std::sync::atomic::AtomicUsize,
}

struct Cached {
    maps: lru::LruCache<PathBuf, (Option<Arc<Loaded>>, u64)>,
    /// The sum of the cached files' sizes, at most [`CACHE_BYTES`] (but for one map).
    bytes: u64,
}

impl Cached {
    fn get(&mut self, path: &Path) -> Option<Option<Arc<Loaded>>> {
        self.maps.get(path).map(|(m, _)| m.clone())
    }

    fn put(&mut self, path: PathBuf, map: Option<Arc<Loaded>>, size: u64) {
        // `push` hands back what it replaced or evicted at capacity, so `bytes` stays exact.
        if let Some((_, (_, old))) = self.maps.push(path, (map, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > CACHE_BYTES && self.maps.len() > 1 {
            match self.maps.pop_lru() {
                Some((_, (_, s))) => self.bytes -= s,
                None => break,
            }
        }
    }
}

/// One batch's use of [`SourceMaps`]: at most [`COLD_LOADS_PER_BATCH`] maps parsed.
pub struct BatchMaps<'a> {
    maps: &'a SourceMaps,
    cold_loads_left: Cell<usize>,
}

impl BatchMaps<'_> {
    /// [`SourceMaps::resolve`] within this batch's budget of cold loads.
    pub fn resolve(&self, frames: &mut [Frame]) {
        self.maps.resolve_within(frames, &self.cold_loads_left);
    }
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
            located: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(LOCATE_ENTRIES).expect("non-zero"),
            )),
            cache: Mutex::new(Cached {
                maps: lru::LruCache::new(NonZeroUsize::new(CACHE_ENTRIES).expect("non-zero")),
                bytes: 0,
            }),
            parsed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// A batch's handle: resolving through it parses at most [`COLD_LOADS_PER_BATCH`] maps
    /// that are not cached yet.
    pub fn batch(&self) -> BatchMaps<'_> {
        BatchMaps {
            maps: self,
            cold_loads_left: Cell::new(COLD_LOADS_PER_BATCH),
        }
    }

    /// Resolves each frame that has a script URL, line and column and a map; the others are
    /// left as they are. One call counts as one batch (see [`batch`](Self::batch)).
    pub fn resolve(&self, frames: &mut [Frame]) {
        self.batch().resolve(frames);
    }

    fn resolve_within(&self, frames: &mut [Frame], cold_loads_left: &Cell<usize>) {
        for frame in frames {
            let (Some(file), Some(line), Some(col)) = (&frame.file, frame.line, frame.col) else {
                continue;
            };
            if line == 0 || col == 0 {
                continue;
            }
            let Some(loaded) = self.load(file, cold_loads_left) else {
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

    fn load(&self, url: &str, cold_loads_left: &Cell<usize>) -> Option<Arc<Loaded>> {
        let map_path = self.locate(url)?;
        if let Some(hit) = self.cache.lock().get(&map_path) {
            return hit;
        }
        if cold_loads_left.get() == 0 {
            return None; // this batch has parsed its share; the next one may load it
        }
        cold_loads_left.set(cold_loads_left.get() - 1);
        let size = std::fs::metadata(&map_path).map_or(0, |m| m.len());
        let loaded = Self::read(&map_path).map(Arc::new);
        self.parsed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.cache.lock().put(map_path, loaded.clone(), size);
        loaded
    }

    /// The map file a script URL leads to: `{dir}/{path}.map`, else `{dir}/{file name}.map`.
    fn locate(&self, url: &str) -> Option<PathBuf> {
        let rel = relative_path(url)?;
        if let Some(hit) = self.located.lock().get(&rel) {
            return hit.clone();
        }
        let name = rel.file_name()?.to_owned();
        let found = [self.dir.join(&rel), self.dir.join(&name)]
            .into_iter()
            .map(|script| {
                let mut map_path = script.into_os_string();
                map_path.push(".map");
                PathBuf::from(map_path)
            })
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_MAP_BYTES));
        self.located.lock().put(rel, found.clone());
        found
    }

    /// Parses the map at `map_path`, with the minified script beside it if there is one.
    fn read(map_path: &Path) -> Option<Loaded> {
        let bytes = read_capped(map_path)?;
        let Ok(map) = sourcemap::decode_slice(&bytes) else {
            tracing::warn!(path = %map_path.display(), "tracepost ingest: not a source map");
            return None;
        };
        let minified = read_capped(&map_path.with_extension(""))
            .and_then(|b| String::from_utf8(b).ok())
            .map(SourceView::from_string);
        Some(Loaded { map, minified })
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

    fn write_map(dir: &Path, name: &str) {
        let mut builder = sourcemap::SourceMapBuilder::new(Some(name));
        let src = builder.add_source("src/app.js");
        builder.add_raw(0, 0, 4, 2, Some(src), None, false);
        let mut out = Vec::new();
        builder.into_sourcemap().to_writer(&mut out).unwrap();
        std::fs::write(dir.join(format!("{name}.map")), out).unwrap();
    }

    fn frame(url: String) -> Frame {
        Frame {
            file: Some(url),
            line: Some(1),
            col: Some(1),
            ..Frame::default()
        }
    }

    /// The tester's input: 50 frames from 50 hosts (and directories), all falling back to one
    /// `{dir}/app.js.map`, parsed that map 50 times (38 s of CPU for an 8 MB map). Maps are
    /// cached by file now: one parse.
    #[test]
    fn many_hosts_and_directories_parse_one_map_once() {
        let dir = tempfile::tempdir().unwrap();
        write_map(dir.path(), "app.js");
        let maps = SourceMaps::new(dir.path());
        let mut frames: Vec<Frame> = (0..50)
            .map(|i| frame(format!("https://h{i}.example/d{i}/app.js?v={i}")))
            .collect();
        maps.resolve(&mut frames);
        assert!(frames.iter().all(|f| f.mapped && f.line == Some(5)));
        assert_eq!(maps.parsed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// The cache holds at most CACHE_BYTES of map files (a tester filled 1.8 GB with eight
    /// 30 MB maps under the count limit alone).
    #[test]
    fn the_cache_is_bounded_by_bytes() {
        let mut c = Cached {
            maps: lru::LruCache::new(NonZeroUsize::new(CACHE_ENTRIES).unwrap()),
            bytes: 0,
        };
        for i in 0..10u64 {
            c.put(PathBuf::from(format!("m{i}")), None, CACHE_BYTES / 4);
            assert!(c.bytes <= CACHE_BYTES, "{}", c.bytes);
        }
        assert_eq!(c.maps.len(), 4);
        assert!(c.get(Path::new("m9")).is_some() && c.get(Path::new("m0")).is_none());
        // Over the count limit, evictions are accounted for too.
        for i in 0..(CACHE_ENTRIES as u64 + 10) {
            c.put(PathBuf::from(format!("s{i}")), None, 1);
        }
        assert_eq!(c.bytes, c.maps.iter().map(|(_, (_, s))| s).sum::<u64>());
    }

    /// One batch parses at most COLD_LOADS_PER_BATCH uncached maps; the rest of its frames stay
    /// minified, and later batches load the others.
    #[test]
    fn a_batch_parses_a_bounded_number_of_maps() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            write_map(dir.path(), &format!("chunk{i}.js"));
        }
        let maps = SourceMaps::new(dir.path());
        let mut frames: Vec<Frame> = (0..10)
            .map(|i| frame(format!("https://shop.example/chunk{i}.js")))
            .collect();
        maps.resolve(&mut frames);
        let mapped = frames.iter().filter(|f| f.mapped).count();
        assert_eq!(mapped, COLD_LOADS_PER_BATCH);
        assert_eq!(
            maps.parsed.load(std::sync::atomic::Ordering::Relaxed),
            COLD_LOADS_PER_BATCH
        );
        let mut again: Vec<Frame> = (0..10)
            .map(|i| frame(format!("https://shop.example/chunk{i}.js")))
            .collect();
        maps.resolve(&mut again);
        assert_eq!(
            again.iter().filter(|f| f.mapped).count(),
            2 * COLD_LOADS_PER_BATCH
        );
    }
}

//! Object storage for tracepost through [Apache OpenDAL](https://opendal.apache.org/): rrweb
//! replay segments ([`ReplayStore`]) and an hourly NDJSON.gz archive of events
//! ([`ArchiveSink`], a sink) in a local directory (the embedded default, OpenDAL's `fs`
//! service), or S3, MinIO, R2, Ceph (feature `s3`) and Google Cloud Storage (feature `gcs`).
//!
//! Every store gets OpenDAL's retry layer (temporary errors retried with jittered
//! exponential backoff, 3 times by default) and timeout layer (60 s per operation, 10 s
//! without progress on a read or write) on top of the pipeline's own retries.
//!
//! ```no_run
//! use tracepost_opendal::{ArchiveSink, OpendalStore, ReplayStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Under the app's data directory:
//! let store = OpendalStore::fs("./tracepost-data/objects")?;
//! let replays = ReplayStore::new(store.clone());
//! let archive = ArchiveSink::new(store); // add it with `Builder::sink`
//! # let _ = (replays, archive); Ok(()) }
//! ```
//!
//! | feature | what |
//! |---|---|
//! | `s3` | OpenDAL's `s3` service: build an `opendal::services::S3` and pass it to [`OpendalStore::builder`] |
//! | `gcs` | OpenDAL's `gcs` service (`opendal::services::Gcs`) |
//! | `rustls` | HTTPS for the remote services (rustls, webpki roots) |

use std::fmt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use tracepost_core::{SinkError, SinkErrorClass, SinkErrorKind};

pub use opendal;
pub use tracepost_core::object_store::{
    ArchiveSink, Day, InvalidSessionId, ObjectStore, ReplayStore, SegmentKey,
};

/// An [`ObjectStore`] on an OpenDAL [`Operator`] (any of OpenDAL's services), with the
/// retry and timeout layers applied. Cheap to clone (clones share the operator).
#[derive(Clone)]
pub struct OpendalStore {
    op: Operator,
    name: String,
}

impl fmt::Debug for OpendalStore {
    // The operator's config may hold credentials: only the service and its root/bucket.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.op.info();
        f.debug_struct("OpendalStore")
            .field("name", &self.name)
            .field("scheme", &info.scheme().to_string())
            .field("root", &info.root())
            .field("bucket", &info.name())
            .finish()
    }
}

/// Settings for [`OpendalStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct OpendalStoreBuilder {
    op: Operator,
    name: Option<String>,
    retries: usize,
    timeout: Duration,
    io_timeout: Duration,
}

impl OpendalStoreBuilder {
    /// The store's name in logs and as the archive sink's default suffix. Default: the
    /// service's scheme (`fs`, `s3`, …).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many times OpenDAL's retry layer retries a temporary error (jittered exponential
    /// backoff from 100 ms to 2 s). Default 3; 0 leaves retrying to the pipeline.
    pub fn retries(mut self, n: usize) -> Self {
        self.retries = n;
        self
    }

    /// The longest one operation (put, get, list, delete) may take. Default 60 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The longest a read or write may go without progress. Default 10 s.
    pub fn io_timeout(mut self, d: Duration) -> Self {
        self.io_timeout = d;
        self
    }

    /// The store.
    pub fn build(self) -> OpendalStore {
        let name = self
            .name
            .unwrap_or_else(|| self.op.info().scheme().to_string());
        let mut op = self.op.layer(
            TimeoutLayer::new()
                .with_timeout(self.timeout)
                .with_io_timeout(self.io_timeout),
        );
        if self.retries > 0 {
            op = op.layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(self.retries),
            );
        }
        OpendalStore { op, name }
    }
}

impl OpendalStore {
    /// A store in a local directory (created if missing), OpenDAL's `fs` service: the
    /// embedded default, e.g. `<data dir>/objects`. Writes are atomic (written under
    /// `.opendal-tmp/` in the directory, then renamed).
    ///
    /// # Errors
    /// The directory cannot be created, or OpenDAL refuses the configuration.
    pub fn fs(dir: impl AsRef<Path>) -> Result<OpendalStore, opendal::Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            opendal::Error::new(
                ErrorKind::ConfigInvalid,
                "cannot create the store directory",
            )
            .with_context("dir", dir.display())
            .set_source(e)
        })?;
        let root = dir.to_string_lossy();
        let tmp = dir.join(".opendal-tmp");
        let fs = opendal::services::Fs::default()
            .root(&root)
            .atomic_write_dir(&tmp.to_string_lossy());
        Ok(OpendalStore::builder(Operator::new(fs)?.finish()).build())
    }

    /// A store on any OpenDAL operator, e.g. S3 or MinIO (feature `s3`):
    ///
    /// ```no_run
    /// # #[cfg(feature = "s3")] fn f() -> Result<(), opendal::Error> {
    /// use tracepost_opendal::{opendal, OpendalStore};
    ///
    /// let s3 = opendal::services::S3::default()
    ///     .endpoint("http://127.0.0.1:9000") // MinIO; path-style requests are OpenDAL's default
    ///     .region("us-east-1")
    ///     .bucket("tracepost")
    ///     .access_key_id("minio")
    ///     .secret_access_key("minio-secret");
    /// let store = OpendalStore::builder(opendal::Operator::new(s3)?.finish()).build();
    /// # Ok(()) }
    /// ```
    pub fn builder(op: Operator) -> OpendalStoreBuilder {
        OpendalStoreBuilder {
            op,
            name: None,
            retries: 3,
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(10),
        }
    }

    /// The operator (with the layers applied), for anything else OpenDAL can do.
    pub fn operator(&self) -> &Operator {
        &self.op
    }
}

/// Maps an OpenDAL error onto the pipeline's classes: credentials, permissions and a
/// missing bucket are refused (nothing is dropped, delivery resumes once fixed); rate
/// limits, timeouts and everything OpenDAL marks temporary or persistent (retries
/// exhausted) are temporary. Storage never rejects an event for its content, so nothing
/// is permanent.
pub fn sink_error(e: opendal::Error) -> SinkError {
    use SinkErrorClass::{Refused, Temporary};
    let (class, kind) = match e.kind() {
        ErrorKind::PermissionDenied => (Refused, SinkErrorKind::PermissionDenied),
        ErrorKind::NotFound => (Refused, SinkErrorKind::NotFound),
        ErrorKind::ConfigInvalid | ErrorKind::Unsupported => (Refused, SinkErrorKind::Other),
        ErrorKind::RateLimited => (Temporary, SinkErrorKind::RateLimited),
        _ if e.to_string().contains("timeout") => (Temporary, SinkErrorKind::Timeout),
        _ => (Temporary, SinkErrorKind::Unavailable),
    };
    SinkError::new(class, kind, e.to_string()).with_source(e)
}

impl ObjectStore for OpendalStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<(), SinkError> {
        self.op
            .write_with(key, body)
            .content_type(content_type)
            .await
            .map(drop)
            .map_err(sink_error)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        match self.op.read(key).await {
            Ok(buf) => Ok(Some(buf.to_bytes())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sink_error(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let entries = match self.op.list_with(prefix).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(sink_error(e)),
        };
        let mut keys: Vec<String> = entries
            .into_iter()
            .filter(|e| e.metadata().mode().is_file() && !e.path().ends_with('/'))
            .map(|e| e.path().to_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let entries = match self.op.list(prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(sink_error(e)),
        };
        let mut dirs: Vec<String> = entries
            .into_iter()
            .filter(|e| e.path().ends_with('/') && e.path() != prefix)
            .map(|e| e.path().to_owned())
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), SinkError> {
        self.op
            .delete_iter(keys.iter().map(String::as_str))
            .await
            .map_err(sink_error)
    }
}

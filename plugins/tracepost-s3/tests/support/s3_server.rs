//! A real S3-compatible server for tests: s3s-fs (an S3 implementation on a local
//! directory) served in-process over HTTP on 127.0.0.1, with SigV4 authentication, and an
//! access gate the test can flip to answer every request with 403 AccessDenied or 503
//! ServiceUnavailable, as S3 does for revoked keys and overload. Behind a `TcpProxy` for
//! outages (connections refused).
//!
//! Shared by `tracepost-s3` and `tracepost-opendal`'s tests (`#[path]`-included).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Result};

pub const ACCESS_KEY: &str = "AKIDTRACEPOSTTEST";
pub const SECRET_KEY: &str = "tracepost-test-secret-key-do-not-log";
pub const BUCKET: &str = "tracepost";

/// What the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Serves requests.
    Serve = 0,
    /// 403 AccessDenied to everything (a revoked key, a removed grant).
    Deny = 1,
    /// 503 ServiceUnavailable to everything (overload).
    Unavailable = 2,
}

struct Gate(Arc<AtomicU8>);

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        match self.0.load(Ordering::SeqCst) {
            1 => Err(s3_error!(AccessDenied, "access denied by the test")),
            2 => Err(s3_error!(ServiceUnavailable, "overloaded (test)")),
            _ if cx.credentials().is_none() => Err(s3_error!(AccessDenied, "anonymous")),
            _ => Ok(()),
        }
    }
}

pub struct S3Server {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The directory holding the buckets (bucket = subdirectory).
    pub root: tempfile::TempDir,
    mode: Arc<AtomicU8>,
}

impl S3Server {
    /// Starts a server with the bucket [`BUCKET`] created.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mode = Arc::new(AtomicU8::new(Mode::Serve as u8));
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.set_access(Gate(mode.clone()));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        S3Server { addr, root, mode }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The file s3s-fs keeps an object's bytes in.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

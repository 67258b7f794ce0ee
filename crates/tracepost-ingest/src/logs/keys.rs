//! Project API keys for the server-to-server routes, and HMAC request signing.
//!
//! A key is `tpk_` and 64 lowercase hex digits (256 random bits). Its first
//! [`PREFIX_LEN`] characters (`tpk_` and 8 hex digits) are its public **prefix**: stored in
//! clear, used to look it up and to tell keys apart. The key itself is stored only as its
//! SHA-256 hash and shown once, at creation. A project may hold several keys, so a rotation
//! creates the new key, deploys it, then revokes the old one.
//!
//! **Signing.** A signed request sends, instead of (or besides) the whole key:
//!
//! - `x-tracepost-key: <prefix or whole key>`
//! - `x-tracepost-timestamp: <Unix seconds>`
//! - `x-tracepost-signature: v1=<hex HMAC-SHA256(SHA-256(key), "<timestamp>.<raw body>")>`
//!
//! The HMAC key is the 32-byte SHA-256 digest of the API key (what the store keeps), so a
//! signed request never carries the secret; the raw body is the bytes as sent (gzipped if
//! sent gzipped). The timestamp must be within [`SIGNATURE_TOLERANCE`] of the server's
//! clock (else `401 stale`). Whoever reads the key store can sign: protect it like the keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::IngestError;

/// The length of a key's public prefix: `tpk_` and 8 hex digits.
pub const PREFIX_LEN: usize = 12;
/// How far a signature's timestamp may be from the server's clock: 5 minutes, as Stripe and
/// Slack allow.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// A boxed, sendable future (what [`KeyStore`]'s methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stored key, as the ingest needs it (never the key itself).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's id in its store.
    pub id: i64,
    /// The name of the project it belongs to.
    pub project: String,
    /// Its public prefix ([`PREFIX_LEN`] characters).
    pub prefix: String,
    /// SHA-256 of the key: compared with the presented key's hash, and the HMAC key.
    pub hash: [u8; 32],
    /// Whether its requests must be signed.
    pub require_signature: bool,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("prefix", &self.prefix)
            .field("require_signature", &self.require_signature)
            .finish_non_exhaustive()
    }
}

/// Where keys live: the Postgres store (`tracepost-postgres`'s `PgKeyStore`), the embedded
/// store, or [`StaticKeys`] for keys from configuration.
pub trait KeyStore: Send + Sync + 'static {
    /// The unrevoked keys with this prefix (usually one). `Err` is a store outage: the
    /// request gets `503 key_store_unavailable` (retryable).
    fn by_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<KeyRecord>, String>>;
    /// Records when keys were last used (called in the background, batched).
    fn touch(&self, used: Vec<(i64, SystemTime)>) -> BoxFuture<'_, Result<(), String>>;
}

/// Keys given in configuration (kept in memory; last use is not recorded).
#[derive(Debug, Clone, Default)]
pub struct StaticKeys {
    keys: Arc<Vec<KeyRecord>>,
}

impl StaticKeys {
    /// Keys `(project, key)`; keys that are not `tpk_` + 64 hex digits are skipped with a
    /// warning.
    pub fn new<P: Into<String>, K: AsRef<str>>(
        keys: impl IntoIterator<Item = (P, K)>,
        require_signature: bool,
    ) -> Self {
        let mut out = Vec::new();
        for (i, (project, key)) in keys.into_iter().enumerate() {
            let key = key.as_ref();
            if !is_well_formed(key) {
                tracing::warn!(
                    "tracepost: skipping a configured API key that is not tpk_ and 64 hex digits"
                );
                continue;
            }
            out.push(KeyRecord {
                id: i as i64,
                project: project.into(),
                prefix: key[..PREFIX_LEN].to_owned(),
                hash: hash(key),
                require_signature,
            });
        }
        StaticKeys {
            keys: Arc::new(out),
        }
    }
}

impl KeyStore for StaticKeys {
    fn by_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<KeyRecord>, String>> {
        let found = self
            .keys
            .iter()
            .filter(|k| k.prefix == prefix)
            .cloned()
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn touch(&self, _used: Vec<(i64, SystemTime)>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// Checks a project name before a project is created (the admin API, `tracepost keys`):
/// not empty or only whitespace, and no control characters (they would forge lines in
/// logs and terminals). `Err` says which, for a `400` / a CLI error.
pub fn check_project_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a project name must not be empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "a project name must not contain control characters (found {:?})",
            c
        ));
    }
    Ok(())
}

/// A new random key: `tpk_` and 64 lowercase hex digits.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("tpk_{}", hex::encode(bytes))
}

/// SHA-256 of a key.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `key` is `tpk_` and 64 hex digits.
pub fn is_well_formed(key: &str) -> bool {
    key.len() == 68 && key.starts_with("tpk_") && key[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `v1=` signature of `body` sent at `timestamp` (Unix seconds) with the key whose hash
/// is `key_hash`: what clients compute.
pub fn sign(key_hash: &[u8; 32], timestamp: u64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key_hash)
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a request's signature headers against `body` (read whole, within its limit, before
/// this is called). Errors (all `401`): `missing_signature`, `invalid_signature` (malformed
/// or wrong), `stale` (timestamp more than [`SIGNATURE_TOLERANCE`] away from `now`).
pub fn verify(
    key_hash: &[u8; 32],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), IngestError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(IngestError::unauthorized(
            "missing_signature",
            "this key requires signed requests (x-tracepost-timestamp and x-tracepost-signature)",
        ));
    };
    let ts: u64 = ts.trim().parse().map_err(|_| {
        IngestError::unauthorized(
            "invalid_signature",
            "x-tracepost-timestamp must be Unix seconds",
        )
    })?;
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if ts.abs_diff(now_s) > SIGNATURE_TOLERANCE.as_secs() {
        return Err(IngestError::unauthorized(
            "stale",
            format!(
                "stale: the signature's timestamp is {} s from the server's clock (at most {} s allowed)",
                ts.abs_diff(now_s),
                SIGNATURE_TOLERANCE.as_secs()
            ),
        ));
    }
    let given = sig
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| {
            IngestError::unauthorized(
                "invalid_signature",
                "x-tracepost-signature must be v1= and 64 hex digits",
            )
        })?;
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key_hash)
        .expect("HMAC takes keys of any length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| {
        IngestError::unauthorized(
            "invalid_signature",
            "the signature does not match the body and timestamp",
        )
    })
}

/// Finds the record of a presented key (whole key, or prefix for a signed request) among
/// `records`, comparing hashes in constant time. `Some((record, whole_key_given))`.
pub fn matching<'a>(presented: &str, records: &'a [KeyRecord]) -> Option<(&'a KeyRecord, bool)> {
    if presented.len() == PREFIX_LEN {
        // Only the prefix: the signature must prove the key. A prefix shared by two keys
        // (one chance in 2^32) is ambiguous: refused.
        return match records {
            [one] => Some((one, false)),
            _ => None,
        };
    }
    let h = hash(presented);
    records
        .iter()
        .find(|r| bool::from(r.hash.ct_eq(&h)))
        .map(|r| (r, true))
}

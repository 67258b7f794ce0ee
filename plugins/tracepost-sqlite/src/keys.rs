//! Projects and API keys in the SQLite file (feature `ingest`), as the Postgres store keeps
//! them: keys are `tpk_` and 64 hex digits (256 random bits), shown once and stored only as
//! SHA-256 hashes; their first 12 characters (the prefix) are stored in clear to look them up
//! and tell them apart. A project may hold several keys, so a rotation overlaps:
//! [`SqliteStore::rotate_api_key`] creates the new key and leaves the old one valid until
//! [`SqliteStore::revoke_api_key`]. [`SqliteStore`] is a [`KeyStore`] for the log routes of
//! `tracepost-ingest`, which records last use in the background.
//!
//! Tables: `projects (id, name UNIQUE, created_at)` and `api_keys (id, project_id, key_hash
//! UNIQUE, prefix, require_signature, created_at, last_used_at, revoked_at)`, times in Unix
//! microseconds; an index on `prefix` for the unrevoked keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension};
use tracepost_core::store::StoreError;
use tracepost_ingest::logs::keys::{self, BoxFuture, KeyRecord, KeyStore, PREFIX_LEN};

use crate::store::store_error;
use crate::SqliteStore;

/// A project: the owner of API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
}

/// A newly created API key. `key` is the only copy of the secret: show it once.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKey {
    /// The key's id (to rotate or revoke it).
    pub id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// The secret (`tpk_` and 64 hex digits).
    pub key: String,
    /// Its first 12 characters, stored in clear to tell keys apart.
    pub prefix: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A stored key as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyInfo {
    /// The key's id.
    pub id: i64,
    /// The project's name.
    pub project: String,
    /// Its first 12 characters (`tpk_` and 8 hex digits).
    pub prefix: String,
    /// Whether its requests must be signed.
    pub require_signature: bool,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was last used (stored in the background by the ingest, not per request).
    pub last_used_at: Option<SystemTime>,
    /// When it was revoked.
    pub revoked_at: Option<SystemTime>,
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn time(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

fn now() -> i64 {
    micros(SystemTime::now())
}

impl SqliteStore {
    /// Creates a project. Errors: the name is taken (`StoreError::Other`), the file cannot
    /// be opened (`Unavailable`).
    pub async fn create_project(&self, name: &str) -> Result<Project, StoreError> {
        let name = name.to_owned();
        self.write_with(move |c| {
            c.execute(
                "INSERT INTO projects (name, created_at) VALUES (?1, ?2)",
                params![name, now()],
            )?;
            Ok(Project {
                id: c.last_insert_rowid(),
                name,
            })
        })
        .await
    }

    /// The project named `name`.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT id, name FROM projects WHERE name = ?1",
                [name],
                |r| {
                    Ok(Project {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(store_error)
        })
        .await
    }

    /// Creates an API key for a project. The returned [`ApiKey::key`] is never stored.
    pub async fn create_api_key(&self, project_id: i64) -> Result<ApiKey, StoreError> {
        self.create_api_key_with(project_id, false).await
    }

    /// Creates an API key whose requests must be signed when `require_signature`.
    pub async fn create_api_key_with(
        &self,
        project_id: i64,
        require_signature: bool,
    ) -> Result<ApiKey, StoreError> {
        let key = keys::generate();
        let prefix = key[..PREFIX_LEN].to_owned();
        let hash = keys::hash(&key).to_vec();
        let stored_prefix = prefix.clone();
        let id = self
            .write_with(move |c| {
                c.execute(
                    "INSERT INTO api_keys (project_id, key_hash, prefix, require_signature, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![project_id, hash, stored_prefix, require_signature, now()],
                )?;
                Ok(c.last_insert_rowid())
            })
            .await?;
        Ok(ApiKey {
            id,
            project_id,
            key,
            prefix,
        })
    }

    /// Revokes a key; false when there was no such unrevoked key.
    pub async fn revoke_api_key(&self, key_id: i64) -> Result<bool, StoreError> {
        self.write_with(move |c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![key_id, now()],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// A new key for the project of key `key_id` (same signing setting); the old key stays
    /// valid until revoked, so senders can switch over. `None` when `key_id` is unknown or
    /// revoked.
    pub async fn rotate_api_key(&self, key_id: i64) -> Result<Option<ApiKey>, StoreError> {
        let row = self
            .read(move |c| {
                c.query_row(
                    "SELECT project_id, require_signature FROM api_keys
                     WHERE id = ?1 AND revoked_at IS NULL",
                    [key_id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
                )
                .optional()
                .map_err(store_error)
            })
            .await?;
        match row {
            Some((project, signed)) => Ok(Some(self.create_api_key_with(project, signed).await?)),
            None => Ok(None),
        }
    }

    /// The keys of a project (revoked ones too), oldest first.
    pub async fn list_api_keys(&self, project_id: i64) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT k.id, p.name, k.prefix, k.require_signature, k.created_at,
                            k.last_used_at, k.revoked_at
                     FROM api_keys k JOIN projects p ON p.id = k.project_id
                     WHERE k.project_id = ?1 ORDER BY k.id",
                )
                .map_err(store_error)?;
            let rows = stmt
                .query_map([project_id], |r| {
                    Ok(ApiKeyInfo {
                        id: r.get(0)?,
                        project: r.get(1)?,
                        prefix: r.get(2)?,
                        require_signature: r.get(3)?,
                        created_at: time(r.get(4)?),
                        last_used_at: r.get::<_, Option<i64>>(5)?.map(time),
                        revoked_at: r.get::<_, Option<i64>>(6)?.map(time),
                    })
                })
                .map_err(store_error)?;
            rows.collect::<Result<_, _>>().map_err(store_error)
        })
        .await
    }

    /// The unrevoked keys whose prefix is `prefix` (what the ingest looks up).
    pub async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT k.id, p.name, k.prefix, k.key_hash, k.require_signature
                     FROM api_keys k JOIN projects p ON p.id = k.project_id
                     WHERE k.prefix = ?1 AND k.revoked_at IS NULL",
                )
                .map_err(store_error)?;
            let rows = stmt
                .query_map([prefix], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                })
                .map_err(store_error)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, project, prefix, hash, require_signature) = row.map_err(store_error)?;
                // A hash that is not 32 bytes cannot match any key: skipped.
                if let Ok(hash) = <[u8; 32]>::try_from(hash) {
                    out.push(KeyRecord {
                        id,
                        project,
                        prefix,
                        hash,
                        require_signature,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    /// Records keys' last use (`(id, when)`), in one transaction; a time earlier than the
    /// stored one is ignored.
    pub async fn touch_api_keys(&self, used: Vec<(i64, SystemTime)>) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.write_with(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2)
                     WHERE id = ?1",
                )?;
                for (id, at) in &used {
                    stmt.execute(params![id, micros(*at)])?;
                }
            }
            tx.commit()
        })
        .await
    }
}

impl KeyStore for SqliteStore {
    fn by_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<KeyRecord>, String>> {
        Box::pin(async move {
            self.api_keys_by_prefix(prefix)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn touch(&self, used: Vec<(i64, SystemTime)>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.touch_api_keys(used).await.map_err(|e| e.to_string()) })
    }
}

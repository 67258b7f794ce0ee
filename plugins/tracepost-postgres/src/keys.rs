//! Projects and API keys (for the log routes of `tracepost-ingest`). Keys are `tpk_` and 64
//! hex digits (256 random bits), shown once, and stored only as SHA-256 hashes; their first
//! 12 characters (the prefix) are stored in clear to look them up and tell them apart. A
//! project may hold several keys, so a rotation overlaps: [`PgStore::rotate_api_key`]
//! creates the new key and leaves the old one valid until [`PgStore::revoke_api_key`].

use sha2::{Digest, Sha256};

use crate::error::PgError;
use crate::store::PgStore;

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
    /// The key's id (to revoke it).
    pub id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// The secret (`tpk_` and 64 hex digits).
    pub key: String,
    /// Its first characters, stored in clear to tell keys apart.
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

/// The length of a key's prefix: `tpk_` and 8 hex digits.
const PREFIX_LEN: usize = 12;

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
    pub created_at: std::time::SystemTime,
    /// When it was last used (updated in the background by the ingest, not per request).
    pub last_used_at: Option<std::time::SystemTime>,
    /// When it was revoked.
    pub revoked_at: Option<std::time::SystemTime>,
}

/// An unrevoked key found by its prefix, as the ingest checks it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredKey {
    /// The key's id.
    pub id: i64,
    /// The project's name.
    pub project: String,
    /// The key's prefix.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// Whether its requests must be signed.
    pub require_signature: bool,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl PgStore {
    /// Creates a project.
    pub async fn create_project(&self, name: &str) -> Result<Project, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("INSERT INTO {s}.projects (name) VALUES ($1) RETURNING id"),
                &[&name],
            )
            .await?;
        Ok(Project {
            id: row.get(0),
            name: name.to_owned(),
        })
    }

    /// Creates an API key for a project. The returned [`ApiKey::key`] is never stored.
    pub async fn create_api_key(&self, project_id: i64) -> Result<ApiKey, PgError> {
        self.create_api_key_with(project_id, false).await
    }

    /// Creates an API key whose requests must be signed when `require_signature`.
    pub async fn create_api_key_with(
        &self,
        project_id: i64,
        require_signature: bool,
    ) -> Result<ApiKey, PgError> {
        let bytes: [u8; 32] = rand::random();
        let key = format!("tpk_{}", tracepost_core::trace_context::Hex(&bytes));
        let prefix = key[..PREFIX_LEN].to_owned();
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {s}.api_keys (project_id, key_hash, prefix, require_signature) \
                     VALUES ($1, $2, $3, $4) RETURNING id"
                ),
                &[&project_id, &hash(&key), &prefix, &require_signature],
            )
            .await?;
        Ok(ApiKey {
            id: row.get(0),
            project_id,
            key,
            prefix,
        })
    }

    /// The project of a valid, unrevoked key (and records its use); `None` otherwise.
    pub async fn verify_api_key(&self, key: &str) -> Result<Option<Project>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE {s}.api_keys k SET last_used_at = now() FROM {s}.projects p
                     WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND p.id = k.project_id
                     RETURNING p.id, p.name"
                ),
                &[&hash(key)],
            )
            .await?;
        Ok(row.map(|r| Project {
            id: r.get(0),
            name: r.get(1),
        }))
    }

    /// Revokes a key; false when there was no such unrevoked key.
    pub async fn revoke_api_key(&self, key_id: i64) -> Result<bool, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let n = client
            .execute(
                &format!(
                    "UPDATE {s}.api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
                ),
                &[&key_id],
            )
            .await?;
        Ok(n > 0)
    }

    /// The project named `name`.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT id, name FROM {s}.projects WHERE name = $1"),
                &[&name],
            )
            .await?;
        Ok(row.map(|r| Project {
            id: r.get(0),
            name: r.get(1),
        }))
    }

    /// The keys of a project (revoked ones too), oldest first.
    pub async fn list_api_keys(&self, project_id: i64) -> Result<Vec<ApiKeyInfo>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT k.id, p.name, k.prefix, k.require_signature, \
                     extract(epoch FROM k.created_at)::float8, \
                     extract(epoch FROM k.last_used_at)::float8, \
                     extract(epoch FROM k.revoked_at)::float8 \
                     FROM {s}.api_keys k JOIN {s}.projects p ON p.id = k.project_id \
                     WHERE k.project_id = $1 ORDER BY k.id"
                ),
                &[&project_id],
            )
            .await?;
        let time =
            |secs: f64| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs.max(0.0));
        Ok(rows
            .iter()
            .map(|r| ApiKeyInfo {
                id: r.get(0),
                project: r.get(1),
                prefix: r.get(2),
                require_signature: r.get(3),
                created_at: time(r.get(4)),
                last_used_at: r.get::<_, Option<f64>>(5).map(time),
                revoked_at: r.get::<_, Option<f64>>(6).map(time),
            })
            .collect())
    }

    /// A new key for the project of key `key_id` (same signing setting); the old key stays
    /// valid until revoked, so senders can switch over. `None` when `key_id` is unknown or
    /// revoked.
    pub async fn rotate_api_key(&self, key_id: i64) -> Result<Option<ApiKey>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT project_id, require_signature FROM {s}.api_keys \
                     WHERE id = $1 AND revoked_at IS NULL"
                ),
                &[&key_id],
            )
            .await?;
        drop(client);
        match row {
            Some(r) => Ok(Some(self.create_api_key_with(r.get(0), r.get(1)).await?)),
            None => Ok(None),
        }
    }

    /// The unrevoked keys whose prefix is `prefix` (what the ingest looks up).
    pub async fn api_keys_by_prefix(&self, prefix: &str) -> Result<Vec<StoredKey>, PgError> {
        let s = self.schema();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT k.id, p.name, k.prefix, k.key_hash, k.require_signature \
                     FROM {s}.api_keys k JOIN {s}.projects p ON p.id = k.project_id \
                     WHERE k.prefix = $1 AND k.revoked_at IS NULL"
                ),
                &[&prefix],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let h: Vec<u8> = r.get(3);
                Some(StoredKey {
                    id: r.get(0),
                    project: r.get(1),
                    prefix: r.get(2),
                    hash: h.try_into().ok()?,
                    require_signature: r.get(4),
                })
            })
            .collect())
    }

    /// Records keys' last use (`(id, when)`, Unix time), one statement for all.
    pub async fn touch_api_keys(
        &self,
        used: &[(i64, std::time::SystemTime)],
    ) -> Result<(), PgError> {
        if used.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = used.iter().map(|(id, _)| *id).collect();
        let at: Vec<f64> = used
            .iter()
            .map(|(_, t)| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            })
            .collect();
        let s = self.schema();
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {s}.api_keys k SET last_used_at = greatest(k.last_used_at, to_timestamp(u.at)) \
                     FROM unnest($1::int8[], $2::float8[]) AS u(id, at) WHERE k.id = u.id"
                ),
                &[&ids, &at],
            )
            .await?;
        Ok(())
    }
}

#[cfg(feature = "ingest")]
impl tracepost_ingest::logs::KeyStore for PgStore {
    fn by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> tracepost_ingest::logs::keys::BoxFuture<
        'a,
        Result<Vec<tracepost_ingest::logs::KeyRecord>, String>,
    > {
        Box::pin(async move {
            let keys = self
                .api_keys_by_prefix(prefix)
                .await
                .map_err(|e| e.to_string())?;
            Ok(keys
                .into_iter()
                .map(|k| tracepost_ingest::logs::KeyRecord {
                    id: k.id,
                    project: k.project,
                    prefix: k.prefix,
                    hash: k.hash,
                    require_signature: k.require_signature,
                })
                .collect())
        })
    }

    fn touch(
        &self,
        used: Vec<(i64, std::time::SystemTime)>,
    ) -> tracepost_ingest::logs::keys::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.touch_api_keys(&used).await.map_err(|e| e.to_string()) })
    }
}

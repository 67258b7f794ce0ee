//! Projects and API keys (for an ingest API). Keys are random, shown once, and stored only
//! as SHA-256 hashes.

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
    /// The secret (`tp_` and 64 hex digits).
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
        let bytes: [u8; 32] = rand::random();
        let key = format!("tp_{}", tracepost_core::trace_context::Hex(&bytes));
        let prefix = key[..11].to_owned();
        let s = self.schema();
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {s}.api_keys (project_id, key_hash, prefix) VALUES ($1, $2, $3) \
                     RETURNING id"
                ),
                &[&project_id, &hash(&key), &prefix],
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
}

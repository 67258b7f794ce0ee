//! Signed short-lived upload tokens.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))` (no padding),
//! where the payload is `v1\n{project}\n{expires, Unix seconds}\n{origin}`. The origin is the
//! page's (`https://shop.example.com`), or empty for "the host serving the routes". The
//! signature is checked in constant time against each configured secret (two during a
//! rotation), then the project, the expiry and the origin.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::config::Secret;
use crate::error::IngestError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The longest token accepted (longer ones are refused before decoding).
pub const MAX_TOKEN_LEN: usize = 1024;

/// A freshly minted token, as the token route answers it:
/// `{"token": "…", "expires_at": "2026-11-29T19:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadToken {
    /// The token, for `data-token` or `?token=` / `x-tracepost-token`.
    pub token: String,
    /// When it stops being accepted (RFC 3339, UTC, whole seconds).
    pub expires_at: String,
}

/// Mints and verifies upload tokens for one project.
#[derive(Clone)]
pub struct TokenSigner {
    project: String,
    secrets: Vec<Secret>,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("project", &self.project)
            .field("secrets", &self.secrets.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenSigner {
    /// A signer for `project` with `secrets` (the first signs; all verify) and tokens valid
    /// for `ttl`.
    pub fn new(project: impl Into<String>, secrets: Vec<Secret>, ttl: Duration) -> Self {
        TokenSigner {
            project: project.into(),
            secrets,
            ttl,
        }
    }

    /// Whether a secret is configured (else no token can be minted or verified).
    pub fn is_enabled(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// A token for pages of `origin` (empty: the host serving the routes), valid from `now`
    /// for the configured time to live. `None` when no secret is configured.
    pub fn mint_at(&self, origin: &str, now: SystemTime) -> Option<UploadToken> {
        let secret = self.secrets.first()?;
        let expires = unix(now) + self.ttl.as_secs().max(1);
        let payload = format!("v1\n{}\n{expires}\n{origin}", self.project);
        let mut mac = HmacSha256::new_from_slice(secret.expose()).ok()?;
        mac.update(payload.as_bytes());
        let sig = mac.finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(sig)
        );
        let expires_at =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires))
                .to_string();
        Some(UploadToken { token, expires_at })
    }

    /// [`TokenSigner::mint_at`] now.
    pub fn mint(&self, origin: &str) -> Option<UploadToken> {
        self.mint_at(origin, SystemTime::now())
    }

    /// Checks `token` at `now` for a request from `origin` (the `Origin` header; `None` when
    /// absent) to a host named `host` (the `Host` header). Errors: `401 invalid_token`
    /// (malformed, bad signature, another project, another origin) or `401 expired_token`.
    pub fn verify_at(
        &self,
        token: &str,
        origin: Option<&str>,
        host: Option<&str>,
        now: SystemTime,
    ) -> Result<(), IngestError> {
        let invalid = |why: &str| IngestError::unauthorized("invalid_token", why.to_owned());
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("the upload token is too long"));
        }
        let (payload_b64, sig_b64) = token
            .split_once('.')
            .ok_or_else(|| invalid("the upload token is malformed"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| invalid("the upload token is malformed"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| invalid("the upload token is malformed"))?;
        let signed = self.secrets.iter().any(|secret| {
            let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose()) else {
                return false;
            };
            mac.update(&payload);
            // `verify_slice` compares in constant time (`subtle`).
            mac.verify_slice(&sig).is_ok()
        });
        if !signed {
            return Err(invalid("the upload token's signature does not match"));
        }
        let payload =
            std::str::from_utf8(&payload).map_err(|_| invalid("the upload token is malformed"))?;
        let mut parts = payload.splitn(4, '\n');
        let (Some("v1"), Some(project), Some(expires), Some(token_origin)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("the upload token is malformed"));
        };
        if project != self.project {
            return Err(invalid("the upload token is for another project"));
        }
        let expires: u64 = expires
            .parse()
            .map_err(|_| invalid("the upload token is malformed"))?;
        if unix(now) >= expires {
            return Err(IngestError::unauthorized(
                "expired_token",
                "the upload token has expired: fetch a fresh one",
            ));
        }
        let origin_ok = if token_origin.is_empty() {
            // Minted for the host serving the routes: a same-origin page.
            origin.is_none_or(|o| crate::origin::same_host(o, host))
        } else {
            origin == Some(token_origin)
        };
        if !origin_ok {
            return Err(invalid("the upload token was minted for another origin"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef-a";
    const B: &str = "0123456789abcdef0123456789abcdef-b";

    fn signer(secrets: &[&str]) -> TokenSigner {
        TokenSigner::new(
            "shop",
            secrets.iter().map(|s| Secret::new(*s)).collect(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip_expiry_tamper_rotation_origin() {
        let now = SystemTime::now();
        let old = signer(&[A]);
        let t = old.mint_at("https://shop.example", now).unwrap();
        let o = Some("https://shop.example");
        old.verify_at(&t.token, o, None, now).unwrap();
        // Rotation: the new signer signs with B and still verifies A's tokens.
        let rotated = signer(&[B, A]);
        rotated.verify_at(&t.token, o, None, now).unwrap();
        let t2 = rotated.mint_at("https://shop.example", now).unwrap();
        assert_eq!(
            old.verify_at(&t2.token, o, None, now).unwrap_err().code(),
            "invalid_token"
        );
        // Expired.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            old.verify_at(&t.token, o, None, later).unwrap_err().code(),
            "expired_token"
        );
        // Another origin.
        assert_eq!(
            old.verify_at(&t.token, Some("https://evil.example"), None, now)
                .unwrap_err()
                .code(),
            "invalid_token"
        );
        // Tampered: the payload re-encoded with a later expiry keeps the old signature.
        let (_, sig) = t.token.split_once('.').unwrap();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(format!("v1\nshop\n{}\nhttps://shop.example", u64::MAX))
        );
        assert_eq!(
            old.verify_at(&forged, o, None, now).unwrap_err().code(),
            "invalid_token"
        );
        // Same-host tokens.
        let same = old.mint_at("", now).unwrap();
        old.verify_at(&same.token, None, Some("shop.example"), now)
            .unwrap();
        old.verify_at(
            &same.token,
            Some("https://shop.example"),
            Some("shop.example"),
            now,
        )
        .unwrap();
        assert!(old
            .verify_at(
                &same.token,
                Some("https://evil.example"),
                Some("shop.example"),
                now
            )
            .is_err());
    }
}

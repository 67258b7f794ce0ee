//! The admin HTTP API of project API keys (feature `admin`): an axum [`Router`] behind an
//! admin token (`Authorization: Bearer <token>`, compared in constant time).
//!
//! | route | answers |
//! | --- | --- |
//! | `POST /admin/projects/{name}/keys` (body `{"require_signature": true}` optional) | `201 {"id", "project", "prefix", "key"}`: the key, shown once (the project is created if new) |
//! | `GET /admin/projects/{name}/keys` | `200 {"keys": [{"id", "prefix", "require_signature", "created_at", "last_used_at", "revoked_at"}]}` |
//! | `POST /admin/keys/{id}/rotate` | `201` a new key for the same project; the old stays valid until revoked |
//! | `POST /admin/keys/{id}/revoke` | `200 {"revoked": id}` |
//!
//! Errors use the ingest error body (`{"error": {"status", "code", "message"}}`): `401
//! missing_admin_token` / `invalid_admin_token`, `404 not_found`, `503 store_unavailable`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracepost_ingest::IngestError;

use crate::{ApiKey, PgStore};

#[derive(Clone)]
struct Admin {
    store: PgStore,
    token_hash: [u8; 32],
}

/// The admin routes over `store`, for requests bearing `admin_token`.
pub fn router(store: PgStore, admin_token: &str) -> Router {
    let admin = Admin {
        store,
        token_hash: Sha256::digest(admin_token.as_bytes()).into(),
    };
    Router::new()
        .route(
            "/admin/projects/{name}/keys",
            post(create_key).get(list_keys),
        )
        .route("/admin/keys/{id}/rotate", post(rotate_key))
        .route("/admin/keys/{id}/revoke", post(revoke_key))
        // tracepost's own routes (`OwnRoute`): not recorded as app requests by the layer.
        .route_layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.extensions_mut().insert(tracepost_core::capture::OwnRoute);
                r
            },
        ))
        .with_state(admin)
}

fn err(e: IngestError) -> Response {
    let r = e.to_response();
    let (parts, body) = r.into_parts();
    (parts.status, parts.headers, body).into_response()
}

fn unavailable(e: crate::PgError) -> Response {
    tracing::warn!(error = %e, "tracepost admin: store error");
    err(IngestError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the key store is unavailable",
    ))
}

fn not_found(what: String) -> Response {
    err(IngestError::new(StatusCode::NOT_FOUND, "not_found", what))
}

fn check(admin: &Admin, headers: &HeaderMap) -> Result<(), IngestError> {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(IngestError::unauthorized(
            "missing_admin_token",
            "Authorization: Bearer <admin token> is required",
        ));
    };
    let given: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    // Constant time: fold over every byte.
    let diff = given
        .iter()
        .zip(admin.token_hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(IngestError::unauthorized(
            "invalid_admin_token",
            "the admin token is wrong",
        ));
    }
    Ok(())
}

fn created(project: &str, k: &ApiKey) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": k.id, "project": project, "prefix": k.prefix, "key": k.key})),
    )
        .into_response()
}

fn rfc3339(t: Option<std::time::SystemTime>) -> Value {
    t.map_or(Value::Null, |t| {
        humantime::format_rfc3339_millis(t).to_string().into()
    })
}

async fn create_key(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = check(&admin, &headers) {
        return err(e);
    }
    let require_signature = if body.is_empty() {
        false
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => match m.get("require_signature") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return err(IngestError::invalid_field(
                        "/require_signature",
                        "must be a boolean",
                    ))
                }
            },
            Ok(_) => return err(IngestError::invalid_field("", "must be a JSON object")),
            Err(e) => return err(IngestError::malformed_json(e.to_string())),
        }
    };
    let project = match admin.store.project_by_name(&name).await {
        Ok(Some(p)) => p,
        Ok(None) => match tracepost_ingest::logs::keys::check_project_name(&name) {
            Err(why) => return err(IngestError::invalid_field("/name", why)),
            Ok(()) => match admin.store.create_project(&name).await {
                Ok(p) => p,
                Err(e) => return unavailable(e),
            },
        },
        Err(e) => return unavailable(e),
    };
    match admin
        .store
        .create_api_key_with(project.id, require_signature)
        .await
    {
        Ok(k) => created(&project.name, &k),
        Err(e) => unavailable(e),
    }
}

async fn list_keys(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = check(&admin, &headers) {
        return err(e);
    }
    let project = match admin.store.project_by_name(&name).await {
        Ok(Some(p)) => p,
        Ok(None) => return not_found(format!("no project {name:?}")),
        Err(e) => return unavailable(e),
    };
    match admin.store.list_api_keys(project.id).await {
        Ok(keys) => axum::Json(json!({"keys": keys.iter().map(|k| json!({
            "id": k.id, "prefix": k.prefix, "require_signature": k.require_signature,
            "created_at": rfc3339(Some(k.created_at)), "last_used_at": rfc3339(k.last_used_at),
            "revoked_at": rfc3339(k.revoked_at),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn rotate_key(
    State(admin): State<Admin>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = check(&admin, &headers) {
        return err(e);
    }
    match admin.store.rotate_api_key(id).await {
        Ok(Some(k)) => created("", &k),
        Ok(None) => not_found(format!("no unrevoked key {id}")),
        Err(e) => unavailable(e),
    }
}

async fn revoke_key(
    State(admin): State<Admin>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = check(&admin, &headers) {
        return err(e);
    }
    match admin.store.revoke_api_key(id).await {
        Ok(true) => axum::Json(json!({"revoked": id})).into_response(),
        Ok(false) => not_found(format!("no unrevoked key {id}")),
        Err(e) => unavailable(e),
    }
}

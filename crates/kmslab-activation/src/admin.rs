//! The activation service's admin API (JSON over HTTP, behind kmslab-admin's guard like the
//! daemons'): key counts, adding activations, blocking, and phone confirmation.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `ok` |
//! | `GET /api/v1/keys` | `{"keys": [KeyStatus...]}` |
//! | `GET /api/v1/keys/{key}` | one `KeyStatus` |
//! | `POST /api/v1/keys/{key}/add` `{"count": N}` | adds N activations |
//! | `POST /api/v1/keys/{key}/block`, `/unblock` `{}` | blocks or unblocks |
//! | `POST /api/v1/confirm` `{"installation_id": "..."}` | `{"confirmation_id": ..., "remaining": ..., "counted": ...}` |
//!
//! Refusals are `{"error", "hresult", "name"}` with HTTP 400 (404 for an unknown key).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kmslab_admin::{AdminAccess, ApiError};
use kmslab_core::hresult::HResult;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::{Refusal, Service};

/// A refusal as the admin API answers it: 404 for an unknown key, 500 when the store
/// failed, 400 otherwise.
fn refused(r: Refusal) -> ApiError {
    let status = match r.hresult {
        HResult::INVALID_PRODUCT_KEY => StatusCode::NOT_FOUND,
        HResult::STORE_FAILED => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::refusal(status, r.hresult, r.message)
}

type ApiResult = Result<Json<Value>, ApiError>;

async fn blocking<T: serde::Serialize + Send + 'static>(
    service: Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, Refusal> + Send + 'static,
) -> ApiResult {
    let result = tokio::task::spawn_blocking(move || f(&service))
        .await
        .map_err(|e| refused(Refusal { hresult: HResult::UNEXPECTED, message: e.to_string() }))?;
    let value = result.map_err(refused)?;
    Ok(Json(serde_json::to_value(value).expect("plain data serializes")))
}

/// The router, every route behind `access`.
pub fn router(service: Arc<Service>, access: Arc<AdminAccess>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/keys", get(keys))
        .route("/api/v1/keys/{key}", get(key))
        .route("/api/v1/keys/{key}/add", post(add))
        .route("/api/v1/keys/{key}/block", post(block))
        .route("/api/v1/keys/{key}/unblock", post(unblock))
        .route("/api/v1/confirm", post(confirm))
        .with_state(service)
        .layer(axum::middleware::from_fn_with_state(access, kmslab_admin::guard::middleware))
}

async fn keys(State(s): State<Arc<Service>>) -> ApiResult {
    blocking(s, |s| s.statuses().map(|keys| json!({ "keys": keys }))).await
}

async fn key(State(s): State<Arc<Service>>, Path(key): Path<String>) -> ApiResult {
    blocking(s, move |s| s.status(&key)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    count: u32,
}

async fn add(State(s): State<Arc<Service>>, Path(key): Path<String>, Json(body): Json<AddBody>) -> ApiResult {
    blocking(s, move |s| s.add_activations(&key, body.count)).await
}

async fn block(State(s): State<Arc<Service>>, Path(key): Path<String>) -> ApiResult {
    blocking(s, move |s| s.set_blocked(&key, true)).await
}

async fn unblock(State(s): State<Arc<Service>>, Path(key): Path<String>) -> ApiResult {
    blocking(s, move |s| s.set_blocked(&key, false)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    installation_id: String,
}

async fn confirm(State(s): State<Arc<Service>>, Json(body): Json<ConfirmBody>) -> ApiResult {
    let now = crate::serve::wall_ms();
    blocking(s, move |s| {
        s.confirm(&body.installation_id, now)
            .map(|a| json!({"confirmation_id": a.confirmation_id, "remaining": a.remaining, "used": a.used, "counted": a.counted}))
    })
    .await
}

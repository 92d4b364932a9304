//! The host's admin API (axum): status, clients, events export, health, metrics, the
//! settings endpoint behind the slmgr host verbs, and `/ipk`, `/ato` for the host's own key
//! (genuine validation, `crate::genuine`). `/` and the HTML pages are the dashboard's (`dashboard/`).

// Helpers return the error `Response` itself so handlers can `return` it; its size does
// not matter on this path (one per refused admin request).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kmslab_admin::{AdminAccess, ApiError};
use kmslab_api::{ClientEntry, ClientList, EventList, HostStatus};
use kmslab_core::hresult::HResult;
use kmslab_core::ledger::validate_interval;
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use kmslab_store::{ClientQuery, ClientRow, EventQuery};
use serde::Deserialize;
use serde_json::json;

use crate::config::HostConfig;
use crate::metrics::Snapshot;
use crate::state::{HostState, keys};

type AppState = Arc<HostState>;

/// HRESULT of an invalid argument (`E_INVALIDARG`), what slmgr prints for a bad value.
const E_INVALIDARG: HResult = HResult::INVALID_ARG;

/// The admin router.
pub fn router(state: AppState, access: AdminAccess) -> Router {
    Router::new()
        .merge(crate::dashboard::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/events", get(events))
        .route("/api/v1/settings", post(settings))
        .route("/api/v1/ipk", post(ipk))
        .route("/api/v1/ato", post(ato))
        .with_state(Arc::clone(&state))
        .layer(middleware::from_fn_with_state(Arc::new(access), kmslab_admin::guard::middleware))
}

/// The admin API's rules (kmslab-admin's guard, docs/reliability.md "Threat model"):
/// the `Host` header must name this listener, state-changing requests must be same-origin
/// JSON, then the per-source rules, judged on each request's SOURCE address (not on the
/// address the API is bound to):
/// - a source in `--admin-local-network` (default loopback) may do everything;
/// - a request with the right `Authorization: Bearer <--admin-token>` may do everything;
/// - otherwise reads (GET/HEAD) are served to sources in `--admin-read-network`, and
///   `/healthz` to everyone (orchestrators' probes); everything else is refused: 403, or
///   401 for a mutating request when a token is configured but missing or wrong.
///
/// A request that did not come through a socket (the router driven in-process) is judged
/// by the bind address instead.
pub fn access_rules(config: &HostConfig, admin_addr: std::net::SocketAddr) -> AdminAccess {
    let mut access = AdminAccess::new("kms-host", admin_addr);
    access.local = config.admin_local_networks.clone();
    access.read = config.admin_read_networks.clone();
    access.token = config.admin_token.clone();
    access.names = config.admin_hosts.clone();
    access.csp = crate::dashboard::CONTENT_SECURITY_POLICY.as_str();
    access
}

/// kms-host's error answer, `{"error", "hresult"}` (kmslab-admin's [`ApiError::plain`]).
fn error(code: StatusCode, hresult: HResult, message: impl Into<String>) -> Response {
    ApiError::plain(code, hresult, message).into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    let health = state.store.health();
    if health.ok {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        let reason = health.last_error.unwrap_or_else(|| "registry writes fail".into());
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unhealthy", "reason": reason }))).into_response()
    }
}

fn snapshot(state: &HostState) -> Snapshot {
    let now = state.now();
    let counts = state
        .ledger()
        .group_counts(now)
        .into_iter()
        .map(|g| (state.catalog.counted_group(&g.kms_counted_id).map_or_else(|| g.kms_counted_id.to_string(), |c| c.name.clone()), g.count))
        .collect();
    Snapshot { counts, store: state.store.stats(), store_ok: state.store.health().ok }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render(&snapshot(&state));
    state.dns.render_metrics(&mut body);
    body.push_str(&crate::dashboard::alerts::render_metrics(&state, &crate::dashboard::alerts::current(&state)));
    kmslab_runtime::process_metrics::render(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn status(State(state): State<AppState>) -> Json<HostStatus> {
    Json(crate::status::host_status(&state))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    key: String,
}

/// `slmgr /ipk KEY` on the host: a new KMS host key (validated when an activation service
/// is configured). Answers the status.
async fn ipk(State(state): State<AppState>, Json(body): Json<KeyBody>) -> Response {
    match state.install_host_key(&body.key).await {
        Ok(_) => Json(crate::status::host_status(&state)).into_response(),
        Err((hresult, message)) => {
            let code =
                if hresult == kmslab_core::HResult::STORE_FAILED { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
            (code, Json(json!({ "error": message, "hresult": hresult.to_string(), "name": hresult.name() }))).into_response()
        }
    }
}

/// `slmgr /ato` on the host: validates its host key with the activation service now.
/// `hresult` 0 when genuine, 0x4004F065 in the non-genuine grace, 0xC004F064 after it,
/// 0x800706BA without a service to ask, 0xC004F014 without a host key.
async fn ato(State(state): State<AppState>) -> Response {
    let result = state.validate_genuine().await.hresult;
    let status = crate::status::host_status(&state);
    Json(json!({
        "hresult": result.to_string(),
        "name": result.name(),
        "meaning": result.info().map(|i| i.meaning),
        "activated": result == kmslab_core::HResult::SUCCESS && status.activated,
        "status": status.genuine.state,
        "status_label": status.license_status,
    }))
    .into_response()
}

/// Parses RFC 3339 or Unix milliseconds.
fn parse_time(name: &str, v: &str) -> Result<i64, Response> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    Timestamp::parse_rfc3339(v)
        .map(|t| t.as_unix_ms())
        .map_err(|e| error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid {name} {v:?}: {e}")))
}

fn parse_u64(q: &HashMap<String, String>, name: &str, default: u64, max: u64) -> Result<u64, Response> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map(|n| n.min(max))
            .map_err(|_| error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid {name} {v:?}: expected a number"))),
    }
}

fn client_entry(state: &HostState, c: &ClientRow) -> ClientEntry {
    let product = state.catalog.product_by_activation_id(&c.activation_id);
    let status = LicenseStatus::from_u8(c.license_status);
    ClientEntry {
        cmid: c.cmid.to_string(),
        machine_name: c.machine_name.clone(),
        product: product.map(|p| p.name.clone()),
        activation_id: c.activation_id.to_string(),
        application_id: c.application_id.to_string(),
        counted_group: state.catalog.counted_group(&c.counted_id).map(|g| g.name.clone()),
        license_status: status.map(|s| s.key().to_owned()),
        minutes_to_expiry: c.minutes_to_expiry,
        first_seen: Timestamp::from_unix_ms(c.first_seen_ms).to_string(),
        last_seen: Timestamp::from_unix_ms(c.last_seen_ms).to_string(),
        request_count: c.request_count,
        last_address: c.last_address.map(|a| a.to_string()),
        last_result: format!("0x{:08X}", c.last_result),
        last_activation: c.last_activation_ms.map(|ms| Timestamp::from_unix_ms(ms).to_string()),
    }
}

async fn clients(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut query = ClientQuery::default();
    if let Some(v) = q.get("state") {
        let status = LicenseStatus::from_key(v).or_else(|| v.parse::<u8>().ok().and_then(LicenseStatus::from_u8));
        match status {
            Some(s) => query.status = Some(s as u8),
            None => {
                return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid state {v:?}: expected licensed, initial_grace, ..."));
            }
        }
    }
    if let Some(v) = q.get("product") {
        let id = state.catalog.product_by_name(v).map(|p| p.activation_id).or_else(|| v.parse::<Uuid>().ok());
        match id {
            Some(id) => query.activation_id = Some(id),
            None => {
                return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid product {v:?}: not a product name or activation ID"));
            }
        }
    }
    if let Some(v) = q.get("seen_since") {
        match parse_time("seen_since", v) {
            Ok(ms) => query.seen_since = Some(ms),
            Err(r) => return r,
        }
    }
    query.search = q.get("search").filter(|s| !s.is_empty()).cloned();
    query.offset = match parse_u64(&q, "offset", 0, u64::MAX / 2) {
        Ok(n) => n,
        Err(r) => return r,
    };
    query.limit = match parse_u64(&q, "limit", 100, 1000) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let st = Arc::clone(&state);
    let page = tokio::task::spawn_blocking(move || st.store.clients(&query).map(|p| (p, query))).await;
    match page {
        Ok(Ok((page, query))) => Json(ClientList {
            total: page.total,
            offset: query.offset,
            limit: query.limit,
            clients: page.rows.iter().map(|c| client_entry(&state, c)).collect(),
        })
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, HResult::STORE_FAILED, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, HResult::UNEXPECTED, e.to_string()),
    }
}

async fn events(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut query = EventQuery::default();
    if let Some(v) = q.get("id") {
        match v.parse() {
            Ok(id) => query.event_id = Some(id),
            Err(_) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid id {v:?}: expected an event id such as 12290")),
        }
    }
    for (name, slot) in [("since", &mut query.since_ms), ("until", &mut query.until_ms)] {
        if let Some(v) = q.get(name) {
            match parse_time(name, v) {
                Ok(ms) => *slot = Some(ms),
                Err(r) => return r,
            }
        }
    }
    query.offset = match parse_u64(&q, "offset", 0, u64::MAX / 2) {
        Ok(n) => n,
        Err(r) => return r,
    };
    query.limit = match parse_u64(&q, "limit", 1000, 1_000_000) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid format {other:?}: expected json or csv")),
    };
    let st = Arc::clone(&state);
    let rows = match tokio::task::spawn_blocking(move || st.store.events(&query)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, HResult::STORE_FAILED, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, HResult::UNEXPECTED, e.to_string()),
    };
    if csv {
        return ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], crate::events_csv::render(&rows)).into_response();
    }
    let events = rows.iter().map(crate::status::event_record).collect();
    Json(EventList { events }).into_response()
}

/// Body of `POST /api/v1/settings`: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    activation_interval: Option<u64>,
    renewal_interval: Option<u64>,
    port: Option<u64>,
    dns_publishing: Option<bool>,
    priority: Option<String>,
}

// Who may call this is decided by `access_control`, for every route.
async fn settings(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let change: SettingsChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("invalid settings body: {e}")),
    };
    // Validate everything first, then persist, then apply: a refused change changes nothing.
    let mut writes: Vec<(&str, String)> = Vec::new();
    let mut intervals = (None, None);
    if let Some(v) = change.activation_interval {
        match validate_interval("activation interval", v) {
            Ok(m) => {
                intervals.0 = Some(m);
                writes.push((keys::ACTIVATION_INTERVAL, m.to_string()));
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, e.to_string()),
        }
    }
    if let Some(v) = change.renewal_interval {
        match validate_interval("renewal interval", v) {
            Ok(m) => {
                intervals.1 = Some(m);
                writes.push((keys::RENEWAL_INTERVAL, m.to_string()));
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, e.to_string()),
        }
    }
    let port = match change.port {
        Some(p) if (1..=65535).contains(&p) => Some(p as u16),
        Some(p) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("port must be between 1 and 65535, got {p}")),
        None => None,
    };
    if let Some(p) = port {
        writes.push((keys::PORT, p.to_string()));
    }
    if let Some(d) = change.dns_publishing {
        writes.push((keys::DNS_PUBLISHING, d.to_string()));
    }
    let low = match change.priority.as_deref() {
        None => None,
        Some("normal") => Some(false),
        Some("low") => Some(true),
        Some(other) => return error(StatusCode::BAD_REQUEST, E_INVALIDARG, format!("priority must be normal or low, got {other:?}")),
    };
    if let Some(l) = low {
        writes.push((keys::PRIORITY, if l { "low" } else { "normal" }.into()));
    }
    let pendings: Vec<_> = writes.iter().map(|(k, v)| state.store.set_setting(*k, v.clone())).collect();
    for p in pendings {
        if let Err(e) = p.await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, HResult::STORE_FAILED, format!("could not store the setting: {e}"));
        }
    }
    {
        let mut l = state.ledger();
        if let Some(m) = intervals.0 {
            l.settings_mut().activation_interval = m;
        }
        if let Some(m) = intervals.1 {
            l.settings_mut().renewal_interval = m;
        }
    }
    {
        let mut extra = state.extra();
        if port.is_some() {
            extra.port = port;
        }
        if let Some(l) = low {
            extra.priority_low = l;
        }
    }
    if let Some(d) = change.dns_publishing {
        state.dns.set_enabled(d);
    }
    tracing::info!(changes = ?writes, "settings changed through the admin API");
    Json(crate::status::settings(&state)).into_response()
}

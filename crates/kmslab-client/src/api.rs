//! The control API on `--admin` (slmgr's target): status, events and the slmgr client
//! verbs as JSON endpoints. Every change is saved before the answer is sent.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kmslab_admin::{AdminAccess, ApiError};
use kmslab_api::{ClientStatus, EventList};
use kmslab_core::activator::{Activator, ActivatorState};
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::{LicenseStatus, Timestamp};
use kmslab_dns::DnsServerChoice;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::daemon::{AttemptReport, Inner, Shared};

/// How long `/api/v1/ato` waits for the attempt to end (real time).
const ATO_WAIT: Duration = Duration::from_secs(90);

type ApiResult = Result<Json<Value>, ApiError>;

/// Who may use the control API: kms-host's model (kmslab-admin's guard): the `Host`
/// header must name this listener, state-changing requests must be same-origin JSON, then
/// a source in `--admin-local-network` (default loopback) or a request with the right
/// `Authorization: Bearer <--admin-token>` may do everything, sources in
/// `--admin-read-network` may read, and `/healthz` is public.
pub fn access_rules(config: &crate::ClientConfig, bind: std::net::SocketAddr) -> AdminAccess {
    let mut access = AdminAccess::new("kms-client", bind);
    access.local = config.admin_local_networks.clone();
    access.read = config.admin_read_networks.clone();
    access.token = config.admin_token.clone();
    access.names = config.admin_hosts.clone();
    access
}

/// The router for `--admin`, every route behind `access`.
pub fn router(shared: Arc<Shared>, access: Arc<AdminAccess>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/status", get(get_status))
        .route("/api/v1/events", get(events))
        .route("/api/v1/ato", post(ato))
        .route("/api/v1/ipk", post(ipk))
        .route("/api/v1/upk", post(upk))
        .route("/api/v1/skms", post(skms))
        .route("/api/v1/ckms", post(ckms))
        .route("/api/v1/skms-domain", post(skms_domain))
        .route("/api/v1/ckms-domain", post(ckms_domain))
        .route("/api/v1/skhc", post(skhc))
        .route("/api/v1/ckhc", post(ckhc))
        .route("/api/v1/rearm", post(rearm))
        .route("/api/v1/dti", get(dti))
        .route("/api/v1/atp", post(atp))
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(access, kmslab_admin::guard::middleware))
}

fn opt<T: ToString>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.to_string()))
}

/// The `/api/v1/status` view: the machine's status ([`ClientStatus::of`], as the fleet's
/// machines show it) plus what only the daemon knows.
pub fn status(shared: &Shared, inner: &Inner) -> ClientStatus {
    let mut status = ClientStatus::of(&inner.activator, shared.clock.now());
    status.dns_server = shared.dns_server.as_ref().map(ToString::to_string);
    status.state_save_error = shared.save_error(inner).map(str::to_owned);
    status
}

/// The `/api/v1/status` object.
pub fn status_json(shared: &Shared, inner: &Inner) -> Value {
    activator_status_json(&inner.activator, shared.clock.now(), shared.dns_server.as_ref(), shared.save_error(inner))
}

/// The `/api/v1/status` object of any activator (`kmslab up` serves its simulated machines'
/// status in this very shape, so that slmgr prints the same for both).
pub fn activator_status_json(a: &Activator, now: Timestamp, dns_server: Option<&DnsServerChoice>, save_error: Option<&str>) -> Value {
    let mut status = ClientStatus::of(a, now);
    status.dns_server = dns_server.map(ToString::to_string);
    status.state_save_error = save_error.map(str::to_owned);
    serde_json::to_value(status).unwrap_or(Value::Null)
}

/// 200 "ok", or 503 while the state cannot be saved (a full or failing disk).
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let g = shared.lock();
    match shared.save_error(&g) {
        None => "ok\n".into_response(),
        Some(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: cannot save the client state: {e}\n")).into_response(),
    }
}

async fn get_status(State(shared): State<Arc<Shared>>) -> Json<ClientStatus> {
    let g = shared.lock();
    Json(status(&shared, &g))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    since: Option<u64>,
}

async fn events(State(shared): State<Arc<Shared>>, Query(q): Query<EventsQuery>) -> Json<EventList> {
    Json(EventList { events: shared.events_since(q.since.unwrap_or(0)) })
}

/// Applies a change, saves, wakes the driver and answers with `reply` or the status.
fn mutate(shared: &Shared, change: impl FnOnce(&mut Inner) -> Result<Option<Value>, ApiError>) -> ApiResult {
    let mut g = shared.lock();
    let reply = change(&mut g)?;
    let saved = shared.save_if_changed(&mut g);
    let body = reply.unwrap_or_else(|| status_json(shared, &g));
    drop(g);
    shared.wake.notify_one();
    saved.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(body))
}

async fn ato(State(shared): State<Arc<Shared>>) -> ApiResult {
    let rx = {
        let mut g = shared.lock();
        let now = shared.clock.now();
        let attempt = g.activator.activate_now(now);
        let rx = shared.wait_for(&mut g, attempt);
        drop(g);
        shared.wake.notify_one();
        rx
    };
    let report = wait_attempt(rx).await?;
    let g = shared.lock();
    Ok(Json(ato_json(&report, g.activator.state())))
}

/// The end of an `/api/v1/ato` attempt (kms-client's and a lab machine's), waited for at most
/// 90 real seconds: 504 with 0x800705B4 after that, 409 when the attempt was abandoned.
pub async fn wait_attempt<T>(rx: tokio::sync::oneshot::Receiver<T>) -> Result<T, ApiError> {
    tokio::time::timeout(ATO_WAIT, rx).await.map_err(|_| ApiError::code(StatusCode::GATEWAY_TIMEOUT, HResult::TIMEOUT))?.map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the attempt was abandoned (the key changed, the machine was rearmed or the client is stopping)",
        )
    })
}

/// The answer of `/api/v1/ato`: how the attempt ended and the machine's state after it.
pub fn ato_json(report: &AttemptReport, st: &ActivatorState) -> Value {
    json!({
        "attempt": report.attempt,
        "hresult": report.result.to_string(),
        "name": report.result.name(),
        "meaning": report.result.info().map(|i| i.meaning),
        "activated": report.result.is_success() && st.status == LicenseStatus::Licensed,
        "host": opt(report.host.as_ref()),
        "status": st.status.key(),
        "status_label": st.status.label(),
        "current_count": st.last.current_count,
    })
}

#[derive(Debug, Deserialize)]
struct KeyBody {
    key: String,
}

async fn ipk(State(shared): State<Arc<Shared>>, Json(body): Json<KeyBody>) -> ApiResult {
    let catalog = shared.catalog.clone();
    mutate(&shared, |g| {
        let now = shared.clock.now();
        install_key(&mut g.activator, &catalog, &body.key, now).map_err(|c| ApiError::code(StatusCode::BAD_REQUEST, c))?;
        Ok(None)
    })
}

/// `slmgr /ipk KEY` on `activator`: a GVLK makes (or keeps) the machine a KMS client, a lab
/// MAK puts it on the MAK channel, anything else is 0xC004F050. The daemon and the lab's
/// machines (`slmgr --machine`) both install keys through this.
pub fn install_key(activator: &mut Activator, catalog: &Catalog, key: &str, now: Timestamp) -> Result<(), HResult> {
    match activator.install_key(catalog, key, now) {
        Err(HResult::INVALID_PRODUCT_KEY) => activator.install_mak(key, now),
        other => other,
    }
}

async fn upk(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        if g.activator.product().is_none() {
            return Err(ApiError::code(StatusCode::CONFLICT, HResult::NO_PRODUCT_KEY));
        }
        g.activator.uninstall_product(shared.clock.now());
        Ok(None)
    })
}

#[derive(Debug, Deserialize)]
struct HostBody {
    host: String,
}

async fn skms(State(shared): State<Arc<Shared>>, Json(body): Json<HostBody>) -> ApiResult {
    let host: HostAddr =
        body.host.parse().map_err(|e: kmslab_core::hostaddr::HostAddrError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    mutate(&shared, |g| {
        g.activator.set_manual_host(Some(host));
        Ok(None)
    })
}

async fn ckms(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        g.activator.set_manual_host(None);
        Ok(None)
    })
}

#[derive(Debug, Deserialize)]
struct DomainBody {
    domain: String,
}

async fn skms_domain(State(shared): State<Arc<Shared>>, Json(body): Json<DomainBody>) -> ApiResult {
    let domain = crate::config::validate_domain(&body.domain).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    mutate(&shared, |g| {
        g.activator.set_domain(Some(domain));
        Ok(None)
    })
}

async fn ckms_domain(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        g.activator.set_domain(None);
        Ok(None)
    })
}

async fn skhc(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        g.activator.set_host_caching(true);
        Ok(None)
    })
}

async fn ckhc(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        g.activator.set_host_caching(false);
        Ok(None)
    })
}

async fn rearm(State(shared): State<Arc<Shared>>) -> ApiResult {
    mutate(&shared, |g| {
        let now = shared.clock.now();
        let inner = &mut *g;
        inner.activator.rearm(now, &mut inner.rng).map_err(|c| ApiError::code(StatusCode::CONFLICT, c))?;
        Ok(None)
    })
}

/// `GET /api/v1/dti`: the installation ID of the installed key (`slmgr /dti`).
async fn dti(State(shared): State<Arc<Shared>>) -> ApiResult {
    let g = shared.lock();
    let iid = g.activator.installation_id().ok_or_else(|| ApiError::code(StatusCode::CONFLICT, HResult::NO_PRODUCT_KEY))?;
    Ok(Json(json!({ "installation_id": iid.to_string() })))
}

#[derive(Debug, Deserialize)]
struct CidBody {
    cid: String,
}

/// `POST /api/v1/atp {"cid"}`: deposits a confirmation ID (`slmgr /atp`); a MAK machine
/// whose CID matches its installation ID is then activated for good.
async fn atp(State(shared): State<Arc<Shared>>, Json(body): Json<CidBody>) -> ApiResult {
    mutate(&shared, |g| {
        let now = shared.clock.now();
        g.activator.deposit_cid(&body.cid, now).map_err(|(code, why)| ApiError::code(StatusCode::BAD_REQUEST, code).detail(why))?;
        let product = g.activator.product().expect("deposit_cid needs a product");
        Ok(Some(json!({ "activation_id": product.activation_id.to_string() })))
    })
}

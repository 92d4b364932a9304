//! The lab control API (`kmslab up --control`, docs/interfaces.md "Lab control") and its
//! machine part (also on `kmslab fleet --admin`), behind kmslab-admin's guard.
//!
//! - `/` (with `/lab.js` and `/lab.css`): the lab page ([`crate::labpage`]);
//! - `/api/v1/lab`, `/api/v1/lab/events`, `/api/v1/lab/hosts/{name}/{action}`,
//!   `/api/v1/lab/dns/{action}`: the lab ([`crate::control::Lab`]);
//! - `/api/v1/lab/machines[/{name}]` and, under `/api/v1/lab/machines/{name}/`, kms-client's
//!   own API (`status`, `events`, `ato`, `ipk`, ...) with the same bodies and answers, so
//!   that `slmgr --machine NAME` prints the same for a simulated machine as for a
//!   `kms-client`; plus the machine faults `skew` and `clone`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kmslab_admin::{AdminAccess, ApiError};
use kmslab_core::HResult;
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_dns::DnsServerChoice;
use kmslab_runtime::SimClock;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::{DnsAction, FaultError, HostAction, Lab};
use crate::engine::{FleetHandle, MachineView};
use crate::labpage::LabHistory;

/// `no machine named NAME in this lab` (404).
fn no_machine(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no machine named {name:?} in this lab"))
}

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        let status = match &e {
            FaultError::NotFound(_) => StatusCode::NOT_FOUND,
            FaultError::Conflict(_) => StatusCode::CONFLICT,
            FaultError::Invalid(_) => StatusCode::BAD_REQUEST,
            FaultError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// What the machine part serves from.
#[derive(Debug)]
pub struct MachineApi {
    /// The machines.
    pub fleet: FleetHandle,
    /// Their clock.
    pub clock: SimClock,
    /// The DNS server they use (shown in their status as kms-client shows its own).
    pub dns: Option<DnsServerChoice>,
    /// The lab that records machine faults as lab events (none for `kmslab fleet`).
    pub lab: Option<Arc<Lab>>,
    catalog: Catalog,
}

impl MachineApi {
    /// The machine part over `fleet`.
    pub fn new(fleet: FleetHandle, clock: SimClock, dns: Option<DnsServerChoice>, lab: Option<Arc<Lab>>) -> Arc<MachineApi> {
        Arc::new(MachineApi { fleet, clock, dns, lab, catalog: Catalog::builtin() })
    }

    fn record(&self, kind: &str, target: &str, detail: Value) {
        if let Some(lab) = &self.lab {
            lab.record(kind, target, detail);
        }
    }

    async fn index(&self, name: &str) -> Result<usize, ApiError> {
        self.fleet.find(name).await.ok_or_else(|| no_machine(name))
    }

    /// Runs `op` on machine `name` and answers with its value.
    async fn op(
        &self,
        name: &str,
        op: impl FnOnce(&mut kmslab_core::activator::Activator, &mut crate::engine::OpContext<'_>) -> Result<(), ApiError> + Send + 'static,
    ) -> ApiResult {
        let i = self.index(name).await?;
        let dns = self.dns.clone();
        let value = self
            .fleet
            .machine_op(
                i,
                Box::new(move |a, cx| match op(a, cx) {
                    Ok(()) => json!({ "ok": kmslab_client::api::activator_status_json(a, cx.now, dns.as_ref(), None) }),
                    Err(e) => json!({ "err": [e.status.as_u16(), e.message, e.hresult.map(|h| h.0)] }),
                }),
            )
            .await
            .ok_or_else(|| no_machine(name))?;
        if let Some(status) = value.get("ok") {
            return Ok(Json(status.clone()));
        }
        let e = &value["err"];
        Err(ApiError::with_hresult(
            StatusCode::from_u16(e[0].as_u64().unwrap_or(500) as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e[1].as_str().unwrap_or(""),
            e[2].as_u64().map(|h| HResult(h as u32)),
        ))
    }
}

/// The lab API, every route behind `access`.
pub fn lab_router(lab: Arc<Lab>, machines: Arc<MachineApi>, access: Arc<AdminAccess>) -> Router {
    let history = Arc::new(LabHistory::default());
    history.spawn_sampler(&lab);
    let page = Router::new()
        .route("/", get(lab_page))
        .route("/lab.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/lab.js")) }))
        .route("/lab.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/lab.css")) }))
        .with_state((Arc::clone(&lab), history));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/lab", get(lab_summary))
        .route("/api/v1/lab/events", get(lab_events))
        .route("/api/v1/lab/hosts/{name}/{action}", post(host_action))
        .route("/api/v1/lab/dns/{action}", post(dns_action))
        .with_state(lab)
        .merge(page)
        .merge(machine_routes(machines))
        .layer(axum::middleware::from_fn_with_state(access, kmslab_admin::guard::middleware))
}

/// The machine part alone (for `kmslab fleet --admin`, merged with its `/metrics`); the
/// caller adds the guard.
pub fn machine_routes(api: Arc<MachineApi>) -> Router {
    Router::new()
        .route("/api/v1/lab/machines", get(machines_list).post(machines_add))
        .route("/api/v1/lab/machines/{name}", get(machine_detail))
        .route("/api/v1/lab/machines/{name}/status", get(m_status))
        .route("/api/v1/lab/machines/{name}/events", get(m_events))
        .route("/api/v1/lab/machines/{name}/ato", post(m_ato))
        .route("/api/v1/lab/machines/{name}/ipk", post(m_ipk))
        .route("/api/v1/lab/machines/{name}/upk", post(m_upk))
        .route("/api/v1/lab/machines/{name}/skms", post(m_skms))
        .route("/api/v1/lab/machines/{name}/ckms", post(m_ckms))
        .route("/api/v1/lab/machines/{name}/skms-domain", post(m_skms_domain))
        .route("/api/v1/lab/machines/{name}/ckms-domain", post(m_ckms_domain))
        .route("/api/v1/lab/machines/{name}/skhc", post(m_skhc))
        .route("/api/v1/lab/machines/{name}/ckhc", post(m_ckhc))
        .route("/api/v1/lab/machines/{name}/rearm", post(m_rearm))
        .route("/api/v1/lab/machines/{name}/skew", post(m_skew))
        .route("/api/v1/lab/machines/{name}/clone", post(m_clone))
        .with_state(api)
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    q: Option<String>,
}

async fn lab_page(State((lab, history)): State<(Arc<Lab>, Arc<LabHistory>)>, Query(q): Query<PageQuery>) -> Response {
    match crate::labpage::render(&lab, &history, q.q.as_deref().unwrap_or("")).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the lab page cannot render: {e}")).into_response(),
    }
}

async fn lab_summary(State(lab): State<Arc<Lab>>) -> Json<Value> {
    Json(lab.summary())
}

#[derive(Debug, Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

async fn lab_events(State(lab): State<Arc<Lab>>, Query(q): Query<SinceQuery>) -> Json<Value> {
    Json(json!({ "events": lab.events_since(q.since.unwrap_or(0)) }))
}

#[derive(Debug, Deserialize)]
struct MinutesBody {
    minutes: u64,
}

async fn host_action(State(lab): State<Arc<Lab>>, Path((name, action)): Path<(String, String)>, body: axum::body::Bytes) -> ApiResult {
    match action.as_str() {
        "sai" | "sri" => {
            let b: MinutesBody = serde_json::from_slice(&body)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{action} takes {{\"minutes\":N}}: {e}")))?;
            lab.host_interval(&name, action == "sai", b.minutes).await?;
        }
        other => {
            let Some(a) = HostAction::parse(other) else {
                let known: Vec<&str> = HostAction::ALL.iter().map(|(n, _)| *n).chain(["sai", "sri"]).collect();
                return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no host action {other:?} (actions: {})", known.join(", "))));
            };
            lab.host_action(&name, a).await?;
        }
    }
    lab.refresh().await;
    Ok(Json(lab.summary()))
}

#[derive(Debug, Deserialize)]
struct HostNameBody {
    host: String,
}

async fn dns_action(State(lab): State<Arc<Lab>>, Path(action): Path<String>, body: axum::body::Bytes) -> ApiResult {
    if action == "remove-record" {
        let b: HostNameBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("remove-record takes {{\"host\":NAME}}: {e}")))?;
        lab.remove_record(&b.host).await?;
        return Ok(Json(lab.summary()));
    }
    let Some(a) = DnsAction::parse(&action) else {
        let known: Vec<&str> = DnsAction::ALL.iter().map(|(n, _)| *n).chain(["remove-record"]).collect();
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no DNS action {action:?} (actions: {})", known.join(", "))));
    };
    lab.dns_action(a);
    Ok(Json(lab.summary()))
}

/// One entry of `GET /api/v1/lab/machines`.
pub fn machine_json(m: &MachineView) -> Value {
    m.json()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Only machines whose name, CMID, host or result contains this (ASCII case ignored).
    q: Option<String>,
    /// Only machines in this status (`licensed`, `initial_grace`, ...).
    status: Option<String>,
    /// Skip this many of the machines that match.
    offset: Option<usize>,
    /// At most this many machines.
    limit: Option<usize>,
}

/// The machines that match, in machine order, `offset` and `limit` applied; the header
/// `X-Total-Count` says how many matched in all (to page through a large lab).
async fn machines_list(State(api): State<Arc<MachineApi>>, Query(q): Query<ListQuery>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let needle = q.q.map(|s| s.to_ascii_lowercase()).filter(|s| !s.is_empty());
    let all = api.fleet.machines().await;
    let mut matched = 0usize;
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(usize::MAX));
    let mut list = Vec::new();
    for m in all.iter().filter(|m| q.status.as_deref().is_none_or(|s| m.status.key() == s)) {
        let v = machine_json(m);
        if needle.as_ref().is_some_and(|n| !v.to_string().to_ascii_lowercase().contains(n.as_str())) {
            continue;
        }
        if matched >= offset && list.len() < limit {
            list.push(v);
        }
        matched += 1;
    }
    ([("x-total-count", matched.to_string())], Json(Value::Array(list))).into_response()
}

#[derive(Debug, Deserialize)]
struct AddBody {
    count: usize,
    product: Option<String>,
}

async fn machines_add(State(api): State<Arc<MachineApi>>, Json(body): Json<AddBody>) -> ApiResult {
    let name = body.product.as_deref().unwrap_or("win7-enterprise");
    let product = api
        .catalog
        .product_by_name(name)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, api.catalog.unknown_product(name)))?;
    if body.count == 0 || body.count > 100_000 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("count must be between 1 and 100000, got {}", body.count)));
    }
    let range = api.fleet.add_machines(body.count, product).await;
    let names = api.fleet.names(range).await;
    api.record("machines_added", name, json!({ "count": body.count, "first": names.first(), "last": names.last() }));
    Ok(Json(json!({ "added": names })))
}

async fn machine_detail(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    let i = api.index(&name).await?;
    let status = api.op(&name, |_, _| Ok(())).await?.0;
    let events = api.fleet.events(i, 0).await.unwrap_or_default();
    Ok(Json(json!({ "name": status["machine_name"], "status": status, "events": events_json(&events) })))
}

fn events_json(events: &[crate::engine::MachineEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let (event_id, kind, fields) = kmslab_client::daemon::event_json(&e.event);
            json!({ "seq": e.seq, "time": e.time.to_string(), "event_id": event_id, "kind": kind, "fields": fields })
        })
        .collect()
}

async fn m_status(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |_, _| Ok(())).await
}

async fn m_events(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Query(q): Query<SinceQuery>) -> ApiResult {
    let i = api.index(&name).await?;
    let events = api.fleet.events(i, q.since.unwrap_or(0)).await.ok_or_else(|| no_machine(&name))?;
    Ok(Json(json!({ "events": events_json(&events) })))
}

async fn m_ato(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    let i = api.index(&name).await?;
    let rx = api.fleet.activate_machine(i).await.ok_or_else(|| no_machine(&name))?;
    let report = kmslab_client::api::wait_attempt(rx).await?;
    let client_report = kmslab_client::daemon::AttemptReport { attempt: report.attempt, result: report.result, host: report.host };
    Ok(Json(kmslab_client::api::ato_json(&client_report, &report.state)))
}

#[derive(Debug, Deserialize)]
struct KeyBody {
    key: String,
}

async fn m_ipk(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Json(body): Json<KeyBody>) -> ApiResult {
    api.op(&name, move |a, cx| {
        kmslab_client::api::install_key(a, cx.catalog, &body.key, cx.now).map_err(|c| ApiError::code(StatusCode::BAD_REQUEST, c))
    })
    .await
}

async fn m_upk(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |a, cx| {
        if a.product().is_none() {
            return Err(ApiError::code(StatusCode::CONFLICT, HResult::NO_PRODUCT_KEY));
        }
        a.uninstall_product(cx.now);
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize)]
struct HostBody {
    host: String,
}

async fn m_skms(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Json(body): Json<HostBody>) -> ApiResult {
    let host: HostAddr =
        body.host.parse().map_err(|e: kmslab_core::hostaddr::HostAddrError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    api.op(&name, move |a, _| {
        a.set_manual_host(Some(host));
        Ok(())
    })
    .await
}

async fn m_ckms(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |a, _| {
        a.set_manual_host(None);
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize)]
struct DomainBody {
    domain: String,
}

async fn m_skms_domain(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Json(body): Json<DomainBody>) -> ApiResult {
    let domain = kmslab_client::config::validate_domain(&body.domain).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    api.op(&name, move |a, _| {
        a.set_domain(Some(domain));
        Ok(())
    })
    .await
}

async fn m_ckms_domain(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |a, _| {
        a.set_domain(None);
        Ok(())
    })
    .await
}

async fn m_skhc(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |a, _| {
        a.set_host_caching(true);
        Ok(())
    })
    .await
}

async fn m_ckhc(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    api.op(&name, |a, _| {
        a.set_host_caching(false);
        Ok(())
    })
    .await
}

async fn m_rearm(State(api): State<Arc<MachineApi>>, Path(name): Path<String>) -> ApiResult {
    let answer = api
        .op(&name, |a, cx| {
            a.rearm(cx.now, cx.rng).map_err(|c| ApiError::code(StatusCode::CONFLICT, c))?;
            Ok(())
        })
        .await?;
    api.record("machine_rearm", &name, json!({ "cmid": answer["cmid"] }));
    Ok(answer)
}

#[derive(Debug, Deserialize)]
struct HoursBody {
    hours: f64,
}

async fn m_skew(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Json(body): Json<HoursBody>) -> ApiResult {
    let hours = body.hours;
    if !hours.is_finite() || hours.abs() > 87_600.0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("hours must be a number of at most 87600 either way, got {hours}")));
    }
    let answer = api
        .op(&name, move |a, _| {
            a.set_clock_offset((hours * 3_600_000.0) as i64);
            Ok(())
        })
        .await?;
    api.record("machine_skew", &name, json!({ "hours": hours }));
    Ok(answer)
}

#[derive(Debug, Deserialize)]
struct CountBody {
    count: usize,
}

async fn m_clone(State(api): State<Arc<MachineApi>>, Path(name): Path<String>, Json(body): Json<CountBody>) -> ApiResult {
    if body.count == 0 || body.count > 100_000 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("count must be between 1 and 100000, got {}", body.count)));
    }
    let i = api.index(&name).await?;
    let range = api.fleet.clone_machine(i, body.count).await.ok_or_else(|| no_machine(&name))?;
    let names = api.fleet.names(range).await;
    api.record("machine_clone", &name, json!({ "count": body.count, "copies": names }));
    Ok(Json(json!({ "added": names })))
}

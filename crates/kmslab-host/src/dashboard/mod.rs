//! The host dashboard on the admin address: overview, clients, Configuration Manager
//! style licence reports (02A..05A), the event log and the alerts, as server-rendered
//! HTML (askama templates compiled into the binary, SVG drawn here, no external assets).
//!
//! Pages read the same ledger and registry as the JSON API; registry reads run on the
//! blocking pool, and every list is a page of an indexed query, so pages stay fast with
//! 100,000 clients in the registry.

pub mod alerts;
mod pages;
pub mod svg;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

pub use crate::series::DashState;

use crate::state::HostState;

type AppState = Arc<HostState>;

/// The dashboard's `Content-Security-Policy` (sent with every admin answer): nothing is
/// loaded from elsewhere, the one inline script of `base.html` runs by its hash (no other
/// script can: injected markup runs nothing), inline styles are allowed (the page's
/// stylesheet and the SVG charts), forms submit only here, and no page may frame it.
pub static CONTENT_SECURITY_POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let base = include_str!("../../templates/base.html");
    let script = base.split_once("<script>").and_then(|(_, rest)| rest.split_once("</script>")).map_or("", |(s, _)| s);
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        kmslab_admin::guard::inline_source_hash(script)
    )
});

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// A bad query parameter (400).
    BadRequest(String),
    /// No such report, client, ... (404).
    NotFound(String),
    /// The registry or the template failed (500).
    Internal(String),
}

impl From<kmslab_store::StoreError> for PageError {
    fn from(e: kmslab_store::StoreError) -> Self {
        PageError::Internal(format!("registry: {e}"))
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (code, text) = match self {
            PageError::BadRequest(t) => (StatusCode::BAD_REQUEST, t),
            PageError::NotFound(t) => (StatusCode::NOT_FOUND, t),
            PageError::Internal(t) => (StatusCode::INTERNAL_SERVER_ERROR, t),
        };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>kms-host: {code}</title></head><body><h1>{code}</h1><p>{}</p><p><a href=\"/\">Overview</a></p></body></html>",
            svg::esc(&text)
        );
        (code, Html(body)).into_response()
    }
}

/// The dashboard's routes (merged into the admin router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/clients", get(clients))
        .route("/events", get(events))
        .route("/alerts", get(alerts_page))
        .route("/reports", get(reports))
        .route("/reports/{id}", get(report))
}

type Params = Query<HashMap<String, String>>;

/// Runs a page builder on the blocking pool (registry reads block).
async fn blocking(
    state: AppState,
    q: HashMap<String, String>,
    build: fn(&HostState, &HashMap<String, String>) -> Result<String, PageError>,
) -> Response {
    match tokio::task::spawn_blocking(move || build(&state, &q)).await {
        Ok(Ok(html)) => Html(html).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => PageError::Internal(e.to_string()).into_response(),
    }
}

async fn overview(State(state): State<AppState>, Query(q): Params) -> Response {
    blocking(state, q, pages::overview).await
}

async fn clients(State(state): State<AppState>, Query(q): Params) -> Response {
    blocking(state, q, pages::clients).await
}

async fn events(State(state): State<AppState>, Query(q): Params) -> Response {
    blocking(state, q, pages::events).await
}

async fn alerts_page(State(state): State<AppState>, Query(q): Params) -> Response {
    blocking(state, q, pages::alerts).await
}

async fn reports(State(state): State<AppState>, Query(q): Params) -> Response {
    blocking(state, q, pages::reports_index).await
}

async fn report(State(state): State<AppState>, Path(id): Path<String>, Query(q): Params) -> Response {
    match id.to_ascii_uppercase().as_str() {
        "02A" => blocking(state, q, pages::report_02a).await,
        "02B" => blocking(state, q, pages::report_02b).await,
        "02C" => blocking(state, q, pages::report_02c).await,
        "03A" => blocking(state, q, pages::report_03a).await,
        "03B" => blocking(state, q, pages::report_03b).await,
        "04A" => blocking(state, q, pages::report_04a).await,
        "04B" => blocking(state, q, pages::report_04b).await,
        "05A" => {
            // The SRV lookups are async; the rest of the page is built afterwards.
            let found = pages::lookup_hosts(&state).await;
            match tokio::task::spawn_blocking(move || pages::report_05a(&state, found)).await {
                Ok(Ok(html)) => Html(html).into_response(),
                Ok(Err(e)) => e.into_response(),
                Err(e) => PageError::Internal(e.to_string()).into_response(),
            }
        }
        other => {
            PageError::NotFound(format!("no report {other:?}: the reports are 02A, 02B, 02C, 03A, 03B, 04A, 04B, 05A")).into_response()
        }
    }
}

//! The dashboard pages: gathering each page's figures and rendering its template.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use kmslab_core::activator::VALIDITY_MS;
use kmslab_core::events::{DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED, REQUEST_RECEIVED};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use kmslab_dns::{DnsServerChoice, lookup_vlmcs};
use kmslab_store::{ClientPage, ClientQuery, ClientRow, EventQuery};

use super::PageError;
use super::alerts::{self, Alert};
use super::svg;
use crate::series::DAY_MS;
use crate::state::HostState;

type Q = HashMap<String, String>;

/// Expiry ranges of report 02A, in days from now (cumulative, as Configuration Manager's).
pub const EXPIRY_RANGES_DAYS: [i64; 5] = [7, 30, 60, 90, 180];
const PAGE_DEFAULT: u64 = 50;
const PAGE_MAX: u64 = 500;

/// A simulated time as every page shows it: RFC 3339, as the API writes it, with the real
/// time it corresponds to in its hover text.
pub(crate) struct PageTime {
    pub text: String,
    pub real: String,
}

/// The page form of the simulated time `ms`.
pub(crate) fn page_time(state: &HostState, ms: i64) -> PageTime {
    let now = state.now().as_unix_ms();
    let real = state.clock.real_now_ms() - ((now - ms) as f64 / state.clock.scale()) as i64;
    PageTime { text: Timestamp::from_unix_ms(ms).to_string(), real: format!("real time {}", Timestamp::from_unix_ms(real)) }
}

/// [`page_time`] of an RFC 3339 time of a view (empty when none).
fn page_time_text(state: &HostState, t: Option<&str>) -> PageTime {
    match t.map(Timestamp::parse_rfc3339) {
        Some(Ok(t)) => page_time(state, t.as_unix_ms()),
        Some(Err(_)) => PageTime { text: t.unwrap_or_default().to_owned(), real: String::new() },
        None => PageTime { text: String::new(), real: String::new() },
    }
}

/// What every page shows around its content.
pub(crate) struct Chrome {
    pub title: String,
    pub active: &'static str,
    pub now: PageTime,
    pub host: String,
    /// The host's DNS name (the SRV target it publishes, `--dns-hostname`), when it has one.
    pub name: Option<String>,
    pub alerts: usize,
    /// What the host knows of its role: `blocked`, `unactivated` or `serving`.
    pub role: &'static str,
    /// What the role means, for the header's tooltip.
    pub role_detail: String,
}

/// The host's role as far as it can tell alone (the lab page, which sees every host, also
/// tells `standby` from `serving` and shows `down`): `blocked` while a lab's firewall
/// closes its KMS port, `unactivated` without its own activation (it answers 0xC004F041),
/// else `serving` (it answers requests).
pub(crate) fn role(state: &HostState) -> (&'static str, String) {
    let priority = state.dns.view().zones.first().map(|z| format!(" (SRV priority {})", z.priority)).unwrap_or_default();
    if state.faults.as_ref().is_some_and(|f| f.blocked()) {
        ("blocked", "its KMS port refuses connections".to_owned())
    } else if !state.ledger().settings().activated {
        ("unactivated", "it answers every request with 0xC004F041: its own activation is missing".to_owned())
    } else {
        ("serving", format!("it answers requests{priority}; whether clients prefer another host is up to the SRV priorities"))
    }
}

fn chrome(state: &HostState, title: impl Into<String>, active: &'static str) -> Chrome {
    let primary = state.ledger().settings().key_groups.first().cloned().unwrap_or_default();
    let host = state.catalog.host_key_group(&primary).map_or_else(|| "KMS host".to_owned(), |h| h.display_name.clone());
    let alerts = alerts::current(state).iter().filter(|a| a.active).count();
    let name = state.dns.config().hostname.clone();
    let (role, role_detail) = role(state);
    Chrome { title: title.into(), active, now: page_time(state, state.now().as_unix_ms()), host, name, alerts, role, role_detail }
}

/// One client row as the tables show it.
pub(crate) struct ClientView {
    pub cmid: String,
    pub machine: String,
    pub product: String,
    pub product_key: String,
    pub state: String,
    pub state_key: String,
    pub last_seen: String,
    pub expires: String,
    pub expires_in: String,
}

fn client_view(state: &HostState, c: &ClientRow, now_ms: i64) -> ClientView {
    let product = state.catalog.product_by_activation_id(&c.activation_id);
    let status = LicenseStatus::from_u8(c.license_status);
    let (expires, expires_in) = match c.last_activation_ms {
        Some(ms) => {
            let at = ms + VALIDITY_MS;
            let days = (at - now_ms) as f64 / DAY_MS as f64;
            (short_time(at), if days >= 0.0 { format!("in {days:.1} d") } else { format!("{:.1} d ago", -days) })
        }
        None => ("never activated".to_owned(), String::new()),
    };
    ClientView {
        cmid: c.cmid.to_string(),
        machine: c.machine_name.clone(),
        product: product.map_or_else(|| c.activation_id.to_string(), |p| p.display_name.clone()),
        product_key: product.map_or_else(|| c.activation_id.to_string(), |p| p.name.clone()),
        state: status.map_or_else(|| format!("status {}", c.license_status), |s| s.label().to_owned()),
        state_key: status.map_or("", LicenseStatus::key).to_owned(),
        last_seen: short_time(c.last_seen_ms),
        expires,
        expires_in,
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) for tables; the full RFC 3339 time is on 02C and in the API.
fn short_time(ms: i64) -> String {
    let text = Timestamp::from_unix_ms(ms).to_string();
    format!("{} {}", text.get(..10).unwrap_or(&text), text.get(11..16).unwrap_or(""))
}

/// Paging links: rows `from..=to` of `total`, with the other parameters kept.
pub(crate) struct Pager {
    pub total: u64,
    pub from: u64,
    pub to: u64,
    pub page: u64,
    pub pages: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

fn page_params(q: &Q) -> Result<(u64, u64), PageError> {
    let num = |name: &str, default: u64| -> Result<u64, PageError> {
        match q.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| PageError::BadRequest(format!("invalid {name} {v:?}: expected a number"))),
        }
    };
    let per = num("per", PAGE_DEFAULT)?.clamp(1, PAGE_MAX);
    // Clamped so that `(page - 1) * per` cannot overflow; such a page is simply empty.
    let page = num("page", 1)?.clamp(1, u64::MAX / (2 * PAGE_MAX));
    Ok((page, per))
}

fn link(path: &str, q: &Q, page: u64) -> String {
    let mut keys: Vec<&String> = q.keys().filter(|k| k.as_str() != "page").collect();
    keys.sort();
    let mut parts: Vec<String> =
        keys.iter().filter(|k| !q[**k].is_empty()).map(|k| format!("{}={}", urlencode(k), urlencode(&q[*k]))).collect();
    parts.push(format!("page={page}"));
    format!("{path}?{}", parts.join("&"))
}

/// Percent-encodes a query component: everything but the RFC 3986 unreserved characters.
pub(crate) fn urlencode(s: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

fn pager(path: &str, q: &Q, page: u64, per: u64, total: u64, shown: usize) -> Pager {
    let from = if shown == 0 { 0 } else { (page - 1) * per + 1 };
    let pages = total.div_ceil(per).max(1);
    Pager {
        total,
        from,
        to: from + shown as u64 - u64::from(shown > 0),
        page,
        pages,
        prev: (page > 1).then(|| link(path, q, page - 1)),
        next: (page < pages).then(|| link(path, q, page + 1)),
    }
}

/// The status filter value of a query (`licensed`, `initial_grace`, ... or 0..6).
fn parse_state(v: &str) -> Result<LicenseStatus, PageError> {
    LicenseStatus::from_key(v)
        .or_else(|| v.parse::<u8>().ok().and_then(LicenseStatus::from_u8))
        .ok_or_else(|| PageError::BadRequest(format!("invalid state {v:?}: expected licensed, initial_grace, ...")))
}

fn parse_product(state: &HostState, v: &str) -> Result<Uuid, PageError> {
    state
        .catalog
        .product_by_name(v)
        .map(|p| p.activation_id)
        .or_else(|| v.parse::<Uuid>().ok())
        .ok_or_else(|| PageError::BadRequest(format!("invalid product {v:?}: not a product name or activation ID")))
}

// ---------------------------------------------------------------- overview

pub(crate) struct GroupView {
    pub name: String,
    pub count: u64,
    pub thresholds: String,
    pub bar: String,
}

pub(crate) struct Setting {
    pub name: &'static str,
    pub value: String,
}

pub(crate) struct ZoneView {
    pub zone: String,
    pub result: String,
    pub failing: bool,
    pub hresult: String,
    pub message: String,
    pub last_attempt: PageTime,
    pub last_success: PageTime,
    pub next_attempt: PageTime,
    /// SRV priority and weight.
    pub srv: String,
    /// Successes / failures.
    pub attempts: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(crate) struct Overview {
    pub chrome: Chrome,
    pub groups: Vec<GroupView>,
    pub hourly: String,
    pub daily: String,
    pub by_status: String,
    pub status_rows: Vec<(String, String, u64)>,
    pub total: u64,
    pub failed: u64,
    pub dns_configured: bool,
    pub zones: Vec<ZoneView>,
    pub settings: Vec<Setting>,
    pub active_alerts: Vec<Alert>,
    /// The latest request: time, machine, result (`None` before the first).
    pub last_request: Option<(PageTime, String, String)>,
}

fn short_label(t: Timestamp, hourly: bool) -> String {
    let text = t.to_string();
    // RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`: keep `DD HH:00` for hours, `MM-DD` for days.
    if hourly {
        format!("{} {}h", text.get(8..10).unwrap_or(""), text.get(11..13).unwrap_or(""))
    } else {
        text.get(5..10).unwrap_or("").to_owned()
    }
}

pub(crate) fn overview(state: &HostState, _q: &Q) -> Result<String, PageError> {
    let status = crate::status::host_status(state);
    let now_ms = state.now().as_unix_ms();
    let groups = status
        .counts
        .iter()
        .filter(|g| g.served || g.count > 0)
        .map(|g| GroupView {
            name: g.group.clone().unwrap_or_else(|| "?".to_owned()),
            count: u64::from(g.count),
            thresholds: g.thresholds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            bar: svg::count_bar(g.count, &g.thresholds, g.cap),
        })
        .collect();
    let (hourly, daily) = {
        let series = state.dashboard.series();
        (series.hourly(now_ms), series.daily(now_ms))
    };
    let points = |v: Vec<(Timestamp, crate::series::Bucket)>, hourly: bool| -> Vec<(String, u64, u64)> {
        v.into_iter().map(|(t, b)| (short_label(t, hourly), b.requests, b.failed)).collect()
    };
    let status_rows: Vec<(String, String, u64)> = LicenseStatus::ALL
        .iter()
        .map(|s| (s.key().to_owned(), s.label().to_owned(), status.counters.by_status.get(s.key()).copied().unwrap_or(0)))
        .collect();
    let by_status = svg::hbars(&status_rows.iter().map(|(_, label, n)| (short_status(label), *n)).collect::<Vec<_>>());
    let time = |t: &Option<String>| page_time_text(state, t.as_deref());
    let zones = status
        .dns
        .zones
        .iter()
        .map(|z| ZoneView {
            zone: z.zone.clone(),
            result: z.result.clone().unwrap_or_else(|| "not attempted yet".to_owned()),
            failing: z.failed(),
            hresult: z.hresult.clone().unwrap_or_default(),
            message: z.message.clone().unwrap_or_default(),
            last_attempt: time(&z.last_attempt),
            last_success: time(&z.last_success),
            next_attempt: time(&z.next_attempt),
            srv: format!("priority {}, weight {}", z.priority, z.weight),
            attempts: format!("{} / {}", z.successes, z.failures),
        })
        .collect();
    let s = &status.settings;
    let settings = vec![
        Setting { name: "Name", value: status.name.clone().unwrap_or_default() },
        Setting { name: "Description", value: status.description.clone().unwrap_or_default() },
        Setting { name: "License status", value: status.license_status.clone() },
        Setting { name: "Host key groups", value: status.host_key_groups.join(", ") },
        Setting { name: "KMS ePID", value: status.epid.clone() },
        Setting { name: "Listening", value: status.listening.join(", ") },
        Setting { name: "Admin address", value: status.admin.clone() },
        Setting { name: "Activation interval", value: format!("{} minutes", s.activation_interval) },
        Setting { name: "Renewal interval", value: format!("{} minutes", s.renewal_interval) },
        Setting { name: "Port at next start", value: next_start_port(&status) },
        Setting { name: "DNS publishing", value: if s.dns_publishing { "enabled".into() } else { "disabled".into() } },
        Setting { name: "KMS priority", value: s.priority.clone() },
        Setting { name: "Time scale", value: format!("{}× (simulated now {})", state.clock.scale(), status.now) },
        Setting { name: "Registry", value: state.store.path().display().to_string() },
    ];
    Ok(Overview {
        chrome: chrome(state, "Overview", "overview"),
        groups,
        hourly: svg::columns(&points(hourly, true), 6),
        daily: svg::columns(&points(daily, false), 5),
        by_status,
        status_rows,
        total: status.counters.total,
        failed: status.counters.failed,
        dns_configured: status.dns.configured,
        zones,
        settings,
        active_alerts: alerts::evaluate(&alerts::inputs_from(state, &status)).into_iter().filter(|a| a.active).collect(),
        last_request: status.last_request.as_ref().map(|l| {
            let at = Timestamp::parse_rfc3339(&l.time).map_or(0, Timestamp::as_unix_ms);
            (page_time(state, at), l.machine_name.clone(), format!("{} {}", l.result, l.name).trim_end().to_owned())
        }),
    }
    .render()?)
}

/// The port the host binds at its next start: the one `/sprt` stored, else the one it
/// listens on now (`--port`, or 1688).
fn next_start_port(status: &kmslab_api::HostStatus) -> String {
    match (status.settings.port, status.port) {
        (Some(p), _) => format!("{p} (set with /sprt)"),
        (None, Some(p)) => format!("{p} (as now)"),
        (None, None) => "1688".to_owned(),
    }
}

fn short_status(label: &str) -> String {
    label.split(" (").next().unwrap_or(label).to_owned()
}

// ---------------------------------------------------------------- clients

#[derive(Template)]
#[template(path = "clients.html")]
pub(crate) struct Clients {
    pub chrome: Chrome,
    pub search: String,
    pub state_filter: String,
    pub product_filter: String,
    pub states: Vec<(String, String)>,
    pub products: Vec<(String, String)>,
    pub rows: Vec<ClientView>,
    pub pager: Pager,
    pub elapsed_ms: String,
}

fn client_page(state: &HostState, query: &ClientQuery) -> Result<(ClientPage, Vec<ClientView>), PageError> {
    let page = state.store.clients(query)?;
    let now_ms = state.now().as_unix_ms();
    let views = page.rows.iter().map(|c| client_view(state, c, now_ms)).collect();
    Ok((page, views))
}

pub(crate) fn clients(state: &HostState, q: &Q) -> Result<String, PageError> {
    let started = std::time::Instant::now();
    let (page, per) = page_params(q)?;
    let mut query = ClientQuery { offset: (page - 1) * per, limit: per, ..ClientQuery::default() };
    let state_filter = q.get("state").cloned().unwrap_or_default();
    if !state_filter.is_empty() {
        query.status = Some(parse_state(&state_filter)? as u8);
    }
    let product_filter = q.get("product").cloned().unwrap_or_default();
    if !product_filter.is_empty() {
        query.activation_id = Some(parse_product(state, &product_filter)?);
    }
    let search = q.get("search").map(|s| s.trim().to_owned()).unwrap_or_default();
    query.search = Some(search.clone()).filter(|s| !s.is_empty());
    let (result, rows) = client_page(state, &query)?;
    let pager = pager("/clients", q, page, per, result.total, rows.len());
    Ok(Clients {
        chrome: chrome(state, "Clients", "clients"),
        search,
        state_filter,
        product_filter,
        states: LicenseStatus::ALL.iter().map(|s| (s.key().to_owned(), short_status(s.label()))).collect(),
        products: state.catalog.products().iter().map(|p| (p.name.clone(), p.display_name.clone())).collect(),
        rows,
        pager,
        elapsed_ms: format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
    }
    .render()?)
}

// ---------------------------------------------------------------- events

pub(crate) struct EventView {
    pub seq: u64,
    pub id: u32,
    pub name: &'static str,
    pub time: PageTime,
    /// One cell per column of the page's field columns.
    pub cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "events.html")]
pub(crate) struct Events {
    pub chrome: Chrome,
    pub id_filter: String,
    pub since: String,
    pub until: String,
    pub rows: Vec<EventView>,
    pub columns: Vec<String>,
    pub total: u64,
    pub page: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub csv: String,
    pub json: String,
}

fn parse_time(name: &str, v: &str) -> Result<i64, PageError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    Timestamp::parse_rfc3339(v).map(|t| t.as_unix_ms()).map_err(|e| PageError::BadRequest(format!("invalid {name} {v:?}: {e}")))
}

fn event_name(id: u32) -> &'static str {
    match id {
        REQUEST_RECEIVED => "KMS request received",
        DNS_PUBLISH_FAILED => "DNS publishing failed",
        DNS_PUBLISH_SUCCEEDED => "DNS publishing succeeded",
        _ => "event",
    }
}

pub(crate) fn events(state: &HostState, q: &Q) -> Result<String, PageError> {
    let (page, per) = page_params(q)?;
    let mut query = EventQuery { newest_first: true, offset: (page - 1) * per, limit: per, ..EventQuery::default() };
    let mut export = Vec::new();
    let id_filter = q.get("id").cloned().unwrap_or_default();
    if !id_filter.is_empty() {
        query.event_id = Some(
            id_filter.parse().map_err(|_| PageError::BadRequest(format!("invalid id {id_filter:?}: expected 12290, 12293 or 12294")))?,
        );
        export.push(format!("id={}", urlencode(&id_filter)));
    }
    let since = q.get("since").cloned().unwrap_or_default();
    if !since.is_empty() {
        query.since_ms = Some(parse_time("since", &since)?);
        export.push(format!("since={}", urlencode(&since)));
    }
    let until = q.get("until").cloned().unwrap_or_default();
    if !until.is_empty() {
        query.until_ms = Some(parse_time("until", &until)?);
        export.push(format!("until={}", urlencode(&until)));
    }
    let rows = state.store.events(&query)?;
    let total = state.store.event_count()?;
    let records: Vec<(kmslab_api::EventRecord, Vec<(String, String)>)> = rows
        .iter()
        .map(|r| {
            let e = crate::status::event_record(r);
            let pairs = e.field_pairs();
            (e, pairs)
        })
        .collect();
    // One column per field name on this page, in the order they first appear.
    let mut columns: Vec<String> = Vec::new();
    for (_, pairs) in &records {
        for (k, _) in pairs {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let views = records
        .iter()
        .zip(&rows)
        .map(|((e, pairs), r)| EventView {
            seq: e.seq,
            id: r.event_id,
            name: event_name(r.event_id),
            time: page_time(state, r.time_ms),
            cells: columns.iter().map(|c| pairs.iter().find(|(k, _)| k == c).map(|(_, v)| v.clone()).unwrap_or_default()).collect(),
        })
        .collect::<Vec<_>>();
    let filter = export.join("&");
    let sep = if filter.is_empty() { "" } else { "&" };
    Ok(Events {
        chrome: chrome(state, "Events", "events"),
        id_filter,
        since,
        until,
        prev: (page > 1).then(|| link("/events", q, page - 1)),
        next: (views.len() as u64 == per).then(|| link("/events", q, page + 1)),
        rows: views,
        columns,
        total,
        page,
        csv: format!("/api/v1/events?format=csv{sep}{filter}"),
        json: format!("/api/v1/events?format=json{sep}{filter}"),
    }
    .render()?)
}

// ---------------------------------------------------------------- alerts

#[derive(Template)]
#[template(path = "alerts.html")]
pub(crate) struct Alerts {
    pub chrome: Chrome,
    pub rows: Vec<(Alert, &'static str)>,
}

pub(crate) fn alerts(state: &HostState, _q: &Q) -> Result<String, PageError> {
    let rows = alerts::current(state).into_iter().zip(alerts::DEFINITIONS.iter().map(|d| d.1)).collect();
    Ok(Alerts { chrome: chrome(state, "Alerts", "alerts"), rows }.render()?)
}

// ---------------------------------------------------------------- reports

#[derive(Template)]
#[template(path = "reports.html")]
pub(crate) struct ReportsIndex {
    pub chrome: Chrome,
}

pub(crate) fn reports_index(state: &HostState, _q: &Q) -> Result<String, PageError> {
    Ok(ReportsIndex { chrome: chrome(state, "Reports", "reports") }.render()?)
}

/// One row of a count report, with its drill-down link.
pub(crate) struct CountRow {
    pub label: String,
    pub clients: u64,
    pub href: String,
}

#[derive(Template)]
#[template(path = "report_counts.html")]
pub(crate) struct CountReport {
    pub chrome: Chrome,
    pub id: &'static str,
    pub heading: String,
    pub intro: String,
    pub column: &'static str,
    pub rows: Vec<CountRow>,
    pub chart: String,
}

#[derive(Template)]
#[template(path = "report_list.html")]
pub(crate) struct ListReport {
    pub chrome: Chrome,
    pub id: &'static str,
    pub heading: String,
    pub back: String,
    pub rows: Vec<ClientView>,
    pub pager: Pager,
}

/// `[from, until)` of last activation times for an expiry range, by its name.
fn expiry_window(now_ms: i64, range: &str) -> Result<(i64, i64, String), PageError> {
    let base = now_ms - VALIDITY_MS;
    if range == "expired" {
        return Ok((i64::MIN, base, "Licences already expired (more than 180 days since the last activation)".into()));
    }
    let days: i64 = range
        .parse()
        .ok()
        .filter(|d| EXPIRY_RANGES_DAYS.contains(d))
        .ok_or_else(|| PageError::BadRequest(format!("invalid range {range:?}: expected expired, 7, 30, 60, 90 or 180")))?;
    Ok((base, base + days * DAY_MS, format!("Licences expiring within the next {days} days")))
}

pub(crate) fn report_02a(state: &HostState, _q: &Q) -> Result<String, PageError> {
    let now_ms = state.now().as_unix_ms();
    let mut rows = Vec::new();
    for range in std::iter::once("expired".to_owned()).chain(EXPIRY_RANGES_DAYS.iter().map(ToString::to_string)) {
        let (from, until, label) = expiry_window(now_ms, &range)?;
        rows.push(CountRow {
            label,
            clients: state.store.count_activated_between(from, until)?,
            href: format!("/reports/02B?range={range}"),
        });
    }
    let chart = svg::hbars(
        &rows
            .iter()
            .map(|r| {
                (
                    r.label
                        .replace("Licences expiring within the next ", "next ")
                        .replace(" (more than 180 days since the last activation)", ""),
                    r.clients,
                )
            })
            .collect::<Vec<_>>(),
    );
    Ok(CountReport {
        chrome: chrome(state, "02A Licences expiring by time range", "reports"),
        id: "02A",
        heading: "Volume licences expiring by time range".into(),
        intro: "A KMS activation is valid 180 days from the client's latest successful activation; clients renew every renewal interval. Ranges are cumulative. Clients never activated are not listed.".into(),
        column: "Time range",
        rows,
        chart,
    }
    .render()?)
}

pub(crate) fn report_02b(state: &HostState, q: &Q) -> Result<String, PageError> {
    let now_ms = state.now().as_unix_ms();
    let range = q.get("range").cloned().unwrap_or_else(|| "30".into());
    let (from, until, label) = expiry_window(now_ms, &range)?;
    let (page, per) = page_params(q)?;
    let result = state.store.clients_activated_between(from, until, (page - 1) * per, per)?;
    let rows: Vec<ClientView> = result.rows.iter().map(|c| client_view(state, c, now_ms)).collect();
    let pager = pager("/reports/02B", q, page, per, result.total, rows.len());
    Ok(ListReport {
        chrome: chrome(state, "02B Machines in a time range", "reports"),
        id: "02B",
        heading: label,
        back: "/reports/02A".into(),
        rows,
        pager,
    }
    .render()?)
}

#[derive(Template)]
#[template(path = "report_02c.html")]
pub(crate) struct MachineReport {
    pub chrome: Chrome,
    pub client: ClientView,
    pub facts: Vec<Setting>,
}

pub(crate) fn report_02c(state: &HostState, q: &Q) -> Result<String, PageError> {
    let text = q.get("cmid").cloned().unwrap_or_default();
    let cmid: Uuid = text.trim().parse().map_err(|_| PageError::BadRequest(format!("invalid cmid {text:?}: expected a GUID")))?;
    let row = state.store.client(cmid)?.ok_or_else(|| PageError::NotFound(format!("no client with CMID {cmid} in the registry")))?;
    let now_ms = state.now().as_unix_ms();
    let product = state.catalog.product_by_activation_id(&row.activation_id);
    let facts = vec![
        Setting { name: "Client Machine ID (CMID)", value: row.cmid.to_string() },
        Setting { name: "Machine name", value: row.machine_name.clone() },
        Setting {
            name: "Product",
            value: product.map_or_else(|| "(not in the catalog)".into(), |p| format!("{} ({})", p.display_name, p.name)),
        },
        Setting { name: "Description", value: product.map(|p| p.description.clone()).unwrap_or_default() },
        Setting { name: "Activation ID", value: row.activation_id.to_string() },
        Setting { name: "Application ID", value: row.application_id.to_string() },
        Setting {
            name: "Counted group",
            value: state.catalog.counted_group(&row.counted_id).map_or_else(|| row.counted_id.to_string(), |g| g.name.clone()),
        },
        Setting {
            name: "License status (last request)",
            value: LicenseStatus::from_u8(row.license_status).map_or_else(|| row.license_status.to_string(), |s| s.label().to_owned()),
        },
        Setting { name: "Minutes to expiry (reported)", value: row.minutes_to_expiry.to_string() },
        Setting {
            name: "Last activation",
            value: row.last_activation_ms.map_or_else(|| "never".into(), |ms| Timestamp::from_unix_ms(ms).to_string()),
        },
        Setting { name: "First seen", value: Timestamp::from_unix_ms(row.first_seen_ms).to_string() },
        Setting { name: "Last seen", value: Timestamp::from_unix_ms(row.last_seen_ms).to_string() },
        Setting { name: "Requests", value: row.request_count.to_string() },
        Setting { name: "Last address", value: row.last_address.map(|a| a.to_string()).unwrap_or_default() },
        Setting { name: "Last result", value: format!("0x{:08X}", row.last_result) },
    ];
    Ok(MachineReport {
        chrome: chrome(state, "02C Licence information for one machine", "reports"),
        client: client_view(state, &row, now_ms),
        facts,
    }
    .render()?)
}

pub(crate) fn report_03a(state: &HostState, _q: &Q) -> Result<String, PageError> {
    let tallies = state.store.count_by_status()?;
    let rows: Vec<CountRow> = LicenseStatus::ALL
        .iter()
        .map(|s| CountRow {
            label: s.label().to_owned(),
            clients: tallies.iter().find(|t| t.key == *s as u8).map_or(0, |t| t.clients),
            href: format!("/reports/03B?state={}", s.key()),
        })
        .collect();
    let chart = svg::hbars(&rows.iter().map(|r| (short_status(&r.label), r.clients)).collect::<Vec<_>>());
    Ok(CountReport {
        chrome: chrome(state, "03A Count of licences by licence state", "reports"),
        id: "03A",
        heading: "Count of volume licences by licence state".into(),
        intro: "Each client counts once, in the licence state it reported in its latest request.".into(),
        column: "Licence state",
        rows,
        chart,
    }
    .render()?)
}

fn filtered_list(
    state: &HostState,
    q: &Q,
    id: &'static str,
    path: &str,
    heading: String,
    back: &str,
    query: ClientQuery,
) -> Result<String, PageError> {
    let (page, per) = page_params(q)?;
    let query = ClientQuery { offset: (page - 1) * per, limit: per, ..query };
    let (result, rows) = client_page(state, &query)?;
    let pager = pager(path, q, page, per, result.total, rows.len());
    Ok(ListReport { chrome: chrome(state, format!("{id} {heading}"), "reports"), id, heading, back: back.into(), rows, pager }.render()?)
}

pub(crate) fn report_03b(state: &HostState, q: &Q) -> Result<String, PageError> {
    let status = parse_state(q.get("state").map_or("licensed", String::as_str))?;
    let query = ClientQuery { status: Some(status as u8), ..ClientQuery::default() };
    filtered_list(state, q, "03B", "/reports/03B", format!("Machines in licence state {}", status.label()), "/reports/03A", query)
}

pub(crate) fn report_04a(state: &HostState, _q: &Q) -> Result<String, PageError> {
    let rows: Vec<CountRow> = state
        .store
        .count_by_activation_id()?
        .into_iter()
        .map(|t| {
            let product = state.catalog.product_by_activation_id(&t.key);
            CountRow {
                label: product.map_or_else(|| t.key.to_string(), |p| p.display_name.clone()),
                clients: t.clients,
                href: format!("/reports/04B?product={}", urlencode(&product.map_or_else(|| t.key.to_string(), |p| p.name.clone()))),
            }
        })
        .collect();
    let chart = svg::hbars(&rows.iter().map(|r| (r.label.clone(), r.clients)).collect::<Vec<_>>());
    Ok(CountReport {
        chrome: chrome(state, "04A Count of licences by product", "reports"),
        id: "04A",
        heading: "Count of volume licences by product".into(),
        intro: "Each client counts once, under the product (activation ID) of its latest request.".into(),
        column: "Product",
        rows,
        chart,
    }
    .render()?)
}

pub(crate) fn report_04b(state: &HostState, q: &Q) -> Result<String, PageError> {
    let text = q.get("product").cloned().unwrap_or_default();
    let id = parse_product(state, &text)?;
    let name = state.catalog.product_by_activation_id(&id).map_or_else(|| id.to_string(), |p| p.display_name.clone());
    let query = ClientQuery { activation_id: Some(id), ..ClientQuery::default() };
    filtered_list(state, q, "04B", "/reports/04B", format!("Machines with {name}"), "/reports/04A", query)
}

/// One KMS host of report 05A.
pub(crate) struct HostView {
    pub name: String,
    pub port: String,
    pub source: String,
    pub priority: String,
    pub weight: String,
    pub this_host: bool,
}

/// What the SRV lookups found: hosts, and one line per zone that failed.
pub(crate) struct FoundHosts {
    configured: bool,
    hosts: Vec<HostView>,
    errors: Vec<String>,
}

/// Looks up `_vlmcs._tcp` in each publish zone of the status `dns` object.
pub(crate) async fn lookup_hosts(state: &HostState) -> FoundHosts {
    let dns = crate::status::host_status(state).dns;
    let server = dns.server.as_deref().and_then(|s| s.parse::<SocketAddr>().ok()).map_or(DnsServerChoice::System, DnsServerChoice::Server);
    let me = dns.hostname.as_deref().map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    let mut found = FoundHosts { configured: dns.configured, hosts: Vec::new(), errors: Vec::new() };
    for zone in &dns.zones {
        let name = &zone.zone;
        match lookup_vlmcs(&server, name, Duration::from_secs(2)).await {
            Ok(targets) => found.hosts.extend(targets.into_iter().map(|t| HostView {
                this_host: me.as_deref() == Some(t.target.to_ascii_lowercase().as_str()),
                name: t.target,
                port: t.port.to_string(),
                source: format!("SRV _vlmcs._tcp.{name}"),
                priority: t.priority.to_string(),
                weight: t.weight.to_string(),
            })),
            Err(e) => found.errors.push(format!("{name}: {e}")),
        }
    }
    found
}

#[derive(Template)]
#[template(path = "report_05a.html")]
pub(crate) struct HostsReport {
    pub chrome: Chrome,
    pub configured: bool,
    pub hosts: Vec<HostView>,
    pub errors: Vec<String>,
}

pub(crate) fn report_05a(state: &HostState, found: FoundHosts) -> Result<String, PageError> {
    let epid = state.epid();
    let mut hosts = vec![HostView {
        name: state.kms_addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        port: state.kms_addrs.first().map(|a| a.port().to_string()).unwrap_or_default(),
        source: format!("local, ePID {epid}"),
        priority: String::new(),
        weight: String::new(),
        this_host: true,
    }];
    hosts.extend(found.hosts);
    Ok(HostsReport { chrome: chrome(state, "05A KMS hosts", "reports"), configured: found.configured, hosts, errors: found.errors }
        .render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_links_keep_filters() {
        let q: Q =
            [("state".to_owned(), "licensed".to_owned()), ("search".to_owned(), "a b".to_owned()), ("page".to_owned(), "2".to_owned())]
                .into();
        let p = pager("/clients", &q, 2, 10, 35, 10);
        assert_eq!((p.from, p.to, p.pages), (11, 20, 4));
        assert_eq!(p.prev.as_deref(), Some("/clients?search=a%20b&state=licensed&page=1"));
        assert_eq!(p.next.as_deref(), Some("/clients?search=a%20b&state=licensed&page=3"));
        let empty = pager("/clients", &Q::new(), 1, 10, 0, 0);
        assert_eq!((empty.from, empty.to, empty.prev, empty.next), (0, 0, None, None));
    }

    #[test]
    fn expiry_windows() {
        let now = 1_000 * DAY_MS;
        let (from, until, _) = expiry_window(now, "7").unwrap();
        assert_eq!((from, until), (now - VALIDITY_MS, now - VALIDITY_MS + 7 * DAY_MS));
        assert!(expiry_window(now, "8").is_err());
        assert_eq!(expiry_window(now, "expired").unwrap().1, now - VALIDITY_MS);
    }
}

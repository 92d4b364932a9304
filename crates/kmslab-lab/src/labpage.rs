//! The lab page (`GET /` of the lab control API): the hosts with their roles, counts and
//! latest request, the activation service's MAKs with their remaining activations and the
//! machines by channel (KMS, MAK), the machines by licence state over simulated time, the
//! lab events, the machines with a search box and their `/dli` lines, and a button for
//! every host and DNS fault.
//!
//! The page is rendered here (askama, `templates/lab.html`); its one script
//! (`static/lab.js`, served same-origin at `/lab.js`) sends a button's fault as the JSON
//! POST the control API takes and reloads the page every few seconds. [`LAB_PAGE_CSP`]
//! lets the page load only its own script and stylesheet and fetch only its own API.
//!
//! The chart comes from [`LabHistory`]: a sampler reads the fleet's counts by state every
//! quarter real second and keeps the last sample of each [`BUCKET_MS`] of simulated time,
//! (at the default 43,200x a new bar every half real second; the last [`BUCKETS`] show).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use askama::Template;
use kmslab_core::{LicenseStatus, Timestamp};
use serde_json::Value;

use crate::control::{DnsAction, HostAction, Lab};

/// The `Content-Security-Policy` of the lab control API: its page runs only `/lab.js`,
/// styles only from `/lab.css`, fetches only from itself, and may not be framed.
pub const LAB_PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                                form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The chart's bucket: six simulated hours.
pub const BUCKET_MS: i64 = 6 * 3_600_000;

/// Buckets the chart shows (twelve simulated days).
pub const BUCKETS: usize = 48;

/// The machines that show their `/dli` lines: a search narrowed to at most this many.
pub const DLI_MACHINES: usize = 10;

/// Machines listed at most.
const LISTED: usize = 200;

/// The states the chart stacks, bottom up, with their colours.
const STATES: [(LicenseStatus, &str); 5] = [
    (LicenseStatus::Licensed, "#2e7d32"),
    (LicenseStatus::InitialGrace, "#1565c0"),
    (LicenseStatus::AdditionalGrace, "#6a1b9a"),
    (LicenseStatus::Notification, "#ef6c00"),
    (LicenseStatus::Unlicensed, "#c62828"),
];

/// Machines by licence state, the last sample of each simulated bucket.
#[derive(Debug, Default)]
pub struct LabHistory {
    buckets: Mutex<BTreeMap<i64, [u64; 5]>>,
}

impl LabHistory {
    /// Records the fleet's counts now.
    pub fn sample(&self, lab: &Lab) {
        let Some(fleet) = lab.fleet() else { return };
        let summary = fleet.stats().summary();
        self.insert(lab.clock().now(), STATES.map(|(s, _)| summary[s.key()].as_u64().unwrap_or(0)));
    }

    /// Keeps `counts` (by [`STATES`]) as the last sample of the bucket of `at`.
    fn insert(&self, at: Timestamp, counts: [u64; 5]) {
        let bucket = at.as_unix_ms().div_euclid(BUCKET_MS);
        let mut b = self.buckets.lock().expect("history lock");
        b.insert(bucket, counts);
        while b.len() > BUCKETS {
            b.pop_first();
        }
    }

    /// Samples `lab` every quarter second until it is gone.
    pub fn spawn_sampler(self: &Arc<Self>, lab: &Arc<Lab>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (history, lab) = (Arc::clone(self), Arc::downgrade(lab));
        rt.spawn(async move {
            loop {
                match Weak::upgrade(&lab) {
                    Some(lab) => history.sample(&lab),
                    None => return,
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    /// The stacked bar chart (inline SVG).
    pub fn svg(&self) -> String {
        let b = self.buckets.lock().expect("history lock");
        let (w, h, bar) = (720.0_f64, 160.0_f64, 720.0 / BUCKETS as f64);
        let max = b.values().map(|c| c.iter().sum::<u64>()).max().unwrap_or(0).max(1) as f64;
        let mut out = format!(
            "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\">",
            h + 16.0,
            h + 16.0
        );
        let first = b.keys().next().copied();
        for (i, (bucket, counts)) in b.iter().enumerate() {
            let x = i as f64 * bar;
            let mut y = h;
            let at = Timestamp::from_unix_ms(bucket * BUCKET_MS).to_string();
            for ((state, colour), n) in STATES.iter().zip(counts) {
                if *n == 0 {
                    continue;
                }
                let bh = *n as f64 / max * h;
                y -= bh;
                out.push_str(&format!(
                    "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{at}: {n} {}</title></rect>",
                    bar - 1.0,
                    state.key()
                ));
            }
        }
        if let (Some(first), Some(last)) = (first, b.keys().last()) {
            let label = |k: i64| Timestamp::from_unix_ms(k * BUCKET_MS).to_string().chars().take(13).collect::<String>();
            out.push_str(&format!("<text x=\"0\" y=\"{}\" font-size=\"11\">{}h</text>", h + 13.0, label(first)));
            out.push_str(&format!("<text x=\"{w}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}h</text>", h + 13.0, label(*last)));
        }
        out.push_str("</svg>");
        out
    }
}

/// One host row.
#[derive(Debug)]
pub struct HostRow {
    name: String,
    role: String,
    count: u64,
    requests: String,
    failed: String,
    dashboard: String,
    kms: String,
    /// Time, machine and result of the host's latest request.
    last_request: Option<(String, String, String)>,
}

/// One MAK of the lab's activation service.
#[derive(Debug)]
pub struct KeyRow {
    key: String,
    products: String,
    remaining: String,
    used: String,
    blocked: bool,
}

/// One machine row.
#[derive(Debug)]
pub struct MachineRow {
    name: String,
    status: String,
    host: String,
    last_result: String,
    dli: Vec<String>,
}

#[derive(Template)]
#[template(path = "lab.html")]
struct LabPage<'a> {
    now: String,
    scale: String,
    hosts: Vec<HostRow>,
    host_actions: Vec<&'a str>,
    dns_actions: Vec<&'a str>,
    dns_updates: String,
    chart: String,
    legend: Vec<(&'static str, &'static str)>,
    machines: Vec<MachineRow>,
    matched: usize,
    q: String,
    events: Vec<(String, String, String, String)>,
    activation: String,
    keys: Vec<KeyRow>,
    kms_machines: String,
    mak_machines: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders the page; `q` narrows the machine list as `GET /api/v1/lab/machines?q=` does.
pub async fn render(lab: &Lab, history: &LabHistory, q: &str) -> Result<String, askama::Error> {
    history.sample(lab);
    let summary = lab.summary();
    let hosts = summary["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| HostRow {
            name: text(&h["name"]),
            role: text(&h["role"]),
            count: h["count"].as_u64().unwrap_or(0),
            requests: text(&h["requests"]),
            failed: text(&h["failed"]),
            dashboard: text(&h["dashboard"]),
            kms: text(&h["kms"]),
            last_request: h["last_request"].is_object().then(|| {
                let l = &h["last_request"];
                (text(&l["time"]), text(&l["machine_name"]), format!("{} {}", text(&l["result"]), text(&l["name"])).trim_end().to_owned())
            }),
        })
        .collect();
    let keys = summary["activation"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| KeyRow {
            key: text(&k["key"]),
            products: k["products"].as_array().map_or_else(String::new, |p| p.iter().map(text).collect::<Vec<_>>().join(", ")),
            remaining: text(&k["remaining"]),
            used: format!(
                "{} of {}",
                text(&k["used"]),
                k["granted"].as_u64().unwrap_or(0).saturating_add(k["added"].as_u64().unwrap_or(0))
            ),
            blocked: k["blocked"] == true,
        })
        .collect();
    let needle = q.trim().to_ascii_lowercase();
    let mut machines = Vec::new();
    let mut matched = 0;
    if let Some(fleet) = lab.fleet() {
        let all = fleet.machines().await;
        let found: Vec<_> =
            all.iter().filter(|m| needle.is_empty() || m.json().to_string().to_ascii_lowercase().contains(&needle)).collect();
        matched = found.len();
        let with_dli = !needle.is_empty() && matched <= DLI_MACHINES;
        for m in found.into_iter().take(LISTED) {
            let v = m.json();
            let dli = if with_dli { m.dli_lines() } else { Vec::new() };
            machines.push(MachineRow {
                name: text(&v["name"]),
                status: text(&v["status"]),
                host: text(&v["host"]),
                last_result: text(&v["last_result"]),
                dli,
            });
        }
    }
    let mut events: Vec<(String, String, String, String)> =
        lab.events_since(0).iter().map(|e| (text(&e["time"]), text(&e["kind"]), text(&e["target"]), e["detail"].to_string())).collect();
    events.reverse();
    events.truncate(50);
    LabPage {
        now: text(&summary["now"]),
        scale: text(&summary["time_scale"]),
        hosts,
        host_actions: HostAction::ALL.iter().map(|(n, _)| *n).collect(),
        dns_actions: DnsAction::ALL.iter().map(|(n, _)| *n).collect(),
        dns_updates: text(&summary["dns"]["updates"]),
        chart: history.svg(),
        legend: STATES.iter().map(|(s, c)| (s.key(), *c)).collect(),
        machines,
        matched,
        q: q.to_owned(),
        events,
        activation: text(&summary["activation"]["addr"]),
        keys,
        kms_machines: text(&summary["channels"]["kms"]),
        mak_machines: text(&summary["channels"]["mak"]),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_keeps_the_last_sample_of_each_bucket_and_the_last_buckets() {
        let h = LabHistory::default();
        let start = Timestamp::from_unix_ms(1_800_000_000_000 / BUCKET_MS * BUCKET_MS);
        h.insert(start, [1, 0, 0, 0, 0]);
        h.insert(start.plus_ms(BUCKET_MS - 1), [3, 2, 0, 0, 0]);
        let svg = h.svg();
        assert_eq!(svg.matches("<rect").count(), 2, "one bucket, two states: {svg}");
        assert!(svg.contains(": 3 licensed</title>") && svg.contains(": 2 initial_grace</title>"), "{svg}");
        for i in 1..60 {
            h.insert(start.plus_ms(i * BUCKET_MS), [5, 0, 0, 0, 1]);
        }
        let svg = h.svg();
        assert_eq!(svg.matches(": 5 licensed</title>").count(), BUCKETS, "{svg}");
        assert_eq!(svg.matches(": 1 unlicensed</title>").count(), BUCKETS);
        assert!(!svg.contains(": 3 licensed"), "the oldest buckets are gone");
    }
}

//! The host's alerts (after the System Center Operations Manager KMS pack), evaluated from
//! the ledger, the registry and the DNS publishing status; shown on the dashboard,
//! exported as `kmslab_host_alert{alert="..."}` gauges and logged when they change.

use std::sync::Arc;
use std::time::Duration;

use kmslab_api::{HostStatus, ZoneStatus};
use kmslab_core::events::{DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED};
use tokio_util::sync::CancellationToken;

use crate::series::HOUR_MS;
use crate::state::HostState;

/// Simulated time without any KMS request after which a low count raises an alert.
pub const NO_ACTIVITY_MS: i64 = 8 * HOUR_MS;

/// Every alert: (name, what it means). The names are the `alert` label values.
pub const DEFINITIONS: [(&str, &str); 4] = [
    (
        COUNT_BELOW_THRESHOLD,
        "A counted group's current count is below the highest N-policy its clients asked for, and the host has received no KMS request for 8 hours of simulated time (Operations Manager KMS pack: count below activation threshold and no activity).",
    ),
    (
        DNS_PUBLISHING_FAILING,
        "DNS publishing is configured and the latest attempt failed (a zone reports a failure, or the latest DNS event is 12293).",
    ),
    (
        HOST_NOT_ACTIVATED,
        "The host's own KMS host key is not activated (started with --unactivated): every client is refused with 0xC004F041.",
    ),
    (
        STORE_UNHEALTHY,
        "Registry writes fail (disk full, I/O error): the host refuses requests rather than acknowledge what it cannot record.",
    ),
];

/// Alert name: low count and no activity.
pub const COUNT_BELOW_THRESHOLD: &str = "count_below_threshold_no_activity";
/// Alert name: DNS publishing failing.
pub const DNS_PUBLISHING_FAILING: &str = "dns_publishing_failing";
/// Alert name: host not activated.
pub const HOST_NOT_ACTIVATED: &str = "host_not_activated";
/// Alert name: registry unhealthy.
pub const STORE_UNHEALTHY: &str = "store_unhealthy";

/// One counted group as the count rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    /// Group name.
    pub name: String,
    /// Current count.
    pub count: u32,
    /// Highest N-policy its clients asked for (0: no client seen since start).
    pub threshold: u32,
}

/// Everything the rules look at, gathered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertInputs {
    /// Simulated now, ms.
    pub now_ms: i64,
    /// Simulated time of the latest KMS request, ms.
    pub last_activity_ms: Option<i64>,
    /// The counted groups.
    pub groups: Vec<GroupInput>,
    /// Why DNS publishing is failing, when it is.
    pub dns_failure: Option<String>,
    /// The host's own activation.
    pub activated: bool,
    /// Registry health and its latest error.
    pub store_ok: bool,
    /// The registry's latest error.
    pub store_error: Option<String>,
}

/// One alert's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The alert's name (label value).
    pub name: &'static str,
    /// Whether it is raised.
    pub active: bool,
    /// Why, in a sentence (empty when clear).
    pub detail: String,
}

/// Applies the rules. Returns every alert, raised or not, in [`DEFINITIONS`] order.
pub fn evaluate(i: &AlertInputs) -> Vec<Alert> {
    let quiet_for = i.last_activity_ms.map(|t| i.now_ms - t);
    let no_activity = quiet_for.is_none_or(|ms| ms >= NO_ACTIVITY_MS);
    let low: Vec<String> = i
        .groups
        .iter()
        .filter(|g| g.threshold > 0 && g.count < g.threshold)
        .map(|g| format!("{} count {} < {}", g.name, g.count, g.threshold))
        .collect();
    let count_detail = if !low.is_empty() && no_activity {
        let quiet = match quiet_for {
            Some(ms) => format!("no KMS request for {:.1} hours", ms as f64 / HOUR_MS as f64),
            None => "no KMS request since start".to_owned(),
        };
        format!("{}; {quiet}", low.join(", "))
    } else {
        String::new()
    };
    let alert = |name, detail: String| Alert { name, active: !detail.is_empty(), detail };
    vec![
        alert(COUNT_BELOW_THRESHOLD, count_detail),
        alert(DNS_PUBLISHING_FAILING, i.dns_failure.clone().unwrap_or_default()),
        alert(
            HOST_NOT_ACTIVATED,
            if i.activated { String::new() } else { "the host key is not activated (0xC004F041 to every client)".into() },
        ),
        alert(
            STORE_UNHEALTHY,
            if i.store_ok { String::new() } else { i.store_error.clone().unwrap_or_else(|| "registry writes fail".into()) },
        ),
    ]
}

/// Whether a zone's last publishing attempt failed, and why.
fn zone_failure(zone: &ZoneStatus) -> Option<String> {
    zone.failed().then(|| {
        let why = [zone.hresult.as_deref(), zone.message.as_deref()].into_iter().flatten().filter(|s| !s.is_empty()).collect::<Vec<_>>();
        format!("zone {}: {}", zone.zone, if why.is_empty() { "failure".to_owned() } else { why.join(" ") })
    })
}

/// Gathers the inputs from the host's status.
pub fn inputs(state: &HostState) -> AlertInputs {
    inputs_from(state, &crate::status::host_status(state))
}

/// Gathers the inputs from `status` (and the registry's latest DNS event).
pub fn inputs_from(state: &HostState, status: &HostStatus) -> AlertInputs {
    let groups = status
        .counts
        .iter()
        .map(|g| GroupInput {
            name: g.group.clone().unwrap_or_else(|| g.kms_counted_id.clone()),
            count: g.count,
            threshold: g.max_n_policy,
        })
        .collect();
    let last_activity_ms = state.dashboard.last_request_ms().or_else(|| state.store.last_seen_ms().ok().flatten());
    // A zone's last result only counts while publishing is configured and on (`/cdns` stops it).
    let dns = &status.dns;
    let zones = if dns.configured && dns.enabled { dns.zones.as_slice() } else { &[] };
    let mut dns_failure = zones.iter().filter_map(zone_failure).collect::<Vec<_>>().join("; ");
    if dns_failure.is_empty()
        && let Ok(Some(latest)) = state.store.latest_event(&[DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED])
        && latest.event_id == DNS_PUBLISH_FAILED
    {
        dns_failure = format!("latest DNS event is 12293 (publishing failed) at {}", kmslab_core::Timestamp::from_unix_ms(latest.time_ms));
    }
    AlertInputs {
        now_ms: state.now().as_unix_ms(),
        last_activity_ms,
        groups,
        dns_failure: Some(dns_failure).filter(|s| !s.is_empty()),
        activated: status.activated,
        store_ok: status.health.ok,
        store_error: status.health.reason.clone(),
    }
}

/// Evaluates the alerts of a running host and logs every change since the last call.
pub fn current(state: &HostState) -> Vec<Alert> {
    let alerts = evaluate(&inputs(state));
    let mut logged = state.dashboard.logged_alerts.lock().unwrap_or_else(|p| p.into_inner());
    for a in &alerts {
        let before = logged.insert(a.name, a.active).unwrap_or(false);
        match (before, a.active) {
            (false, true) => tracing::warn!(alert = a.name, detail = %a.detail, "alert raised"),
            (true, false) => tracing::info!(alert = a.name, "alert cleared"),
            _ => {}
        }
    }
    alerts
}

/// The alert gauges in Prometheus text format, appended to `/metrics`.
pub fn render_metrics(state: &HostState, alerts: &[Alert]) -> String {
    use kmslab_runtime::prometheus::{ConstGauge, MetricType, Registry, Series, register};
    let mut r = Registry::default();
    let mut raised = Series::new(MetricType::Gauge);
    for a in alerts {
        raised.push([("alert", a.name)], ConstGauge::new(i64::from(a.active)));
    }
    register(&mut r, "kmslab_host_alert", "1 while the alert is raised (see docs/dashboard.md).", raised);
    let now = state.now();
    let (activated, groups) = {
        let l = state.ledger();
        (l.settings().activated, l.group_counts(now))
    };
    register(&mut r, "kmslab_host_activated", "1 when the host's own KMS host key is activated.", ConstGauge::new(i64::from(activated)));
    let mut thresholds = Series::new(MetricType::Gauge);
    for g in &groups {
        let name = state.catalog.counted_group(&g.kms_counted_id).map_or_else(|| g.kms_counted_id.to_string(), |c| c.name.clone());
        thresholds.push([("group", name)], ConstGauge::new(i64::from(g.max_n_policy)));
    }
    register(&mut r, "kmslab_host_count_threshold", "Highest N-policy the clients of a counted group asked for.", thresholds);
    if let Some(last) = state.dashboard.last_request_ms().or_else(|| state.store.last_seen_ms().ok().flatten()) {
        let age = (now.as_unix_ms() - last).max(0) as f64 / 1000.0;
        register(&mut r, "kmslab_host_last_request_age_seconds", "Simulated seconds since the latest KMS request.", ConstGauge::new(age));
    }
    if let Ok(n) = state.store.client_count() {
        register(&mut r, "kmslab_host_registry_clients", "Clients (CMIDs) ever recorded in the registry.", ConstGauge::new(n as i64));
    }
    let simulated = now.as_unix_ms() as f64 / 1000.0;
    register(&mut r, "kmslab_host_simulated_time_seconds", "The host's simulated now, Unix seconds.", ConstGauge::new(simulated));
    kmslab_runtime::prometheus::encode(&r)
}

/// Re-evaluates the alerts every second of real time so changes are logged even when no
/// one looks at the dashboard, until `shutdown`.
pub async fn watch(state: Arc<HostState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let st = Arc::clone(&state);
                // The registry reads block briefly.
                if tokio::task::spawn_blocking(move || { current(&st); }).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(count: u32, quiet_hours: Option<f64>) -> AlertInputs {
        let now_ms = 1_000 * HOUR_MS;
        AlertInputs {
            now_ms,
            last_activity_ms: quiet_hours.map(|h| now_ms - (h * HOUR_MS as f64) as i64),
            groups: vec![GroupInput { name: "windows".into(), count, threshold: 25 }],
            dns_failure: None,
            activated: true,
            store_ok: true,
            store_error: None,
        }
    }

    fn active(i: &AlertInputs) -> Vec<&'static str> {
        evaluate(i).into_iter().filter(|a| a.active).map(|a| a.name).collect()
    }

    #[test]
    fn count_rule_needs_low_count_and_eight_quiet_hours() {
        let none: Vec<&str> = Vec::new();
        for (count, quiet, expected) in [
            (3, Some(7.9), none.clone()),
            (3, Some(8.0), vec![COUNT_BELOW_THRESHOLD]),
            (3, None, vec![COUNT_BELOW_THRESHOLD]),
            (25, Some(100.0), none.clone()),
        ] {
            assert_eq!(active(&inputs(count, quiet)), expected, "count {count}, quiet {quiet:?}");
        }
        // A group no client asked for since start never alerts.
        let mut i = inputs(0, None);
        i.groups[0].threshold = 0;
        assert_eq!(active(&i), none);
    }

    #[test]
    fn other_rules() {
        let mut i = inputs(30, Some(1.0));
        i.activated = false;
        i.store_ok = false;
        i.dns_failure = Some("zone lab.test: REFUSED".into());
        assert_eq!(active(&i), vec![DNS_PUBLISHING_FAILING, HOST_NOT_ACTIVATED, STORE_UNHEALTHY]);
    }

    fn zone(name: &str, result: Option<&str>, hresult: Option<&str>, message: Option<&str>) -> ZoneStatus {
        ZoneStatus {
            zone: name.into(),
            priority: 0,
            weight: 0,
            last_attempt: None,
            last_success: None,
            result: result.map(Into::into),
            hresult: hresult.map(Into::into),
            message: message.map(Into::into),
            next_attempt: None,
            consecutive_failures: 0,
            successes: 0,
            failures: 0,
        }
    }

    #[test]
    fn a_zone_fails_when_its_last_attempt_failed() {
        let zones = [
            zone("a.test", Some("success"), Some("0x00000000"), Some("")),
            zone("b.test", Some("failure"), Some("0x8007232D"), Some("REFUSED")),
            zone("c.test", None, None, None),
            zone("d.test", Some("failure"), None, None),
        ];
        let failures: Vec<String> = zones.iter().filter_map(zone_failure).collect();
        assert_eq!(failures, ["zone b.test: 0x8007232D REFUSED", "zone d.test: failure"]);
    }
}

//! The one builder of the host's [`HostStatus`]: the admin API serialises it, and the
//! dashboard, the alerts and (through the API) slmgr read its fields.

use kmslab_api::{GroupCount, Health, HostCounters, HostLicense, HostSettings, HostStatus, LastRequest, WINDOWS_APPLICATION_ID};
use kmslab_core::LicenseStatus;
use kmslab_core::Timestamp;
use kmslab_core::install_id::host_activation_id;

use crate::state::{HostState, host_license_status};

/// Rearms a KMS host's own license has left: kmslab hosts are never rearmed, so Windows'
/// allowance for a fresh installation (three).
pub const HOST_REARM_COUNT: u32 = 3;

/// The settings the slmgr host verbs change.
pub fn settings(state: &HostState) -> HostSettings {
    let (activation_interval, renewal_interval) = {
        let l = state.ledger();
        (l.settings().activation_interval, l.settings().renewal_interval)
    };
    let extra = state.extra();
    HostSettings {
        activation_interval,
        renewal_interval,
        port: extra.port,
        dns_publishing: state.dns.enabled(),
        priority: if extra.priority_low { "low" } else { "normal" }.to_owned(),
    }
}

/// The host's status now.
pub fn host_status(state: &HostState) -> HostStatus {
    let now = state.now();
    let (groups, counters, ledger_settings) = {
        let l = state.ledger();
        (l.group_counts(now), *l.counters(), l.settings().clone())
    };
    let key_groups = &ledger_settings.key_groups;
    let catalog = &state.catalog;
    let counts = groups
        .iter()
        .map(|g| {
            let products = catalog.products().iter().filter(|p| p.kms_counted_id == g.kms_counted_id);
            let mut thresholds: Vec<u32> = products.clone().map(|p| p.required_count).collect();
            thresholds.sort_unstable();
            thresholds.dedup();
            GroupCount {
                group: catalog.counted_group(&g.kms_counted_id).map(|c| c.name.clone()),
                kms_counted_id: g.kms_counted_id.to_string(),
                count: g.count,
                cap: g.cap,
                max_n_policy: g.max_n_policy,
                thresholds,
                served: products.clone().any(|p| p.served_by_any(key_groups)),
            }
        })
        .collect();
    let licenses: Vec<HostLicense> = key_groups
        .iter()
        .filter_map(|name| catalog.host_key_group(name))
        .map(|h| HostLicense {
            host_key_group: h.name.clone(),
            name: h.display_name.clone(),
            description: h.description.clone(),
            partial_product_key: h.partial_key.clone(),
            activation_id: host_activation_id(&h.name).to_string(),
        })
        .collect();
    let identity = licenses.first();
    let age = state.non_genuine_age_ms();
    let genuine = state.genuine.view(now, age);
    // The installed host key (`--host-key`, `/ipk`) names the primary license's partial key.
    let partial_product_key = genuine.partial_host_key.clone().or_else(|| identity.map(|h| h.partial_product_key.clone()));
    let license_status = state.genuine.license_status(now, age).unwrap_or_else(|| host_license_status(ledger_settings.activated));
    let by_status = LicenseStatus::ALL.iter().map(|s| (s.key().to_owned(), counters.with_status(*s))).collect();
    let health = state.store.health();
    let settings = settings(state);
    HostStatus {
        role: "host".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        now: now.to_string(),
        name: identity.map(|h| h.name.clone()),
        description: identity.map(|h| h.description.clone()),
        partial_product_key,
        host_key_groups: key_groups.clone(),
        activated: ledger_settings.activated,
        license_status: license_status.label().into(),
        epid: ledger_settings.epid.clone(),
        listening: state.kms_addrs.iter().map(ToString::to_string).collect(),
        port: state.kms_addrs.first().map(|a| a.port()),
        admin: state.admin_addr.to_string(),
        counts,
        counters: HostCounters { total: counters.total, failed: counters.failed, by_status },
        dns_publishing: settings.dns_publishing,
        dns: state.dns.view(),
        settings,
        open_connections: state.metrics.open_connections.load(std::sync::atomic::Ordering::Relaxed),
        health: Health { ok: health.ok, reason: if health.ok { None } else { health.last_error } },
        activation_id: identity.map(|h| h.activation_id.clone()).unwrap_or_default(),
        application_id: WINDOWS_APPLICATION_ID.into(),
        remaining_rearm_count: HOST_REARM_COUNT,
        trusted_time: now.to_string(),
        licenses,
        last_request: state.dashboard.last_request().map(|(time, machine_name, result)| LastRequest {
            time: time.to_string(),
            machine_name,
            result: result.to_string(),
            name: result.name().to_owned(),
        }),
        genuine,
    }
}

/// A registry event as `/api/v1/events` serves it and the events page shows it.
pub fn event_record(r: &kmslab_store::EventRow) -> kmslab_api::EventRecord {
    let fields = serde_json::from_str(&r.fields_json).unwrap_or(serde_json::Value::Null);
    kmslab_api::EventRecord::kms(u64::try_from(r.seq).unwrap_or(0), r.event_id, Timestamp::from_unix_ms(r.time_ms).to_string(), fields)
}

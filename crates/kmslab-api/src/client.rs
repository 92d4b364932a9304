//! kms-client's `GET /api/v1/status` document.

use kmslab_core::activator::{Activator, HostSource};
use kmslab_core::install_id::client_epid;
use kmslab_core::{LicenseStatus, Timestamp};
use serde::{Deserialize, Serialize};

/// kms-client's `/api/v1/status`: the installed product, the license state, the KMS host
/// it uses and the outcome of the last attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Always `client`.
    pub role: String,
    /// Simulated now (RFC 3339).
    pub now: String,
    /// The installed product (`None`: no product key).
    pub product: Option<ProductView>,
    /// License status key (`licensed`, `initial_grace`, ...).
    pub status: String,
    /// License status as the wire's number.
    pub status_code: u8,
    /// The `License Status:` label.
    pub status_label: String,
    /// Why the machine is in Notification (HRESULT text).
    pub notification_reason: Option<String>,
    /// The CMID.
    pub cmid: String,
    /// The CMID before the last rearm (all zeros: none).
    pub previous_cmid: String,
    /// Minutes left of the current state, rounded up.
    pub minutes_remaining: u64,
    /// End of the grace period (RFC 3339).
    pub grace_end: Option<String>,
    /// End of the activation's validity (RFC 3339).
    pub valid_until: Option<String>,
    /// Minutes between attempts while not activated.
    pub activation_interval: u32,
    /// Minutes between renewals.
    pub renewal_interval: u32,
    /// The next attempt (RFC 3339).
    pub next_attempt: Option<String>,
    /// An attempt is under way.
    pub attempt_in_progress: bool,
    /// The KMS hosts known.
    pub host: ClientHost,
    /// The extended PID of the host that activated the machine last.
    pub epid: Option<String>,
    /// The count that host reported.
    pub current_count: Option<u32>,
    /// KMS host caching (`/skhc`).
    pub host_caching: bool,
    /// SRV lookup domain (`/skms-domain`).
    pub domain: Option<String>,
    /// The resolver used for discovery.
    pub dns_server: Option<String>,
    /// Rearms left.
    pub rearm_count: u32,
    /// The machine name sent in requests.
    pub machine_name: String,
    /// The VM flag sent in requests.
    pub vm: bool,
    /// Why the state cannot be saved, while it cannot.
    pub state_save_error: Option<String>,
    /// The last attempt's outcome.
    pub last_result: Option<LastResult>,
    /// The machine's own extended PID for its installed product (`/dlv`).
    #[serde(default)]
    pub extended_pid: Option<String>,
    /// The machine's Installation ID (`/dlv`, `/dti`), `kmslab_core::install_id`.
    #[serde(default)]
    pub installation_id: Option<String>,
    /// `VOLUME_KMSCLIENT`, or `VOLUME_MAK` while a MAK is installed.
    #[serde(default = "kms_channel")]
    pub channel: String,
    /// True when a MAK activated the machine for good (no expiry, no renewal).
    #[serde(default)]
    pub permanently_activated: bool,
}

fn kms_channel() -> String {
    "VOLUME_KMSCLIENT".to_owned()
}

/// The installed product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// Catalog name (`win7-enterprise`).
    pub name: String,
    /// The `Name:` line.
    pub display_name: String,
    /// The `Description:` line.
    pub description: String,
    /// The last five characters of the key.
    pub partial_key: String,
    /// Activation ID.
    pub activation_id: String,
    /// Application ID.
    pub application_id: String,
    /// The activation threshold (N-policy).
    pub required_count: u32,
}

/// The KMS hosts a client knows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientHost {
    /// Set by hand (`/skms`).
    pub manual: Option<String>,
    /// Cached from the last success (`/skhc`).
    pub cached: Option<String>,
    /// The host tried last.
    pub last: Option<String>,
    /// How that host was chosen: `manual`, `cache`, `dns`.
    pub last_source: Option<String>,
}

/// The last attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResult {
    /// HRESULT (`0x00000000` on success).
    pub hresult: String,
    /// Its symbolic name.
    pub name: String,
    /// When (RFC 3339).
    pub at: Option<String>,
}

/// `manual`, `cached` or `dns`: how the host tried last was chosen.
pub fn host_source_key(s: HostSource) -> &'static str {
    match s {
        HostSource::Manual => "manual",
        HostSource::Cached => "cached",
        HostSource::Dns => "dns",
    }
}

fn opt<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

impl ClientStatus {
    /// The status of the machine `a` at `now`: the one builder behind kms-client's
    /// `/api/v1/status` and the fleet's machine views. The daemon's own facts
    /// (`dns_server`, `state_save_error`) start empty.
    pub fn of(a: &Activator, now: Timestamp) -> ClientStatus {
        let s = a.state();
        let product = a.product().map(|p| ProductView {
            name: p.name.clone(),
            display_name: p.display_name.clone(),
            description: a.description().unwrap_or_else(|| p.description.clone()),
            partial_key: a.partial_key().unwrap_or(p.partial_key()).to_owned(),
            activation_id: p.activation_id.to_string(),
            application_id: p.application_id.to_string(),
            required_count: p.required_count,
        });
        // Rounded up, so a machine activated this very second shows the full 259200 minutes.
        let end = match s.status {
            LicenseStatus::Licensed => s.valid_until,
            LicenseStatus::InitialGrace | LicenseStatus::AdditionalGrace => s.grace_end,
            _ => None,
        };
        let minutes_remaining = end.map_or(0, |t| {
            let ms = t.ms_since(now).max(0);
            u64::try_from((ms + 59_999) / 60_000).unwrap_or(0)
        });
        ClientStatus {
            role: "client".into(),
            now: now.to_string(),
            product,
            status: s.status.key().into(),
            status_code: s.status as u8,
            status_label: s.status.label().into(),
            notification_reason: opt(s.notification_reason),
            cmid: s.cmid.to_string(),
            previous_cmid: s.previous_cmid.to_string(),
            minutes_remaining,
            grace_end: opt(s.grace_end),
            valid_until: opt(s.valid_until),
            activation_interval: s.activation_interval,
            renewal_interval: s.renewal_interval,
            next_attempt: opt(s.next_attempt),
            attempt_in_progress: a.attempt_in_progress(),
            host: ClientHost {
                manual: opt(s.manual_host.as_ref()),
                cached: opt(s.cached_host.as_ref()),
                last: opt(s.last.host.as_ref()),
                last_source: s.last.source.map(|h| host_source_key(h).to_owned()),
            },
            epid: s.last.epid.clone(),
            current_count: s.last.current_count,
            host_caching: s.host_caching,
            domain: s.domain.clone(),
            dns_server: None,
            rearm_count: s.rearm_count,
            machine_name: s.machine_name.clone(),
            vm: s.vm,
            state_save_error: None,
            last_result: s.last.result.map(|r| LastResult { hresult: r.to_string(), name: r.name().to_owned(), at: opt(s.last.at) }),
            extended_pid: a.product_key().map(|k| client_epid(k, &s.cmid)),
            installation_id: a.installation_id().map(|i| i.to_string()),
            channel: if a.mak().is_some() { "VOLUME_MAK" } else { "VOLUME_KMSCLIENT" }.to_owned(),
            permanently_activated: a.permanently_activated(),
        }
    }
}

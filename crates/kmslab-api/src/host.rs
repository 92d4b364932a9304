//! kms-host's `GET /api/v1/status` document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Windows' Application ID, the one slmgr `/dlv` prints for every Windows license.
pub const WINDOWS_APPLICATION_ID: &str = "55c92734-d682-4d71-983e-d6ec3f16059f";

/// kms-host's `/api/v1/status`: who the host is, its counts, counters, settings, DNS
/// publishing and health. Built in one place by the host; slmgr, the dashboard, the alerts
/// and the drills read these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Always `host` (slmgr tells a host from a client by it).
    pub role: String,
    /// The kmslab version.
    pub version: String,
    /// Simulated now (RFC 3339).
    pub now: String,
    /// The `Name:` line: the primary host key group's display name.
    pub name: Option<String>,
    /// The `Description:` line.
    pub description: Option<String>,
    /// The `Partial Product Key:` line.
    pub partial_product_key: Option<String>,
    /// The host key groups installed, the primary first.
    pub host_key_groups: Vec<String>,
    /// The host's own license is activated.
    pub activated: bool,
    /// The `License Status:` label of the host's own license.
    pub license_status: String,
    /// The host's extended PID.
    pub epid: String,
    /// The KMS listeners.
    pub listening: Vec<String>,
    /// The first listener's port.
    pub port: Option<u16>,
    /// The admin address.
    pub admin: String,
    /// One entry per counted group.
    pub counts: Vec<GroupCount>,
    /// Cumulative request counters.
    pub counters: HostCounters,
    /// The settings the slmgr host verbs change.
    pub settings: HostSettings,
    /// DNS publishing on (`/sdns`) or off (`/cdns`), as `settings.dns_publishing`.
    pub dns_publishing: bool,
    /// DNS publishing state.
    pub dns: DnsStatus,
    /// KMS connections open now.
    pub open_connections: i64,
    /// Whether the registry takes writes.
    pub health: Health,
    /// The Activation ID of the host's own license (`/dlv`), derived from its primary
    /// host key group.
    #[serde(default)]
    pub activation_id: String,
    /// The Application ID of the host's own license (Windows').
    #[serde(default)]
    pub application_id: String,
    /// `Remaining Windows rearm count` of the host's own license.
    #[serde(default)]
    pub remaining_rearm_count: u32,
    /// `Trusted time` (RFC 3339): the host's simulated now.
    #[serde(default)]
    pub trusted_time: String,
    /// Every installed host key group's license, the primary first (`/dli all`).
    #[serde(default)]
    pub licenses: Vec<HostLicense>,
    /// The latest request since the host started (none yet: `null`).
    #[serde(default)]
    pub last_request: Option<LastRequest>,
    /// The genuine state of the host's own license: its host key as the activation
    /// service last judged it (docs/kms-behaviour.md "Non-genuine").
    #[serde(default)]
    pub genuine: HostGenuine,
}

/// The `genuine` object of the host's status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostGenuine {
    /// `genuine`, `non_genuine_grace` (license status 4) or `notification`.
    pub state: String,
    /// The last five characters of the installed host key (`--host-key`, `/ipk`).
    pub partial_host_key: Option<String>,
    /// The activation service the key is validated with (`--activation-service`).
    pub activation_service: Option<String>,
    /// When a validation first found the key blocked (RFC 3339).
    pub non_genuine_since: Option<String>,
    /// When the 30 days of non-genuine grace end (RFC 3339).
    pub grace_ends: Option<String>,
    /// Whole minutes of non-genuine grace left (0 in Notification).
    pub minutes_remaining: Option<u64>,
    /// Why it is non-genuine (`0xC004C4A2`).
    pub reason: Option<String>,
    /// The last validation (RFC 3339).
    pub last_validation: Option<String>,
    /// Its result (`0x00000000`, `0xC004C4A2`, `0x800706BA`, ...).
    pub last_result: Option<String>,
    /// Its result's name.
    pub last_result_name: Option<String>,
}

impl HostGenuine {
    /// True in the non-genuine grace or in Notification.
    pub fn non_genuine(&self) -> bool {
        self.state == "non_genuine_grace" || self.state == "notification"
    }
}

/// The latest request a host answered: when, from which machine, with what result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRequest {
    /// Simulated time it arrived (RFC 3339).
    pub time: String,
    /// The machine name the request carried.
    pub machine_name: String,
    /// The HRESULT answered, `0x00000000` for an activation or renewal.
    pub result: String,
    /// Its symbolic name (`S_OK`, `SL_E_...`), empty when unknown.
    pub name: String,
}

/// One installed host key group's license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLicense {
    /// The host key group (`kms-b`).
    pub host_key_group: String,
    /// The `Name:` line.
    pub name: String,
    /// The `Description:` line.
    pub description: String,
    /// The `Partial Product Key:` line.
    pub partial_product_key: String,
    /// The license's Activation ID.
    pub activation_id: String,
}

impl HostStatus {
    /// The counted groups this host serves (its host key groups cover them).
    pub fn served_counts(&self) -> impl Iterator<Item = &GroupCount> {
        self.counts.iter().filter(|c| c.served)
    }

    /// The group `Current count:` shows: the Windows group, or the first served one.
    pub fn primary_count(&self) -> Option<&GroupCount> {
        self.served_counts().find(|c| c.group.as_deref() == Some("windows")).or_else(|| self.served_counts().next())
    }

    /// The count of the group named `group` (0 when the host has none).
    pub fn count_of(&self, group: &str) -> u32 {
        self.counts.iter().find(|c| c.group.as_deref() == Some(group)).map_or(0, |c| c.count)
    }

    /// The publishing state of `zone`, once an attempt was made or scheduled.
    pub fn zone(&self, zone: &str) -> Option<&ZoneStatus> {
        self.dns.zones.iter().find(|z| z.zone == zone)
    }
}

/// One counted group's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    /// The group's name (`windows`, `server`, `office2010`), when the catalog names it.
    pub group: Option<String>,
    /// The group's KMS counted ID.
    pub kms_counted_id: String,
    /// Distinct CMIDs seen within 30 days (capped).
    pub count: u32,
    /// The current cap (twice the highest N-policy seen).
    pub cap: u32,
    /// The highest N-policy seen.
    pub max_n_policy: u32,
    /// The distinct activation thresholds of the group's products, ascending.
    pub thresholds: Vec<u32>,
    /// The host's key groups serve a product of this group.
    pub served: bool,
}

/// Cumulative request counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    /// Requests received.
    pub total: u64,
    /// Requests refused or unreadable.
    pub failed: u64,
    /// Requests by the license status they reported, by status key (`licensed`, ...).
    pub by_status: BTreeMap<String, u64>,
}

/// The settings the slmgr host verbs change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSettings {
    /// Minutes (`/sai`).
    pub activation_interval: u32,
    /// Minutes (`/sri`).
    pub renewal_interval: u32,
    /// The port `/sprt` stored for the next start (`None`: never set).
    pub port: Option<u16>,
    /// `/sdns` or `/cdns`.
    pub dns_publishing: bool,
    /// `normal` or `low` (`/spri`, `/cpri`).
    pub priority: String,
}

impl HostSettings {
    /// `/cpri` is in force.
    pub fn priority_low(&self) -> bool {
        self.priority == "low"
    }
}

/// The `dns` object: the publishing configuration and the state of each zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStatus {
    /// A DNS server and at least one zone are configured.
    pub configured: bool,
    /// Publishing is on (`/sdns`).
    pub enabled: bool,
    /// The DNS server updates go to.
    pub server: Option<String>,
    /// The SRV target published.
    pub hostname: Option<String>,
    /// The SRV port published, once known.
    pub port: Option<u16>,
    /// The address record published with the target.
    pub address: Option<String>,
    /// Record TTL (seconds).
    pub ttl: u32,
    /// The TSIG key's name.
    pub tsig_key: Option<String>,
    /// `--unpublish-on-exit`.
    pub unpublish_on_exit: bool,
    /// One entry per zone, by zone name.
    pub zones: Vec<ZoneStatus>,
}

/// Publishing in one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStatus {
    /// The zone.
    pub zone: String,
    /// SRV priority.
    pub priority: u16,
    /// SRV weight.
    pub weight: u16,
    /// The last attempt (RFC 3339).
    pub last_attempt: Option<String>,
    /// The last success (RFC 3339).
    pub last_success: Option<String>,
    /// `success` or `failure` of the last attempt.
    pub result: Option<String>,
    /// The last attempt's HRESULT (`0x00000000` on success).
    pub hresult: Option<String>,
    /// Why the last attempt failed (empty on success).
    pub message: Option<String>,
    /// The next attempt (RFC 3339).
    pub next_attempt: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Successful attempts.
    pub successes: u64,
    /// Failed attempts.
    pub failures: u64,
}

impl ZoneStatus {
    /// The last attempt failed.
    pub fn failed(&self) -> bool {
        self.result.as_deref() == Some("failure")
    }
}

/// Whether the registry takes writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Writes succeed.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
}

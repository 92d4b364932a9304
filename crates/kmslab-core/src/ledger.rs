//! The host's counting ledger: given a request and `now`, the response or the refusal.
//!
//! It keeps, per counted group, the distinct CMIDs seen in the last 30 days, at most twice
//! the highest N-policy any client of that group asked with (50 once a Windows client
//! asked with 25; 10 if only servers asked with 5), dropping the least recently seen first.
//! The count returned is the size of that set after adding the requester. It also keeps
//! the cumulative counters. Checks, in order: N-policy (1..=1000) and CMID (not nil) ->
//! 0x8007000D; host not activated -> 0xC004F041; clock skew over 4 hours -> 0xC004F06C;
//! unknown product, wrong counted ID or application ID, or a key group that does not cover
//! the product -> 0xC004F042. A refused request is counted as failed and is not counted
//! toward the CMID set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::catalog::Catalog;
use crate::hresult::HResult;
use crate::license::LicenseStatus;
use crate::time::{DAY_MS, HOUR_MS, Timestamp};
use crate::wire::{Request, Response};

/// Default activation interval (minutes).
pub const DEFAULT_ACTIVATION_INTERVAL: u32 = 120;
/// Default renewal interval (minutes): 7 days.
pub const DEFAULT_RENEWAL_INTERVAL: u32 = 10_080;
/// Allowed range for both intervals (minutes).
pub const INTERVAL_RANGE: std::ops::RangeInclusive<u32> = 15..=43_200;
/// Largest N-policy a host accepts.
pub const MAX_N_POLICY: u32 = 1000;
/// How long a CMID stays in the count.
pub const COUNT_WINDOW_MS: i64 = 30 * DAY_MS;
/// Largest accepted difference between client and host clocks.
pub const MAX_CLOCK_SKEW_MS: i64 = 4 * HOUR_MS;

/// An interval outside 15..=43200 minutes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be between 15 and 43200 minutes, got {value}")]
pub struct IntervalError {
    /// Which interval.
    pub name: &'static str,
    /// The value given.
    pub value: u64,
}

/// Checks an activation or renewal interval.
pub fn validate_interval(name: &'static str, value: u64) -> Result<u32, IntervalError> {
    u32::try_from(value).ok().filter(|v| INTERVAL_RANGE.contains(v)).ok_or(IntervalError { name, value })
}

/// What the host is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// The host key groups installed (`client-vl`, `kms-a`, `kms-b`, `kms-c`, `office-2010`).
    pub key_groups: Vec<String>,
    /// False while the host's own activation is missing (answers 0xC004F041).
    pub activated: bool,
    /// Sent to clients (minutes).
    pub activation_interval: u32,
    /// Sent to clients (minutes).
    pub renewal_interval: u32,
    /// The host's extended PID.
    pub epid: String,
}

/// Cumulative request counters (kept across host restarts by the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Every request received, including malformed and refused ones.
    pub total: u64,
    /// Requests answered with an error frame or a close.
    pub failed: u64,
    /// Requests by the license status the client reported (index = status value).
    pub by_status: [u64; 7],
}

/// Why the host refused a request: the HRESULT and a short reason for the error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The code the error frame carries.
    pub hresult: HResult,
    /// A human-readable reason.
    pub reason: &'static str,
}

/// The count of one counted group at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    /// The group's KMS counted ID.
    pub kms_counted_id: Uuid,
    /// Distinct CMIDs seen within 30 days (capped).
    pub count: u32,
    /// The current cap (twice the highest N-policy seen).
    pub cap: u32,
    /// The highest N-policy seen.
    pub max_n_policy: u32,
}

/// Distinct CMIDs of one counted group, least recently seen first.
#[derive(Debug, Default, Clone)]
struct CountSet {
    last_seen: HashMap<Uuid, (i64, u64)>,
    by_age: BTreeMap<(i64, u64), Uuid>,
    max_n_policy: u32,
    seq: u64,
}

impl CountSet {
    fn cap(&self) -> usize {
        2 * self.max_n_policy as usize
    }

    fn expire(&mut self, now: Timestamp) {
        let oldest_kept = now.as_unix_ms() - COUNT_WINDOW_MS;
        while let Some((&(seen, seq), &cmid)) = self.by_age.first_key_value() {
            if seen > oldest_kept {
                break;
            }
            self.by_age.remove(&(seen, seq));
            self.last_seen.remove(&cmid);
        }
    }

    fn observe(&mut self, cmid: Uuid, n_policy: u32, now: Timestamp) -> u32 {
        self.max_n_policy = self.max_n_policy.max(n_policy);
        self.expire(now);
        self.seq += 1;
        let key = (now.as_unix_ms(), self.seq);
        if let Some(old) = self.last_seen.insert(cmid, key) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(key, cmid);
        while self.by_age.len() > self.cap() {
            if let Some((_, evicted)) = self.by_age.pop_first() {
                self.last_seen.remove(&evicted);
            }
        }
        self.by_age.len() as u32
    }

    fn count(&self, now: Timestamp) -> u32 {
        let oldest_kept = now.as_unix_ms() - COUNT_WINDOW_MS;
        self.by_age.range((oldest_kept + 1, 0)..).count() as u32
    }
}

/// The host's ledger. See the module documentation for the rules.
#[derive(Debug)]
pub struct Ledger {
    settings: HostSettings,
    catalog: Arc<Catalog>,
    groups: HashMap<Uuid, CountSet>,
    counters: Counters,
}

impl Ledger {
    /// A ledger with an empty count (as after a host start) and zero counters.
    pub fn new(settings: HostSettings, catalog: Arc<Catalog>) -> Self {
        Ledger { settings, catalog, groups: HashMap::new(), counters: Counters::default() }
    }

    /// The settings in force.
    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Changes settings (e.g. `/sai`); they apply from the next response.
    pub fn settings_mut(&mut self) -> &mut HostSettings {
        &mut self.settings
    }

    /// The catalog the ledger checks products against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The cumulative counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Replaces the counters (the daemon restores them from its registry at start).
    pub fn set_counters(&mut self, counters: Counters) {
        self.counters = counters;
    }

    /// Puts a CMID back into the count (for `--keep-count`); ignored if older than 30 days.
    pub fn restore_cmid(&mut self, kms_counted_id: Uuid, cmid: Uuid, n_policy: u32, last_seen: Timestamp, now: Timestamp) {
        if now.ms_since(last_seen) < COUNT_WINDOW_MS {
            self.groups.entry(kms_counted_id).or_default().observe(cmid, n_policy.min(MAX_N_POLICY), last_seen);
        }
    }

    /// Counts a request that could not be decoded at all: total and failed.
    pub fn record_malformed(&mut self) {
        self.counters.total += 1;
        self.counters.failed += 1;
    }

    /// The current count of one counted group.
    pub fn count(&self, kms_counted_id: &Uuid, now: Timestamp) -> u32 {
        self.groups.get(kms_counted_id).map_or(0, |g| g.count(now))
    }

    /// Counts of every group that has seen a request, plus the catalog's other groups at 0.
    pub fn group_counts(&self, now: Timestamp) -> Vec<GroupCount> {
        self.catalog
            .counted_groups()
            .iter()
            .map(|g| {
                let set = self.groups.get(&g.kms_counted_id);
                GroupCount {
                    kms_counted_id: g.kms_counted_id,
                    count: set.map_or(0, |s| s.count(now)),
                    cap: set.map_or(0, |s| s.cap() as u32),
                    max_n_policy: set.map_or(0, |s| s.max_n_policy),
                }
            })
            .collect()
    }

    /// Handles one request received at `now`.
    pub fn handle_request(&mut self, req: &Request, now: Timestamp) -> Result<Response, Refusal> {
        self.counters.total += 1;
        self.counters.by_status[req.license_status as usize] += 1;
        let result = self.decide(req, now);
        if result.is_err() {
            self.counters.failed += 1;
        }
        result
    }

    fn decide(&mut self, req: &Request, now: Timestamp) -> Result<Response, Refusal> {
        let refuse = |hresult, reason| Err(Refusal { hresult, reason });
        if req.n_policy == 0 || req.n_policy > MAX_N_POLICY {
            return refuse(HResult::INVALID_DATA, "n_policy must be between 1 and 1000");
        }
        if req.cmid.is_nil() {
            return refuse(HResult::INVALID_DATA, "cmid must not be nil");
        }
        if !self.settings.activated {
            return refuse(HResult::HOST_NOT_ACTIVATED, "the KMS host is not activated");
        }
        if req.client_time.ms_since(now).abs() > MAX_CLOCK_SKEW_MS {
            return refuse(HResult::INVALID_TIMESTAMP, "client time differs from the host's by more than 4 hours");
        }
        let Some(product) = self.catalog.product_by_activation_id(&req.activation_id) else {
            return refuse(HResult::KEY_GROUP_MISMATCH, "unknown product (activation ID not in the host's catalog)");
        };
        if product.kms_counted_id != req.kms_counted_id || product.application_id != req.application_id {
            return refuse(HResult::KEY_GROUP_MISMATCH, "counted ID or application ID does not match the product");
        }
        if !product.served_by_any(&self.settings.key_groups) {
            return refuse(HResult::KEY_GROUP_MISMATCH, "the host key group cannot activate this product");
        }
        let current_count = self.groups.entry(req.kms_counted_id).or_default().observe(req.cmid, req.n_policy, now);
        Ok(Response {
            protocol: req.protocol,
            epid: self.settings.epid.clone(),
            cmid: req.cmid,
            client_time: req.client_time,
            current_count,
            activation_interval: self.settings.activation_interval,
            renewal_interval: self.settings.renewal_interval,
        })
    }
}

impl Counters {
    /// Requests reported with `status`.
    pub fn with_status(&self, status: LicenseStatus) -> u64 {
        self.by_status[status as usize]
    }
}

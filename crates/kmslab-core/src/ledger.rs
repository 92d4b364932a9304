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
//!
//! A host that stores what it decides uses two steps: [`Ledger::admit`] decides and applies
//! the request tentatively (the count a concurrent request sees includes it), and the
//! host then either [`Ledger::commit`]s the [`Admission`] once the registry stored it, or
//! [`Ledger::roll_back`]s it when the registry refused the write, which takes the CMID,
//! the N-policy it raised and the counters back out as if the request never arrived.
//! [`Ledger::handle_request`] is both steps at once, for callers that store nothing.

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

/// When a CMID was last seen: its key in the age order (`(unix ms, sequence)`).
type AgeKey = (i64, u64);

/// One CMID of a count set: the newest committed sighting and the sightings whose
/// registry write is still pending. Its place in the age order is the newest of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sighting {
    committed: Option<AgeKey>,
    pending: Vec<AgeKey>,
}

impl Sighting {
    fn key(&self) -> Option<AgeKey> {
        self.pending.iter().copied().chain(self.committed).max()
    }
}

/// Distinct CMIDs of one counted group, least recently seen first.
#[derive(Debug, Default, Clone)]
struct CountSet {
    last_seen: HashMap<Uuid, Sighting>,
    by_age: BTreeMap<AgeKey, Uuid>,
    /// The highest N-policy of a committed (or restored) request.
    committed_max_n_policy: u32,
    /// N-policies of admitted requests not yet committed or rolled back, with how many.
    pending_n_policy: BTreeMap<u32, u32>,
    seq: u64,
}

/// What [`CountSet::observe`] changed, so that it can be taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    key: AgeKey,
    n_policy: u32,
    /// CMIDs pushed out of the set (least recently seen) to stay within the cap.
    evicted: Vec<(Uuid, Sighting)>,
}

impl CountSet {
    fn max_n_policy(&self) -> u32 {
        self.pending_n_policy.keys().next_back().copied().unwrap_or(0).max(self.committed_max_n_policy)
    }

    fn cap(&self) -> usize {
        2 * self.max_n_policy() as usize
    }

    fn expire(&mut self, now: Timestamp) {
        let oldest_kept = now.as_unix_ms().saturating_sub(COUNT_WINDOW_MS);
        while let Some((&(seen, seq), &cmid)) = self.by_age.first_key_value() {
            if seen > oldest_kept {
                break;
            }
            self.by_age.remove(&(seen, seq));
            self.last_seen.remove(&cmid);
        }
    }

    /// Moves `cmid` to its sighting's current key in the age order (or out of the set).
    fn reindex(&mut self, cmid: Uuid, old: Option<AgeKey>) {
        if let Some(old) = old {
            self.by_age.remove(&old);
        }
        match self.last_seen.get(&cmid).and_then(Sighting::key) {
            Some(key) => {
                self.by_age.insert(key, cmid);
            }
            None => {
                self.last_seen.remove(&cmid);
            }
        }
    }

    fn trim_to_cap(&mut self) -> Vec<(Uuid, Sighting)> {
        let mut evicted = Vec::new();
        while self.by_age.len() > self.cap() {
            if let Some((_, cmid)) = self.by_age.pop_first()
                && let Some(sighting) = self.last_seen.remove(&cmid)
            {
                evicted.push((cmid, sighting));
            }
        }
        evicted
    }

    /// Adds a sighting of `cmid` at `now`, pending until [`CountSet::commit`] or
    /// [`CountSet::roll_back`].
    fn observe(&mut self, cmid: Uuid, n_policy: u32, now: Timestamp) -> (u32, Observed) {
        *self.pending_n_policy.entry(n_policy).or_default() += 1;
        self.expire(now);
        self.seq += 1;
        let key = (now.as_unix_ms(), self.seq);
        let sighting = self.last_seen.entry(cmid).or_default();
        let old = sighting.key();
        sighting.pending.push(key);
        self.reindex(cmid, old);
        let evicted = self.trim_to_cap();
        (self.by_age.len() as u32, Observed { key, n_policy, evicted })
    }

    fn settle_n_policy(&mut self, n_policy: u32) {
        if let Some(n) = self.pending_n_policy.get_mut(&n_policy) {
            *n -= 1;
            if *n == 0 {
                self.pending_n_policy.remove(&n_policy);
            }
        }
    }

    fn commit(&mut self, cmid: Uuid, observed: Observed) {
        self.settle_n_policy(observed.n_policy);
        self.committed_max_n_policy = self.committed_max_n_policy.max(observed.n_policy);
        if let Some(sighting) = self.last_seen.get_mut(&cmid) {
            // Still in the set (not expired or evicted meanwhile): the sighting is now real.
            sighting.pending.retain(|k| *k != observed.key);
            sighting.committed = sighting.committed.max(Some(observed.key));
        }
    }

    fn roll_back(&mut self, cmid: Uuid, observed: Observed) {
        self.settle_n_policy(observed.n_policy);
        if let Some(sighting) = self.last_seen.get_mut(&cmid) {
            let old = sighting.key();
            sighting.pending.retain(|k| *k != observed.key);
            self.reindex(cmid, old);
        }
        // The CMIDs this request pushed out come back (unless seen again meanwhile); the
        // cap may have shrunk with the N-policy taken back, so trim again.
        for (evicted, sighting) in observed.evicted {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.last_seen.entry(evicted)
                && let Some(key) = sighting.key()
            {
                slot.insert(sighting);
                self.by_age.insert(key, evicted);
            }
        }
        self.trim_to_cap();
    }

    fn count(&self, now: Timestamp) -> u32 {
        let oldest_kept = now.as_unix_ms().saturating_sub(COUNT_WINDOW_MS);
        self.by_age.range((oldest_kept.saturating_add(1), 0)..).count() as u32
    }
}

/// A request the ledger decided on and applied tentatively: commit it once the registry
/// stored it ([`Ledger::commit`]), or roll it back when the registry refused the write
/// ([`Ledger::roll_back`]). Dropping it keeps the tentative change as committed.
#[derive(Debug)]
#[must_use = "commit or roll back the admission once the registry answered"]
pub struct Admission {
    outcome: Result<Response, Refusal>,
    license_status: LicenseStatus,
    /// The N-policy the request asked for.
    n_policy: u32,
    /// The counted group and CMID the request was counted in, with what that changed.
    counted: Option<(Uuid, Uuid, Observed)>,
}

impl Admission {
    /// The answer the ledger decided on (sent only after the registry stored the request).
    pub fn outcome(&self) -> &Result<Response, Refusal> {
        &self.outcome
    }

    /// The answer activates the client: a response whose current count reaches the
    /// N-policy the client asked for (docs/kms-behaviour.md "Activation threshold").
    pub fn activates(&self) -> bool {
        matches!(&self.outcome, Ok(resp) if resp.current_count >= self.n_policy)
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

    /// Restores the counters a daemon stored, plus `malformed` frames it counted apart
    /// (each is a request received and failed, [`Ledger::record_malformed`]).
    pub fn restore_counters(&mut self, stored: Counters, malformed: u64) {
        self.counters = Counters { total: stored.total + malformed, failed: stored.failed + malformed, by_status: stored.by_status };
    }

    /// The N-policy a client of counted group `kms_counted_id` asks for: the highest
    /// activation threshold among the catalog's products of that group (`None`: the
    /// catalog has no product in it).
    pub fn group_n_policy(&self, kms_counted_id: &Uuid) -> Option<u32> {
        self.catalog.products().iter().filter(|p| p.kms_counted_id == *kms_counted_id).map(|p| p.required_count).max()
    }

    /// Puts a CMID the registry counted back into the count (`--keep-count`), with its
    /// group's N-policy ([`Ledger::group_n_policy`]); false (and nothing restored) when
    /// the catalog has no product in the group. Ignored if older than 30 days.
    pub fn restore_counted_cmid(&mut self, kms_counted_id: Uuid, cmid: Uuid, last_seen: Timestamp, now: Timestamp) -> bool {
        let Some(n_policy) = self.group_n_policy(&kms_counted_id) else { return false };
        self.restore_cmid(kms_counted_id, cmid, n_policy, last_seen, now);
        true
    }

    /// Puts a CMID back into the count (for `--keep-count`); ignored if older than 30 days.
    pub fn restore_cmid(&mut self, kms_counted_id: Uuid, cmid: Uuid, n_policy: u32, last_seen: Timestamp, now: Timestamp) {
        if now.ms_since(last_seen) < COUNT_WINDOW_MS {
            let group = self.groups.entry(kms_counted_id).or_default();
            let (_, observed) = group.observe(cmid, n_policy.min(MAX_N_POLICY), last_seen);
            group.commit(cmid, observed);
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
                    max_n_policy: set.map_or(0, CountSet::max_n_policy),
                }
            })
            .collect()
    }

    /// Handles one request received at `now` and keeps its effect: [`Ledger::admit`] and
    /// [`Ledger::commit`] in one step, for callers that do not store requests.
    pub fn handle_request(&mut self, req: &Request, now: Timestamp) -> Result<Response, Refusal> {
        let admission = self.admit(req, now);
        self.commit(admission)
    }

    /// Decides on one request received at `now` and applies it tentatively: the counters
    /// and, for an answered request, the CMID's place in the count. Requests admitted
    /// later see it in the count until it is rolled back.
    pub fn admit(&mut self, req: &Request, now: Timestamp) -> Admission {
        self.counters.total += 1;
        self.counters.by_status[req.license_status as usize] += 1;
        let (outcome, counted) = match self.decide(req, now) {
            Ok((resp, observed)) => (Ok(resp), Some((req.kms_counted_id, req.cmid, observed))),
            Err(refusal) => {
                self.counters.failed += 1;
                (Err(refusal), None)
            }
        };
        Admission { outcome, license_status: req.license_status, n_policy: req.n_policy, counted }
    }

    /// Makes an admission final (the registry stored the request) and returns its answer.
    pub fn commit(&mut self, admission: Admission) -> Result<Response, Refusal> {
        if let Some((group, cmid, observed)) = admission.counted
            && let Some(set) = self.groups.get_mut(&group)
        {
            set.commit(cmid, observed);
        }
        admission.outcome
    }

    /// Takes an admission back (the registry refused to store the request): the counters,
    /// the CMID's sighting, the N-policy it raised the cap with and any CMID it pushed out
    /// of the count are as if the request had never arrived.
    pub fn roll_back(&mut self, admission: Admission) {
        let c = &mut self.counters;
        c.total = c.total.saturating_sub(1);
        let status = &mut c.by_status[admission.license_status as usize];
        *status = status.saturating_sub(1);
        if admission.outcome.is_err() {
            c.failed = c.failed.saturating_sub(1);
        }
        if let Some((group, cmid, observed)) = admission.counted
            && let Some(set) = self.groups.get_mut(&group)
        {
            set.roll_back(cmid, observed);
        }
    }

    fn decide(&mut self, req: &Request, now: Timestamp) -> Result<(Response, Observed), Refusal> {
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
        // `abs_diff` cannot overflow: a client time near i64::MIN or MAX is simply far off.
        if req.client_time.abs_diff_ms(now) > MAX_CLOCK_SKEW_MS as u64 {
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
        let (current_count, observed) = self.groups.entry(req.kms_counted_id).or_default().observe(req.cmid, req.n_policy, now);
        let response = Response {
            protocol: req.protocol,
            epid: self.settings.epid.clone(),
            cmid: req.cmid,
            client_time: req.client_time,
            current_count,
            activation_interval: self.settings.activation_interval,
            renewal_interval: self.settings.renewal_interval,
        };
        Ok((response, observed))
    }
}

impl Counters {
    /// Requests reported with `status`.
    pub fn with_status(&self, status: LicenseStatus) -> u64 {
        self.by_status[status as usize]
    }
}

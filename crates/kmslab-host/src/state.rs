//! The host's shared state: the core ledger, the registry, settings, metrics, and the one
//! place where a request becomes a durable record and then a response.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kmslab_core::catalog::Catalog;
use kmslab_core::events::{REQUEST_RECEIVED, RequestReceived};
use kmslab_core::ledger::{Counters, DEFAULT_ACTIVATION_INTERVAL, DEFAULT_RENEWAL_INTERVAL, HostSettings, Ledger};
use kmslab_core::rng::SplitMix64;
use kmslab_core::wire::{ErrorFrame, Message, Request};
use kmslab_core::{HResult, LicenseStatus, Timestamp, Uuid, epid};
use kmslab_runtime::SimClock;
use kmslab_runtime::throttle::{LogThrottle, Occurrence};
use kmslab_store::{EventRecord, RequestRecord, Store, StoreError, StoreOptions};
use tokio::time::Instant;

use crate::config::HostConfig;
use crate::metrics::HostMetrics;

/// Setting keys in the registry.
pub mod keys {
    /// `/sai`.
    pub const ACTIVATION_INTERVAL: &str = "activation_interval";
    /// `/sri`.
    pub const RENEWAL_INTERVAL: &str = "renewal_interval";
    /// `/sprt` (applies at the next start).
    pub const PORT: &str = "port";
    /// `/sdns`, `/cdns`.
    pub const DNS_PUBLISHING: &str = "dns_publishing";
    /// `/spri`, `/cpri`: `normal` or `low`.
    pub const PRIORITY: &str = "priority";
    /// Frames that could not be decoded (the registry's counters only see decoded requests).
    pub const MALFORMED_REQUESTS: &str = "malformed_requests";
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry could not be opened or read.
    // `error` is shown in the message and deliberately not a `source`, so that a report
    // that prints the chain names the cause once.
    #[error("registry {path}: {error}")]
    Store {
        /// The database path.
        path: String,
        /// What failed.
        error: StoreError,
    },
    /// The registry exists but failed the start-up check; it was left untouched.
    #[error(
        "registry {path} is damaged ({problem}); the host will not serve from it. Restore it from a backup or an \
         export, or start once with --reset-registry to move it aside and begin with an empty registry (new ePID, count 0)"
    )]
    Damaged {
        /// The database path.
        path: String,
        /// What the check found.
        problem: String,
    },
    /// A stored setting is unreadable.
    #[error("registry setting {key} = {value:?} is invalid")]
    BadSetting {
        /// The key.
        key: String,
        /// The stored value.
        value: String,
    },
    /// A socket's address could not be read.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings changed by slmgr verbs that neither the core ledger nor DNS publishing holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraSettings {
    /// Port set by `/sprt`, used at the next start.
    pub port: Option<u16>,
    /// Low priority (`/cpri`).
    pub priority_low: bool,
}

/// The connection tasks' own settings.
#[derive(Debug, Clone)]
pub struct WireSettings {
    /// `--idle-timeout`: the longest wait for a whole frame or for a write.
    pub idle_timeout: std::time::Duration,
    /// `--psk`: frames carry a MAC with this key.
    pub psk: Option<kmslab_core::wire::FrameKey>,
}

/// Everything the connection tasks and the admin API share.
#[derive(Debug)]
pub struct HostState {
    ledger: Mutex<Ledger>,
    pub(crate) store: Store,
    pub(crate) clock: SimClock,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) metrics: HostMetrics,
    /// How KMS connections are read and written (`--idle-timeout`, `--psk`).
    pub(crate) wire: WireSettings,
    pub(crate) kms_addrs: Vec<SocketAddr>,
    pub(crate) admin_addr: SocketAddr,
    malformed_total: AtomicU64,
    /// A write of `malformed_total` is in flight (see `record_malformed`).
    malformed_flushing: AtomicBool,
    pub(crate) extra: Mutex<ExtraSettings>,
    pub(crate) dashboard: crate::series::DashState,
    /// DNS publishing's configuration, setting and state per zone, shared with the
    /// publishing task.
    pub(crate) dns: Arc<crate::publish::DnsStatus>,
    /// Rate-limit buckets and refusal-log throttling (`--allow`, `--rate-limit`).
    pub(crate) access: crate::access::Access,
    /// Failed registry writes of requests are logged once a minute with a count.
    store_failure_log: LogThrottle,
    /// A request's registry write failed since the last success (to log the recovery).
    store_failures_logged: AtomicBool,
    /// Failed writes of the malformed-request counter, likewise.
    malformed_failure_log: LogThrottle,
    /// The switches a lab flips on this host (`crate::faults`); none for `kms-host`.
    pub(crate) faults: Option<Arc<crate::faults::Faults>>,
    /// The host's own activation as configured (false with `--unactivated`).
    base_activated: bool,
    /// Genuine validation of the host key (`crate::genuine`).
    pub(crate) genuine: crate::genuine::Genuine,
}

/// Reads the port `/sprt` stored, for a binary that decides what to bind (opens and
/// closes the registry; `None` when unset or when the registry does not exist yet).
pub fn stored_port(config: &HostConfig) -> Option<u16> {
    if !config.registry_path().exists() {
        return None;
    }
    // Only the cheap check here (`HostState::open` runs the full one and says what is
    // wrong), but that one matters: opening a zero-length file for writing would create a
    // fresh schema in it and hide the damage.
    let options = StoreOptions { check_budget: Some(std::time::Duration::ZERO), ..StoreOptions::default() };
    let store = Store::open(&config.registry_path(), options).ok()?;
    let port = store.get_setting(keys::PORT).ok().flatten().and_then(|v| v.parse().ok());
    store.close();
    port
}

/// The wall-clock time as a file-name stamp (`20261201T093000Z`) for a registry moved aside.
fn wall_clock_stamp() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let c = Timestamp::from_unix_ms(ms).civil();
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

fn os_seed() -> u64 {
    // uuid's v4 draws from the OS; the core never touches OS entropy itself.
    let bits = Uuid::new_v4().as_u128();
    (bits as u64) ^ ((bits >> 64) as u64)
}

impl HostState {
    /// Opens the registry and restores counters, ePID and settings (and the count with
    /// `--keep-count`).
    pub fn open(config: HostConfig, kms_addrs: Vec<SocketAddr>, admin_addr: SocketAddr) -> Result<HostState, StartError> {
        let path = config.registry_path();
        let store_err = |error| match error {
            StoreError::Damaged { path, problem } => StartError::Damaged { path, problem },
            error => StartError::Store { path: path.display().to_string(), error },
        };
        let options =
            StoreOptions { max_page_count: config.registry_max_pages, synchronous: config.registry_sync, ..StoreOptions::default() };
        let store = match Store::open(&path, options.clone()) {
            Err(StoreError::Damaged { problem, .. }) if config.reset_registry => {
                let aside = kmslab_store::set_aside(&path, &wall_clock_stamp()).map_err(store_err)?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    problem = %problem,
                    "registry failed its start-up check; moved aside (--reset-registry), starting with an empty registry"
                );
                Store::open(&path, options).map_err(store_err)?
            }
            other => other.map_err(store_err)?,
        };
        if config.reset_registry {
            tracing::info!(path = %path.display(), "--reset-registry: the registry is sound and was kept");
        }
        let clock = config.clock();
        let now = clock.now();
        let primary_group = config.host_key_groups[0].clone();
        if store.epid().map_err(store_err)?.is_none() {
            // A registry that has counted requests but lost its ePID is damaged: a new ePID
            // would tell every client this is a different host.
            let clients = store.client_count().map_err(store_err)?;
            let requests = store.counters().map_err(store_err)?.total;
            if clients > 0 || requests > 0 {
                return Err(StartError::Damaged {
                    path: path.display().to_string(),
                    problem: format!("it holds {clients} clients and {requests} requests but no ePID"),
                });
            }
        }
        let stored_epid =
            store.get_or_init_epid(|| epid::generate(&primary_group, now, &mut SplitMix64::new(os_seed()))).map_err(store_err)?;
        let epid = config.epid.clone().unwrap_or(stored_epid);

        let setting = |key: &str| store.get_setting(key).map_err(store_err);
        let number = |key: &str| -> Result<Option<u64>, StartError> {
            match setting(key)? {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| StartError::BadSetting { key: key.into(), value: v }),
            }
        };
        let interval = |key: &str, explicit: Option<u32>, default: u32| -> Result<u32, StartError> {
            if let Some(v) = explicit {
                // An explicit start-up value wins and becomes the stored one.
                // Blocking is fine: `open` runs on a blocking thread.
                store.set_setting(key, v.to_string()).wait().map_err(store_err)?;
                return Ok(v);
            }
            Ok(number(key)?.and_then(|n| u32::try_from(n).ok()).unwrap_or(default))
        };
        let activation_interval = interval(keys::ACTIVATION_INTERVAL, config.activation_interval, DEFAULT_ACTIVATION_INTERVAL)?;
        let renewal_interval = interval(keys::RENEWAL_INTERVAL, config.renewal_interval, DEFAULT_RENEWAL_INTERVAL)?;
        let extra = ExtraSettings {
            port: number(keys::PORT)?.and_then(|p| u16::try_from(p).ok()),
            priority_low: setting(keys::PRIORITY)?.is_some_and(|v| v == "low"),
        };
        let dns_publishing = setting(keys::DNS_PUBLISHING)?.is_none_or(|v| v == "true");
        let malformed = number(keys::MALFORMED_REQUESTS)?.unwrap_or(0);

        let settings = HostSettings {
            key_groups: config.host_key_groups.clone(),
            activated: config.activated,
            activation_interval,
            renewal_interval,
            epid,
        };
        let mut ledger = Ledger::new(settings, Arc::clone(&config.catalog));
        let stored = store.counters().map_err(store_err)?;
        ledger.restore_counters(Counters { total: stored.total, failed: stored.failed, by_status: stored.by_status }, malformed);
        if config.keep_count {
            let since = now.as_unix_ms() - kmslab_core::ledger::COUNT_WINDOW_MS;
            let recent = store.recent_cmids(since).map_err(store_err)?;
            // Oldest first, so the ledger's least-recently-seen order matches the registry.
            for client in recent.iter().rev() {
                // Only clients the host actually counted (last answer a success).
                if store.client(client.cmid).map_err(store_err)?.is_none_or(|row| row.last_result != 0) {
                    continue;
                }
                if !ledger.restore_counted_cmid(client.counted_id, client.cmid, Timestamp::from_unix_ms(client.last_seen_ms), now) {
                    tracing::warn!(cmid = %client.cmid, counted_id = %client.counted_id, "not restored: the catalog has no product in its counted group");
                }
            }
            tracing::info!(restored = recent.len(), "count restored from the registry (--keep-count)");
        }
        let genuine = {
            use crate::genuine::keys as g;
            let host_key = match setting(g::HOST_KEY)?.filter(|k| !k.is_empty()) {
                Some(stored) => Some(stored),
                None => match &config.host_key {
                    // `--host-key` is the key of the first start; `/ipk` replaces it later.
                    Some(k) => {
                        store.set_setting(g::HOST_KEY, k.clone()).wait().map_err(store_err)?;
                        Some(k.clone())
                    }
                    None => None,
                },
            };
            let since = setting(g::NON_GENUINE_SINCE)?.filter(|v| !v.is_empty());
            let state = match since {
                None => None,
                Some(v) => {
                    let ms = v.parse::<i64>().map_err(|_| StartError::BadSetting { key: g::NON_GENUINE_SINCE.into(), value: v })?;
                    let reason =
                        setting(g::NON_GENUINE_REASON)?.and_then(|r| HResult::parse(&r)).unwrap_or(HResult::VALIDATION_BLOCKED_PRODUCT_KEY);
                    Some(kmslab_core::genuine::NonGenuine { since: Timestamp::from_unix_ms(ms), reason })
                }
            };
            if let Some(ng) = &state {
                tracing::warn!(since = %ng.since, grace_ends = %ng.grace_ends(), reason = %ng.reason, "the host is non-genuine (its host key was blocked)");
            }
            crate::genuine::Genuine::new(config.activation_service.clone(), host_key, state)
        };
        let access = crate::access::Access::new(config.allow.clone(), config.rate_limit);
        let dns = Arc::new(crate::publish::DnsStatus::new(config.dns.clone(), dns_publishing));
        Ok(HostState {
            access,
            ledger: Mutex::new(ledger),
            store,
            clock,
            catalog: Arc::clone(&config.catalog),
            metrics: HostMetrics::default(),
            wire: WireSettings { idle_timeout: config.idle_timeout, psk: config.psk.clone() },
            kms_addrs,
            admin_addr,
            malformed_total: AtomicU64::new(malformed),
            malformed_flushing: AtomicBool::new(false),
            extra: Mutex::new(extra),
            dashboard: crate::series::DashState::default(),
            dns,
            store_failure_log: LogThrottle::default(),
            store_failures_logged: AtomicBool::new(false),
            malformed_failure_log: LogThrottle::default(),
            faults: config.faults.clone(),
            base_activated: config.activated,
            genuine,
        })
    }

    /// The ledger. A std mutex is right here: every critical section is a few map
    /// operations and never spans an `.await`.
    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        // In non-genuine Notification the host refuses like an unactivated one (0xC004F041).
        let notification = self.genuine.in_notification(self.clock.now(), self.non_genuine_age_ms());
        ledger.settings_mut().activated = self.base_activated && !notification;
        if let Some(faults) = &self.faults {
            faults.apply(ledger.settings_mut());
        }
        ledger
    }

    /// The settings the slmgr verbs change besides the intervals.
    pub(crate) fn extra(&self) -> MutexGuard<'_, ExtraSettings> {
        self.extra.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles one decoded request: ledger decision, durable record (awaited), answer.
    pub async fn handle_request(&self, req: &Request, source: Option<SocketAddr>) -> Message {
        let now = self.clock.now();
        let (admission, pending) = {
            let mut ledger = self.ledger();
            // Applied tentatively: committed once the registry stored the request, rolled
            // back if it refused, so the count only ever includes what was stored.
            let admission = ledger.admit(req, now);
            let result = admission.outcome();
            let hresult = match result {
                Ok(_) => HResult::SUCCESS,
                Err(refusal) => refusal.hresult,
            };
            let activated_at_ms = admission.activates().then(|| now.as_unix_ms());
            let event = RequestReceived::new(req, hresult);
            log_request_received(&event);
            let record = RequestRecord {
                cmid: req.cmid,
                machine_name: req.machine_name.clone(),
                activation_id: req.activation_id,
                application_id: req.application_id,
                counted_id: req.kms_counted_id,
                license_status: req.license_status as u8,
                minutes_to_expiry: req.minutes_to_expiry,
                time_ms: now.as_unix_ms(),
                source,
                result: hresult.0,
                failed: result.is_err(),
                activated_at_ms,
                event: Some(EventRecord {
                    event_id: REQUEST_RECEIVED,
                    time_ms: now.as_unix_ms(),
                    fields_json: kmslab_api::event::request_received_fields_json(&event),
                }),
            };
            // Queued under the ledger lock so the registry sees requests in ledger order.
            (admission, self.store.record_request(record))
        };
        let waited = Instant::now();
        let stored = pending.await;
        self.metrics.store_commit_latency.observe(waited.elapsed());
        let status_key = req.license_status.key();
        let answered = match (&stored, admission.outcome()) {
            (Err(_), _) => HResult::STORE_FAILED,
            (Ok(()), Ok(_)) => HResult::SUCCESS,
            (Ok(()), Err(refusal)) => refusal.hresult,
        };
        self.dashboard.record_request(now, &req.machine_name, answered);
        match stored {
            Err(err) => {
                self.ledger().roll_back(admission);
                self.log_store_failure(req, &err);
                self.metrics.count_request(HResult::STORE_FAILED.0, status_key);
                Message::Error(ErrorFrame {
                    hresult: HResult::STORE_FAILED,
                    cmid: req.cmid,
                    message: format!("the host could not store the request: {err}"),
                })
            }
            Ok(()) => {
                let result = self.ledger().commit(admission);
                // A load first: the hot path never writes the shared flag.
                if self.store_failures_logged.load(Ordering::Relaxed) && self.store_failures_logged.swap(false, Ordering::Relaxed) {
                    let held_back = self.store_failure_log.cleared();
                    tracing::warn!(failures_not_logged = held_back, "registry writes of requests succeed again");
                }
                match result {
                    Ok(resp) => {
                        self.metrics.count_request(0, status_key);
                        Message::Response(resp)
                    }
                    Err(refusal) => {
                        self.metrics.count_request(refusal.hresult.0, status_key);
                        Message::Error(ErrorFrame { hresult: refusal.hresult, cmid: req.cmid, message: refusal.reason.to_owned() })
                    }
                }
            }
        }
    }

    /// Logs a failed registry write of a request: the first at once, then once a minute
    /// with how many were not logged (a full disk fails every request).
    fn log_store_failure(&self, req: &Request, err: &StoreError) {
        self.store_failures_logged.store(true, Ordering::Relaxed);
        if let Occurrence::Log { held_back } = self.store_failure_log.occurred() {
            if held_back == 0 {
                tracing::error!(cmid = %req.cmid, error = %err, "registry write failed; refusing the request instead of acknowledging it");
            } else {
                tracing::error!(
                    cmid = %req.cmid,
                    error = %err,
                    repeated = held_back,
                    "registry write failed; refusing the request instead of acknowledging it (repeated {held_back} times in the last {}s)",
                    self.store_failure_log.interval().as_secs()
                );
            }
        }
    }

    /// Counts a frame that could not be decoded, durably (as a setting: the registry's
    /// counters only know decoded requests).
    ///
    /// Writes are coalesced: one write of the latest total is in flight at a time, and the
    /// connection whose write finds the total moved on writes again. A flood of garbage
    /// (10,000 idle connections timing out at once) then costs the registry a handful of
    /// writes instead of one per connection, and the total on disk still ends up exact.
    pub async fn record_malformed(&self) {
        {
            let mut ledger = self.ledger();
            ledger.record_malformed();
            self.malformed_total.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
        if self.malformed_flushing.swap(true, Ordering::AcqRel) {
            return; // the write in flight, or the one after it, carries this count
        }
        loop {
            let total = self.malformed_total.load(Ordering::Acquire);
            if let Err(err) = self.store.set_setting(keys::MALFORMED_REQUESTS, total.to_string()).await
                && let Occurrence::Log { held_back } = self.malformed_failure_log.occurred()
            {
                tracing::error!(error = %err, repeated = held_back, "registry write of the malformed-request counter failed");
            }
            self.malformed_flushing.store(false, Ordering::Release);
            // Counted meanwhile and nobody else took over: write again.
            if self.malformed_total.load(Ordering::Acquire) == total || self.malformed_flushing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Time a lab says the host already spent in its non-genuine grace (0 for `kms-host`).
    pub(crate) fn non_genuine_age_ms(&self) -> i64 {
        self.faults.as_ref().map_or(0, |f| f.non_genuine_age_ms())
    }

    fn genuine_ctx(&self) -> crate::genuine::Ctx<'_> {
        crate::genuine::Ctx { store: &self.store, clock: &self.clock, age_ms: self.non_genuine_age_ms() }
    }

    /// Validates the host key with the activation service now (`crate::genuine`); what
    /// `/ato` answers.
    pub async fn validate_genuine(&self) -> crate::genuine::AtoResult {
        self.genuine.validate(&self.genuine_ctx()).await
    }

    /// `slmgr /ipk KEY` on the host (`crate::genuine`).
    pub async fn install_host_key(&self, key: &str) -> Result<String, (HResult, String)> {
        self.genuine.install(&self.genuine_ctx(), key).await
    }

    /// Simulated now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The cumulative counters.
    pub fn counters(&self) -> Counters {
        *self.ledger().counters()
    }

    /// The current ePID.
    pub fn epid(&self) -> String {
        self.ledger().settings().epid.clone()
    }
}

fn log_request_received(e: &RequestReceived) {
    tracing::info!(
        event_id = REQUEST_RECEIVED,
        result = %format_args!("0x{:08X}", e.result.0),
        n_policy = e.n_policy,
        machine_name = %e.machine_name,
        cmid = %e.cmid,
        client_time = %e.client_time,
        vm = e.vm,
        license_status = e.license_status.key(),
        minutes_to_expiry = e.minutes_to_expiry,
        activation_id = %e.activation_id,
        "KMS request received"
    );
}

/// The label `/dli` shows for the host's own license.
pub fn host_license_status(activated: bool) -> LicenseStatus {
    if activated { LicenseStatus::Licensed } else { LicenseStatus::InitialGrace }
}

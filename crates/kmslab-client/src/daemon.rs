//! The driver loop: feeds the SimClock, DNS and TCP into the core's `Activator`, logs its
//! events, keeps them in a bounded ring and saves the state after every change.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use kmslab_api::event::{request_sent_fields, response_processed_fields};
use kmslab_core::Timestamp;
use kmslab_core::activator::{Action, Activator, ActivatorState, AttemptId, ClientEvent, HostOutcome};
use kmslab_core::catalog::Catalog;
use kmslab_core::events::{REQUEST_SENT, RESPONSE_PROCESSED};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::rng::SplitMix64;
use kmslab_core::srv::SrvCandidate;
use kmslab_runtime::SimClock;
use serde_json::json;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::net::Net;
use crate::persist;

/// How many events `/api/v1/events` keeps.
pub const EVENT_RING: usize = 1000;

/// One entry of the event ring, as `/api/v1/events` serves it.
pub use kmslab_api::EventRecord;

/// How an attempt ended, for `/ato`.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// The attempt.
    pub attempt: AttemptId,
    /// 0 when activated.
    pub result: HResult,
    /// The host that answered.
    pub host: Option<HostAddr>,
}

/// Everything the driver and the API share, behind one mutex. A std mutex is fine: no
/// lock is held across an await, and the longest holder is a small fsync'd state save,
/// which must stay ordered with the change that caused it.
#[derive(Debug)]
pub struct Inner {
    /// The machine.
    pub activator: Activator,
    /// Randomness for SRV ordering and rearm CMIDs (seeded from the OS).
    pub rng: SplitMix64,
    events: VecDeque<EventRecord>,
    next_seq: u64,
    waiters: HashMap<AttemptId, Vec<oneshot::Sender<AttemptReport>>>,
    saved: Option<ActivatorState>,
    /// Why the last save failed; `None` once a save succeeds. /healthz and status show it.
    save_error: Option<String>,
}

/// State shared by the driver loop and the control API.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the driver after a command changed the activator.
    pub wake: Notify,
    /// Simulated clock.
    pub clock: SimClock,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Where state is saved.
    pub state_dir: Option<PathBuf>,
    /// The DNS server in use (for status).
    pub dns_server: Option<kmslab_dns::DnsServerChoice>,
    /// The activation service MAK activations go to (`--activation-service`).
    pub activation_service: Option<HostAddr>,
}

impl Shared {
    pub(crate) fn new(
        activator: Activator,
        rng: SplitMix64,
        clock: SimClock,
        catalog: Arc<Catalog>,
        state_dir: Option<PathBuf>,
        dns_server: Option<kmslab_dns::DnsServerChoice>,
    ) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                activator,
                rng,
                events: VecDeque::new(),
                next_seq: 1,
                waiters: HashMap::new(),
                saved: None,
                save_error: None,
            }),
            wake: Notify::new(),
            clock,
            catalog,
            state_dir,
            dns_server,
            activation_service: None,
        }
    }

    /// The same shared state with MAK activations going to `service`.
    pub(crate) fn with_activation_service(mut self, service: Option<HostAddr>) -> Self {
        self.activation_service = service;
        self
    }

    /// Locks the shared state (a poisoned lock is still usable: the data is plain).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the state if it changed since the last save; logs a failure.
    pub fn save_if_changed(&self, inner: &mut Inner) -> Result<(), persist::StateError> {
        let Some(dir) = &self.state_dir else { return Ok(()) };
        if inner.saved.as_ref() == Some(inner.activator.state()) {
            inner.save_error = None;
            return Ok(());
        }
        let state = inner.activator.state().clone();
        match persist::save(dir, &state) {
            Ok(()) => {
                inner.saved = Some(state);
                if inner.save_error.take().is_some() {
                    tracing::info!("client state saved again");
                }
                Ok(())
            }
            Err(e) => {
                // Logged when saving starts failing, not at every retry.
                if inner.save_error.is_none() {
                    tracing::error!(error = %e, "cannot save the client state; the last saved state stays on disk, retrying");
                } else {
                    tracing::debug!(error = %e, "cannot save the client state (still)");
                }
                inner.save_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Why the last state save failed, while it is failing.
    pub fn save_error<'a>(&self, inner: &'a Inner) -> Option<&'a str> {
        inner.save_error.as_deref()
    }

    pub(crate) fn mark_saved(&self, inner: &mut Inner) {
        inner.saved = Some(inner.activator.state().clone());
    }

    /// Registers interest in how `attempt` ends.
    pub fn wait_for(&self, inner: &mut Inner, attempt: AttemptId) -> oneshot::Receiver<AttemptReport> {
        let (tx, rx) = oneshot::channel();
        inner.waiters.entry(attempt).or_default().push(tx);
        rx
    }

    /// The events with a sequence number above `since`.
    pub fn events_since(&self, since: u64) -> Vec<EventRecord> {
        self.lock().events.iter().filter(|e| e.seq > since).cloned().collect()
    }
}

impl Inner {
    fn push_event(&mut self, now: Timestamp, event_id: Option<u32>, kind: &str, fields: serde_json::Value) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.events.len() == EVENT_RING {
            self.events.pop_front();
        }
        self.events.push_back(EventRecord { seq, time: now.to_string(), event_id, kind: Some(kind.to_owned()), fields });
    }

    fn push_event_of(&mut self, now: Timestamp, ev: &ClientEvent) {
        let (event_id, kind, fields) = event_json(ev);
        self.push_event(now, event_id, kind, fields);
    }

    /// Logs and records every pending core event; answers `/ato` waiters.
    fn drain_events(&mut self, now: Timestamp) {
        while let Some(ev) = self.activator.poll_event() {
            match &ev {
                ClientEvent::RequestSent(e) => {
                    tracing::info!(
                        event_id = REQUEST_SENT,
                        result = %e.result,
                        name = e.result.name(),
                        status_flags = e.status_flags,
                        host = %e.host,
                        cmid = %e.cmid,
                        client_time = %e.client_time,
                        vm = e.vm,
                        license_status = e.license_status as u8,
                        minutes_to_expiry = e.minutes_to_expiry,
                        activation_id = %e.activation_id,
                        n_policy = e.n_policy,
                        "KMS request sent"
                    );
                    self.push_event_of(now, &ev);
                }
                ClientEvent::ResponseProcessed(e) => {
                    tracing::info!(
                        event_id = RESPONSE_PROCESSED,
                        result = %e.result,
                        name = e.result.name(),
                        status_flags = e.status_flags,
                        activated = u8::from(e.activated),
                        current_count = e.current_count,
                        activation_interval = e.activation_interval,
                        renewal_interval = e.renewal_interval,
                        "KMS response processed"
                    );
                    self.push_event_of(now, &ev);
                }
                ClientEvent::LicenseChanged { from, to, at } => {
                    tracing::info!(from = from.label(), to = to.label(), at = %at, "license status changed");
                    self.push_event_of(now, &ev);
                }
                ClientEvent::NotificationReminder { reason, at } => {
                    tracing::warn!(
                        reason = %reason,
                        name = reason.name(),
                        at = %at,
                        "Notification: this copy of Windows is not activated (reminder every 60 minutes)"
                    );
                    self.push_event_of(now, &ev);
                }
                ClientEvent::Genuine { event_id, result, message, .. } => {
                    tracing::warn!(event_id, result = %result, name = result.name(), "{message}");
                    self.push_event_of(now, &ev);
                }
                ClientEvent::AttemptFinished { attempt, result, host } => {
                    if result.is_success() {
                        tracing::info!(attempt, result = %result, host = ?host.as_ref().map(ToString::to_string), "activation attempt succeeded");
                    } else {
                        tracing::warn!(attempt, result = %result, name = result.name(), host = ?host.as_ref().map(ToString::to_string), "activation attempt failed");
                    }
                    self.push_event_of(now, &ev);
                    for tx in self.waiters.remove(attempt).unwrap_or_default() {
                        let _ = tx.send(AttemptReport { attempt: *attempt, result: *result, host: host.clone() });
                    }
                }
            }
        }
        if !self.activator.attempt_in_progress() {
            // Attempts abandoned by /ipk, /upk or /rearm never finish: release their waiters.
            self.waiters.clear();
        }
    }
}

/// A core event as `/api/v1/events` shows it: the KMS event ID (12288, 12289 or none),
/// the kind and the fields (`kmslab up` serves its simulated machines' events in this shape).
pub fn event_json(ev: &ClientEvent) -> (Option<u32>, &'static str, serde_json::Value) {
    match ev {
        ClientEvent::RequestSent(e) => (Some(REQUEST_SENT), "request_sent", request_sent_fields(e)),
        ClientEvent::ResponseProcessed(e) => (Some(RESPONSE_PROCESSED), "response_processed", response_processed_fields(e)),
        ClientEvent::LicenseChanged { from, to, at } => {
            (None, "license_changed", json!({"from": from.key(), "to": to.key(), "at": at.to_string()}))
        }
        ClientEvent::NotificationReminder { reason, at } => {
            (None, "notification_reminder", json!({"reason": reason.to_string(), "at": at.to_string()}))
        }
        ClientEvent::Genuine { event_id, result, message, at } => (
            Some(*event_id),
            kmslab_api::event::kind_of(*event_id).unwrap_or("genuine"),
            json!({"result": result.to_string(), "message": message, "at": at.to_string()}),
        ),
        ClientEvent::AttemptFinished { attempt, result, host } => (
            None,
            "attempt_finished",
            json!({"attempt": attempt, "result": result.to_string(), "name": result.name(),
                   "host": host.as_ref().map(ToString::to_string)}),
        ),
    }
}

enum ActionResult {
    Discovered(AttemptId, Result<Vec<SrvCandidate>, HResult>),
    Sent(AttemptId, HostOutcome),
    Online(AttemptId, Result<kmslab_core::wire::ServiceAnswer, HResult>),
}

/// How often a failed state save is retried.
const SAVE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the machine until `shutdown`, then saves the state.
pub async fn drive(shared: Arc<Shared>, net: Net, shutdown: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel::<ActionResult>();
    let mut tasks = JoinSet::new();
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
    loop {
        let next = {
            let mut g = shared.lock();
            let now = shared.clock.now();
            g.activator.handle_timeout(now);
            while let Some(action) = g.activator.poll_action() {
                let tx = tx.clone();
                match action {
                    Action::Discover { attempt, domain } => {
                        tracing::debug!(attempt, domain = ?domain, "discovering KMS hosts");
                        let net = net.clone();
                        tasks.spawn(async move {
                            let r = net.discover(domain).await;
                            let _ = tx.send(ActionResult::Discovered(attempt, r));
                        });
                    }
                    Action::Send { attempt, host, request } => {
                        tracing::debug!(attempt, host = %host, "sending a KMS request");
                        let net = net.clone();
                        tasks.spawn(async move {
                            let r = net.send(&host, request).await;
                            let _ = tx.send(ActionResult::Sent(attempt, r));
                        });
                    }
                    Action::ActivateOnline { attempt, request } => {
                        let net = net.clone();
                        let service = shared.activation_service.clone();
                        tasks.spawn(async move {
                            let r = match service {
                                Some(service) => {
                                    tracing::debug!(attempt, service = %service, "asking the activation service");
                                    net.activate_online(&service, request).await
                                }
                                None => {
                                    tracing::warn!(attempt, "online activation needs an activation service (--activation-service)");
                                    Err(HResult::HOST_UNREACHABLE)
                                }
                            };
                            let _ = tx.send(ActionResult::Online(attempt, r));
                        });
                    }
                }
            }
            g.drain_events(now);
            // A failed save is retried every SAVE_RETRY until it succeeds (the disk may be full).
            let retry = shared.save_if_changed(&mut g).is_err().then(|| tokio::time::Instant::now() + SAVE_RETRY);
            (g.activator.poll_timeout(), retry)
        };
        let (next, retry) = next;
        while tasks.try_join_next().is_some() {}
        let deadline = next.map_or_else(far, |t| shared.clock.deadline(t).min(far()));
        let deadline = retry.map_or(deadline, |r| r.min(deadline));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(result) = rx.recv() => {
                let mut g = shared.lock();
                let now = shared.clock.now();
                let inner = &mut *g;
                match result {
                    ActionResult::Discovered(attempt, r) => inner.activator.handle_discovery(now, attempt, r, &mut inner.rng),
                    ActionResult::Sent(attempt, outcome) => inner.activator.handle_host_outcome(now, attempt, outcome),
                    ActionResult::Online(attempt, outcome) => inner.activator.handle_service_outcome(now, attempt, outcome),
                }
            }
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    tasks.abort_all();
    let mut g = shared.lock();
    let now = shared.clock.now();
    g.drain_events(now);
    match shared.save_if_changed(&mut g) {
        Ok(()) => tracing::info!(status = g.activator.status().label(), "state saved, stopping"),
        Err(e) => tracing::error!(error = %e, "state NOT saved at shutdown"),
    }
}

/// Builds the starting activator: loaded state (if any) with the configuration applied.
pub fn initial_activator(config: &crate::ClientConfig, loaded: Option<ActivatorState>, now: Timestamp, rng: &mut SplitMix64) -> Activator {
    use kmslab_core::rng::KmsRng;
    let mut a = match loaded {
        Some(state) => {
            let mut a = Activator::from_state_in(state, &config.catalog);
            if let Some(p) = &config.product
                && a.state().product.as_deref() != Some(p.name.as_str())
            {
                a.install_product(p.clone(), now);
            }
            a
        }
        None => {
            let cmid = rng.uuid_v4();
            let name = config.machine_name.clone().unwrap_or_else(crate::config::default_machine_name);
            match &config.product {
                Some(p) => Activator::new(p.clone(), cmid, name, now),
                None => {
                    // No key given: a machine with a fresh CMID and no product (Unlicensed).
                    let mut a = Activator::new(config.catalog.products()[0].clone(), cmid, name, now);
                    a.uninstall_product(now);
                    while a.poll_event().is_some() {}
                    a
                }
            }
        }
    };
    if let Some(host) = &config.kms {
        a.set_manual_host(Some(host.clone()));
    }
    if let Some(d) = &config.domain {
        a.set_domain(Some(d.clone()));
    }
    if let Some(on) = config.host_caching {
        a.set_host_caching(on);
    }
    a.set_slic_without_marker(config.slic_without_marker);
    let name = config.machine_name.clone().unwrap_or_else(|| a.state().machine_name.clone());
    let vm = config.vm || a.state().vm;
    a.set_machine(name, vm);
    a
}

//! One volume-licensed machine's licensing state machine (the KMS client).
//!
//! # Call order
//! An [`Activator`] does no I/O. A driver (the `kms-client` daemon, `kmslab fleet`, the
//! simulator, a test) runs this loop:
//! 1. `handle_timeout(now)` whenever `poll_timeout()` is reached (calling it early is
//!    harmless). It applies expiries (180-day validity, grace), Notification reminders, and
//!    starts a scheduled activation attempt.
//! 2. Drain `poll_action()`. For [`Action::Discover`], look up `_vlmcs._tcp.<domain>` and call
//!    `handle_discovery(now, attempt, result, rng)`. For [`Action::Send`], send the request to
//!    the host and call `handle_host_outcome(now, attempt, outcome)`. At most one action is
//!    outstanding at a time; each handled one may queue the next.
//! 3. Drain `poll_event()`: events 12288/12289, license changes, reminders, attempt results.
//! 4. Sleep until `poll_timeout()`.
//!
//! User commands (`slmgr`) are inputs too: [`Activator::activate_now`], `install_product`,
//! `uninstall_product`, `rearm`, and the host-choice setters.
//!
//! # Rules (docs/kms-behaviour.md "Client timing and states", "Discovery")
//! - Installing a GVLK: initial grace for 30 days, and an attempt at once.
//! - Not activated: an attempt every activation interval (120 minutes by default).
//! - Activated: valid 180 days, renewed every renewal interval (7 days); each success
//!   restarts the 180 days. The host's intervals replace the client's after any response.
//! - A failed attempt falls back to the activation interval.
//! - 180 days without renewal: additional grace for 30 days, then Notification
//!   (0xC004F009) with a reminder every 60 minutes. Initial grace running out also leads to
//!   Notification. A success from grace or Notification returns the machine to Licensed.
//! - Host choice: a manual host (no discovery); else the cached host (caching on) and, if it
//!   fails, discovery; else discovery. Hosts are tried in RFC 2782 order until one is an
//!   activated host with the right key: one that answers with a count. Such a host ends the
//!   attempt (activated, or 0xC004F038 when the count is too low: it is a proper host, the
//!   client stays with it) and is cached. A host that refuses the request (0xC004F041 not
//!   activated, 0xC004F042 key group, 0xC004F06C clock, any other error frame) or fails the
//!   exchange in any way (unreachable, no answer, timeout, a garbled or foreign answer) is
//!   dropped and the next candidate is tried in the same attempt, as Windows does. Every
//!   candidate failed: 0xC004F074 (KB974998: 0xC004F074 from `slmgr /ato`, the host's
//!   0xC004F06C in 12288). One 12288 per host tried, carrying the host's answer.
//! - A cached host that refuses or fails is forgotten and discovery runs in the same
//!   attempt (the cached host is not tried twice). A manual host (`/skms`) is the only
//!   candidate and never leads to discovery; when it refuses, the attempt ends with its
//!   answer (0xC004F041, 0xC004F042, 0xC004F06C: the code Windows shows for "the specified
//!   KMS"), when it cannot be reached with 0xC004F074. A DNS failure ends the attempt with
//!   the DNS HRESULT.
//! - Rearm: new CMID, initial grace again, rearm count minus one; at 0, 0xC004D307. A
//!   fresh machine starts with its product's rearm count ([`Product::rearm_count`]).
//! - Client family: a Vista-family product ignores SRV priority and weight (a random order
//!   of all the records; [`crate::catalog::ClientFamily::srv_policy`]).
//!
//! # MAK and OEM (docs/kms-behaviour.md "MAK activation")
//! - `/ipk MAK` ([`Activator::install_mak`]) keeps the installed edition and changes its
//!   channel to `VOLUME_MAK`: initial grace from now, no KMS attempt ever (a MAK machine
//!   does not look for KMS hosts). `/ato` then asks the activation service
//!   ([`Action::ActivateOnline`]); its answer ([`Activator::handle_service_outcome`]) makes
//!   the machine Licensed with no expiry and no renewal. A refusal (0xC004C020 used up,
//!   0xC004C003 blocked, 0xC004F050 unknown key, ...) ends the attempt and changes nothing.
//! - Phone activation: [`Activator::installation_id`] is `/dti`; [`Activator::deposit_cid`]
//!   checks the CID against it offline (`/atp`) and activates the same way.
//! - `/ato` on a machine a MAK activated for good is the genuine validation of the MAK
//!   (`KeyInfo`, docs/kms-behaviour.md "Non-genuine"): a blocked MAK starts the 30-day
//!   non-genuine grace (status 4, `/ato` 0x4004F065), then Notification (0xC004F200,
//!   `/ato` 0xC004F064); a MAK in good standing again ends it; no answer changes nothing.
//!   A new MAK (`/ipk`, `/ato`) activates the machine again.
//! - `/ipk GVLK` turns the machine back into a KMS client (install_product clears the MAK).
//! - An OEM machine whose ACPI_SLIC table lacks a valid Windows marker
//!   ([`Activator::set_slic_without_marker`]): a KMS attempt of a Windows 7 or Vista
//!   product ends at once with 0xC004F035 without contacting a host (Office is not
//!   checked); a MAK activates it.

use std::collections::VecDeque;
use std::sync::Arc;

use uuid::Uuid;

use crate::catalog::{Catalog, Product};
use crate::events::{self, RequestSent, ResponseProcessed};
use crate::hostaddr::HostAddr;
use crate::hresult::HResult;
use crate::install_id::{self, InstallationId};
use crate::ledger::{DEFAULT_ACTIVATION_INTERVAL, DEFAULT_RENEWAL_INTERVAL, INTERVAL_RANGE};
use crate::license::LicenseStatus;
use crate::rng::KmsRng;
use crate::srv::{self, SrvCandidate, SrvPolicy};
use crate::time::{DAY_MS, MINUTE_MS, Timestamp};
use crate::wire::{ErrorFrame, KMS_PROTOCOL_V4, Request, Response, ServiceAnswer, ServiceRequest};

/// Initial (out-of-box) grace after installing a key.
pub const INITIAL_GRACE_MS: i64 = 30 * DAY_MS;
/// Validity of an activation.
pub const VALIDITY_MS: i64 = 180 * DAY_MS;
/// Additional (out-of-tolerance) grace after the validity ran out (our choice: 30 days).
pub const ADDITIONAL_GRACE_MS: i64 = 30 * DAY_MS;
/// Interval of the Notification reminder.
pub const REMINDER_MS: i64 = 60 * MINUTE_MS;
/// Rearms a fresh Windows 7 installation allows (our choice: 3). Other client families
/// have their own figure: [`Product::rearm_count`].
pub const DEFAULT_REARM_COUNT: u32 = 3;

/// Identifies one activation attempt so late answers to an old one are ignored.
pub type AttemptId = u64;

/// Something the driver must do for the activator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look up the SRV records `_vlmcs._tcp.<domain>`; `None` means the machine's own DNS
    /// domain / search list.
    Discover {
        /// The attempt this lookup belongs to.
        attempt: AttemptId,
        /// The domain set with `/skms-domain`, if any.
        domain: Option<String>,
    },
    /// Send `request` to `host` and report what happened.
    Send {
        /// The attempt this send belongs to.
        attempt: AttemptId,
        /// The host to contact.
        host: HostAddr,
        /// The request to send.
        request: Request,
    },
    /// Send `request` to the activation service (`--activation-service`) and report the
    /// answer with [`Activator::handle_service_outcome`].
    ActivateOnline {
        /// The attempt this belongs to.
        attempt: AttemptId,
        /// The online activation request.
        request: ServiceRequest,
    },
}

/// What came of sending a request to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// The host answered with a response.
    Response(Response),
    /// The host answered with an error frame.
    Refused(ErrorFrame),
    /// The host could not be reached or gave no usable answer (the HRESULT says how:
    /// 0x800706BA refused/unreachable, 0xC004F039 no answer, 0x800705B4 timed out, ...).
    Unreachable(HResult),
}

/// How the current KMS host was chosen (for `/dli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    /// Set by hand (`/skms`).
    Manual,
    /// The cached host from an earlier activation.
    Cached,
    /// Found through DNS.
    Dns,
}

/// Something the activator reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Event 12288.
    RequestSent(RequestSent),
    /// Event 12289.
    ResponseProcessed(ResponseProcessed),
    /// The license status changed.
    LicenseChanged {
        /// Old status.
        from: LicenseStatus,
        /// New status.
        to: LicenseStatus,
        /// When.
        at: Timestamp,
    },
    /// The 60-minute reminder while in Notification.
    NotificationReminder {
        /// Why the machine is in Notification.
        reason: HResult,
        /// When.
        at: Timestamp,
    },
    /// Security-SPP event 8208 (acquiring the genuine ticket failed) or 8209 (the genuine
    /// state set to non-genuine) of a MAK machine whose MAK was found blocked
    /// ([`crate::genuine`]).
    Genuine {
        /// 8208 or 8209.
        event_id: u32,
        /// The HRESULT: 0xC004C4A2.
        result: HResult,
        /// The event's text.
        message: String,
        /// When.
        at: Timestamp,
    },
    /// An attempt ended.
    AttemptFinished {
        /// Which attempt.
        attempt: AttemptId,
        /// 0 when activated, else the reason it did not.
        result: HResult,
        /// The host that answered, if any.
        host: Option<HostAddr>,
    },
}

/// The facts of the last activation attempt, for `/dli` and reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastActivation {
    /// When the attempt ended.
    pub at: Option<Timestamp>,
    /// Its result.
    pub result: Option<HResult>,
    /// The host that answered.
    pub host: Option<HostAddr>,
    /// How that host was chosen.
    pub source: Option<HostSource>,
    /// The host's ePID.
    pub epid: Option<String>,
    /// The count it reported.
    pub current_count: Option<u32>,
}

/// Everything an activator remembers, as plain data, so a daemon can persist it and the
/// simulator can snapshot it. [`Activator::from_state`] checks nothing beyond types: the
/// daemon validates what it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivatorState {
    /// Name of the installed product, if any.
    pub product: Option<String>,
    /// The client machine ID.
    pub cmid: Uuid,
    /// CMID before the last rearm (nil if none).
    pub previous_cmid: Uuid,
    /// License status.
    pub status: LicenseStatus,
    /// End of the current grace period.
    pub grace_end: Option<Timestamp>,
    /// End of the 180-day validity.
    pub valid_until: Option<Timestamp>,
    /// Reason for Notification.
    pub notification_reason: Option<HResult>,
    /// Minutes between attempts while not activated.
    pub activation_interval: u32,
    /// Minutes between renewals while activated.
    pub renewal_interval: u32,
    /// When the next attempt is due.
    pub next_attempt: Option<Timestamp>,
    /// Rearms left.
    pub rearm_count: u32,
    /// Host set with `/skms`.
    pub manual_host: Option<HostAddr>,
    /// Host that answered last (when caching is on).
    pub cached_host: Option<HostAddr>,
    /// Host caching on (`/skhc`) or off (`/ckhc`).
    pub host_caching: bool,
    /// Domain set with `/skms-domain`.
    pub domain: Option<String>,
    /// Machine name sent in requests.
    pub machine_name: String,
    /// VM flag sent in requests.
    pub vm: bool,
    /// Offset added to `now` for the client time in requests (clock-skew drills).
    pub clock_offset_ms: i64,
    /// The last attempt.
    pub last: LastActivation,
    /// The installed MAK (canonical form); `None` for a KMS client (GVLK).
    pub mak: Option<String>,
    /// Activated for good by a MAK (online or by phone): Licensed with no expiry.
    pub permanent: bool,
}

/// What 12288 needs to say about a request in flight (the request itself went to the driver).
#[derive(Debug, Clone, Copy)]
struct Sent {
    cmid: Uuid,
    client_time: Timestamp,
    vm: bool,
    license_status: LicenseStatus,
    minutes_to_expiry: u32,
    activation_id: Uuid,
    n_policy: u32,
}

#[derive(Debug, Clone)]
struct Attempt {
    id: AttemptId,
    candidates: VecDeque<(HostAddr, HostSource)>,
    tried: Vec<HostAddr>,
    in_flight: Option<(HostAddr, HostSource, Sent)>,
    may_discover: bool,
    discovering: bool,
    /// A MAK attempt: one request to the activation service.
    online: bool,
    /// A MAK machine already activated for good: the request is the genuine validation of
    /// its key (`KeyInfo`), not an activation.
    validation: bool,
}

/// One machine. See the module documentation for the call order and the rules.
#[derive(Debug, Clone)]
pub struct Activator {
    product: Option<Arc<Product>>,
    state: ActivatorState,
    next_reminder: Option<Timestamp>,
    attempt: Option<Attempt>,
    next_attempt_id: AttemptId,
    // At most one action is outstanding at a time, so one slot is enough.
    action: Option<Action>,
    events: VecDeque<ClientEvent>,
    request_events: bool,
    slic_without_marker: bool,
}

impl Activator {
    /// A fresh machine with `product` installed at `now` (initial grace, attempt due now).
    pub fn new(product: Arc<Product>, cmid: Uuid, machine_name: impl Into<String>, now: Timestamp) -> Self {
        let rearm_count = product.rearm_count();
        let mut a = Activator::from_state(
            ActivatorState {
                product: None,
                cmid,
                previous_cmid: Uuid::nil(),
                status: LicenseStatus::Unlicensed,
                grace_end: None,
                valid_until: None,
                notification_reason: None,
                activation_interval: DEFAULT_ACTIVATION_INTERVAL,
                renewal_interval: DEFAULT_RENEWAL_INTERVAL,
                next_attempt: None,
                rearm_count,
                manual_host: None,
                cached_host: None,
                host_caching: true,
                domain: None,
                machine_name: machine_name.into(),
                vm: false,
                clock_offset_ms: 0,
                last: LastActivation::default(),
                mak: None,
                permanent: false,
            },
            None,
        );
        a.install_product(product, now);
        a
    }

    /// Rebuilds a machine from saved state; `product` must be the catalog entry named in it.
    pub fn from_state(state: ActivatorState, product: Option<Arc<Product>>) -> Self {
        let next_reminder = (state.status == LicenseStatus::Notification).then_some(Timestamp::EPOCH);
        Activator {
            product,
            state,
            next_reminder,
            attempt: None,
            next_attempt_id: 1,
            action: None,
            events: VecDeque::new(),
            request_events: true,
            slic_without_marker: false,
        }
    }

    /// Rebuilds a machine from saved state, finding its product in `catalog`.
    pub fn from_state_in(state: ActivatorState, catalog: &Catalog) -> Self {
        let product = state.product.as_deref().and_then(|n| catalog.product_by_name(n)).cloned();
        Activator::from_state(state, product)
    }

    /// The persistent state.
    pub fn state(&self) -> &ActivatorState {
        &self.state
    }

    /// The persistent state, giving up the rest (what a fleet keeps of an idle machine:
    /// [`Activator::from_state`] rebuilds it).
    pub fn into_state(self) -> ActivatorState {
        self.state
    }

    /// The installed product.
    pub fn product(&self) -> Option<&Arc<Product>> {
        self.product.as_ref()
    }

    /// The license status.
    pub fn status(&self) -> LicenseStatus {
        self.state.status
    }

    /// The CMID.
    pub fn cmid(&self) -> Uuid {
        self.state.cmid
    }

    /// True while an attempt is in progress.
    pub fn attempt_in_progress(&self) -> bool {
        self.attempt.is_some()
    }

    /// Minutes until the current state ends: validity when Licensed, grace in grace, else 0.
    pub fn minutes_remaining(&self, now: Timestamp) -> u32 {
        match self.state.status {
            LicenseStatus::Licensed => self.state.valid_until.map_or(0, |t| now.minutes_until(t)),
            LicenseStatus::InitialGrace | LicenseStatus::AdditionalGrace | LicenseStatus::NonGenuineGrace => {
                self.state.grace_end.map_or(0, |t| now.minutes_until(t))
            }
            _ => 0,
        }
    }

    // ----- user commands -------------------------------------------------------------

    /// `/ipk`: installs a product; initial grace from `now`, an attempt due at once.
    pub fn install_product(&mut self, product: Arc<Product>, now: Timestamp) {
        self.state.mak = None;
        self.state.permanent = false;
        self.state.product = Some(product.name.clone());
        self.product = Some(product);
        self.abandon_attempt();
        self.state.valid_until = None;
        self.state.notification_reason = None;
        self.state.grace_end = Some(now.plus_ms(INITIAL_GRACE_MS));
        self.set_status(LicenseStatus::InitialGrace, now);
        self.state.next_attempt = Some(now);
    }

    /// `/ipk KEY`: looks the GVLK up in `catalog` and installs it; 0xC004F050 if unknown.
    pub fn install_key(&mut self, catalog: &Catalog, key: &str, now: Timestamp) -> Result<(), HResult> {
        let product = catalog.product_by_gvlk(key).ok_or(HResult::INVALID_PRODUCT_KEY)?.clone();
        self.install_product(product, now);
        Ok(())
    }

    /// `/ipk MAK`: installs a lab MAK ([`crate::labkey`]) for the installed edition: the
    /// channel becomes `VOLUME_MAK`, initial grace from `now`, and no KMS attempt is made.
    /// 0xC004F050 for a key that is not a lab MAK, 0xC004F014 without an installed edition.
    pub fn install_mak(&mut self, key: &str, now: Timestamp) -> Result<(), HResult> {
        let (kind, key) = crate::labkey::parse(key).map_err(|_| HResult::INVALID_PRODUCT_KEY)?;
        if kind != crate::labkey::LabKeyKind::Mak {
            return Err(HResult::INVALID_PRODUCT_KEY);
        }
        let product = self.product.clone().ok_or(HResult::NO_PRODUCT_KEY)?;
        self.install_product(product, now);
        self.state.mak = Some(key);
        self.state.next_attempt = None;
        Ok(())
    }

    /// The `/dli` Description: the product's, with the channel part (after the last `, `)
    /// `VOLUME_MAK channel` while a MAK is installed.
    pub fn description(&self) -> Option<String> {
        let p = self.product.as_ref()?;
        if self.state.mak.is_none() {
            return Some(p.description.clone());
        }
        let head = p.description.rsplit_once(", ").map_or(p.description.as_str(), |(h, _)| h);
        Some(format!("{head}, VOLUME_MAK channel"))
    }

    /// The `/dli` Partial Product Key: the last five characters of the installed key.
    pub fn partial_key(&self) -> Option<&str> {
        match &self.state.mak {
            Some(k) => Some(&k[k.len().saturating_sub(5)..]),
            None => self.product.as_ref().map(|p| p.partial_key()),
        }
    }

    /// The installed MAK, if the machine is on the MAK channel.
    pub fn mak(&self) -> Option<&str> {
        self.state.mak.as_deref()
    }

    /// True when a MAK activated the machine for good (no expiry, no renewal).
    pub fn permanently_activated(&self) -> bool {
        self.state.permanent && self.state.status == LicenseStatus::Licensed
    }

    /// The product key installed: the MAK, else the product's GVLK.
    pub fn product_key(&self) -> Option<&str> {
        self.state.mak.as_deref().or(self.product.as_ref().map(|p| p.gvlk.as_str()))
    }

    /// `/dti`: the installation ID of the installed key on this machine.
    pub fn installation_id(&self) -> Option<InstallationId> {
        self.product_key().map(|k| install_id::installation_id(k, self.state.cmid))
    }

    /// `/atp CID`: checks the confirmation ID against the installation ID and, when it
    /// belongs to it, activates the MAK machine for good. A KMS client (GVLK) cannot be
    /// activated by phone: 0xC004F050. The error carries why.
    pub fn deposit_cid(&mut self, cid: &str, now: Timestamp) -> Result<(), (HResult, String)> {
        if self.product.is_none() {
            return Err((HResult::NO_PRODUCT_KEY, "no product key is installed".into()));
        }
        if self.state.mak.is_none() {
            return Err((
                HResult::INVALID_PRODUCT_KEY,
                "a volume setup key (GVLK) activates with a KMS host, not by phone; install a MAK first".into(),
            ));
        }
        let iid = self.installation_id().expect("a product is installed");
        iid.check_confirmation(cid)?;
        self.abandon_attempt();
        self.activate_for_good(now);
        Ok(())
    }

    /// An OEM machine whose ACPI_SLIC table has no valid Windows marker (true), or a
    /// machine without that problem (false, the default). Hardware, not saved state.
    pub fn set_slic_without_marker(&mut self, on: bool) {
        self.slic_without_marker = on;
    }

    fn activate_for_good(&mut self, now: Timestamp) {
        self.state.permanent = true;
        self.state.valid_until = None;
        self.state.grace_end = None;
        self.state.notification_reason = None;
        self.state.next_attempt = None;
        self.set_status(LicenseStatus::Licensed, now);
    }

    /// The activation service's answer to an [`Action::ActivateOnline`]: the answer, or the
    /// HRESULT it refused with (or of the failed exchange).
    pub fn handle_service_outcome(&mut self, now: Timestamp, attempt: AttemptId, outcome: Result<ServiceAnswer, HResult>) {
        if !self.attempt.as_ref().is_some_and(|a| a.id == attempt && a.online) {
            return;
        }
        self.state.last.source = None;
        self.state.last.epid = None;
        self.state.last.current_count = None;
        if self.attempt.as_ref().is_some_and(|a| a.validation) {
            let validation = match &outcome {
                Ok(a) if a.blocked => crate::genuine::Validation::Blocked,
                Ok(_) => crate::genuine::Validation::Genuine,
                Err(code) => crate::genuine::Validation::Failed(*code),
            };
            let result = self.apply_validation(now, validation);
            self.finish_attempt(now, result, None);
            return;
        }
        match outcome {
            Ok(_) => {
                self.activate_for_good(now);
                self.finish_attempt(now, HResult::SUCCESS, None);
            }
            Err(code) => self.finish_attempt(now, code, None),
        }
    }

    /// The non-genuine state of a MAK machine activated for good: its grace started 30
    /// days before `grace_end` (also in Notification, which keeps `grace_end`).
    fn non_genuine(&self) -> Option<crate::genuine::NonGenuine> {
        let in_state = match self.state.status {
            LicenseStatus::NonGenuineGrace => true,
            LicenseStatus::Notification => self.state.notification_reason == Some(HResult::NOT_GENUINE),
            _ => false,
        };
        let end = self.state.grace_end.filter(|_| in_state && self.state.permanent)?;
        Some(crate::genuine::NonGenuine {
            since: end.plus_ms(-crate::genuine::NON_GENUINE_GRACE_MS),
            reason: HResult::VALIDATION_BLOCKED_PRODUCT_KEY,
        })
    }

    /// Applies a genuine validation of the MAK (docs/kms-behaviour.md "Non-genuine"): a
    /// blocked key starts the 30-day non-genuine grace, a key in good standing ends it, no
    /// answer changes nothing. Returns what `/ato` answers: 0, 0x4004F065 or 0xC004F064.
    fn apply_validation(&mut self, now: Timestamp, validation: crate::genuine::Validation) -> HResult {
        let (next, transition) = crate::genuine::decide(self.non_genuine(), validation, now);
        match transition {
            crate::genuine::Transition::BecameNonGenuine => {
                let ng = next.expect("non-genuine after BecameNonGenuine");
                let app = self.product.as_ref().map_or_else(String::new, |p| p.application_id.to_string());
                let partial = self.partial_key().unwrap_or_default().to_owned();
                let what = format!("the activation service has blocked the MAK ending {partial}");
                self.events.push_back(ClientEvent::Genuine {
                    event_id: crate::events::GENUINE_TICKET_FAILED,
                    result: ng.reason,
                    message: crate::genuine::ticket_failed_text(ng.reason, &app),
                    at: now,
                });
                self.events.push_back(ClientEvent::Genuine {
                    event_id: crate::events::GENUINE_STATE_NON_GENUINE,
                    result: ng.reason,
                    message: crate::genuine::non_genuine_text(ng.reason, &app, &what),
                    at: now,
                });
                self.state.grace_end = Some(ng.grace_ends());
                self.state.notification_reason = None;
                self.set_status(LicenseStatus::NonGenuineGrace, now);
                if ng.expired(now) {
                    self.handle_timeout(now);
                }
            }
            crate::genuine::Transition::BecameGenuine => self.activate_for_good(now),
            crate::genuine::Transition::Unchanged => {}
        }
        next.map_or(HResult::SUCCESS, |ng| ng.ato_result(now))
    }

    /// `/upk`: uninstalls the key; the machine becomes Unlicensed and stops trying.
    pub fn uninstall_product(&mut self, now: Timestamp) {
        self.state.mak = None;
        self.state.permanent = false;
        self.abandon_attempt();
        self.product = None;
        self.state.product = None;
        self.state.grace_end = None;
        self.state.valid_until = None;
        self.state.notification_reason = None;
        self.state.next_attempt = None;
        self.set_status(LicenseStatus::Unlicensed, now);
    }

    /// `/rearm`: a new CMID, initial grace again, one rearm fewer; 0xC004D307 at 0.
    pub fn rearm(&mut self, now: Timestamp, rng: &mut impl KmsRng) -> Result<Uuid, HResult> {
        if self.state.rearm_count == 0 {
            return Err(HResult::REARM_LIMIT);
        }
        self.state.rearm_count -= 1;
        self.state.previous_cmid = self.state.cmid;
        self.state.cmid = rng.uuid_v4();
        if let Some(p) = self.product.clone() {
            // A MAK stays installed: rearm restarts the grace, it does not change the key.
            let mak = self.state.mak.clone();
            self.install_product(p, now);
            if mak.is_some() {
                self.state.mak = mak;
                self.state.next_attempt = None;
            }
        }
        Ok(self.state.cmid)
    }

    /// `/skms`: pins a host (no discovery while set).
    pub fn set_manual_host(&mut self, host: Option<HostAddr>) {
        self.state.manual_host = host;
    }

    /// `/skms-domain` and `/ckms-domain`.
    pub fn set_domain(&mut self, domain: Option<String>) {
        self.state.domain = domain;
    }

    /// `/skhc` (true) and `/ckhc` (false). Turning caching off forgets the cached host.
    pub fn set_host_caching(&mut self, on: bool) {
        self.state.host_caching = on;
        if !on {
            self.state.cached_host = None;
        }
    }

    /// Sets the request fields that describe the machine.
    pub fn set_machine(&mut self, machine_name: impl Into<String>, vm: bool) {
        self.state.machine_name = machine_name.into();
        self.state.vm = vm;
    }

    /// Makes the machine's clock run `offset_ms` ahead (negative: behind) of `now`.
    pub fn set_clock_offset(&mut self, offset_ms: i64) {
        self.state.clock_offset_ms = offset_ms;
    }

    /// `/ato`: starts an attempt now (or returns the one in progress). Without a product
    /// the attempt ends at once with 0xC004F014.
    pub fn activate_now(&mut self, now: Timestamp) -> AttemptId {
        if let Some(a) = &self.attempt {
            return a.id;
        }
        self.start_attempt(now)
    }

    // ----- time ----------------------------------------------------------------------

    /// The next moment `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.attempt.is_none() {
            consider(self.state.next_attempt);
        }
        match self.state.status {
            LicenseStatus::Licensed => consider(self.state.valid_until),
            LicenseStatus::InitialGrace | LicenseStatus::AdditionalGrace | LicenseStatus::NonGenuineGrace => consider(self.state.grace_end),
            LicenseStatus::Notification => consider(self.next_reminder),
            _ => {}
        }
        next
    }

    /// Applies everything due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.state.status == LicenseStatus::Licensed
            && let Some(end) = self.state.valid_until.filter(|t| *t <= now)
        {
            self.state.grace_end = Some(end.plus_ms(ADDITIONAL_GRACE_MS));
            self.set_status(LicenseStatus::AdditionalGrace, now);
        }
        if matches!(self.state.status, LicenseStatus::InitialGrace | LicenseStatus::AdditionalGrace)
            && self.state.grace_end.is_some_and(|t| t <= now)
        {
            self.state.notification_reason = Some(HResult::GRACE_EXPIRED);
            self.set_status(LicenseStatus::Notification, now);
        }
        if self.state.status == LicenseStatus::NonGenuineGrace && self.state.grace_end.is_some_and(|t| t <= now) {
            self.state.notification_reason = Some(HResult::NOT_GENUINE);
            self.set_status(LicenseStatus::Notification, now);
        }
        if self.state.status == LicenseStatus::Notification
            && let Some(due) = self.next_reminder.filter(|t| *t <= now)
        {
            // On time (or a little late): stamped with its scheduled time, so reminders stay
            // exactly 60 minutes apart however late the driver wakes. A whole slot or more
            // late (a long sleep, a restart): one reminder now and the rhythm starts again
            // from it, never a burst.
            let at = if now.ms_since(due) < REMINDER_MS { due } else { now };
            self.events.push_back(ClientEvent::NotificationReminder {
                reason: self.state.notification_reason.unwrap_or(HResult::GRACE_EXPIRED),
                at,
            });
            self.next_reminder = Some(at.plus_ms(REMINDER_MS));
        }
        if self.attempt.is_none() && self.product.is_some() && self.state.mak.is_none() && self.state.next_attempt.is_some_and(|t| t <= now)
        {
            self.start_attempt(now);
        }
    }

    // ----- actions and their results ---------------------------------------------------

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.action.take()
    }

    /// Turns events 12288 and 12289 on (the default) or off. Drivers that simulate many
    /// machines and do not log them save the work and the memory.
    pub fn set_request_events(&mut self, on: bool) {
        self.request_events = on;
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The result of an [`Action::Discover`]: SRV records, or the DNS HRESULT.
    pub fn handle_discovery(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        result: Result<Vec<SrvCandidate>, HResult>,
        rng: &mut impl KmsRng,
    ) {
        // Vista-family clients ignore priority and weight; the product says which family.
        let policy = self.product.as_ref().map_or(SrvPolicy::PriorityWeight, |p| p.client_family.srv_policy());
        let Some(a) = self.attempt.as_mut().filter(|a| a.id == attempt && a.discovering) else { return };
        a.discovering = false;
        match result {
            Err(code) => self.finish_attempt(now, code, None),
            Ok(records) => {
                for r in srv::order_with(records, policy, rng) {
                    if !a.tried.contains(&r.target) && !a.candidates.iter().any(|(h, _)| h == &r.target) {
                        a.candidates.push_back((r.target, HostSource::Dns));
                    }
                }
                if a.candidates.is_empty() && a.tried.is_empty() {
                    self.finish_attempt(now, HResult::DNS_NO_RECORDS, None);
                } else {
                    self.next_candidate(now);
                }
            }
        }
    }

    /// The result of an [`Action::Send`].
    pub fn handle_host_outcome(&mut self, now: Timestamp, attempt: AttemptId, outcome: HostOutcome) {
        let Some(a) = self.attempt.as_mut().filter(|a| a.id == attempt) else { return };
        let Some((host, source, request)) = a.in_flight.take() else { return };
        a.tried.push(host.clone());
        let sent = |result: HResult, status_flags: u32| RequestSent {
            result,
            status_flags,
            host: host.clone(),
            cmid: request.cmid,
            client_time: request.client_time,
            vm: request.vm,
            license_status: request.license_status,
            minutes_to_expiry: request.minutes_to_expiry,
            activation_id: request.activation_id,
            n_policy: request.n_policy,
        };
        match outcome {
            HostOutcome::Unreachable(code) => {
                if self.request_events {
                    self.events.push_back(ClientEvent::RequestSent(sent(code, 0)));
                }
                self.drop_host(now, source);
            }
            HostOutcome::Refused(frame) => {
                // 12288 carries the host's answer (KB974998: `0xC004F06C, 0x00000000,
                // host:1688, ...`); there is no activation response, so no 12289.
                if self.request_events {
                    self.events.push_back(ClientEvent::RequestSent(sent(frame.hresult, 0)));
                }
                if source == HostSource::Manual {
                    // The host the technician named refused: that is the attempt's answer.
                    self.state.last.source = Some(source);
                    self.state.last.epid = None;
                    self.state.last.current_count = None;
                    self.finish_attempt(now, frame.hresult, Some(host));
                } else {
                    self.drop_host(now, source);
                }
            }
            HostOutcome::Response(resp) if resp.cmid != request.cmid => {
                // An answer to somebody else's request: treat the host as broken.
                if self.request_events {
                    self.events.push_back(ClientEvent::RequestSent(sent(HResult::INVALID_DATA, 0)));
                }
                self.drop_host(now, source);
            }
            HostOutcome::Response(resp) => {
                if INTERVAL_RANGE.contains(&resp.activation_interval) {
                    self.state.activation_interval = resp.activation_interval;
                }
                if INTERVAL_RANGE.contains(&resp.renewal_interval) {
                    self.state.renewal_interval = resp.renewal_interval;
                }
                let required = self.product.as_ref().map_or(u32::MAX, |p| p.required_count);
                let activated = resp.current_count >= required;
                let (result, flags) =
                    if activated { (HResult::SUCCESS, 0) } else { (HResult::NOT_ENOUGH_COUNT, events::STATUS_NOT_ENOUGH_COUNT) };
                if self.request_events {
                    self.events.push_back(ClientEvent::RequestSent(sent(HResult::SUCCESS, flags)));
                }
                if self.request_events {
                    self.events.push_back(ClientEvent::ResponseProcessed(ResponseProcessed {
                        result,
                        status_flags: flags,
                        activated,
                        current_count: resp.current_count,
                        activation_interval: resp.activation_interval,
                        renewal_interval: resp.renewal_interval,
                    }));
                }
                if self.state.host_caching && self.state.manual_host.is_none() {
                    self.state.cached_host = Some(host.clone());
                }
                self.state.last.source = Some(source);
                self.state.last.epid = Some(resp.epid);
                self.state.last.current_count = Some(resp.current_count);
                if activated {
                    self.state.valid_until = Some(now.plus_ms(VALIDITY_MS));
                    self.state.grace_end = None;
                    self.state.notification_reason = None;
                    self.set_status(LicenseStatus::Licensed, now);
                }
                self.finish_attempt(now, result, Some(host));
            }
        }
    }

    // ----- internals -------------------------------------------------------------------

    /// The host just tried is not an activated host with the right key (it refused or the
    /// exchange failed): forget it if it was the cached one, and go on with the next
    /// candidate, discovering again after a cached host.
    fn drop_host(&mut self, now: Timestamp, source: HostSource) {
        if source == HostSource::Cached {
            self.state.cached_host = None;
            if let Some(a) = self.attempt.as_mut() {
                a.may_discover = true;
            }
        }
        self.next_candidate(now);
    }

    fn set_status(&mut self, to: LicenseStatus, now: Timestamp) {
        let from = self.state.status;
        if from != to {
            self.state.status = to;
            self.events.push_back(ClientEvent::LicenseChanged { from, to, at: now });
        }
        self.next_reminder = (to == LicenseStatus::Notification).then_some(now);
    }

    fn abandon_attempt(&mut self) {
        self.attempt = None;
        self.action = None;
    }

    fn start_attempt(&mut self, now: Timestamp) -> AttemptId {
        let id = self.next_attempt_id;
        self.next_attempt_id += 1;
        self.state.next_attempt = None;
        let mut attempt = Attempt {
            id,
            candidates: VecDeque::new(),
            tried: Vec::new(),
            in_flight: None,
            may_discover: false,
            discovering: false,
            online: false,
            validation: false,
        };
        if let Some(h) = &self.state.manual_host {
            attempt.candidates.push_back((h.clone(), HostSource::Manual));
        } else {
            attempt.may_discover = true;
            if let (true, Some(h)) = (self.state.host_caching, &self.state.cached_host) {
                attempt.candidates.push_back((h.clone(), HostSource::Cached));
                // Discovery only if the cached host fails.
                attempt.may_discover = false;
            }
        }
        let Some(product) = self.product.clone() else {
            self.attempt = Some(attempt);
            self.finish_attempt(now, HResult::NO_PRODUCT_KEY, None);
            return id;
        };
        if let Some(key) = self.state.mak.clone() {
            attempt.online = true;
            self.attempt = Some(attempt);
            if self.state.permanent {
                // Activated for good: `/ato` validates the key (genuine validation).
                if let Some(a) = self.attempt.as_mut() {
                    a.validation = true;
                }
                self.action = Some(Action::ActivateOnline { attempt: id, request: ServiceRequest::KeyInfo { key } });
                return id;
            }
            let installation_id = install_id::installation_id(&key, self.state.cmid).to_string();
            self.action = Some(Action::ActivateOnline {
                attempt: id,
                request: ServiceRequest::Activate { key, product: product.name.clone(), installation_id },
            });
            return id;
        }
        self.attempt = Some(attempt);
        if self.slic_without_marker && product.client_family.checks_slic() {
            // The OEM marker is checked on the machine, before any host is asked.
            self.finish_attempt(now, HResult::VL_NOT_WINDOWS_SLP, None);
        } else {
            self.next_candidate(now);
        }
        id
    }

    fn next_candidate(&mut self, now: Timestamp) {
        let Some(a) = self.attempt.as_mut() else { return };
        if let Some((host, source)) = a.candidates.pop_front() {
            let request = self.build_request(now);
            let a = self.attempt.as_mut().expect("checked above");
            let sent = Sent {
                cmid: request.cmid,
                client_time: request.client_time,
                vm: request.vm,
                license_status: request.license_status,
                minutes_to_expiry: request.minutes_to_expiry,
                activation_id: request.activation_id,
                n_policy: request.n_policy,
            };
            a.in_flight = Some((host.clone(), source, sent));
            self.action = Some(Action::Send { attempt: a.id, host, request });
        } else if a.may_discover {
            a.may_discover = false;
            a.discovering = true;
            let id = a.id;
            self.action = Some(Action::Discover { attempt: id, domain: self.state.domain.clone() });
        } else {
            self.finish_attempt(now, HResult::NO_HOST_AVAILABLE, None);
        }
    }

    fn build_request(&self, now: Timestamp) -> Request {
        let p = self.product.as_ref().expect("attempts only run with a product");
        Request {
            protocol: KMS_PROTOCOL_V4,
            vm: self.state.vm,
            license_status: self.state.status,
            minutes_to_expiry: self.minutes_remaining(now),
            application_id: p.application_id,
            activation_id: p.activation_id,
            kms_counted_id: p.kms_counted_id,
            cmid: self.state.cmid,
            previous_cmid: self.state.previous_cmid,
            n_policy: p.required_count,
            client_time: now.plus_ms(self.state.clock_offset_ms),
            machine_name: self.state.machine_name.clone(),
        }
    }

    fn finish_attempt(&mut self, now: Timestamp, result: HResult, host: Option<HostAddr>) {
        let Some(a) = self.attempt.take() else { return };
        self.action = None;
        self.state.last.at = Some(now);
        self.state.last.result = Some(result);
        if host.is_some() {
            self.state.last.host = host.clone();
        }
        let minutes = if result == HResult::SUCCESS { self.state.renewal_interval } else { self.state.activation_interval };
        // A MAK machine is activated by hand (`/ato`, `/atp`), never on a schedule.
        self.state.next_attempt = self.product.as_ref().filter(|_| self.state.mak.is_none()).map(|_| now.plus_minutes(i64::from(minutes)));
        self.events.push_back(ClientEvent::AttemptFinished { attempt: a.id, result, host });
    }
}

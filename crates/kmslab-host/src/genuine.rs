//! The host's genuine validation (docs/kms-behaviour.md "Non-genuine"): the host asks the
//! activation service (`--activation-service`) about its own KMS host key (`--host-key`,
//! `slmgr /ipk`) at start, once a day of simulated time, on `/ipk` and on `/ato`. A key the
//! service has blocked puts the host in the 30-day non-genuine grace (events 8208 and 8209
//! in the registry); the host keeps serving its clients then (**kmslab's choice**). Once the
//! grace ran out the host is in Notification and answers every client 0xC004F041. A new
//! host key that validates makes it genuine again. The rules are `kmslab_core::genuine`'s;
//! this module asks, keeps the state in the registry's settings and records the events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kmslab_core::events::{GENUINE_STATE_NON_GENUINE, GENUINE_TICKET_FAILED};
use kmslab_core::genuine::{self, NonGenuine, Transition, Validation};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::wire::{Message, ServiceAnswer, ServiceRequest};
use kmslab_core::{HResult, LicenseStatus, Timestamp};
use kmslab_runtime::SimClock;
use kmslab_store::{EventRecord, Store};
use serde_json::json;

/// Registry setting keys.
pub mod keys {
    /// The installed host key (`--host-key` at the first start, then `/ipk`).
    pub const HOST_KEY: &str = "host_key";
    /// Unix ms of the validation that first found the key blocked (empty: genuine).
    pub const NON_GENUINE_SINCE: &str = "non_genuine_since_ms";
    /// Why (an HRESULT, `0xC004C4A2`).
    pub const NON_GENUINE_REASON: &str = "non_genuine_reason";
}

/// How long one validation may take to connect and to get its answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The last validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastValidation {
    /// When (simulated).
    pub at: Timestamp,
    /// Its result: 0, the blocked key's 0xC004C4A2, or why no answer came.
    pub result: HResult,
}

#[derive(Debug, Default)]
struct Inner {
    key: Option<String>,
    state: Option<NonGenuine>,
    last: Option<LastValidation>,
}

/// The genuine state, shared by the validation task, the admin API and the ledger.
#[derive(Debug)]
pub struct Genuine {
    service: Option<HostAddr>,
    inner: Mutex<Inner>,
    /// Unix ms of the stored non-genuine start (`i64::MAX`: genuine), read on every request.
    since_ms: AtomicI64,
    /// One validation at a time (start-up, daily, `/ipk`, `/ato`).
    validating: tokio::sync::Mutex<()>,
}

/// What `/ato` on the host answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtoResult {
    /// 0, 0x4004F065 (non-genuine grace), 0xC004F064 (expired), or why no validation.
    pub hresult: HResult,
}

impl Genuine {
    /// The state restored from the registry: `key` installed, non-genuine since `since`.
    pub(crate) fn new(service: Option<HostAddr>, key: Option<String>, state: Option<NonGenuine>) -> Genuine {
        let since_ms = state.map_or(i64::MAX, |s| s.since.as_unix_ms());
        Genuine {
            service,
            inner: Mutex::new(Inner { key, state, last: None }),
            since_ms: AtomicI64::new(since_ms),
            validating: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The installed host key.
    pub fn key(&self) -> Option<String> {
        self.lock().key.clone()
    }

    /// The non-genuine state with `age_ms` (a lab's fault: time already spent in the grace)
    /// taken off its start.
    pub fn state(&self, age_ms: i64) -> Option<NonGenuine> {
        self.lock().state.map(|s| NonGenuine { since: Timestamp::from_unix_ms(s.since.as_unix_ms().saturating_sub(age_ms)), ..s })
    }

    /// True in Notification at `now`: the host answers 0xC004F041. Cheap (one atomic load)
    /// while the host is genuine: the request path asks on every request.
    pub fn in_notification(&self, now: Timestamp, age_ms: i64) -> bool {
        let since = self.since_ms.load(Ordering::Relaxed);
        since != i64::MAX && now.as_unix_ms() >= since.saturating_sub(age_ms).saturating_add(genuine::NON_GENUINE_GRACE_MS)
    }

    /// The license status the genuine state gives at `now`, if any (else the host's own).
    pub fn license_status(&self, now: Timestamp, age_ms: i64) -> Option<LicenseStatus> {
        self.state(age_ms).map(|s| s.license_status(now))
    }

    /// The status document's `genuine` object.
    pub fn view(&self, now: Timestamp, age_ms: i64) -> kmslab_api::HostGenuine {
        let state = self.state(age_ms);
        let inner = self.lock();
        kmslab_api::HostGenuine {
            state: state.map_or("genuine", |s| s.license_status(now).key()).to_owned(),
            partial_host_key: inner.key.as_deref().map(partial_key),
            activation_service: self.service.as_ref().map(ToString::to_string),
            non_genuine_since: state.map(|s| s.since.to_string()),
            grace_ends: state.map(|s| s.grace_ends().to_string()),
            minutes_remaining: state.map(|s| s.remaining_minutes(now)),
            reason: state.map(|s| s.reason.to_string()),
            last_validation: inner.last.as_ref().map(|l| l.at.to_string()),
            last_result: inner.last.as_ref().map(|l| l.result.to_string()),
            last_result_name: inner.last.as_ref().map(|l| l.result.name().to_owned()),
        }
    }
}

/// The last five characters of a key (`Partial Product Key`).
pub fn partial_key(key: &str) -> String {
    let k: Vec<char> = key.chars().filter(|c| *c != '-').collect();
    k[k.len().saturating_sub(5)..].iter().collect()
}

/// Asks `service` about `key` (`KeyInfo`): the answer, the service's refusal, or why the
/// exchange failed (0x800706BA unreachable, 0x800705B4 timed out, 0x8007000D garbled).
async fn ask(service: &HostAddr, key: &str) -> Result<ServiceAnswer, HResult> {
    let addrs = match tokio::time::timeout(EXCHANGE_TIMEOUT, tokio::net::lookup_host((service.host.as_str(), service.port))).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
        _ => return Err(HResult::HOST_UNREACHABLE),
    };
    let mut last = HResult::HOST_UNREACHABLE;
    for addr in addrs {
        let mut stream = match tokio::time::timeout(EXCHANGE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => {
                last = HResult::TIMEOUT;
                continue;
            }
            Ok(Err(_)) => continue,
            Ok(Ok(s)) => s,
        };
        let request = Message::ServiceRequest(ServiceRequest::KeyInfo { key: key.to_owned() });
        let work = async {
            let mut buf = Vec::with_capacity(256);
            kmslab_runtime::framed::write_message(&mut stream, &request, &mut buf).await?;
            kmslab_runtime::framed::read_message(&mut stream, &mut buf).await
        };
        return match tokio::time::timeout(EXCHANGE_TIMEOUT, work).await {
            Err(_) => Err(HResult::TIMEOUT),
            Ok(Ok(Some(Message::ServiceAnswer(a)))) => Ok(a),
            Ok(Ok(Some(Message::Error(e)))) => Err(e.hresult),
            Ok(Ok(Some(_))) | Ok(Err(kmslab_runtime::framed::FrameError::Decode(_))) => Err(HResult::INVALID_DATA),
            Ok(Ok(None)) | Ok(Err(_)) => Err(HResult::HOST_UNREACHABLE),
        };
    }
    Err(last)
}

/// What a validation needs of the host: its registry (settings, events 8208 and 8209), its
/// clock, and the time a lab says it already spent in its grace (0 for `kms-host`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The registry.
    pub store: &'a Store,
    /// Simulated time.
    pub clock: &'a SimClock,
    /// `Faults::age_non_genuine`.
    pub age_ms: i64,
}

impl Genuine {
    /// True when an activation service is configured (the validation task runs).
    pub(crate) fn configured(&self) -> bool {
        self.service.is_some()
    }

    /// Validates the installed host key with the activation service now; records what
    /// changed. Returns what `/ato` answers.
    pub(crate) async fn validate(&self, ctx: &Ctx<'_>) -> AtoResult {
        let g = self;
        let _one = g.validating.lock().await;
        let Some(service) = g.service.clone() else {
            return AtoResult { hresult: HResult::HOST_UNREACHABLE };
        };
        let Some(key) = g.key() else {
            return AtoResult { hresult: HResult::NO_PRODUCT_KEY };
        };
        let answer = ask(&service, &key).await;
        let now = ctx.clock.now();
        let validation = match &answer {
            Ok(a) if a.blocked => Validation::Blocked,
            Ok(_) => Validation::Genuine,
            Err(hr) => Validation::Failed(*hr),
        };
        let result = match validation {
            Validation::Genuine => HResult::SUCCESS,
            Validation::Blocked => HResult::VALIDATION_BLOCKED_PRODUCT_KEY,
            Validation::Failed(hr) => hr,
        };
        let current = g.lock().state;
        let (next, transition) = genuine::decide(current, validation, now);
        let partial = partial_key(&key);
        match transition {
            Transition::BecameNonGenuine => {
                let ng = next.expect("non-genuine after BecameNonGenuine");
                record_non_genuine(ctx, &ng, &partial).await;
            }
            Transition::BecameGenuine => {
                tracing::info!(host_key = %partial, "genuine validation: the host key is in good standing again; the host is genuine");
                store_genuine_state(ctx, None).await;
            }
            Transition::Unchanged => match validation {
                Validation::Failed(hr) => {
                    tracing::warn!(host_key = %partial, hresult = %hr, name = hr.name(), service = %service, "genuine validation: no answer about the host key; state unchanged")
                }
                _ => tracing::debug!(host_key = %partial, result = %result, "genuine validation"),
            },
        }
        {
            let mut inner = g.lock();
            inner.state = next;
            inner.last = Some(LastValidation { at: now, result });
        }
        g.since_ms.store(next.map_or(i64::MAX, |s| s.since.as_unix_ms()), Ordering::Relaxed);
        let hresult = match (validation, g.state(ctx.age_ms)) {
            (Validation::Failed(hr), _) => hr,
            (_, Some(ng)) => ng.ato_result(now),
            (_, None) => HResult::SUCCESS,
        };
        AtoResult { hresult }
    }

    /// `slmgr /ipk KEY` on the host: installs a new KMS host key (kept in the registry),
    /// forgets the old key's non-genuine state and validates the new one when an activation
    /// service is configured. Errors name what is wrong with the key.
    pub(crate) async fn install(&self, ctx: &Ctx<'_>, key: &str) -> Result<String, (HResult, String)> {
        let canonical = match kmslab_core::labkey::parse(key) {
            Ok((kmslab_core::labkey::LabKeyKind::HostKey, k)) => k,
            Ok((kind, _)) => {
                return Err((HResult::INVALID_PRODUCT_KEY, format!("{key} is a lab {}, not a KMS host key (LABH…)", kind.label())));
            }
            Err(why) => return Err((HResult::INVALID_PRODUCT_KEY, format!("{key:?} is not a KMS host key: {why}"))),
        };
        {
            let _one = self.validating.lock().await;
            ctx.store.set_setting(keys::HOST_KEY, canonical.clone()).await.map_err(|e| (HResult::STORE_FAILED, e.to_string()))?;
            store_genuine_state(ctx, None).await;
            let mut inner = self.lock();
            inner.key = Some(canonical.clone());
            inner.state = None;
            inner.last = None;
            self.since_ms.store(i64::MAX, Ordering::Relaxed);
        }
        tracing::info!(host_key = %partial_key(&canonical), "KMS host key installed (/ipk)");
        if self.service.is_some() {
            self.validate(ctx).await;
        }
        Ok(canonical)
    }
}

async fn store_genuine_state(ctx: &Ctx<'_>, state: Option<&NonGenuine>) {
    let (since, reason) = state.map_or((String::new(), String::new()), |s| (s.since.as_unix_ms().to_string(), s.reason.to_string()));
    for (k, v) in [(keys::NON_GENUINE_SINCE, since), (keys::NON_GENUINE_REASON, reason)] {
        if let Err(e) = ctx.store.set_setting(k, v).await {
            tracing::error!(error = %e, setting = k, "registry write of the genuine state failed");
        }
    }
}

/// Events 8208 and 8209, the state in the registry, and the log lines.
async fn record_non_genuine(ctx: &Ctx<'_>, ng: &NonGenuine, partial: &str) {
    let app = kmslab_api::WINDOWS_APPLICATION_ID;
    let what = format!("the activation service has blocked the KMS host key ending {partial}");
    let ticket = genuine::ticket_failed_text(ng.reason, app);
    let text = genuine::non_genuine_text(ng.reason, app, &what);
    tracing::warn!(event_id = GENUINE_TICKET_FAILED, result = %ng.reason, "{ticket}");
    tracing::warn!(event_id = GENUINE_STATE_NON_GENUINE, result = %ng.reason, grace_ends = %ng.grace_ends(), "{text}");
    let at = ng.since.as_unix_ms();
    let events = [
        (GENUINE_TICKET_FAILED, json!({ "result": ng.reason.to_string(), "application_id": app, "message": ticket })),
        (
            GENUINE_STATE_NON_GENUINE,
            json!({ "result": ng.reason.to_string(), "application_id": app, "host_key": partial, "message": text, "grace_ends": ng.grace_ends().to_string() }),
        ),
    ];
    for (event_id, fields) in events {
        if let Err(e) = ctx.store.append_event(EventRecord { event_id, time_ms: at, fields_json: fields.to_string() }).await {
            tracing::error!(error = %e, event_id, "registry write of a genuine-validation event failed");
        }
    }
    store_genuine_state(ctx, Some(ng)).await;
}

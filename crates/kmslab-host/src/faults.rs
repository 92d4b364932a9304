//! Faults a lab injects into a running host (`kmslab up`'s control API): a firewall
//! closing the KMS port while the host keeps running, the loss of the host's own
//! activation, and time spent in its non-genuine grace. A host started
//! without a [`Faults`] handle (every `kms-host`) has none of them.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use kmslab_core::ledger::HostSettings;
use tokio::sync::watch;

/// The switches; shared (in an `Arc`) between the lab and the host's tasks.
#[derive(Debug)]
pub struct Faults {
    blocked: watch::Sender<bool>,
    /// 0: as configured, 1: activation lost, 2: activated again.
    activation: AtomicU8,
    /// Simulated ms the host is taken to have spent in its non-genuine grace already.
    non_genuine_age_ms: AtomicI64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { blocked: watch::Sender::new(false), activation: AtomicU8::new(0), non_genuine_age_ms: AtomicI64::new(0) }
    }
}

impl Faults {
    /// Closes (true) or opens again (false) the KMS listeners: connections are refused
    /// while the admin API, DNS publishing and the registry carry on.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.send_replace(blocked);
    }

    /// True while the KMS port is closed.
    pub fn blocked(&self) -> bool {
        *self.blocked.borrow()
    }

    /// The host loses its own activation (true: every request is refused with
    /// 0xC004F041, as with `--unactivated`) or gets it back (false).
    pub fn set_unactivated(&self, unactivated: bool) {
        self.activation.store(if unactivated { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// Moves the start of the host's non-genuine grace `ms` of simulated time back, as if
    /// that much time had passed since its key was found blocked (a drill's "31 days
    /// later" without moving any clock). No effect while the host is genuine.
    pub fn age_non_genuine(&self, ms: i64) {
        self.non_genuine_age_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The time [`Faults::age_non_genuine`] added up to.
    pub(crate) fn non_genuine_age_ms(&self) -> i64 {
        self.non_genuine_age_ms.load(Ordering::Relaxed)
    }

    /// Applies the activation switch to the ledger's settings.
    pub(crate) fn apply(&self, settings: &mut HostSettings) {
        match self.activation.load(Ordering::Relaxed) {
            1 => settings.activated = false,
            2 => settings.activated = true,
            _ => {}
        }
    }

    /// Watches the block switch.
    pub(crate) fn watch_blocked(&self) -> watch::Receiver<bool> {
        self.blocked.subscribe()
    }
}

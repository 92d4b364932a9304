//! Genuine validation and the non-genuine grace (docs/kms-behaviour.md "Non-genuine").
//!
//! A machine whose installed key the activation service has blocked (a leaked or misused
//! KMS host key or MAK) is non-genuine: for **30 days** it is in the non-genuine grace
//! (license status 4), then in Notification, until a new key validates. This module holds
//! the rules and the texts; the daemons ask the service and keep the state.
//! - A validation that finds the key blocked starts the grace (events 8208, then 8209);
//!   one that finds it blocked again keeps the first start.
//! - A validation that finds the key in good standing ends it.
//! - A validation that could not be made (the service unreachable, the key unknown to it)
//!   changes nothing (**kmslab's choice**: no source says what Windows does).

use crate::hresult::HResult;
use crate::license::LicenseStatus;
use crate::time::Timestamp;

/// The non-genuine grace: 30 days [OPS7].
pub const NON_GENUINE_GRACE_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How often a daemon with an activation service validates its key besides at start,
/// `/ipk` and `/ato` (**kmslab's choice**: once a day).
pub const VALIDATION_INTERVAL_MS: i64 = 24 * 60 * 60 * 1000;
/// What `slmgr /ato` prints on a non-genuine machine [KB4487266].
pub const ATO_NON_GENUINE_TEXT: &str =
    "Windows is running within the non-genuine notification period. Run 'slui.exe' to go online and validate Windows.";

/// A non-genuine state: since when and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonGenuine {
    /// When a validation first found the key blocked.
    pub since: Timestamp,
    /// Why (0xC004C4A2 for a blocked key).
    pub reason: HResult,
}

impl NonGenuine {
    /// When the 30 days of non-genuine grace end.
    pub fn grace_ends(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.since.as_unix_ms().saturating_add(NON_GENUINE_GRACE_MS))
    }

    /// True once the grace ran out (the machine is in Notification).
    pub fn expired(&self, now: Timestamp) -> bool {
        now >= self.grace_ends()
    }

    /// Whole minutes of grace left at `now` (0 once it ran out).
    pub fn remaining_minutes(&self, now: Timestamp) -> u64 {
        let left = self.grace_ends().as_unix_ms().saturating_sub(now.as_unix_ms());
        u64::try_from(left.max(0)).unwrap_or(0) / 60_000
    }

    /// The license status at `now`: non-genuine grace, then Notification.
    pub fn license_status(&self, now: Timestamp) -> LicenseStatus {
        if self.expired(now) { LicenseStatus::Notification } else { LicenseStatus::NonGenuineGrace }
    }

    /// What `/ato` answers at `now`: 0x4004F065 in the grace, 0xC004F064 after it [ERR].
    pub fn ato_result(&self, now: Timestamp) -> HResult {
        if self.expired(now) { HResult::NONGENUINE_GRACE_EXPIRED } else { HResult::NONGENUINE_GRACE_PERIOD }
    }
}

/// What one genuine validation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The key is in good standing.
    Genuine,
    /// The service has blocked the key.
    Blocked,
    /// No answer about the key (the service unreachable, or it does not know the key).
    Failed(HResult),
}

/// How a validation changed the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    Unchanged,
    /// The key was found blocked: the grace starts now (events 8208 and 8209).
    BecameNonGenuine,
    /// The key validates again: back to genuine.
    BecameGenuine,
}

/// The state after `validation` at `now`, from `current`.
pub fn decide(current: Option<NonGenuine>, validation: Validation, now: Timestamp) -> (Option<NonGenuine>, Transition) {
    match (current, validation) {
        (None, Validation::Blocked) => {
            (Some(NonGenuine { since: now, reason: HResult::VALIDATION_BLOCKED_PRODUCT_KEY }), Transition::BecameNonGenuine)
        }
        (Some(_), Validation::Genuine) => (None, Transition::BecameGenuine),
        (state, _) => (state, Transition::Unchanged),
    }
}

/// The text of event 8208 (acquiring the genuine ticket failed with `hr`) [KB4487266].
pub fn ticket_failed_text(hr: HResult, application_id: &str) -> String {
    format!("Acquisition of genuine ticket failed (hr={hr}) for application Id {application_id}: {}", hr.name())
}

/// The text of event 8209 (the genuine state set to non-genuine), with the reason [KB4487266].
pub fn non_genuine_text(reason: HResult, application_id: &str, what: &str) -> String {
    format!("Genuine state set to non-genuine (0x00000000) for application Id {application_id}. Reason: {reason} {}: {what}", reason.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    #[test]
    fn blocked_key_gives_thirty_days_then_notification() {
        let t0 = Timestamp::from_unix_ms(1_000 * DAY);
        let (state, tr) = decide(None, Validation::Blocked, t0);
        assert_eq!(tr, Transition::BecameNonGenuine);
        let ng = state.unwrap();
        assert_eq!(ng.reason, HResult::VALIDATION_BLOCKED_PRODUCT_KEY);
        let at = |d: i64| Timestamp::from_unix_ms(t0.as_unix_ms() + d);
        assert_eq!(ng.license_status(at(29 * DAY)), LicenseStatus::NonGenuineGrace);
        assert_eq!(ng.remaining_minutes(at(29 * DAY)), 24 * 60);
        assert_eq!(ng.ato_result(at(29 * DAY)), HResult::NONGENUINE_GRACE_PERIOD);
        assert_eq!(ng.license_status(at(30 * DAY)), LicenseStatus::Notification);
        assert_eq!(ng.ato_result(at(30 * DAY)), HResult::NONGENUINE_GRACE_EXPIRED);
        assert_eq!(ng.remaining_minutes(at(31 * DAY)), 0);
        // Blocked again later: the grace keeps its first start.
        assert_eq!(decide(state, Validation::Blocked, at(5 * DAY)), (state, Transition::Unchanged));
        // No answer: nothing changes either way.
        assert_eq!(decide(state, Validation::Failed(HResult::HOST_UNREACHABLE), at(DAY)), (state, Transition::Unchanged));
        assert_eq!(decide(None, Validation::Failed(HResult::HOST_UNREACHABLE), at(DAY)), (None, Transition::Unchanged));
        // A key in good standing ends it.
        assert_eq!(decide(state, Validation::Genuine, at(40 * DAY)), (None, Transition::BecameGenuine));
        assert_eq!(decide(None, Validation::Genuine, at(40 * DAY)), (None, Transition::Unchanged));
    }

    #[test]
    fn event_texts_follow_the_samples() {
        let app = "55c92734-d682-4d71-983e-d6ec3f16059f";
        assert!(
            ticket_failed_text(HResult::VALIDATION_BLOCKED_PRODUCT_KEY, app)
                .starts_with("Acquisition of genuine ticket failed (hr=0xC004C4A2)")
        );
        let t = non_genuine_text(HResult::VALIDATION_BLOCKED_PRODUCT_KEY, app, "key blocked");
        assert!(t.starts_with("Genuine state set to non-genuine (0x00000000) for application Id 55c92734-"), "{t}");
        assert!(t.contains("SL_E_VALIDATION_BLOCKED_PRODUCT_KEY"), "{t}");
        assert_eq!(HResult::NONGENUINE_GRACE_PERIOD.info().unwrap().meaning, ATO_NON_GENUINE_TEXT);
    }
}

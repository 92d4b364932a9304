//! License states a volume-licensed machine can be in, with the labels `slmgr /dli` prints.

use std::fmt;

use crate::hresult::HResult;

/// Minutes in a day.
const MINUTES_PER_DAY: u64 = 24 * 60;

/// Whole days in `minutes` as `slmgr /dli` prints them after a minute count: Windows 7's
/// slmgr.vbs computes `Int(minutes / 1440)`, so the count is truncated (43,140 minutes,
/// 29.96 days, is "29 day(s)"). Every renderer of `/dli`, `/dlv` and `/xpr` uses this.
pub fn days_from_minutes(minutes: u64) -> u64 {
    minutes / MINUTES_PER_DAY
}

/// The `Notification Reason:` line of `slmgr /dli` in Notification, as slmgr.vbs writes it:
/// `0xC004F009 (grace time expired).` for an expired grace, `(non-genuine).` after
/// 0xC004F200, and the bare code otherwise.
pub fn notification_reason_line(reason: HResult) -> String {
    let why = match reason {
        HResult::GRACE_EXPIRED => " (grace time expired)",
        HResult::NOT_GENUINE => " (non-genuine)",
        _ => "",
    };
    format!("Notification Reason: {reason}{why}.")
}

/// The license status values of the Software Licensing service (docs/kms-behaviour.md "Client
/// timing and states"). The numeric value travels on the wire and is counted by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LicenseStatus {
    /// 0: no key installed, or the key was uninstalled.
    Unlicensed = 0,
    /// 1: activated.
    Licensed = 1,
    /// 2: out-of-box (initial) grace after a key is installed.
    InitialGrace = 2,
    /// 3: out-of-tolerance (additional) grace after the 180-day validity ran out.
    AdditionalGrace = 3,
    /// 4: non-genuine grace: the activation service blocked the installed key (30 days,
    /// [`crate::genuine`]).
    NonGenuineGrace = 4,
    /// 5: Notification: grace ran out.
    Notification = 5,
    /// 6: extended grace (never entered by the lab, but counted if reported).
    ExtendedGrace = 6,
}

impl LicenseStatus {
    /// Every status, in numeric order.
    pub const ALL: [LicenseStatus; 7] = [
        LicenseStatus::Unlicensed,
        LicenseStatus::Licensed,
        LicenseStatus::InitialGrace,
        LicenseStatus::AdditionalGrace,
        LicenseStatus::NonGenuineGrace,
        LicenseStatus::Notification,
        LicenseStatus::ExtendedGrace,
    ];

    /// The status with numeric value `v`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The label `slmgr /dli` prints on the `License Status:` line.
    pub fn label(self) -> &'static str {
        match self {
            LicenseStatus::Unlicensed => "Unlicensed",
            LicenseStatus::Licensed => "Licensed",
            LicenseStatus::InitialGrace => "Initial grace period",
            LicenseStatus::AdditionalGrace => "Additional grace period (KMS license expired or hardware out of tolerance)",
            LicenseStatus::NonGenuineGrace => "Non-genuine grace period",
            LicenseStatus::Notification => "Notification",
            LicenseStatus::ExtendedGrace => "Extended grace period",
        }
    }

    /// The label the host's `/dli` uses in "Requests with License Status ...".
    pub fn host_counter_label(self) -> &'static str {
        match self {
            LicenseStatus::AdditionalGrace => "License expired or Hardware out of tolerance",
            other => other.label(),
        }
    }

    /// A short machine-readable name (`licensed`, `initial_grace`, ...) for JSON and metrics.
    pub fn key(self) -> &'static str {
        match self {
            LicenseStatus::Unlicensed => "unlicensed",
            LicenseStatus::Licensed => "licensed",
            LicenseStatus::InitialGrace => "initial_grace",
            LicenseStatus::AdditionalGrace => "additional_grace",
            LicenseStatus::NonGenuineGrace => "non_genuine_grace",
            LicenseStatus::Notification => "notification",
            LicenseStatus::ExtendedGrace => "extended_grace",
        }
    }

    /// The status with the given [`key`](Self::key).
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.key() == key)
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_are_truncated_as_slmgr_vbs_does() {
        let check = |minutes: u64, days: u64| assert_eq!(days_from_minutes(minutes), days, "{minutes} minutes");
        check(0, 0);
        check(1439, 0);
        check(1440, 1);
        check(43_140, 29); // 29.96 days: Int() truncates, no rounding up to 30
        check(43_200, 30);
        check(259_199, 179);
        check(259_200, 180);
    }

    #[test]
    fn notification_reason_follows_slmgr_vbs() {
        let check = |code: HResult, line: &str| assert_eq!(notification_reason_line(code), line);
        check(HResult::GRACE_EXPIRED, "Notification Reason: 0xC004F009 (grace time expired).");
        check(HResult::NOT_GENUINE, "Notification Reason: 0xC004F200 (non-genuine).");
        check(HResult::NO_HOST_AVAILABLE, "Notification Reason: 0xC004F074.");
    }

    #[test]
    fn numeric_values_and_labels_match_the_reference() {
        let expected = [
            (0, "Unlicensed"),
            (1, "Licensed"),
            (2, "Initial grace period"),
            (3, "Additional grace period (KMS license expired or hardware out of tolerance)"),
            (4, "Non-genuine grace period"),
            (5, "Notification"),
            (6, "Extended grace period"),
        ];
        for (v, label) in expected {
            let s = LicenseStatus::from_u8(v).unwrap();
            assert_eq!(s as u8, v);
            assert_eq!(s.label(), label);
            assert_eq!(LicenseStatus::from_key(s.key()), Some(s));
        }
        assert_eq!(LicenseStatus::from_u8(7), None);
    }
}

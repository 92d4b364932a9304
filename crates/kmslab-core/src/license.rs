//! License states a volume-licensed machine can be in, with the labels `slmgr /dli` prints.

use std::fmt;

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
    /// 4: non-genuine grace (never entered by the lab, but counted if reported).
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

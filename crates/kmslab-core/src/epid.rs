//! The host's extended PID (ePID): `PPPPP-GGGGG-KKK-NNNNNN-03-LLLL-BBBB.0000-DDDYYYY`.
//!
//! Platform, group, key id, a random serial, channel 03 (volume), language, host build,
//! and the day of the year and year the host was activated. A host generates one once and
//! keeps it for its lifetime (the host daemon stores it).

use crate::rng::KmsRng;
use crate::time::Timestamp;

/// Platform ID kmslab puts in every ePID (Windows Server 2008 R2).
pub const PLATFORM_ID: &str = "55041";
/// Language ID (en-US).
pub const LANGUAGE_ID: &str = "1033";
/// Host build number (Windows 7 / Server 2008 R2 RTM).
pub const HOST_BUILD: &str = "7600";

/// The ePID group number kmslab uses for each host key group (kmslab's own numbers).
pub fn group_id(host_key_group: &str) -> &'static str {
    match host_key_group {
        "client-vl" => "00142",
        "kms-a" => "00167",
        "kms-b" => "00168",
        "kms-c" => "00169",
        "office-2010" => "00096",
        _ => "00000",
    }
}

/// Generates a fresh ePID for a host of `host_key_group` activated at `now`.
pub fn generate(host_key_group: &str, now: Timestamp, rng: &mut impl KmsRng) -> String {
    let c = now.civil();
    let key_id = rng.below_or_equal(999);
    let serial = rng.below_or_equal(999_999);
    format!(
        "{PLATFORM_ID}-{}-{key_id:03}-{serial:06}-03-{LANGUAGE_ID}-{HOST_BUILD}.0000-{:03}{:04}",
        group_id(host_key_group),
        c.day_of_year,
        c.year.rem_euclid(10_000)
    )
}

/// True when `epid` has the ePID shape (used to check `--epid`).
pub fn is_valid(epid: &str) -> bool {
    let Some((head, tail)) = epid.split_once('.') else { return false };
    let parts: Vec<&str> = head.split('-').collect();
    let widths = [5, 5, 3, 6, 2, 4, 4];
    let tail_parts: Vec<&str> = tail.split('-').collect();
    parts.len() == widths.len()
        && parts.iter().zip(widths).all(|(p, w)| p.len() == w && p.bytes().all(|b| b.is_ascii_digit()))
        && tail_parts.len() == 2
        && tail_parts[0].len() == 4
        && tail_parts[1].len() == 7
        && tail_parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn generated_epid_has_the_documented_shape_and_date() {
        let now = Timestamp::parse_rfc3339("2026-01-12T10:00:00Z").unwrap();
        let e = generate("kms-b", now, &mut SplitMix64::new(1));
        assert!(is_valid(&e), "{e}");
        assert!(e.starts_with("55041-00168-"), "{e}");
        assert!(e.ends_with("-03-1033-7600.0000-0122026"), "{e}");
        assert!(is_valid("55041-00168-305-123456-03-1033-7600.0000-0012026"));
        assert!(!is_valid("55041-00168-305-123456-03-1033-7600-0012026"));
        assert!(!is_valid("not an epid"));
    }
}

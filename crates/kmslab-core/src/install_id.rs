//! Installation IDs and confirmation IDs of phone (and proxy) activation, as pure functions.
//!
//! Windows shows an installation ID (IID) of 54 digits (`slmgr /dti`); the Microsoft
//! activation service answers it with a confirmation ID (CID) that `slmgr /atp` deposits.
//! Microsoft's algorithms are not public, so kmslab defines its own (docs/kms-behaviour.md
//! "Installation and confirmation IDs"):
//!
//! - An IID is 9 groups of 6 digits. Groups 1 to 4 come from the product key (SHA-256 of
//!   the normalised key), groups 5 to 9 from the machine (SHA-256 of the CMID): the same key
//!   on the same machine always gives the same IID, and the activation service can tell
//!   which of its keys an IID was made with ([`InstallationId::made_with`]).
//! - A CID is 8 groups of 6 digits (48 digits, as Windows 7's activation wizard shows eight
//!   fields), derived from the IID (SHA-256), so the machine checks a CID without asking
//!   anyone. Anyone who knows the algorithm can compute one: this is a lab.
//! - The sixth digit of every group is a Luhn check digit over its first five, so a
//!   mistyped digit is caught per group: [`HResult::CID_INVALID_CHECK_DIGITS`]; a CID with
//!   the wrong number of digits or other characters is [`HResult::CID_INVALID_DATA`], and a
//!   well-formed CID of another IID is [`HResult::CID_MISMATCHED`].
//!
//! Separators are free on input (spaces, dashes); output groups are joined with `-`.

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::hresult::HResult;

/// Digits per group of an IID or CID.
pub const GROUP_DIGITS: usize = 6;
/// Groups of an installation ID.
pub const IID_GROUPS: usize = 9;
/// Groups of an installation ID that come from the product key.
pub const IID_KEY_GROUPS: usize = 4;
/// Groups of a confirmation ID.
pub const CID_GROUPS: usize = 8;

/// An installation ID: 9 groups of 6 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstallationId([u32; IID_GROUPS]);

/// A confirmation ID: 8 groups of 6 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfirmationId([u32; CID_GROUPS]);

/// A product key without dashes and spaces, upper case: the form every comparison uses.
pub fn normalize_key(key: &str) -> String {
    key.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

/// The Luhn check digit of five digits.
fn luhn(five: u32) -> u32 {
    let mut sum = 0;
    let mut n = five;
    // Rightmost payload digit is doubled (the check digit will sit to its right).
    for i in 0..5 {
        let mut d = n % 10;
        n /= 10;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    (10 - sum % 10) % 10
}

/// `count` groups from `digest` bytes: five digits each plus the check digit.
fn groups<const N: usize>(digest: &[u8], out: &mut [u32; N], from: usize, count: usize) {
    for i in 0..count {
        let chunk = &digest[i * 4..i * 4 + 4];
        let five = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) % 100_000;
        out[from + i] = five * 10 + luhn(five);
    }
}

fn key_groups(product_key: &str) -> [u32; IID_KEY_GROUPS] {
    let digest = Sha256::new().chain_update(b"kmslab-iid-key\0").chain_update(normalize_key(product_key).as_bytes()).finalize();
    let mut out = [0u32; IID_KEY_GROUPS];
    groups(&digest, &mut out, 0, IID_KEY_GROUPS);
    out
}

/// The installation ID of `product_key` installed on the machine `cmid`.
pub fn installation_id(product_key: &str, cmid: Uuid) -> InstallationId {
    let mut out = [0u32; IID_GROUPS];
    out[..IID_KEY_GROUPS].copy_from_slice(&key_groups(product_key));
    let digest = Sha256::new().chain_update(b"kmslab-iid-hw\0").chain_update(cmid.as_bytes()).finalize();
    groups(&digest, &mut out, IID_KEY_GROUPS, IID_GROUPS - IID_KEY_GROUPS);
    InstallationId(out)
}

/// Why digits could not be read as an IID or CID.
fn parse_groups<const N: usize>(text: &str, what: &str) -> Result<[u32; N], (HResult, String)> {
    let mut digits = Vec::with_capacity(N * GROUP_DIGITS);
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c as u32 - '0' as u32),
            '-' | ' ' => {}
            other => return Err((HResult::CID_INVALID_DATA, format!("{what} contains {other:?}: only digits, spaces and dashes"))),
        }
    }
    if digits.len() != N * GROUP_DIGITS {
        return Err((
            HResult::CID_INVALID_DATA,
            format!("{what} has {} digits; {} are needed ({N} groups of 6)", digits.len(), N * GROUP_DIGITS),
        ));
    }
    let mut out = [0u32; N];
    for (i, g) in digits.chunks(GROUP_DIGITS).enumerate() {
        let value = g.iter().fold(0, |acc, d| acc * 10 + d);
        if luhn(value / 10) != value % 10 {
            return Err((HResult::CID_INVALID_CHECK_DIGITS, format!("group {} ({value:06}) of the {what} has a wrong check digit", i + 1)));
        }
        out[i] = value;
    }
    Ok(out)
}

impl InstallationId {
    /// Reads an IID (54 digits, separators free); the error is the HRESULT and why.
    pub fn parse(text: &str) -> Result<InstallationId, (HResult, String)> {
        parse_groups(text, "installation ID").map(InstallationId)
    }

    /// True when this IID was made with `product_key` (its first 4 groups).
    pub fn made_with(&self, product_key: &str) -> bool {
        self.0[..IID_KEY_GROUPS] == key_groups(product_key)
    }

    /// The 54 digits without separators (WMI's `OfflineInstallationId`).
    pub fn digits(&self) -> String {
        self.0.iter().map(|g| format!("{g:06}")).collect()
    }

    /// The confirmation ID the activation service gives for this IID.
    pub fn confirmation_id(&self) -> ConfirmationId {
        let digest = Sha256::new().chain_update(b"kmslab-cid\0").chain_update(self.digits().as_bytes()).finalize();
        let mut out = [0u32; CID_GROUPS];
        groups(&digest, &mut out, 0, CID_GROUPS);
        ConfirmationId(out)
    }

    /// Checks a typed confirmation ID against this IID (`slmgr /atp`).
    pub fn check_confirmation(&self, cid_text: &str) -> Result<(), (HResult, String)> {
        let cid = ConfirmationId::parse(cid_text)?;
        if cid != self.confirmation_id() {
            return Err((HResult::CID_MISMATCHED, "the confirmation ID does not belong to this machine's installation ID".into()));
        }
        Ok(())
    }
}

impl ConfirmationId {
    /// Reads a CID (48 digits, separators free); the error is the HRESULT and why.
    pub fn parse(text: &str) -> Result<ConfirmationId, (HResult, String)> {
        parse_groups(text, "confirmation ID").map(ConfirmationId)
    }
}

fn write_groups(groups: &[u32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            f.write_str("-")?;
        }
        write!(f, "{g:06}")?;
    }
    Ok(())
}

impl fmt::Display for InstallationId {
    /// 9 groups of 6 digits joined with `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_groups(&self.0, f)
    }
}

impl fmt::Display for ConfirmationId {
    /// 8 groups of 6 digits joined with `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_groups(&self.0, f)
    }
}

/// True when `iid` is a well-formed Installation ID (nine groups of six digits, every check
/// digit right).
pub fn is_valid_installation_id(iid: &str) -> bool {
    InstallationId::parse(iid).is_ok()
}

fn lab_digest(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A client machine's own extended PID for its installed product, in the ePID shape
/// (`PPPPP-GGGGG-KKK-SSSSSS-03-LLLL-BBBB.0000-DDDYYYY`): key id, serial and day of 2009
/// drawn from SHA-256 of the key and the CMID, group `00142` (client-vl). The lab's own
/// scheme, not Microsoft's (docs/kms-behaviour.md).
pub fn client_epid(product_key: &str, cmid: &Uuid) -> String {
    use crate::epid::{HOST_BUILD, LANGUAGE_ID, PLATFORM_ID, group_id};
    let d = lab_digest("kmslab client epid v1", &[normalize_key(product_key).as_bytes(), cmid.as_bytes()]);
    let n = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    format!(
        "{PLATFORM_ID}-{}-{:03}-{:06}-03-{LANGUAGE_ID}-{HOST_BUILD}.0000-{:03}2009",
        group_id("client-vl"),
        n(0) % 1000,
        n(4) % 1_000_000,
        1 + n(8) % 365
    )
}

/// The Activation ID of a host's own license for `host_key_group`: a UUID (version 8,
/// lab-defined) drawn from SHA-256 of the group's name.
pub fn host_activation_id(host_key_group: &str) -> Uuid {
    let d = lab_digest("kmslab host activation id v1", &[host_key_group.as_bytes()]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "LABMK-23456-789BC-DFGHJ-KMPQR";

    fn cmid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn an_iid_is_9_groups_of_6_digits_from_key_and_machine() {
        let iid = installation_id(KEY, cmid(1));
        let text = iid.to_string();
        assert_eq!(text.len(), 9 * 6 + 8);
        assert_eq!(iid.digits().len(), 54);
        assert_eq!(InstallationId::parse(&text).unwrap(), iid);
        assert_eq!(InstallationId::parse(&iid.digits()).unwrap(), iid);
        // Same key and machine: same IID (key case and dashes do not matter).
        assert_eq!(installation_id(&KEY.to_lowercase().replace('-', ""), cmid(1)), iid);
        // Another machine: same key groups, other hardware groups.
        let other = installation_id(KEY, cmid(2));
        assert_ne!(other, iid);
        assert_eq!(other.0[..4], iid.0[..4]);
        assert!(other.made_with(KEY) && !installation_id("LABMK-23456-789BC-DFGHJ-KMPQT", cmid(1)).made_with(KEY));
    }

    #[test]
    fn a_cid_checks_against_its_iid_and_names_each_kind_of_mistake() {
        let iid = installation_id(KEY, cmid(7));
        let cid = iid.confirmation_id().to_string();
        assert_eq!(cid.split('-').count(), 8);
        iid.check_confirmation(&cid).unwrap();
        iid.check_confirmation(&cid.replace('-', " ")).unwrap();
        // One digit changed: that group's check digit is wrong.
        let mut typo: Vec<char> = cid.chars().collect();
        typo[8] = if typo[8] == '9' { '0' } else { char::from(typo[8] as u8 + 1) };
        let typo: String = typo.into_iter().collect();
        let (code, why) = iid.check_confirmation(&typo).unwrap_err();
        assert_eq!(code, HResult::CID_INVALID_CHECK_DIGITS, "{why}");
        assert!(why.contains("group 2"), "{why}");
        // Too short, or a letter.
        assert_eq!(iid.check_confirmation(&cid[..cid.len() - 1]).unwrap_err().0, HResult::CID_INVALID_DATA);
        assert_eq!(iid.check_confirmation(&cid.replacen('1', "I", 1).replacen('2', "Z", 1)).unwrap_err().0, HResult::CID_INVALID_DATA);
        // Another machine's CID: well formed, mismatched.
        let other = installation_id(KEY, cmid(8)).confirmation_id().to_string();
        assert_eq!(iid.check_confirmation(&other).unwrap_err().0, HResult::CID_MISMATCHED);
    }

    #[test]
    fn luhn_catches_every_single_digit_change() {
        for five in [0u32, 12_345, 99_999, 50_505] {
            let good = five * 10 + luhn(five);
            for pos in 0..6 {
                let p = 10u32.pow(pos);
                let d = (good / p) % 10;
                for nd in 0..10 {
                    if nd != d {
                        let bad = good - d * p + nd * p;
                        assert_ne!(luhn(bad / 10), bad % 10, "{good:06} -> {bad:06}");
                    }
                }
            }
        }
    }

    #[test]
    fn client_epid_has_the_epid_shape_and_host_activation_ids_differ_by_group() {
        let key = "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH";
        let cmid = Uuid::from_u128(7);
        let e = client_epid(key, &cmid);
        assert!(crate::epid::is_valid(&e), "{e}");
        assert!(e.starts_with("55041-00142-") && e.ends_with("2009"), "{e}");
        assert_eq!(e, client_epid(key, &cmid));
        assert_ne!(host_activation_id("kms-b"), host_activation_id("kms-c"));
        assert_eq!(host_activation_id("kms-b"), host_activation_id("kms-b"));
    }

    #[test]
    fn a_rendered_installation_id_is_valid_and_a_changed_digit_is_not() {
        let iid = installation_id("33PXH-7Y6KF-2VJC9-XBBR8-HVTHH", Uuid::from_u128(9)).to_string();
        assert!(is_valid_installation_id(&iid), "{iid}");
        let mut broken = iid.clone().into_bytes();
        broken[5] = if broken[5] == b'9' { b'0' } else { broken[5] + 1 };
        assert!(!is_valid_installation_id(std::str::from_utf8(&broken).unwrap()));
        assert!(!is_valid_installation_id("123456-123456"));
    }
}

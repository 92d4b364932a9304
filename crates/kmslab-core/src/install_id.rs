//! The lab's own machine identifiers shown by slmgr `/dlv`: the Installation ID, a client's
//! own extended PID and the Activation ID of a host's license.
//!
//! These are kmslab's own schemes (docs/kms-behaviour.md "Installation ID"), not
//! Microsoft's: each is a pure function of the product key and the CMID (or of the host
//! key group), so the same machine always shows the same value and nothing is stored.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::epid::{HOST_BUILD, LANGUAGE_ID, PLATFORM_ID, group_id};

/// Groups in an Installation ID.
pub const IID_GROUPS: usize = 9;

fn digest(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The key as the functions read it: upper case, without dashes or spaces.
fn normalized_key(product_key: &str) -> String {
    product_key.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The Installation ID of a machine with `product_key` installed and CMID `cmid`: nine
/// groups of six digits separated by `-`, each five digits drawn from SHA-256 of the key
/// and the CMID followed by a check digit (the group's five digits weighted 1, 2, 1, 2, 1,
/// summed, modulo 7).
pub fn installation_id(product_key: &str, cmid: &Uuid) -> String {
    let d = digest("kmslab installation id v1", &[normalized_key(product_key).as_bytes(), cmid.as_bytes()]);
    let groups: Vec<String> = (0..IID_GROUPS)
        .map(|i| {
            let b = &d[i * 3..i * 3 + 3];
            let value = (u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])) % 100_000;
            let digits = format!("{value:05}");
            format!("{digits}{}", check_digit(&digits))
        })
        .collect();
    groups.join("-")
}

/// The check digit of one group's five digits.
pub fn check_digit(digits: &str) -> u32 {
    digits.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 2 }).sum::<u32>() % 7
}

/// True when `iid` has the shape of [`installation_id`] and every check digit matches.
pub fn is_valid_installation_id(iid: &str) -> bool {
    let groups: Vec<&str> = iid.split('-').collect();
    groups.len() == IID_GROUPS
        && groups
            .iter()
            .all(|g| g.len() == 6 && g.bytes().all(|b| b.is_ascii_digit()) && check_digit(&g[..5]) == u32::from(g.as_bytes()[5] - b'0'))
}

/// A client machine's own extended PID for its installed product, in the ePID shape
/// (`PPPPP-GGGGG-KKK-SSSSSS-03-LLLL-BBBB.0000-DDDYYYY`): key id, serial and day of 2009
/// drawn from SHA-256 of the key and the CMID, group `00142` (client-vl).
pub fn client_epid(product_key: &str, cmid: &Uuid) -> String {
    let d = digest("kmslab client epid v1", &[normalized_key(product_key).as_bytes(), cmid.as_bytes()]);
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
    let d = digest("kmslab host activation id v1", &[host_key_group.as_bytes()]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH";

    #[test]
    fn installation_id_is_nine_checked_groups_and_depends_on_key_and_cmid() {
        let cmid = Uuid::from_u128(0x2ffcfc30_6a6a_49ec_92b8_f6150c7df211);
        let iid = installation_id(KEY, &cmid);
        assert!(is_valid_installation_id(&iid), "{iid}");
        assert_eq!(iid.len(), 9 * 6 + 8);
        // Deterministic, and the key is read without case or dashes.
        assert_eq!(iid, installation_id(&KEY.to_lowercase().replace('-', ""), &cmid));
        assert_ne!(iid, installation_id(KEY, &Uuid::from_u128(1)));
        assert_ne!(iid, installation_id("MHF9N-XY6XB-WVXMC-BTDCT-MKKG7", &cmid));
        let mut broken = iid.clone().into_bytes();
        broken[5] = if broken[5] == b'9' { b'0' } else { broken[5] + 1 };
        assert!(!is_valid_installation_id(std::str::from_utf8(&broken).unwrap()));
        assert!(!is_valid_installation_id("123456-123456"));
    }

    #[test]
    fn client_epid_has_the_epid_shape_and_host_activation_ids_differ_by_group() {
        let cmid = Uuid::from_u128(7);
        let e = client_epid(KEY, &cmid);
        assert!(crate::epid::is_valid(&e), "{e}");
        assert!(e.starts_with("55041-00142-") && e.ends_with("2009"), "{e}");
        assert_eq!(e, client_epid(KEY, &cmid));
        assert_ne!(host_activation_id("kms-b"), host_activation_id("kms-c"));
        assert_eq!(host_activation_id("kms-b"), host_activation_id("kms-b"));
    }
}

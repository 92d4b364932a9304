//! The lab's own product keys for the simulated activation service: MAKs and KMS host keys.
//!
//! kmslab ships no Microsoft key except the public GVLKs. Its MAKs and host keys are made up
//! so that no one can mistake them for Microsoft's (docs/kms-behaviour.md "Lab keys"):
//! 5 groups of 5 characters, starting with `LAB` (`L` and `A` never occur in a Microsoft
//! key, whose 24-character alphabet has no vowels), then `M` for a MAK or `H` for a host key,
//! 20 characters of Microsoft's alphabet, and a check character: the first byte of the
//! SHA-256 of the first 24 characters, modulo 24, as a letter of that alphabet. `slmgr
//! /ipk` refuses a key whose check character is wrong (0xC004F050), as Windows refuses a
//! mistyped key before asking anyone.

use sha2::{Digest, Sha256};

use crate::install_id::normalize_key;

/// Microsoft's product key alphabet (no vowels, no 0, 1, 5).
pub const ALPHABET: &[u8; 24] = b"BCDFGHJKMPQRTVWXY2346789";

/// What a lab key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabKeyKind {
    /// A multiple activation key (`LABM…`).
    Mak,
    /// A KMS host key (`LABH…`).
    HostKey,
}

impl LabKeyKind {
    fn letter(self) -> u8 {
        match self {
            LabKeyKind::Mak => b'M',
            LabKeyKind::HostKey => b'H',
        }
    }

    /// `MAK` or `host key`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            LabKeyKind::Mak => "MAK",
            LabKeyKind::HostKey => "host key",
        }
    }
}

fn check_char(first24: &[u8]) -> u8 {
    let digest = Sha256::digest(first24);
    ALPHABET[usize::from(digest[0]) % ALPHABET.len()]
}

fn grouped(raw: &[u8]) -> String {
    raw.chunks(5).map(|c| std::str::from_utf8(c).expect("ASCII")).collect::<Vec<_>>().join("-")
}

/// A new lab key of `kind` from 20 random bytes (each picks one character).
pub fn generate(kind: LabKeyKind, random: &[u8; 20]) -> String {
    let mut raw = Vec::with_capacity(25);
    raw.extend_from_slice(b"LAB");
    raw.push(kind.letter());
    raw.extend(random.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]));
    raw.push(check_char(&raw));
    grouped(&raw)
}

/// Checks a lab key; returns its kind and its canonical form (upper case, dashes), or why
/// it is not one.
pub fn parse(key: &str) -> Result<(LabKeyKind, String), String> {
    let groups: Vec<&str> = key.trim().split('-').collect();
    if groups.len() != 5 || groups.iter().any(|g| g.len() != 5 || !g.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err("not 5 groups of 5 characters separated by dashes".into());
    }
    let raw = normalize_key(key).into_bytes();
    if !raw.starts_with(b"LAB") {
        return Err("does not start with LAB: the lab's keys start with LABM (MAK) or LABH (host key)".into());
    }
    let kind = match raw[3] {
        b'M' => LabKeyKind::Mak,
        b'H' => LabKeyKind::HostKey,
        _ => return Err("the fourth character must be M (MAK) or H (host key)".into()),
    };
    if let Some(bad) = raw[4..].iter().find(|c| !ALPHABET.contains(c)) {
        return Err(format!("{:?} is not a product key character (BCDFGHJKMPQRTVWXY2346789)", char::from(*bad)));
    }
    if check_char(&raw[..24]) != raw[24] {
        return Err("the check character (the last one) is wrong: a character was mistyped".into());
    }
    Ok((kind, grouped(&raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_a_typo_is_caught() {
        let key = generate(LabKeyKind::Mak, &[7; 20]);
        assert!(key.starts_with("LABM") && key.len() == 29, "{key}");
        assert_eq!(parse(&key.to_lowercase()).unwrap(), (LabKeyKind::Mak, key.clone()));
        let host = generate(LabKeyKind::HostKey, &[200; 20]);
        assert_eq!(parse(&host).unwrap().0, LabKeyKind::HostKey);
        // Change one character to another of the alphabet: the check character catches it
        // (or, 1 time in 24, it happens to match; this one is fixed and caught).
        let mut typo = key.clone().into_bytes();
        typo[6] = if typo[6] == b'B' { b'C' } else { b'B' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(parse(&typo).unwrap_err().contains("check character"), "{typo}");
        assert!(parse("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE").unwrap_err().contains("LAB"));
        assert!(parse("LABMB-CCCCC").unwrap_err().contains("5 groups"));
        // A space inside a group is no key character (the fuzzer's find: it once made the
        // key one character short after normalising).
        assert!(parse("LABMB-CDFGH-JKM7 -887WX-Y234C").unwrap_err().contains("5 groups"));
        assert!(parse("LABMA-CCCCC-CCCCC-CCCCC-CCCCC").unwrap_err().contains("'A'"));
        // The public GVLKs are not lab keys.
        assert!(parse("33PXH-7Y6KF-2VJC9-XBBR8-HVTHH").is_err());
    }
}

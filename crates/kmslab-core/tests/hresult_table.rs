//! Every HRESULT the workspace emits is in the core's table, so `slmgr /explain` explains it.
//!
//! The sources of every crate (`crates/*/src`, tests excluded) are scanned for 32-bit hex
//! literals with the severity bit set (0x8xxxxxxx..0xFxxxxxxx), written as numbers or in
//! strings (`0x8007232A`, `0x8007_232A`, `"0x80070057"`): each must have a table entry with
//! a name, a meaning and a fix. Codes the DNS crate computes from a response code are
//! checked by value.

use std::path::{Path, PathBuf};

use kmslab_core::hresult::{HResult, TABLE};

/// Failure-bit hex literals in the sources that are not HRESULTs, with why.
const NOT_HRESULTS: &[(u32, &str)] = &[
    (0x8000_0000, "the severity bit mask in HResult::is_success"),
    (0x8007_0000, "the FACILITY_WIN32 base kmslab-dns adds DNS error numbers to"),
    (0x9E37_79B9, "the golden-ratio multiplier kmslab-sim seeds each host's ePID RNG with"),
];

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `0x` literal of exactly eight hex digits (an optional `_` after the fourth) with the
/// severity bit set, with its line number.
fn failure_literals(text: &str) -> Vec<(usize, u32)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() {
        let starts = (bytes[i] == b'0' && (bytes[i + 1] == b'x' || bytes[i + 1] == b'X'))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        let mut digits = String::new();
        while j < bytes.len() && (bytes[j].is_ascii_hexdigit() || bytes[j] == b'_') {
            if bytes[j] != b'_' {
                digits.push(bytes[j] as char);
            }
            j += 1;
        }
        if digits.len() == 8
            && let Ok(code) = u32::from_str_radix(&digits, 16)
            && code & 0x8000_0000 != 0
        {
            let line = text[..i].lines().count().max(1);
            found.push((line, code));
        }
        i = j;
    }
    found
}

#[test]
fn every_hresult_the_workspace_emits_is_in_the_table() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            rust_sources(&src, &mut files);
        }
    }
    assert!(files.len() > 20, "expected the workspace's sources under {}, found {}", crates.display(), files.len());
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, code) in failure_literals(&text) {
            if NOT_HRESULTS.iter().any(|(c, _)| *c == code) {
                continue;
            }
            seen += 1;
            if HResult(code).info().is_none() {
                missing.push(format!("{}:{line}: {}", file.display(), HResult(code)));
            }
        }
    }
    assert!(seen > 50, "the scan found only {seen} HRESULT literals: is it still reading the sources?");
    assert!(missing.is_empty(), "HRESULTs emitted but not in kmslab-core's table:\n{}", missing.join("\n"));
}

#[test]
fn the_dns_crates_rcode_codes_are_in_the_table() {
    // kmslab-dns computes HRESULT_FROM_WIN32(9000 + rcode) for these response codes.
    for rcode in (1..=10).chain(16..=18) {
        let code = HResult(0x8007_0000 | (9000 + rcode));
        let info = code.info().unwrap_or_else(|| panic!("rcode {rcode}: {code} missing"));
        assert!(info.name.starts_with("DNS_ERROR_RCODE_"), "{info:?}");
    }
}

#[test]
fn microsofts_symbol_names() {
    // slerror.h and winerror.h, where the lab's earlier names were its own.
    let check = |code: HResult, name: &str| assert_eq!(code.name(), name, "{code}");
    check(HResult::KMS_NOT_ENABLED, "SL_E_VL_BINDING_SERVICE_NOT_ENABLED");
    check(HResult::NO_HOST_AVAILABLE, "SL_E_VL_BINDING_SERVICE_UNAVAILABLE");
    check(HResult::REARM_LIMIT, "SL_REMAPPING_SP_PUB_TS_MAX_REARM_REACHED");
    check(HResult::NOT_ENOUGH_COUNT, "SL_E_VL_NOT_ENOUGH_COUNT");
    check(HResult::HOST_NOT_ACTIVATED, "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED");
    check(HResult::KEY_GROUP_MISMATCH, "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH");
    check(HResult::INVALID_TIMESTAMP, "SL_E_VL_INVALID_TIMESTAMP");
    check(HResult::GRACE_EXPIRED, "SL_E_GRACE_TIME_EXPIRED");
    check(HResult::NO_PRODUCT_KEY, "SL_E_PKEY_NOT_INSTALLED");
    check(HResult::INVALID_PRODUCT_KEY, "SL_E_INVALID_PRODUCT_KEY");
    check(HResult::DNS_REFUSED, "DNS_ERROR_RCODE_REFUSED");
    check(HResult(0x8007_0057), "E_INVALIDARG");
    check(HResult(0x8007_001D), "ERROR_WRITE_FAULT");
    for info in TABLE {
        assert!(!info.name.is_empty() && info.meaning.ends_with('.') && info.fix.ends_with('.'), "{info:?}");
    }
}

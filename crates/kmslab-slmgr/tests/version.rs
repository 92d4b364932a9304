//! `slmgr --version` prints the package version and the git revision it was built from.

use std::process::Command;

#[test]
fn slmgr_version_shows_version_and_git_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_slmgr")).arg("--version").output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let line = String::from_utf8(out.stdout).unwrap();
    let line = line.trim();
    // `slmgr 0.1.0 (git abc123def456)`, or `(git unknown)` outside a git checkout.
    let rest = line.strip_prefix("slmgr ").unwrap_or_else(|| panic!("{line:?} does not start with the binary name"));
    let (version, revision) = rest.split_once(" (git ").unwrap_or_else(|| panic!("no git revision in {line:?}"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "{line:?}");
    let revision = revision.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    let is_hex = revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit());
    assert!(is_hex || revision == "unknown", "revision {revision:?} in {line:?}");
}

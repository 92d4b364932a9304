//! The systemd units in packaging/systemd pass `systemd-analyze verify` (where the tool
//! exists) with the freshly built binaries in place of /usr/local/bin.

use std::path::{Path, PathBuf};
use std::process::Command;

fn verify(unit_text: &str, name: &str, dir: &Path) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, unit_text).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // verify only warns (exit 0) about values it ignores, so any message is a failure.
    (out.status.success() && stderr.trim().is_empty(), stderr)
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed: unit check skipped");
        return;
    }
    let host_bin = PathBuf::from(env!("CARGO_BIN_EXE_kms-host"));
    let client_bin = host_bin.with_file_name("kms-client");
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd");
    let dir = std::env::temp_dir().join(format!("kmslab-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (unit, bin) in [("kms-host.service", &host_bin), ("kms-client.service", &client_bin)] {
        if !bin.exists() {
            // `cargo test -p kmslab-host` alone does not build kms-client.
            let status = Command::new(env!("CARGO")).args(["build", "-p", "kmslab-client", "--bin", "kms-client"]).status().unwrap();
            assert!(status.success());
        }
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        assert!(text.contains("Type=notify") && text.contains("DynamicUser=yes") && text.contains("ProtectSystem=strict"));
        // The connection caps are sized from the open-files limit (docs/reliability.md).
        assert!(text.lines().any(|l| l.starts_with("LimitNOFILE=")), "{unit} sets LimitNOFILE");
        let text = text.replace(&format!("/usr/local/bin/{}", bin.file_name().unwrap().to_str().unwrap()), bin.to_str().unwrap());
        let (ok, messages) = verify(&text, unit, &dir);
        assert!(ok, "{unit}: {messages}");
        // The check can fail: a unit with a bad value does not pass.
        let (ok, _) = verify(&text.replace("ProtectSystem=strict", "ProtectSystem=bogus"), &format!("bad-{unit}"), &dir);
        assert!(!ok, "a broken {unit} passed verify");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

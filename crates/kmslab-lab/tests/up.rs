//! `kmslab up` as a user runs it: the real binary, nothing else installed.

use std::process::Command;

fn kmslab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn up_brings_a_whole_lab_to_licensed_through_dns() {
    // At 14400x the host's 4-hour clock tolerance is a whole real second, so a loaded
    // machine delaying a request cannot turn it into 0xC004F06C.
    // 30 machines of the default mix (24 Windows 7, 6 servers): kms1 (priority 0) counts all
    // 30, so every machine activates; kms2 (priority 10) stands by and gets nothing.
    let (code, out, err) = kmslab(&["up", "--clients", "30", "--duration", "2d", "--time-scale", "14400", "--json"]);
    assert_eq!(code, 0, "{err}");
    for needle in
        ["listening on dns 127.0.0.1:", "listening on kms 127.0.0.1:", "dashboard of kms1: http://127.0.0.1:", "dashboard of kms2: http://"]
    {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["clients"], 30, "{summary}");
    assert_eq!(summary["licensed"], 30, "{summary}");
    let hosts = summary["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["count"], 30, "{summary}");
    assert_eq!(hosts[1]["requests"], 0, "the standby host got requests: {summary}");
    assert!(summary["simulated_days"].as_i64().unwrap() >= 2);
}

#[test]
fn up_refuses_bad_flags_with_one_line() {
    for (args, needle) in [
        (vec!["up", "--hosts", "0"], "--hosts"),
        (vec!["up", "--products", "win99=1"], "--products"),
        (vec!["up", "--duration", "soon"], "--duration"),
        (vec!["up", "--time-scale", "0"], "--time-scale"),
        (vec!["up", "--scenario", "/nonexistent/lab.toml"], "--scenario /nonexistent/lab.toml"),
    ] {
        let (code, _, err) = kmslab(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn up_refuses_a_bad_scenario_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "days = 10\n[[host]]\nname = \"kms1\"\n[[cohort]]\nproduct = \"win99\"\ncount = 5\n").unwrap();
    let (code, _, err) = kmslab(&["up", "--scenario", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml") && err.contains("win99") && err.lines().count() == 1, "{err}");
    // The scenario brings its own hosts and machines.
    let (code, _, err) = kmslab(&["up", "--scenario", file.to_str().unwrap(), "--clients", "5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--clients"), "{err}");
    // MAK scenarios are the simulator's alone, and a lab says so instead of playing MAK
    // cohorts as KMS clients.
    let mak = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios/mak-rollout.toml");
    let (code, _, err) = kmslab(&["up", "--scenario", mak.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mak-rollout.toml") && err.contains("kmslab sim") && err.lines().count() == 1, "{err}");
}

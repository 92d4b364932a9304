//! The Prometheus files shipped in deploy/prometheus: the scrape config and the alerting
//! rules pass `promtool check`, the rules' own unit tests pass `promtool test rules`, and
//! every alert the rules forward is one a real `kms-host` exports on `/metrics`, with the
//! value the host's dashboard shows (an unactivated host raises `host_not_activated`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("promtool")).find(|p| p.is_file()));
    found.unwrap_or_else(|| panic!("`promtool` not found on PATH: install the Debian package `prometheus` (scripts/test.sh does)"))
}

fn run_promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool()).args(args).current_dir(prometheus_dir()).output().expect("promtool runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn scrape_config_and_rules_pass_promtool() {
    let (ok, text) = run_promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok, "promtool check config:\n{text}");
    let (ok, text) = run_promtool(&["check", "rules", "kmslab-alerts.yml"]);
    assert!(ok, "promtool check rules:\n{text}");
    let (ok, text) = run_promtool(&["test", "rules", "kmslab-alerts.test.yml"]);
    assert!(ok, "promtool test rules:\n{text}");
}

#[test]
fn a_rule_that_expects_the_wrong_alert_fails_its_test() {
    // The unit tests can fail: the same test file against rules that forward another
    // alert label does not pass.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(prometheus_dir().join("kmslab-alerts.yml")).unwrap();
    std::fs::write(dir.path().join("kmslab-alerts.yml"), rules.replace("alert=\"host_not_activated\"", "alert=\"store_unhealthy\""))
        .unwrap();
    std::fs::copy(prometheus_dir().join("kmslab-alerts.test.yml"), dir.path().join("kmslab-alerts.test.yml")).unwrap();
    let out = Command::new(promtool()).args(["test", "rules", "kmslab-alerts.test.yml"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success(), "a broken rules file passed its tests");
}

/// A `kms-host` process on port 0 (killed on drop) and its admin address.
struct Host {
    _daemon: kmslab_test_support::Daemon,
    admin: std::net::SocketAddr,
}

fn start_host(data_dir: &Path, extra: &[&str]) -> Host {
    let mut cmd = kmslab_test_support::kms_host(env!("CARGO_BIN_EXE_kms-host"), data_dir);
    cmd.arg("--no-dns-publish").args(extra);
    let daemon = kmslab_test_support::Daemon::spawn(cmd, &["admin"]);
    Host { admin: daemon.addr("admin"), _daemon: daemon }
}

fn get_metrics(admin: std::net::SocketAddr) -> String {
    let answer = kmslab_test_support::http(admin, "GET", "/metrics", None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

/// The `kmslab_host_alert` label values the rules file forwards.
fn forwarded_alerts() -> Vec<String> {
    let rules = std::fs::read_to_string(prometheus_dir().join("kmslab-alerts.yml")).unwrap();
    rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
        .filter_map(|l| l.split("kmslab_host_alert{alert=\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_forwarded_alert_is_exported_by_a_real_host() {
    let alerts = forwarded_alerts();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    let dir = tempfile::tempdir().unwrap();
    let unactivated = start_host(&dir.path().join("a"), &["--unactivated"]);
    let activated = start_host(&dir.path().join("b"), &[]);
    let (off, on) = (get_metrics(unactivated.admin), get_metrics(activated.admin));
    for alert in &alerts {
        let series = format!("kmslab_host_alert{{alert=\"{alert}\"}}");
        assert!(off.contains(&series) && on.contains(&series), "{series} is not exported:\n{on}");
    }
    assert!(off.contains("kmslab_host_alert{alert=\"host_not_activated\"} 1"), "{off}");
    assert!(on.contains("kmslab_host_alert{alert=\"host_not_activated\"} 0"), "{on}");
}

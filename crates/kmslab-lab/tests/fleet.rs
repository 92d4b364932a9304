//! `kmslab fleet` against real in-process hosts: the engine's summary, and the binary's
//! JSON line and `/metrics`. Memory and scale are measured (docs/lab.md), not tested here.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kmslab_core::Timestamp;
use kmslab_core::catalog::Catalog;
use kmslab_lab::drill::{LabDns, LabHost, LabTime, ZONE, http_get_text};
use kmslab_lab::engine::{Fleet, FleetConfig, ProductMix, Target};
use kmslab_runtime::SimClock;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// A lab time whose origin is a whole second, so it survives RFC 3339 on a command line.
fn lab_time(scale: f64) -> LabTime {
    let now = SimClock::real().now().as_unix_ms();
    LabTime { scale, origin: Timestamp::from_unix_ms(now / 1000 * 1000) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_machines_activate_and_six_clones_count_once() {
    let time = lab_time(600.0);
    let host = LabHost::start("kms1", time, |_| {}).await.unwrap();
    let catalog = Catalog::builtin();
    let win7 = Arc::clone(catalog.product_by_name("win7-enterprise").unwrap());
    let mut config = FleetConfig::new(30, ProductMix::single(win7), Target::Manual(host.ip_addr()), time.clock());
    config.clones = 6;
    let fleet = Fleet::start(config, None, CancellationToken::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while fleet.stats().summary()["licensed"] != 30 {
        assert!(tokio::time::Instant::now() < deadline, "not all licensed: {}", fleet.stats().summary());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = fleet.stop().await;
    assert_eq!(summary["clients"], 30);
    assert_eq!(summary["licensed"], 30);
    assert_eq!(summary["initial_grace"], 0);
    // 24 distinct CMIDs are refused before the 25th arrives; the clones are one of them.
    let errors = summary["errors"].as_object().unwrap();
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["0xC004F038"], "{summary}");
    assert!(summary["requests"].as_u64().unwrap() > 30, "{summary}");
    assert_eq!(host.current_count().await, 25, "30 machines, 6 of them sharing one CMID, count as 25");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_discovers_through_dns_serves_metrics_and_ends_with_the_json_summary() {
    let time = lab_time(1800.0);
    let dns = LabDns::start().await.unwrap();
    let host = LabHost::start("kms1", time, |_| {}).await.unwrap();
    dns.publish(&host, Some(dns.key.clone())).await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmslab"))
        // The DNS server by name (`localhost:PORT`), as a container names the `dns` service.
        .args(["fleet", "--domain", ZONE, "--dns-server", &format!("localhost:{}", dns.addr().port())])
        .args(["--clients", "10", "--products", "win7-enterprise=50,server2008r2-standard=50", "--duration", "6h"])
        .args(["--time-scale", "1800", "--time-origin", &time.origin.to_string(), "--admin", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let admin = loop {
        let line = stderr.next_line().await.unwrap().expect("the fleet prints its admin address");
        if let Some(addr) = line.strip_prefix("listening on admin ") {
            break addr.parse().unwrap();
        }
    };
    assert_eq!(http_get_text(admin, "/healthz").await.unwrap().trim(), "ok");
    let metrics = http_get_text(admin, "/metrics").await.unwrap();
    assert!(metrics.contains("kmslab_fleet_clients 10"), "{metrics}");
    assert!(metrics.contains("kmslab_fleet_machines{status=\"licensed\"}"), "{metrics}");
    // The text Prometheus reads: `promtool check metrics` (Debian package `prometheus`) finds nothing wrong.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (apt-get install -y prometheus; scripts/test.sh does)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["clients"], 10);
    // 5 servers reach their threshold of 5; 5 Windows 7 machines never reach 25.
    assert_eq!(summary["licensed"], 5, "{summary}");
    assert_eq!(summary["initial_grace"], 5, "{summary}");
    assert!(summary["errors"]["0xC004F038"].as_u64().unwrap() >= 5, "{summary}");
    assert!(summary["requests"].as_u64().unwrap() >= 10, "{summary}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_name_that_does_not_resolve_fails_discovery_and_a_missing_port_is_refused() {
    let run = |dns_server: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kmslab"))
            .args(["fleet", "--domain", ZONE, "--dns-server", dns_server, "--clients", "3", "--duration", "5h"])
            .args(["--time-scale", "3600", "--json"])
            .output()
            .unwrap()
    };
    let output = tokio::task::spawn_blocking(move || run("no-such-dns-server.invalid:53")).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["clients"].as_u64(), summary["licensed"].as_u64()), (Some(3), Some(0)), "{summary}");
    // Every attempt failed as a DNS server failure, and was retried.
    assert!(summary["errors"]["0x8007232A"].as_u64().unwrap() >= 6, "{summary}");

    let output = tokio::task::spawn_blocking(move || run("localhost")).await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--dns-server") && stderr.contains("NAME:PORT"), "{stderr}");
}

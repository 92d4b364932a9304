//! `--psk` in the lab tools: the fleet engine and `kmslab bench` against a real in-process
//! host started with a pre-shared key.

use std::sync::Arc;
use std::time::Duration;

use kmslab_core::catalog::Catalog;
use kmslab_core::wire::FrameKey;
use kmslab_lab::drill::{LabHost, LabTime};
use kmslab_lab::engine::{Fleet, FleetConfig, ProductMix, Target};
use tokio_util::sync::CancellationToken;

const KEY: &str = "fleet-lab-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_and_bench_speak_authenticated_frames_with_a_psk_host() {
    let time = LabTime::new(600.0);
    let key = FrameKey::from_file_contents(KEY.as_bytes()).unwrap();
    let host_key = key.clone();
    let host = LabHost::start("kms1", time, move |c| c.psk = Some(host_key)).await.unwrap();
    let catalog = Catalog::builtin();
    let server = Arc::clone(catalog.product_by_name("server2008r2-standard").unwrap());

    // With the key: five servers reach their threshold of five.
    let mut config = FleetConfig::new(5, ProductMix::single(Arc::clone(&server)), Target::Manual(host.ip_addr()), time.clock());
    config.psk = Some(key);
    let fleet = Fleet::start(config, None, CancellationToken::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while fleet.stats().summary()["licensed"] != 5 {
        assert!(tokio::time::Instant::now() < deadline, "not all licensed: {}", fleet.stats().summary());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.stop().await;

    // Without it: every request is refused with 0xA04B0002 and nothing is counted.
    let config = FleetConfig::new(3, ProductMix::single(server), Target::Manual(host.ip_addr()), time.clock());
    let fleet = Fleet::start(config, None, CancellationToken::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fleet.stats().summary()["errors"]["0xA04B0002"].as_u64().unwrap_or(0) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no refusals: {}", fleet.stats().summary());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = fleet.stop().await;
    assert_eq!(summary["licensed"], 0, "{summary}");
    assert_eq!(host.current_count().await, 5);

    // kmslab bench --psk: every request answered.
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("lab.psk");
    std::fs::write(&psk, format!("{KEY}\n")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmslab"))
        .args(["bench", "--target", &host.kms.to_string(), "--connections", "2", "--requests", "20", "--json"])
        .arg("--psk")
        .arg(&psk)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["requests"].as_u64(), last["errors"].as_object().map(|e| e.len())), (Some(20), Some(0)), "{last}");
    host.stop().await;
}

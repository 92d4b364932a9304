//! `kmslab bench` against a real in-process host: `--cmids N` draws every request from a
//! pool of N machines, so the host's registry ends up with N clients, each renewed.

use kmslab_lab::drill::{LabHost, LabTime, http_get_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_with_a_cmid_pool_sends_renewals_of_the_pool_only() {
    let host = LabHost::start("kms1", LabTime::new(1.0), |_| {}).await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmslab"))
        .args(["bench", "--target", &host.kms.to_string(), "--connections", "4", "--requests", "60", "--cmids", "5", "--json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CMIDs from a pool of 5"), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["requests"].as_u64(), last["errors"].as_object().map(|e| e.len())), (Some(60), Some(0)), "{last}");

    let clients = http_get_json(host.admin, "/api/v1/clients?limit=10").await.unwrap();
    assert_eq!(clients["total"], 5, "{clients}");
    // Request k went to machine k mod 5: twelve requests each.
    let counts: Vec<u64> = clients["clients"].as_array().unwrap().iter().map(|c| c["request_count"].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![12; 5], "{clients}");
    host.stop().await;
}

/// Runs `kmslab bench` with `extra` flags; the last stdout line as JSON and the exit code.
async fn bench_json(target: std::net::SocketAddr, extra: &[&str]) -> (serde_json::Value, Option<i32>) {
    let target = target.to_string();
    let mut args = vec!["bench", "--target", &target, "--connections", "2", "--requests", "20", "--json"];
    args.extend_from_slice(extra);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmslab")).args(&args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok());
    (last.unwrap_or_else(|| panic!("{stdout}{}", String::from_utf8_lossy(&out.stderr))), out.status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_a_host_on_simulated_time_stamps_requests_with_its_clock() {
    // The host's clock runs 1000 times faster from an origin an hour ago: it is about 41
    // simulated days ahead of the wall clock.
    let origin = kmslab_runtime::SimClock::real().now().plus_ms(-3_600_000);
    let host = LabHost::start("kms1", LabTime { scale: 1000.0, origin }, |_| {}).await.unwrap();

    let (wall, code) = bench_json(host.kms, &[]).await;
    assert_eq!((wall["errors"]["0xC004F06C"].as_u64(), code), (Some(20), Some(1)), "{wall}");

    let origin_text = origin.to_string();
    let (shared, code) = bench_json(host.kms, &["--time-scale", "1000", "--time-origin", &origin_text]).await;
    assert_eq!(
        (shared["requests"].as_u64(), shared["errors"].as_object().map(|e| e.len()), code),
        (Some(20), Some(0), Some(0)),
        "{shared}"
    );

    let admin = host.admin.to_string();
    let (learned, code) = bench_json(host.kms, &["--time-scale", "1000", "--learn-time", &admin]).await;
    assert_eq!(
        (learned["requests"].as_u64(), learned["errors"].as_object().map(|e| e.len()), code),
        (Some(20), Some(0), Some(0)),
        "{learned}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_refuses_a_bad_time_origin_naming_the_flag() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmslab"))
        .args(["bench", "--target", "127.0.0.1:1", "--time-scale", "1000", "--time-origin", "next tuesday"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--time-origin") && stderr.contains("RFC 3339"), "{stderr}");
}

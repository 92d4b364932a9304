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

//! The kill -9 test: every CMID a client was answered for is in the registry after SIGKILL,
//! ten times over on one registry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmslab_core::Uuid;
use kmslab_store::{Store, StoreOptions};
use kmslab_test_support::Daemon;

use crate::support::*;

/// Starts the real binary; returns it with its KMS and admin addresses.
fn spawn_host(data_dir: &std::path::Path) -> (Daemon, SocketAddr, SocketAddr) {
    let mut cmd = kmslab_test_support::kms_host(env!("CARGO_BIN_EXE_kms-host"), data_dir);
    cmd.env("RUST_LOG", "warn");
    let host = Daemon::spawn(cmd, &["kms", "admin"]);
    let (kms, admin) = (host.addr("kms"), host.addr("admin"));
    (host, kms, admin)
}

/// Runs 8 closed-loop clients against `kms`, kills the host with SIGKILL once `kill_after`
/// requests were acknowledged (and `then` more time passed, to vary the phase of group commit
/// the kill lands in), and returns the CMIDs answered. Counting acknowledgements instead of
/// time keeps the load real on a busy machine, where a fixed window may see almost none.
async fn load_until_killed(kms: SocketAddr, child: &mut Daemon, kill_after: usize, then: Duration) -> Vec<Uuid> {
    let acknowledged = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let mut drivers = Vec::new();
    for _ in 0..8 {
        let acknowledged = Arc::clone(&acknowledged);
        drivers.push(tokio::spawn(async move {
            let mut conn = KmsConn::connect(kms).await;
            loop {
                let req = request("win7-enterprise");
                let mut buf = Vec::new();
                let mut rbuf = Vec::new();
                // Raw I/O so a dying host ends the loop instead of panicking the task.
                if kmslab_runtime::framed::write_message(conn.stream_mut(), &kmslab_core::wire::Message::Request(req.clone()), &mut buf)
                    .await
                    .is_err()
                {
                    return;
                }
                match kmslab_runtime::framed::read_message(conn.stream_mut(), &mut rbuf).await {
                    Ok(Some(kmslab_core::wire::Message::Response(r))) => {
                        assert_eq!(r.cmid, req.cmid);
                        acknowledged.lock().unwrap().push(r.cmid);
                    }
                    _ => return,
                }
            }
        }));
    }
    // Let load run, then kill -9 in the middle of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < kill_after {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host acknowledged {} of {kill_after} requests in 120 s",
            acknowledged.lock().unwrap().len()
        );
        assert!(!drivers.iter().all(|d| d.is_finished()), "every load driver stopped before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(then).await;
    child.kill();
    for d in drivers {
        tokio::time::timeout(Duration::from_secs(10), d).await.expect("drivers stop after the kill").unwrap();
    }
    acknowledged.lock().unwrap().clone()
}

/// Ten `kill -9`s during sustained load on the same registry: after each, every
/// CMID any client was ever answered for is in the registry and `PRAGMA integrity_check` is ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kill_9s_under_load_lose_no_acknowledged_cmid_and_leave_the_registry_intact() {
    const KILLS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let mut all = Vec::<Uuid>::new();
    for round in 1..=KILLS {
        let (mut child, kms, admin) = spawn_host(dir.path());
        if round > 1 {
            // The restarted host counts everything acknowledged before.
            let status = get_json(admin, "/api/v1/status").await;
            assert!(status["counters"]["total"].as_u64().unwrap() >= all.len() as u64, "round {round}: {status}");
        }
        // Vary the moment of the kill so it lands in different phases of group commit.
        let acknowledged = load_until_killed(kms, &mut child, 200 + 97 * round, Duration::from_millis(13 * round as u64)).await;
        all.extend(acknowledged);
        assert_eq!(kmslab_store::integrity_check(&path).unwrap(), "ok", "round {round}");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let missing: Vec<&Uuid> = all.iter().filter(|c| store.client(**c).unwrap().is_none()).collect();
        assert!(missing.is_empty(), "round {round}: {} acknowledged CMIDs missing, e.g. {:?}", missing.len(), missing.first());
        store.close();
        println!("kill -9 #{round}: {} CMIDs acknowledged so far, all in the registry, integrity ok", all.len());
    }
    // A last restart sees every acknowledged client.
    let (mut child, _kms, admin) = spawn_host(dir.path());
    let status = get_json(admin, "/api/v1/status").await;
    assert!(status["counters"]["total"].as_u64().unwrap() >= all.len() as u64, "{status}");
    let listed = get_json(admin, &format!("/api/v1/clients?limit=1&search={}", all[0])).await;
    assert_eq!(listed["total"], 1);
    child.kill();
    assert_eq!(kmslab_store::integrity_check(&path).unwrap(), "ok");
}

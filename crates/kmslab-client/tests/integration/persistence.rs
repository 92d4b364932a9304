//! State across restarts, rearm, SIGTERM, and torn state writes (a leftover temporary
//! file, and SIGKILL of the real binary in the middle of saving).

use std::path::Path;
use std::time::{Duration, Instant};

use kmslab_client::persist;
use kmslab_core::catalog::Catalog;
use kmslab_test_support::{Daemon, Tmpfs};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_cmid_and_state_and_rearm_changes_the_cmid() {
    let host = TestHost::start(120, 10080).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1.0);
    cfg.product = product("server2008r2-standard");
    cfg.kms = Some(host.addr.to_string().parse().unwrap());
    cfg.state_dir = Some(dir.path().to_owned());
    let client = TestClient::start(cfg.clone()).await;
    client.wait_status(10, "the first attempt", |s| !s["last_result"].is_null()).await;
    let last = host.requests.lock().unwrap().last().unwrap().client_time;
    host.add_machines(4, 5, last);
    assert_eq!(client.ato().await["hresult"], "0x00000000");
    let s = client.wait_status(10, "Licensed", |s| s["status"] == "licensed").await;
    client.stop().await;

    // Restart without --product: the same machine comes back.
    let mut again = cfg.clone();
    again.product = None;
    again.kms = None;
    let client = TestClient::start(again.clone()).await;
    let t = client.status().await;
    for key in ["cmid", "status", "valid_until", "epid", "rearm_count", "product"] {
        assert_eq!(s[key], t[key], "{key} survives a restart");
    }
    assert_eq!(t["host"]["manual"], host.addr.to_string(), "the manual host is kept");

    // Rearm: a new CMID, the old one remembered, one rearm fewer, initial grace again.
    let (code, r) = client.post("/api/v1/rearm", json!({})).await;
    assert_eq!(code, 200, "{r}");
    assert_ne!(r["cmid"], s["cmid"]);
    assert_eq!(r["previous_cmid"], s["cmid"]);
    assert_eq!(r["rearm_count"], 2);
    let new_cmid = r["cmid"].clone();
    client.stop().await;
    let client = TestClient::start(again.clone()).await;
    let t = client.status().await;
    assert_eq!(t["cmid"], new_cmid);
    assert_eq!(t["rearm_count"], 2);
    for left in [1, 0] {
        let (code, r) = client.post("/api/v1/rearm", json!({})).await;
        assert_eq!((code, r["rearm_count"].as_u64()), (200, Some(left)));
    }
    let (code, r) = client.post("/api/v1/rearm", json!({})).await;
    assert_eq!((code, r["hresult"].as_str()), (409, Some("0xC004D307")), "{r}");
    client.stop().await;

    // A garbage temporary file from a torn write is ignored.
    std::fs::write(dir.path().join(persist::TEMP_FILE), b"{\"format\":1,\"cmid\":\"12").unwrap();
    let client = TestClient::start(again).await;
    assert_eq!(client.status().await["rearm_count"], 0);
    client.stop().await;
    assert!(!dir.path().join(persist::TEMP_FILE).exists());
}

/// The real binary with its state in `dir` and RUST_LOG `log_level`, ready.
fn spawn_daemon(dir: &Path, log_level: &str) -> (Daemon, std::net::SocketAddr) {
    let mut cmd = kmslab_test_support::kms_client(env!("CARGO_BIN_EXE_kms-client"), "win7-enterprise", dir);
    cmd.args(["--kms", "127.0.0.1:9"]).env("RUST_LOG", log_level);
    let daemon = Daemon::spawn(cmd, &["admin"]);
    let addr = daemon.addr("admin");
    (daemon, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_saves_always_leaves_a_loadable_state_and_sigterm_saves() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::builtin();
    let mut cmid = None;
    for round in 0..6u64 {
        let (mut child, admin) = spawn_daemon(dir.path(), "error");
        // Hammer state changes (each one is saved) and kill the process mid-stream.
        let stop_at = Instant::now() + Duration::from_millis(60 + round * 37);
        let mut changes = 0;
        while Instant::now() < stop_at {
            let domain = format!("d{changes}.lab.test");
            let _ = http(admin, "POST", "/api/v1/skms-domain", Some(json!({"domain": domain}))).await;
            changes += 1;
        }
        let hammer = tokio::spawn(async move {
            for i in 0.. {
                let path = if i % 2 == 0 { "/api/v1/ckhc" } else { "/api/v1/skhc" };
                if tokio::net::TcpStream::connect(admin).await.is_err() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), http(admin, "POST", path, None)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(3 + round * 5)).await;
        child.kill();
        let _ = hammer.await;
        let state = persist::load(dir.path(), &catalog).unwrap_or_else(|e| panic!("round {round}: {e}")).expect("state exists");
        assert!(state.domain.as_deref().is_some_and(|d| d.ends_with(".lab.test")), "round {round}: {:?}", state.domain);
        assert_eq!(*cmid.get_or_insert(state.cmid), state.cmid, "the CMID never changes");
    }
    // SIGTERM: saves and exits 0.
    let (mut child, admin) = spawn_daemon(dir.path(), "error");
    let (code, _) = http(admin, "POST", "/api/v1/skms-domain", Some(json!({"domain": "final.lab.test"}))).await;
    assert_eq!(code, 200);
    let exit = child.terminate(Duration::from_secs(60));
    assert!(exit.success(), "exit status {exit:?}");
    let state = persist::load(dir.path(), &catalog).unwrap().unwrap();
    assert_eq!(state.domain.as_deref(), Some("final.lab.test"));
    assert_eq!(Some(state.cmid), cmid);
}

/// The state directory on a full 1 MiB tmpfs: the daemon keeps running, says so
/// in its log, on /healthz and in its status, the last saved state stays loadable, and it
/// saves again by itself once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_is_reported_the_old_state_stays_loadable_and_saving_resumes() {
    use std::io::Write as _;
    let fs = Tmpfs::mount("1m");
    let (mut child, admin) = spawn_daemon(&fs.path, "warn");
    let catalog = Catalog::builtin();
    let (code, _) = http(admin, "POST", "/api/v1/skms-domain", Some(json!({"domain": "before.lab.test"}))).await;
    assert_eq!(code, 200);
    let before = persist::load(&fs.path, &catalog).unwrap().expect("saved");
    assert_eq!(before.domain.as_deref(), Some("before.lab.test"));

    // Fill the disk, then change the state.
    let ballast = fs.path.join("ballast");
    {
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    let (code, body) = http(admin, "POST", "/api/v1/skms-domain", Some(json!({"domain": "after.lab.test"}))).await;
    assert_eq!(code, 500, "the change could not be saved: {body}");
    assert!(child.is_running(), "the daemon keeps running");
    let (code, body) = http(admin, "GET", "/healthz", None).await;
    assert_eq!(code, 503, "{body}");
    let status = http(admin, "GET", "/api/v1/status", None).await.1;
    assert!(status["state_save_error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    assert_eq!(status["domain"], "after.lab.test", "the daemon runs on with the new state in memory");
    assert!(child.log().contains("cannot save the client state"));
    // What is on disk is the last good state.
    let on_disk = persist::load(&fs.path, &catalog).unwrap().expect("still loadable");
    assert_eq!(on_disk.domain.as_deref(), Some("before.lab.test"));
    // More failed retries do not log again.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let logged = child.log().lines().filter(|l| l.contains("cannot save the client state")).count();
    assert_eq!(logged, 1, "logged once, not at every retry");

    // Space returns: the daemon saves by itself (retry every 2 s) and is healthy again.
    std::fs::remove_file(&ballast).unwrap();
    let mut saved = false;
    for _ in 0..60 {
        if persist::load(&fs.path, &catalog).ok().flatten().is_some_and(|s| s.domain.as_deref() == Some("after.lab.test")) {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saved, "the state is saved again once space returns");
    assert_eq!(http(admin, "GET", "/healthz", None).await.0, 200);
    assert!(http(admin, "GET", "/api/v1/status", None).await.1["state_save_error"].is_null());
    child.kill();
}

//! State across restarts, rearm, SIGTERM, and torn state writes (a leftover temporary
//! file, and SIGKILL of the real binary in the middle of saving).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kmslab_client::persist;
use kmslab_core::catalog::Catalog;
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

fn spawn_daemon(dir: &Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms-client"))
        .args(["--product", "win7-enterprise", "--admin", "127.0.0.1:0", "--kms", "127.0.0.1:9"])
        .arg("--state-dir")
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on admin ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).parse().unwrap();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_saves_always_leaves_a_loadable_state_and_sigterm_saves() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::builtin();
    let mut cmid = None;
    for round in 0..6u64 {
        let (mut child, admin) = spawn_daemon(dir.path());
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
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = hammer.await;
        let state = persist::load(dir.path(), &catalog).unwrap_or_else(|e| panic!("round {round}: {e}")).expect("state exists");
        assert!(state.domain.as_deref().is_some_and(|d| d.ends_with(".lab.test")), "round {round}: {:?}", state.domain);
        assert_eq!(*cmid.get_or_insert(state.cmid), state.cmid, "the CMID never changes");
    }
    // SIGTERM: saves and exits 0.
    let (mut child, admin) = spawn_daemon(dir.path());
    let (code, _) = http(admin, "POST", "/api/v1/skms-domain", Some(json!({"domain": "final.lab.test"}))).await;
    assert_eq!(code, 200);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let state = persist::load(dir.path(), &catalog).unwrap().unwrap();
    assert_eq!(state.domain.as_deref(), Some("final.lab.test"));
    assert_eq!(Some(state.cmid), cmid);
}

//! The real `kms-client` binary: configuration sources and their priority, exit code 2 on
//! bad configuration, JSON logs with `event_id`, and host failures mapped to HRESULTs.

use std::process::Command;
use std::time::Duration;

use kmslab_test_support::Daemon;
use serde_json::Value;

use crate::support::*;

fn kms_client() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kms-client"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn bad_configuration_exits_2_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.toml");
    std::fs::write(&file, "product = \"win7-enterprise\"\nkms_host = \"x\"\n").unwrap();
    // (arguments, environment, what stderr must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--gvlk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"], vec![], "--gvlk: 0xC004F050"),
        (vec!["--config", file.to_str().unwrap()], vec![], "kms_host"),
        (vec![], vec![("KMSLAB_TIME_SCALE", "fast")], "--time-scale"),
        (vec!["--kms", "[::1"], vec![], "--kms"),
    ];
    for (args, env, needle) in cases {
        let out = kms_client().args(&args).envs(env.iter().copied()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_env_beat_file_and_logs_are_json_with_event_ids() {
    let host = TestHost::start(120, 10080).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.toml");
    std::fs::write(
        &file,
        format!(
            "product = \"server2008r2-standard\"\nmachine_name = \"from-file\"\nkms = \"{}\"\nhost_caching = false\nadmin = \"127.0.0.1:0\"\n",
            host.addr
        ),
    )
    .unwrap();
    let mut cmd = kms_client();
    cmd.args(["--config", file.to_str().unwrap(), "--machine-name", "from-flag", "--log-format", "json"])
        .env("KMSLAB_PRODUCT", "win7-professional")
        .env("KMSLAB_MACHINE_NAME", "from-env");
    let mut client = Daemon::spawn(cmd, &["admin"]);
    let admin = client.addr("admin");
    let (_, s) = http(admin, "GET", "/api/v1/status", None).await;
    assert_eq!(s["product"]["name"], "win7-professional", "env beats file");
    assert_eq!(s["machine_name"], "from-flag", "flag beats env");
    assert_eq!(s["host_caching"], false, "file applies when nothing else is given");
    assert_eq!(s["host"]["manual"], host.addr.to_string());
    let (_, r) = http(admin, "POST", "/api/v1/ato", None).await;
    assert_eq!(r["hresult"], "0xC004F038");
    assert!(client.terminate(Duration::from_secs(60)).success());
    let stderr = client.log();
    let records: Vec<Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let sent = records.iter().find(|r| r["event_id"] == 12288).expect("a 12288 record");
    assert_eq!(sent["host"], host.addr.to_string());
    let processed = records.iter().find(|r| r["event_id"] == 12289).expect("a 12289 record");
    assert_eq!(processed["result"], "0xC004F038");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_failures_map_to_hresults() {
    // A port that accepts and closes at once, one that accepts and never answers, a closed one.
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (closing_addr, silent_addr) = (closing.local_addr().unwrap(), silent.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = closing.accept().await {
            drop(s);
        }
    });
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut cfg = config(1.0);
    cfg.product = product("win7-enterprise");
    cfg.timeouts.response = Duration::from_millis(300);
    let client = TestClient::start(cfg).await;
    // The attempt the client starts by itself (DNS discovery, which fails here) must be over
    // first: an /ato while it runs joins it instead of trying the host set by /skms.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client.events().await.iter().any(|e| e["kind"] == "attempt_finished") {
        assert!(std::time::Instant::now() < deadline, "the start-up attempt did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (addr, code) in [(closing_addr, "0xC004F039"), (silent_addr, "0x800705B4"), (refused, "0x800706BA")] {
        let (status, _) = client.post("/api/v1/skms", serde_json::json!({"host": addr.to_string()})).await;
        assert_eq!(status, 200);
        let r = client.ato().await;
        assert_eq!(r["hresult"], "0xC004F074", "every host failed");
        let events = client.events().await;
        let sent = events.iter().rev().find(|e| e["event_id"] == 12288).unwrap();
        assert_eq!((sent["fields"]["host"].as_str(), sent["fields"]["result"].as_str()), (Some(addr.to_string().as_str()), Some(code)));
    }
    client.stop().await;
}

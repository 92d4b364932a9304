//! A full disk under the real binary: the registry on a 4 MiB tmpfs, filled with
//! a ballast file. The host keeps running, says so on /healthz and in its log, answers
//! what it could not store with an error frame (never a response), and recovers once the
//! ballast is deleted. Needs root (mount); fails with a clear message otherwise.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use kmslab_core::HResult;
use kmslab_core::wire::{Message, Request};
use kmslab_store::{Store, StoreOptions};
use kmslab_test_support::Tmpfs;

use crate::support::*;

/// Writes zeros into `path` until the filesystem is full.
pub fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // Whatever is left is smaller than a chunk: take it byte by byte.
    while f.write_all(&[0]).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_nothing_unstored_is_acknowledged_and_the_host_recovers() {
    let fs = Tmpfs::mount("4m");
    let data = fs.path.join("data");
    let mut cmd = kmslab_test_support::kms_host(env!("CARGO_BIN_EXE_kms-host"), &data);
    cmd.arg("--no-dns-publish").env("RUST_LOG", "warn");
    let mut host = kmslab_test_support::Daemon::spawn(cmd, &["kms", "admin"]);
    let (kms, admin) = (host.addr("kms"), host.addr("admin"));
    let mut conn = KmsConn::connect(kms).await;
    let mut acknowledged = Vec::new();
    // N-policy 1000: a cap of 2000, so that the count is not held at the cap of 50 and
    // shows exactly how many machines the host counted.
    let request = |product: &str| Request { n_policy: 1000, ..request(product) };
    for _ in 0..50 {
        let req = request("win7-enterprise");
        response(conn.ask(&req).await);
        acknowledged.push(req.cmid);
    }

    // Fill the disk; requests go on until the registry can no longer grow.
    let ballast = fs.path.join("ballast");
    fill(&ballast);
    let mut refused = 0;
    // Runs of consecutive refusals: near the end of the disk a write can still fit between
    // two that do not, and a success in between ends a run (the host logs the recovery and
    // the next failure at once).
    let mut refusal_runs = 0;
    let mut last_refused = false;
    let mut first_refusal: Option<std::time::Instant> = None;
    let mut long_name = String::from("full-disk-");
    long_name.extend(std::iter::repeat_n('x', 50));
    for i in 0..20_000 {
        let mut req = request("win7-enterprise");
        req.machine_name = long_name.clone();
        match conn.ask(&req).await {
            Message::Response(r) => {
                assert_eq!(r.cmid, req.cmid);
                acknowledged.push(req.cmid);
                last_refused = false;
            }
            Message::Error(e) => {
                assert_eq!(e.hresult, HResult::STORE_FAILED, "{e:?}");
                refused += 1;
                first_refusal.get_or_insert_with(std::time::Instant::now);
                if !last_refused {
                    refusal_runs += 1;
                }
                last_refused = true;
                if refused == 20 {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(i < 19_999, "the registry never hit the full disk");
    }
    assert!(host.is_running(), "the host keeps running on a full disk");
    let (code, body) = http(admin, "GET", "/healthz", None).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("full"), "{body}");
    let logged = host.log();
    assert!(logged.contains("registry write failed"), "the log says so: {logged}");
    println!("full disk: {} acknowledged, then {refused} refused with STORE_FAILED; /healthz: {}", acknowledged.len(), body.trim());
    // What the host reports is what it stored: the refused requests are not in the count
    // or in the counters.
    let status = get_json(admin, "/api/v1/status").await;
    let windows = status["counts"].as_array().unwrap().iter().find(|c| c["group"] == "windows").unwrap().clone();
    assert_eq!(windows["count"], acknowledged.len(), "the count is the acknowledged machines: {windows}");
    assert_eq!(windows["max_n_policy"], 1000);
    assert_eq!(status["counters"]["total"], acknowledged.len(), "{}", status["counters"]);
    assert_eq!(status["counters"]["failed"], 0, "{}", status["counters"]);
    // A flood of identical failures is logged once per run of failures (then once a minute
    // with a count), and each success after a run says so once.
    let failure_lines = logged.lines().filter(|l| l.contains("registry write failed") && !l.contains("repeated")).count();
    let repeated_lines = logged.lines().filter(|l| l.contains("registry write failed") && l.contains("repeated")).count();
    let recovery_lines = logged.lines().filter(|l| l.contains("registry writes of requests succeed again")).count();
    assert!(refusal_runs < refused, "the test saw {refused} refusals in {refusal_runs} runs: no flood to coalesce");
    assert_eq!(failure_lines, refusal_runs, "{refused} failures in {refusal_runs} runs gave {failure_lines} log lines:\n{logged}");
    // A line with the count of those held back comes at most once a minute (on a busy
    // machine the refusals can take that long).
    let minutes = first_refusal.expect("refusals were seen").elapsed().as_secs() / 60;
    assert!(repeated_lines as u64 <= minutes, "{repeated_lines} 'repeated' lines in {minutes} whole minutes:\n{logged}");
    assert_eq!(recovery_lines, refusal_runs - 1, "{refusal_runs} runs of failures gave {recovery_lines} recovery lines:\n{logged}");

    // Space returns: the host stores and acknowledges again, and says it is healthy.
    std::fs::remove_file(&ballast).unwrap();
    let mut recovered = None;
    let mut refused_later = 0;
    for _ in 0..100 {
        let req = request("win7-enterprise");
        match conn.ask(&req).await {
            Message::Response(r) => {
                acknowledged.push(req.cmid);
                recovered = Some(r);
                break;
            }
            _ => refused_later += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_after = recovered.expect("the host acknowledges again once space returns");
    // The next client is told the stored machines plus itself, not the refused ones too.
    assert_eq!(first_after.current_count as usize, acknowledged.len(), "{refused} + {refused_later} refused requests were not counted");
    let (code, body) = http(admin, "GET", "/healthz", None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let status = get_json(admin, "/api/v1/status").await;
    assert_eq!(status["counters"]["total"], acknowledged.len(), "{}", status["counters"]);

    // Every acknowledged request is in the registry; the file is intact.
    drop(conn);
    host.kill();
    let path = data.join("registry.sqlite");
    assert_eq!(kmslab_store::integrity_check(&path).unwrap(), "ok");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let missing = acknowledged.iter().filter(|c| store.client(**c).unwrap().is_none()).count();
    assert_eq!(store.counters().unwrap().total, acknowledged.len() as u64, "the stored counters are what the host reported");
    assert_eq!(store.client_count().unwrap(), acknowledged.len() as u64);
    store.close();
    assert_eq!(missing, 0, "{missing} of {} acknowledged CMIDs missing", acknowledged.len());
    drop(host);
}

//! KMS serving through real sockets: thresholds, refusals, malformed frames.

use kmslab_core::HResult;
use kmslab_core::wire::{self, Message};

use crate::support::*;

#[tokio::test]
async fn count_meets_the_windows_7_threshold_at_25_distinct_cmids() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    // Several requests per connection.
    let mut conn = KmsConn::connect(host.kms).await;
    let mut last = None;
    for i in 1..=24u32 {
        let r = response(conn.ask(&request("win7-enterprise")).await);
        assert_eq!(r.current_count, i);
        last = Some(r);
    }
    let r24 = last.unwrap();
    assert!(r24.current_count < 25, "24 CMIDs are not enough for Windows 7 (a client fails with 0xC004F038)");
    // The same CMID again does not raise the count.
    let mut again = request("win7-enterprise");
    let first = response(conn.ask(&again).await);
    assert_eq!(first.current_count, 25, "the 25th distinct CMID meets the threshold");
    again.client_time = now();
    assert_eq!(response(conn.ask(&again).await).current_count, 25);
    // A server shares the Windows count; a fresh connection works too.
    assert_eq!(response(ask_once(host.kms, &request("server2008r2-standard")).await).current_count, 26);
    let status = host.status().await;
    let windows = status["counts"].as_array().unwrap().iter().find(|c| c["group"] == "windows").unwrap().clone();
    assert_eq!(windows["count"], 26);
    assert_eq!(windows["thresholds"], serde_json::json!([5, 25]));
    assert_eq!(status["counters"]["total"], 27);
    assert_eq!(status["counters"]["failed"], 0);
    assert_eq!(status["counters"]["by_status"]["initial_grace"], 27);
    host.stop().await;
}

#[tokio::test]
async fn key_group_mismatch_and_unactivated_host_are_refused_and_counted_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    let e = error_frame(ask_once(host.kms, &request("server2008r2-datacenter")).await);
    assert_eq!(e.hresult, HResult::KEY_GROUP_MISMATCH);
    let e = error_frame(ask_once(host.kms, &request("office2010-proplus")).await);
    assert_eq!(e.hresult, HResult::KEY_GROUP_MISMATCH);
    response(ask_once(host.kms, &request("server2008r2-enterprise")).await);
    let status = host.status().await;
    assert_eq!(status["counters"]["total"], 3);
    assert_eq!(status["counters"]["failed"], 2);
    host.stop().await;

    // A kms-c host with the Office key as well serves both and counts them apart.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.host_key_groups = vec!["kms-c".into(), "office-2010".into()];
    let host = TestHost::start(c).await;
    assert_eq!(response(ask_once(host.kms, &request("server2008r2-datacenter")).await).current_count, 1);
    assert_eq!(response(ask_once(host.kms, &request("office2010-proplus")).await).current_count, 1);
    host.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.activated = false;
    let host = TestHost::start(c).await;
    let e = error_frame(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!(e.hresult, HResult::HOST_NOT_ACTIVATED);
    assert_eq!(host.status().await["counters"]["failed"], 1);
    host.stop().await;
}

fn valid_request_bytes(name: &str) -> Vec<u8> {
    let mut req = request("win7-enterprise");
    req.machine_name = name.into();
    wire::encode_to_vec(&Message::Request(req)).unwrap()
}

fn set_body_len(frame: &mut [u8]) {
    let len = (frame.len() - wire::HEADER_LEN) as u32;
    frame[8..12].copy_from_slice(&len.to_le_bytes());
}

#[tokio::test]
async fn malformed_frames_get_an_error_frame_or_a_close_and_count_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    let mut good = KmsConn::connect(host.kms).await;

    let truncated = {
        let f = valid_request_bytes("ab");
        f[..f.len() - 5].to_vec()
    };
    let bad_utf8 = {
        let mut f = valid_request_bytes("ab");
        let n = f.len();
        f[n - 2..].copy_from_slice(&[0xFF, 0xFE]);
        f
    };
    let long_name = {
        let mut f = valid_request_bytes(&"x".repeat(63));
        let n = f.len();
        f[n - 64] = 64;
        f.push(b'x');
        set_body_len(&mut f);
        f
    };
    // (what, bytes, shut our side after sending, expect an error frame)
    let cases: Vec<(&str, Vec<u8>, bool, bool)> = vec![
        ("truncated", truncated, true, false),
        ("bad magic", b"GET / HTTP/1.1\r\n\r\n".to_vec(), false, true),
        ("unsupported version", b"KMSL\x02\x01\0\0\x10\0\0\0".to_vec(), false, true),
        ("oversized length", b"KMSL\x01\x01\0\0\xff\xff\xff\x7f".to_vec(), false, true),
        ("bad utf-8", bad_utf8, false, true),
        ("over-long name", long_name, false, true),
    ];
    for (i, (what, bytes, shut, expect_frame)) in cases.into_iter().enumerate() {
        let mut bad = KmsConn::connect(host.kms).await;
        let answer = bad.send_raw(&bytes, shut).await;
        match (answer, expect_frame) {
            (Some(Message::Error(e)), true) => {
                assert_eq!(e.hresult, HResult::INVALID_DATA, "{what}");
                assert!(!e.message.is_empty(), "{what}");
            }
            (None, false) => {}
            (other, _) => panic!("{what}: unexpected answer {other:?}"),
        }
        // The well-behaved client on its own connection keeps working.
        response(good.ask(&request("win7-enterprise")).await);
        let status = host.status().await;
        assert_eq!(status["counters"]["failed"], (i + 1) as u64, "{what} counted as failed");
        assert_eq!(status["counters"]["total"], 2 * (i + 1) as u64, "{what}");
    }
    let (_, metrics) = http(host.admin, "GET", "/metrics", None).await.unwrap();
    assert!(metrics.contains("kmslab_host_malformed_requests_total 6"), "{metrics}");
    host.stop().await;
}

#[tokio::test]
async fn a_full_registry_refuses_clients_with_store_failed_and_healthz_says_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.registry_max_pages = Some(24);
    let host = TestHost::start(c).await;
    let mut conn = KmsConn::connect(host.kms).await;
    let mut acknowledged = 0;
    let refusal = loop {
        let mut req = request("win7-enterprise");
        req.machine_name = "a-rather-long-machine-name-to-fill-pages-faster-0123456789abcdef".chars().take(63).collect();
        match conn.ask(&req).await {
            Message::Response(_) => acknowledged += 1,
            Message::Error(e) => break e,
            other => panic!("the host sent a non-answer: {other:?}"),
        }
        assert!(acknowledged < 5000, "the registry never filled up");
    };
    assert_eq!(refusal.hresult, HResult::STORE_FAILED, "{refusal:?}");
    assert!(acknowledged > 0);
    let (code, body) = http(host.admin, "GET", "/healthz", None).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("unhealthy") && body.contains("full"), "{body}");
    assert_eq!(host.status().await["health"]["ok"], false);
    host.stop().await;
}

#[tokio::test]
async fn the_connection_cap_queues_extra_clients_and_idle_connections_are_closed() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_connections = 1;
    c.idle_timeout = Duration::from_secs(1);
    let host = TestHost::start(c).await;
    let mut first = KmsConn::connect(host.kms).await;
    response(first.ask(&request("win7-enterprise")).await);
    // The second client waits in the backlog while the only slot is taken...
    let second = tokio::spawn(async move { ask_once(host.kms, &request("win7-enterprise")).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!second.is_finished(), "a second connection was served beyond --max-connections 1");
    // ...and is served once the first is closed by its idle timeout.
    let mut rest = [0u8; 1];
    let n =
        tokio::time::timeout(Duration::from_secs(5), first.stream_mut().read(&mut rest)).await.expect("idle close in time").unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed by the host");
    let r = response(tokio::time::timeout(Duration::from_secs(5), second).await.expect("served after the slot freed").unwrap());
    assert_eq!(r.current_count, 2);
    host.stop().await;
}

/// Genuine validation (docs/kms-behaviour.md "Non-genuine") when the activation service
/// cannot be reached: nothing changes, the host stays genuine and serves; `/ato` says why;
/// `/ipk` takes only a lab KMS host key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_validation_without_an_answer_changes_nothing_and_ipk_checks_the_key() {
    const KEY: &str = "LABHK-WM8X2-78TVF-6K8T6-7J6BT";
    const NEW: &str = "LABHT-QJVVF-KFJGR-2BT27-33HQ7";
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // A port nobody listens on any more: the service cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    c.host_key = Some(KEY.into());
    c.activation_service = Some(kmslab_core::hostaddr::HostAddr::new("127.0.0.1", port));
    let host = TestHost::start(c).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while host.status().await["genuine"]["last_result"] != "0x800706BA" {
        assert!(std::time::Instant::now() < deadline, "no start-up validation: {}", host.status().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = host.status().await;
    assert_eq!((s["genuine"]["state"].as_str(), s["license_status"].as_str()), (Some("genuine"), Some("Licensed")), "{s}");
    assert_eq!(s["partial_product_key"], "7J6BT");
    let (code, body) = http(host.admin, "POST", "/api/v1/ato", Some("{}")).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, body["hresult"].as_str(), body["activated"].as_bool()), (200, Some("0x800706BA"), Some(false)), "{body}");
    assert_eq!(response(ask_once(host.kms, &request("win7-enterprise")).await).current_count, 1);

    let (code, body) = http(host.admin, "POST", "/api/v1/ipk", Some(r#"{"key":"nonsense"}"#)).await.unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("nonsense") && body.contains("0xC004F050"), "{body}");
    let (code, body) = http(host.admin, "POST", "/api/v1/ipk", Some(&format!(r#"{{"key":"{}"}}"#, NEW.to_lowercase()))).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(host.status().await["partial_product_key"], "33HQ7");
    host.stop().await;
}

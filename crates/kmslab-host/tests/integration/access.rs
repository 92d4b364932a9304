//! Access control with real sockets (docs/reliability.md, "Access control"). Only
//! 127.0.0.0/8 exists in a test, so distinct loopback addresses play distinct machines:
//! the client socket is bound to 127.0.0.2 ("the allowed network") or 127.0.0.3 ("a
//! foreign network") before it connects, and the host is told to treat only 127.0.0.1 as
//! local (`--admin-local-network 127.0.0.1/32`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kmslab_core::HResult;
use kmslab_core::wire::{self, FrameKey, Message};
use kmslab_runtime::framed::{read_message, read_message_with, write_message_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

const ALLOWED: [u8; 4] = [127, 0, 0, 2];
const FOREIGN: [u8; 4] = [127, 0, 0, 3];

async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(source), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A request from `source` with an optional bearer token: `(status, body)`.
async fn http_from(source: [u8; 4], addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = connect_from(source, addr).await;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = if method == "POST" { r#"{"activation_interval":60}"# } else { "" };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

async fn metrics(host: &TestHost) -> String {
    let (code, body) = http(host.admin, "GET", "/metrics", None).await.unwrap();
    assert_eq!(code, 200);
    body
}

/// (source, method, path, bearer token, expected status)
type Case = ([u8; 4], &'static str, &'static str, Option<&'static str>, u16);

#[tokio::test]
async fn admin_access_is_decided_per_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.admin_local_networks = vec!["127.0.0.1/32".parse().unwrap()];
    c.admin_read_networks = vec!["127.0.0.2/32".parse().unwrap()];
    c.admin_token = Some(kmslab_admin::AdminToken::new("s3cret-token").unwrap());
    let host = TestHost::start(c).await;
    let a = host.admin;
    let local = [127, 0, 0, 1];
    let table: &[Case] = &[
        // Local: everything, no token needed.
        (local, "GET", "/api/v1/status", None, 200),
        (local, "POST", "/api/v1/settings", None, 200),
        // The read network: reads yes, writes only with the token.
        (ALLOWED, "GET", "/api/v1/status", None, 200),
        (ALLOWED, "GET", "/metrics", None, 200),
        (ALLOWED, "GET", "/", None, 200),
        (ALLOWED, "POST", "/api/v1/settings", None, 401),
        (ALLOWED, "POST", "/api/v1/settings", Some("wrong-token"), 401),
        (ALLOWED, "POST", "/api/v1/settings", Some("s3cret-token"), 200),
        // A foreign network: nothing but /healthz, unless it holds the token.
        (FOREIGN, "GET", "/api/v1/status", None, 403),
        (FOREIGN, "GET", "/metrics", None, 403),
        (FOREIGN, "GET", "/clients", None, 403),
        (FOREIGN, "GET", "/healthz", None, 200),
        (FOREIGN, "POST", "/api/v1/settings", None, 401),
        (FOREIGN, "GET", "/api/v1/status", Some("s3cret-token"), 200),
        (FOREIGN, "POST", "/api/v1/settings", Some("s3cret-token"), 200),
    ];
    for (source, method, path, token, expected) in table {
        let (code, text) = http_from(*source, a, method, path, *token).await;
        assert_eq!(code, *expected, "{source:?} {method} {path} token={token:?}: {text}");
    }
    host.stop().await;

    // Without a token, a non-local source can never change anything: 403.
    let mut c = config(dir.path());
    c.admin_local_networks = vec!["127.0.0.1/32".parse().unwrap()];
    c.admin_read_networks = vec!["127.0.0.2/32".parse().unwrap()];
    let host = TestHost::start(c).await;
    let (code, text) = http_from(ALLOWED, host.admin, "POST", "/api/v1/settings", None).await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("--admin-token"), "{text}");
    host.stop().await;

    // The default: loopback is local, so every 127.x source may do everything.
    let host = TestHost::start(config(dir.path())).await;
    for (source, method, path) in [(FOREIGN, "POST", "/api/v1/settings"), (ALLOWED, "GET", "/api/v1/status")] {
        assert_eq!(http_from(source, host.admin, method, path, None).await.0, 200);
    }
    host.stop().await;
}

#[tokio::test]
async fn sources_outside_allow_are_closed_at_accept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.allow = vec!["127.0.0.1/32".parse().unwrap(), "127.0.0.2/32".parse().unwrap()];
    let host = TestHost::start(c).await;
    let mut rbuf = Vec::new();
    let mut wbuf = Vec::new();
    let req = request("win7-enterprise");

    let mut ok = connect_from(ALLOWED, host.kms).await;
    write_message_with(&mut ok, &Message::Request(req.clone()), &mut wbuf, None).await.unwrap();
    let answer = read_message(&mut ok, &mut rbuf).await.unwrap();
    assert!(matches!(answer, Some(Message::Response(_))), "{answer:?}");

    for _ in 0..3 {
        let mut refused = connect_from(FOREIGN, host.kms).await;
        let _ = write_message_with(&mut refused, &Message::Request(request("win7-enterprise")), &mut wbuf, None).await;
        // Closed without an answer (EOF, or a reset if our bytes arrived after the close).
        let answer = tokio::time::timeout(Duration::from_secs(10), read_message(&mut refused, &mut rbuf)).await.unwrap();
        assert!(matches!(answer, Ok(None) | Err(_)), "{answer:?}");
    }
    let m = metrics(&host).await;
    assert_eq!(metric(&m, "kmslab_host_refused_connections_total{reason=\"not_allowed\"}"), 3);
    // Refused sources reached neither the ledger nor the registry.
    assert_eq!(host.status().await["counters"]["total"], 1);
    host.stop().await;
}

#[tokio::test]
async fn a_source_over_its_rate_limit_gets_error_frames_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // Three at once, then one every hundred seconds: the test never sees a refill.
    c.rate_limit = Some("0.01,3".parse().unwrap());
    let host = TestHost::start(c).await;
    let mut rbuf = Vec::new();
    let mut wbuf = Vec::new();
    let mut flooder = connect_from(ALLOWED, host.kms).await;
    let mut results = Vec::new();
    for _ in 0..6 {
        let req = request("win7-enterprise");
        write_message_with(&mut flooder, &Message::Request(req.clone()), &mut wbuf, None).await.unwrap();
        match read_message(&mut flooder, &mut rbuf).await.unwrap().expect("an answer") {
            Message::Response(_) => results.push(0),
            Message::Error(e) => {
                assert_eq!(e.cmid, req.cmid);
                results.push(e.hresult.0);
            }
            other => panic!("{other:?}"),
        }
    }
    let limited = HResult::RATE_LIMITED.0;
    assert_eq!(results, [0, 0, 0, limited, limited, limited]);
    // A new connection from the same source is still limited; another source is not.
    let r = ask_from(ALLOWED, &host).await;
    assert!(matches!(r, Message::Error(ref e) if e.hresult == HResult::RATE_LIMITED), "{r:?}");
    assert!(matches!(ask_from(FOREIGN, &host).await, Message::Response(_)));
    let m = metrics(&host).await;
    assert_eq!(metric(&m, "kmslab_host_rate_limited_total"), 4);
    // The CMID set grew only by the requests that were served.
    let status = host.status().await;
    assert_eq!(status["counts"][0]["count"], 4, "{status}");
    host.stop().await;
}

async fn ask_from(source: [u8; 4], host: &TestHost) -> Message {
    let mut s = connect_from(source, host.kms).await;
    let (mut rbuf, mut wbuf) = (Vec::new(), Vec::new());
    write_message_with(&mut s, &Message::Request(request("win7-enterprise")), &mut wbuf, None).await.unwrap();
    read_message(&mut s, &mut rbuf).await.unwrap().expect("an answer")
}

#[tokio::test]
async fn with_a_psk_only_frames_with_a_valid_mac_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let key = FrameKey::new(b"lab-key-0123456789abcdef").unwrap();
    let mut c = config(dir.path());
    c.psk = Some(key.clone());
    let host = TestHost::start(c).await;
    let (mut rbuf, mut wbuf) = (Vec::new(), Vec::new());

    // With the key: served, and the answer carries a MAC made with the key.
    let mut s = TcpStream::connect(host.kms).await.unwrap();
    for _ in 0..2 {
        write_message_with(&mut s, &Message::Request(request("win7-enterprise")), &mut wbuf, Some(&key)).await.unwrap();
        let answer = read_message_with(&mut s, &mut rbuf, Some(&key)).await.unwrap();
        assert!(matches!(answer, Some(Message::Response(_))), "{answer:?}");
    }

    // Without a MAC, or with another key: an error frame without a MAC (so that the peer
    // can read it), then a close.
    let other = FrameKey::new(b"not-the-lab-key-at-all").unwrap();
    for sender_key in [None, Some(&other)] {
        let mut conn = KmsConn::connect(host.kms).await;
        let bytes = wire::encode_to_vec_with(&Message::Request(request("win7-enterprise")), sender_key).unwrap();
        let e = error_frame(conn.send_raw(&bytes, false).await.expect("an error frame"));
        assert_eq!(e.hresult, HResult::FRAME_AUTH_FAILED, "{e:?}");
    }
    let m = metrics(&host).await;
    assert_eq!(metric(&m, "kmslab_host_frame_auth_failures_total"), 2);
    assert_eq!(metric(&m, "kmslab_host_malformed_requests_total"), 2);
    let status = host.status().await;
    assert_eq!((status["counters"]["total"].as_u64(), status["counters"]["failed"].as_u64()), (Some(4), Some(2)), "{status}");
    host.stop().await;
}

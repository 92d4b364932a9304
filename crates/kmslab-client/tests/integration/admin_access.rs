//! The control API's access rules against the real `kms-client` binary: kms-host's model
//! (local sources, a bearer token, read networks, Host and cross-site checks, security
//! headers) and a bounded server. Distinct loopback addresses play distinct machines; the
//! client treats only 127.0.0.1 as local.
//!
//! `KMSLAB_TEST_KMS_CLIENT` runs them against another `kms-client` binary (an older build).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kmslab_test_support::Daemon;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "client-token-4c1d9e7a20b6";
const LOCAL: [u8; 4] = [127, 0, 0, 1];
const READER: [u8; 4] = [127, 0, 0, 2];
const STRANGER: [u8; 4] = [127, 0, 0, 3];

/// A `kms-client` process (killed on drop) and its control API.
struct ClientProc {
    daemon: Daemon,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

fn client_binary() -> PathBuf {
    std::env::var_os("KMSLAB_TEST_KMS_CLIENT").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kms-client")), PathBuf::from)
}

/// A client on 127.0.0.1 treating `local` as local, 127.0.0.2 as a read network, with
/// [`TOKEN`] in a token file.
fn spawn(local: &str) -> ClientProc {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = kmslab_test_support::kms_client(client_binary(), "win7-enterprise", &dir.path().join("state"));
    cmd.args(["--kms", "127.0.0.1:9"])
        .args(["--admin-local-network", local, "--admin-read-network", "127.0.0.2/32"])
        .arg("--admin-token-file")
        .arg(&token_file)
        .env("RUST_LOG", "debug")
        .env_remove("KMSLAB_ADMIN_TOKEN");
    let daemon = Daemon::spawn(cmd, &["admin"]);
    ClientProc { admin: daemon.addr("admin"), daemon, _dir: dir }
}

async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(source), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// `(status, lower-case header block, body)` of one request with `extra` header lines.
async fn call(source: [u8; 4], to: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = connect_from(source, to).await;
    let body = if method == "POST" { "{}" } else { "" };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await.expect("an answer in time").unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), head.to_ascii_lowercase(), body.to_owned())
}

async fn product(client: &ClientProc) -> Value {
    let (code, _, body) = call(LOCAL, client.admin, "GET", "/api/v1/status", "").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["product"].clone()
}

const JSON: &str = "Content-Type: application/json\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_has_the_hosts_access_model() {
    let client = spawn("127.0.0.1/32");
    let a = client.admin;
    let bearer = |t: &str| format!("{JSON}Authorization: Bearer {t}\r\n");
    // (source, method, path, extra headers, expected status)
    let table: Vec<([u8; 4], &str, &str, String, u16)> = vec![
        // A stranger changes nothing and reads nothing, but may probe /healthz.
        (STRANGER, "POST", "/api/v1/upk", JSON.into(), 401),
        (STRANGER, "POST", "/api/v1/rearm", JSON.into(), 401),
        (STRANGER, "POST", "/api/v1/upk", bearer("wrong"), 401),
        (STRANGER, "POST", "/api/v1/upk", bearer(&TOKEN[1..]), 401),
        (STRANGER, "GET", "/api/v1/status", String::new(), 403),
        (STRANGER, "GET", "/healthz", String::new(), 200),
        // The read network reads, and changes nothing without the token.
        (READER, "GET", "/api/v1/status", String::new(), 200),
        (READER, "POST", "/api/v1/ckhc", JSON.into(), 401),
        // Local, and the token from anywhere: everything, but never cross-site.
        (LOCAL, "POST", "/api/v1/upk", format!("{JSON}Origin: http://evil.example\r\n"), 403),
        (LOCAL, "POST", "/api/v1/upk", "Content-Type: text/plain\r\n".into(), 415),
        (STRANGER, "POST", "/api/v1/skhc", bearer(TOKEN), 200),
        (STRANGER, "GET", "/api/v1/status", bearer(TOKEN), 200),
        (LOCAL, "POST", "/api/v1/ckhc", JSON.into(), 200),
    ];
    for (source, method, path, extra, expected) in &table {
        let (code, head, body) = call(*source, a, method, path, extra).await;
        assert_eq!(code, *expected, "{source:?} {method} {path} {extra:?}: {body}");
        assert!(head.contains("x-content-type-options: nosniff") && head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    }
    assert!(product(&client).await.is_object(), "the key is still installed");
    // A rebound name is refused, even from a local source.
    let mut s = connect_from(LOCAL, a).await;
    s.write_all(format!("GET /api/v1/status HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n", a.port()).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 421"), "{}", String::from_utf8_lossy(&raw));
    // With the token, a stranger may uninstall the key.
    let (code, _, body) = call(STRANGER, a, "POST", "/api/v1/upk", &bearer(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert!(product(&client).await.is_null());
    // The token is neither on the command line nor in the log.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", client.daemon.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN));
    let log = client.daemon.log();
    assert!(!log.contains(TOKEN), "{log}");
}

/// Slow connections from one machine get only its share of the control API; other
/// machines' requests are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_from_one_source_cannot_hold_the_control_api() {
    let client = spawn("127.0.0.1/32");
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from([127, 0, 4, 1], client.admin).await;
        s.write_all(format!("GET /api/v1/status HTTP/1.1\r\nHost: {}\r\n", client.admin).as_bytes()).await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, _, body) = call(LOCAL, client.admin, "GET", "/api/v1/status", "").await;
    assert_eq!(code, 200, "{body}");
    // The slow ones are closed: at once beyond the per-source share, the rest when their
    // headers do not arrive in time.
    let closes: Vec<_> = slow
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut b = [0u8; 256];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(90), async {
        for c in closes {
            c.await.unwrap();
        }
    })
    .await
    .expect("every slow connection closed by the client daemon");
}

/// slmgr passes a token to a client reached from a non-local address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slmgr_sends_the_token_to_a_client() {
    // The client treats only 127.0.0.9 as local: slmgr (from 127.0.0.1) needs the token.
    let client = spawn("127.0.0.9/32");
    let slmgr = kmslab_test_support::workspace_binary(env!("CARGO_BIN_EXE_kms-client"), "kmslab-slmgr", "slmgr");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&slmgr)
            .arg("--target")
            .arg(client.admin.to_string())
            .args(args)
            .env_remove("KMSLAB_ADMIN_TOKEN")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = run(&["/ckhc"]);
    assert_eq!(code, Some(1), "without the token: {out}");
    let (code, out) = run(&["--admin-token-file", file.to_str().unwrap(), "/ckhc"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["--admin-token", TOKEN, "/dli"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("KMS host caching is disabled"), "{out}");
}

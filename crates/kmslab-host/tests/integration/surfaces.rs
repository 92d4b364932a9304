//! The control surfaces against the real `kms-host` binary (docs/reliability.md, "Threat
//! model"): the admin API refuses cross-site and DNS-rebound requests, takes its token from
//! a file, sends the dashboard's security headers, cannot be starved by slow admin
//! connections, and the KMS listener keeps slots for other machines and closes a peer that
//! never reads. Distinct loopback addresses (127.0.0.x) play distinct machines.
//!
//! `KMSLAB_TEST_KMS_HOST` runs them against another `kms-host` binary (an older build, to
//! see them fail there).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kmslab_core::wire::Message;
use kmslab_runtime::framed::{read_message, write_message};
use kmslab_test_support::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::request;

fn host_binary() -> PathBuf {
    std::env::var_os("KMSLAB_TEST_KMS_HOST").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kms-host")), PathBuf::from)
}

/// A `kms-host` process (killed on drop), its addresses and its log.
pub struct HostProc {
    daemon: Daemon,
    pub kms: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl HostProc {
    /// Starts `kms-host` on 127.0.0.1 with `args`; with `nofile`, under `ulimit -n NOFILE`
    /// (soft and hard) through `sh`.
    pub fn start(args: &[&str], env: &[(&str, &str)], nofile: Option<u32>) -> HostProc {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(host_binary());
                c
            }
            None => Command::new(host_binary()),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--no-dns-publish"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("KMSLAB_ADMIN_TOKEN")
            .envs(env.iter().copied());
        let daemon = Daemon::spawn(cmd, &["kms", "admin"]);
        HostProc { kms: daemon.addr("kms"), admin: daemon.addr("admin"), daemon, _dir: dir }
    }

    pub fn log_text(&self) -> String {
        self.daemon.log()
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}

pub async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(source), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// An HTTP answer: status, header block (lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `head` (the request line and headers, without the final blank line) and `body`
/// from `source`; `Content-Length` and `Connection: close` are added.
pub async fn raw_http(source: [u8; 4], to: SocketAddr, head: &str, body: &str) -> Answer {
    let mut s = connect_from(source, to).await;
    let text = format!("{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await.expect("an answer in time").unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

const LOCAL: [u8; 4] = [127, 0, 0, 1];
const STRANGER: [u8; 4] = [127, 0, 0, 3];

async fn get(to: SocketAddr, path: &str) -> Answer {
    raw_http(LOCAL, to, &format!("GET {path} HTTP/1.1\r\nHost: {to}"), "").await
}

async fn activation_interval(admin: SocketAddr) -> u64 {
    let a = get(admin, "/api/v1/status").await;
    assert_eq!(a.status, 200, "{a:?}");
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    v["settings"]["activation_interval"].as_u64().unwrap_or_else(|| panic!("no activation interval in {a:?}"))
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

async fn metrics(admin: SocketAddr) -> String {
    let a = get(admin, "/metrics").await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

/// A page on another site (or a rebound name) cannot change or read the host; slmgr and
/// a same-origin request still can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_cross_site_and_rebound_requests() {
    let host = HostProc::start(&["--admin-host", "kms1.lab.test"], &[], None);
    let a = host.admin;
    let settings = "POST /api/v1/settings HTTP/1.1";
    let change = r#"{"activation_interval":60}"#;
    // (what, request head, expected status)
    let refused: &[(&str, String, u16)] = &[
        ("a text/plain form post (no preflight)", format!("{settings}\r\nHost: {a}\r\nContent-Type: text/plain"), 415),
        ("no content type", format!("{settings}\r\nHost: {a}"), 415),
        ("a foreign Origin", format!("{settings}\r\nHost: {a}\r\nContent-Type: application/json\r\nOrigin: http://evil.example"), 403),
        ("Origin null", format!("{settings}\r\nHost: {a}\r\nContent-Type: application/json\r\nOrigin: null"), 403),
        ("a foreign Referer", format!("{settings}\r\nHost: {a}\r\nContent-Type: application/json\r\nReferer: http://evil.example/x"), 403),
        (
            "Sec-Fetch-Site cross-site",
            format!("{settings}\r\nHost: {a}\r\nContent-Type: application/json\r\nSec-Fetch-Site: cross-site"),
            403,
        ),
        (
            "a rebound name",
            format!(
                "{settings}\r\nHost: evil.example:{}\r\nContent-Type: application/json\r\nOrigin: http://evil.example:{}",
                a.port(),
                a.port()
            ),
            421,
        ),
    ];
    for (what, head, expected) in refused {
        let answer = raw_http(LOCAL, a, head, change).await;
        assert_eq!(answer.status, *expected, "{what}: {answer:?}");
        assert!(!answer.head.contains("access-control-allow"), "{what}: no CORS answer: {answer:?}");
    }
    assert_eq!(activation_interval(a).await, 120, "nothing was changed");
    // A rebound name cannot read either; a CORS preflight gets no CORS answer.
    let answer = raw_http(LOCAL, a, &format!("GET /api/v1/status HTTP/1.1\r\nHost: evil.example:{}", a.port()), "").await;
    assert_eq!(answer.status, 421, "{answer:?}");
    assert!(answer.body.contains("--admin-host"), "{answer:?}");
    let preflight = format!(
        "OPTIONS /api/v1/settings HTTP/1.1\r\nHost: {a}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type"
    );
    let answer = raw_http(LOCAL, a, &preflight, "").await;
    assert!(!(200..300).contains(&answer.status) && !answer.head.contains("access-control-allow"), "{answer:?}");

    // What is not cross-site still works: same-origin JSON, a configured name, localhost.
    let same_origin =
        format!("{settings}\r\nHost: {a}\r\nContent-Type: application/json\r\nOrigin: http://{a}\r\nSec-Fetch-Site: same-origin");
    assert_eq!(raw_http(LOCAL, a, &same_origin, change).await.status, 200);
    assert_eq!(activation_interval(a).await, 60);
    for name in ["kms1.lab.test", "localhost", "KMS1.Lab.Test."] {
        let answer = raw_http(LOCAL, a, &format!("GET /api/v1/status HTTP/1.1\r\nHost: {name}:{}", a.port()), "").await;
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
    }
    // slmgr, with a target given by name.
    let (code, out, err) = slmgr(&[&format!("localhost:{}", a.port()), "/sai", "90"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(activation_interval(a).await, 90);
}

/// The slmgr binary of this workspace (another package's binary: built on first use).
fn slmgr_path() -> PathBuf {
    kmslab_test_support::workspace_binary(env!("CARGO_BIN_EXE_kms-host"), "kmslab-slmgr", "slmgr")
}

/// `slmgr --target TARGET ARGS...` (the first element is the target).
async fn slmgr(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(slmgr_path());
    cmd.arg("--target").args(args).env_remove("KMSLAB_ADMIN_TOKEN");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The token can come from a file or the environment, so that it is not in `ps`; only the
/// exact token works (no prefix, no extension), and it is never logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_comes_from_a_file_or_the_environment_and_is_never_logged() {
    const TOKEN: &str = "lab-token-7f3a9c2e51d04b8a";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = HostProc::start(
        &["--admin-local-network", "127.0.0.1/32", "--admin-token-file", file.to_str().unwrap(), "--log-format", "json"],
        &[("RUST_LOG", "debug")],
        None,
    );
    let from_env = HostProc::start(&["--admin-local-network", "127.0.0.1/32"], &[("KMSLAB_ADMIN_TOKEN", TOKEN)], None);
    for host in [&from_file, &from_env] {
        let a = host.admin;
        let post = |token: String| {
            format!("POST /api/v1/settings HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}")
        };
        let change = r#"{"renewal_interval":1440}"#;
        for wrong in [String::new(), TOKEN[..TOKEN.len() - 1].to_owned(), format!("{TOKEN}x"), TOKEN.to_uppercase()] {
            assert_eq!(raw_http(STRANGER, a, &post(wrong.clone()), change).await.status, 401, "{wrong:?}");
        }
        assert_eq!(raw_http(STRANGER, a, &post(TOKEN.into()), change).await.status, 200);
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", host.pid())).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN), "the token is not on the command line");
        assert!(!host.log_text().contains(TOKEN), "the token is never logged:\n{}", host.log_text());
    }
    // A token file that holds no token is refused at start, naming the flag, not the value.
    std::fs::write(&file, "two words\n").unwrap();
    let out = Command::new(host_binary()).args(["--admin-token-file", file.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--admin-token-file") && !err.contains("two words") && err.lines().count() == 1, "{err}");
}

/// Every dashboard answer carries a CSP that forbids framing and any script but the page's
/// own, `X-Frame-Options: DENY` and `nosniff`, and the dashboard still works under it in
/// Chromium (no CSP violation reported, the auto-refresh script runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_answers_carry_csp_frame_and_nosniff_headers() {
    let host = HostProc::start(&[], &[], None);
    for path in ["/", "/clients", "/reports/02A", "/events", "/alerts", "/api/v1/status", "/metrics"] {
        let a = get(host.admin, path).await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        let csp =
            a.head.lines().find_map(|l| l.strip_prefix("content-security-policy: ")).unwrap_or_else(|| panic!("{path}: no CSP: {a:?}"));
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "script-src 'sha256-", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive:?}");
        }
        assert!(a.head.contains("\r\nx-frame-options: deny"), "{path}: {a:?}");
        assert!(a.head.contains("\r\nx-content-type-options: nosniff"), "{path}: {a:?}");
    }
    let Some(browser) = ["chromium", "chromium-browser"].iter().map(|b| Path::new("/usr/bin").join(b)).find(|p| p.is_file()) else {
        panic!("chromium is needed (apt-get install chromium)");
    };
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", host.admin);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("90")
            .arg(browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=3000", "--dump-dom", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (dom, log) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && dom.contains("Current count per counted group"), "{log}");
    assert!(!log.contains("Content Security Policy"), "the dashboard violates its own CSP:\n{log}");
}

/// 300 admin connections that send half a header and wait, on a host limited to 256 open
/// files: KMS requests are still answered, the slow connections are closed at the
/// header-read timeout, and one source gets only its share of admin connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_admin_connections_cannot_starve_the_kms_listener() {
    // This process holds 300+ sockets itself.
    assert!(kmslab_runtime::fdlimit::raise_nofile_limit() >= 1024, "raise `ulimit -n` to at least 1024 for this test");
    let host = HostProc::start(&[], &[], Some(256));
    let half = format!("GET /api/v1/status HTTP/1.1\r\nHost: {}\r\nUser-Agent: slow", host.admin);
    let mut slow = Vec::new();
    // 30 machines with 10 slow connections each.
    for machine in 0..30u8 {
        for _ in 0..10 {
            let mut s = connect_from([127, 0, 1, 10 + machine], host.admin).await;
            // The kernel completes the handshake even when the host does not accept: the
            // write lands in the socket buffer either way.
            s.write_all(half.as_bytes()).await.unwrap();
            slow.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // KMS requests from other machines are answered while the slow connections hold.
    for i in 0..5u8 {
        let mut s = connect_from([127, 0, 2, 1 + i], host.kms).await;
        let (mut rbuf, mut wbuf) = (Vec::new(), Vec::new());
        write_message(&mut s, &Message::Request(request("win7-enterprise")), &mut wbuf).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(15), read_message(&mut s, &mut rbuf))
            .await
            .unwrap_or_else(|_| panic!("KMS request {i} not answered while 300 slow admin connections hold"))
            .unwrap();
        assert!(matches!(answer, Some(Message::Response(_))), "{answer:?}");
    }
    // The host closes the slow connections (headers not sent in time), the ones it
    // accepted first, then those that waited in the backlog; all within a minute.
    let closes = slow.into_iter().map(|mut s| {
        tokio::spawn(async move {
            let mut b = [0u8; 512];
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
    });
    let closes: Vec<_> = closes.collect();
    tokio::time::timeout(Duration::from_secs(120), async {
        for c in closes {
            c.await.unwrap();
        }
    })
    .await
    .expect("every slow admin connection closed by the host");
    // The admin API answers again, and counted what it closed.
    let m = metrics(host.admin).await;
    let timeouts = metric(&m, "kmslab_host_admin_refused_connections_total{reason=\"header_timeout\"}").unwrap();
    assert!(timeouts >= 290, "header timeouts counted: {timeouts}");

    // One source holds at most its share: 40 connections from one machine, 16 kept.
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = connect_from([127, 0, 3, 1], host.admin).await;
        s.write_all(half.as_bytes()).await.unwrap();
        held.push(s);
    }
    let mut refused = 0;
    for _ in 0..100 {
        refused = metric(&metrics(host.admin).await, "kmslab_host_admin_refused_connections_total{reason=\"per_source\"}").unwrap();
        if refused >= 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, 24, "40 connections from one source, 16 admitted");
    assert!(host.log_text().contains("--max-connections lowered to fit the open-files limit"), "{}", host.log_text());
}

/// One machine holding silent connections gets only its share of the KMS slots: another
/// machine is still served, and the refusals are counted on /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_hold_every_kms_slot() {
    let host = HostProc::start(&["--max-connections", "40"], &[], None);
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(connect_from([127, 0, 0, 2], host.kms).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut s = connect_from(STRANGER, host.kms).await;
    let (mut rbuf, mut wbuf) = (Vec::new(), Vec::new());
    write_message(&mut s, &Message::Request(request("win7-enterprise")), &mut wbuf).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(15), read_message(&mut s, &mut rbuf))
        .await
        .expect("another machine is served while one holds 40 silent connections")
        .unwrap();
    assert!(matches!(answer, Some(Message::Response(_))), "{answer:?}");
    let mut refused = 0;
    for _ in 0..100 {
        refused = metric(&metrics(host.admin).await, "kmslab_host_refused_connections_total{reason=\"per_source\"}").unwrap_or(0);
        if refused >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, 20, "the default share is half of --max-connections");
    assert_eq!(host.log_text().matches("--max-connections-per-source connections").count(), 1, "logged once a minute per source");
    drop(silent);

    // The flag sets the share.
    let host = HostProc::start(&["--max-connections", "40", "--max-connections-per-source", "5"], &[], None);
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect_from([127, 0, 0, 2], host.kms).await);
    }
    let mut refused = 0;
    for _ in 0..100 {
        refused = metric(&metrics(host.admin).await, "kmslab_host_refused_connections_total{reason=\"per_source\"}").unwrap_or(0);
        if refused >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, 3);
}

/// A peer that pipelines requests and never reads: the host's write cannot finish; the
/// idle timeout covers it, the connection is closed, counted as failed and logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_closed_at_the_idle_timeout() {
    // Rate-limited answers (error frames) keep the registry out of this test.
    let host = HostProc::start(&["--idle-timeout", "2", "--rate-limit", "0.01,1"], &[], None);
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(STRANGER), 0)).unwrap();
    let mut s = socket.connect(host.kms).await.unwrap();
    let frame = kmslab_core::wire::encode_to_vec(&Message::Request(request("win7-enterprise"))).unwrap();
    let batch: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 100).collect();
    // Write until the host stops reading (its own write is stuck) for 3 s, or it closes.
    let mut sent = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.write_all(&batch)).await {
            Ok(Ok(())) => sent += 100,
            Ok(Err(_)) | Err(_) => break,
        }
        assert!(sent < 5_000_000, "the host kept reading: it never blocked");
    }
    let before_failed = 0; // a fresh host
    let mut closed = false;
    for _ in 0..300 {
        let m = metrics(host.admin).await;
        if metric(&m, "kmslab_host_open_connections") == Some(0) {
            closed = true;
            assert_eq!(metric(&m, "kmslab_host_write_timeouts_total"), Some(1), "{m}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed, "the connection of a peer that never reads was closed (sent {sent} requests)");
    let status = get(host.admin, "/api/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert!(v["counters"]["failed"].as_u64().unwrap() > before_failed, "counted as failed: {v}");
    assert_eq!(host.log_text().matches("does not read its answers").count(), 1, "logged once");
}

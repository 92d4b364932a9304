//! The real `kms-client` binary against what must not get through: a recorded `--psk`
//! answer replayed by a proxy while the host is down, and state files it must refuse
//! before it says it is listening.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmslab_client::config::Timeouts;
use kmslab_client::net::Net;
use kmslab_core::activator::HostOutcome;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::wire::{self, FrameKey, HEADER_LEN};
use kmslab_core::{HResult, Uuid};
use kmslab_dns::DnsServerChoice;
use kmslab_test_support::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{http, win7_request, write_state};

const PSK: &str = "integrity-test-psk-0123456789abcdef";

/// Reads one whole frame as raw bytes (header, body, nonce, MAC); `None` on a clean close.
async fn read_raw_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; HEADER_LEN];
    stream.read_exact(&mut buf).await.ok()?;
    let len = wire::decode_header(&buf).ok()?.frame_len();
    buf.resize(len, 0);
    stream.read_exact(&mut buf[HEADER_LEN..]).await.ok()?;
    Some(buf)
}

/// A man in the middle: forwards to the host and records the host's last answer, or
/// (once `replay` is set) answers every request with that recorded answer.
async fn proxy(listener: TcpListener, host: SocketAddr, recorded: Arc<Mutex<Option<Vec<u8>>>>, replay: Arc<Mutex<bool>>) {
    while let Ok((mut client, _)) = listener.accept().await {
        let (recorded, replay) = (recorded.clone(), replay.clone());
        tokio::spawn(async move {
            while let Some(request) = read_raw_frame(&mut client).await {
                let answer = if *replay.lock().unwrap() {
                    recorded.lock().unwrap().clone()
                } else {
                    let Ok(mut upstream) = TcpStream::connect(host).await else { return };
                    upstream.write_all(&request).await.unwrap();
                    let answer = read_raw_frame(&mut upstream).await;
                    *recorded.lock().unwrap() = answer.clone();
                    answer
                };
                let Some(answer) = answer else { return };
                if client.write_all(&answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn ato(admin: SocketAddr) -> serde_json::Value {
    let (code, body) = http(admin, "POST", "/api/v1/ato", Some(serde_json::json!({}))).await;
    assert!(code == 200 || code == 502 || code == 503, "{code} {body}");
    body
}

fn client_command(args: &[&str], state_dir: &Path) -> Command {
    let mut c = kmslab_test_support::kms_client(env!("CARGO_BIN_EXE_kms-client"), "win7-enterprise", state_dir);
    c.args(args).env("RUST_LOG", "info");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_psk_answer_does_not_activate_the_client_while_the_host_is_down() {
    let key = FrameKey::from_file_contents(PSK.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let psk_file = kmslab_test_support::psk_file(dir.path(), "lab.psk", PSK);

    // The real host with the key, 24 other machines already counted.
    let mut config = kmslab_host::HostConfig::with_data_dir(dir.path().join("host"));
    config.psk = Some(key.clone());
    config.host_key_groups = vec!["kms-c".into()];
    let kms_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_addr = kms_listener.local_addr().unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let host = tokio::spawn(async move { kmslab_host::run(vec![kms_listener], admin_listener, config, token).await.unwrap() });
    let timeouts = Timeouts { connect: Duration::from_secs(5), response: Duration::from_secs(10), dns: Duration::from_secs(1) };
    let net = Net::new(DnsServerChoice::System, timeouts).with_psk(Some(key.clone()));
    let target = HostAddr::new("127.0.0.1", host_addr.port());
    let mut counted = 0;
    for _ in 0..400 {
        match net.send(&target, win7_request(Uuid::new_v4(), "other-machine")).await {
            HostOutcome::Response(_) => counted += 1,
            HostOutcome::Unreachable(HResult::HOST_UNREACHABLE) => tokio::time::sleep(Duration::from_millis(25)).await,
            other => panic!("{other:?}"),
        }
        if counted == 24 {
            break;
        }
    }
    assert_eq!(counted, 24);

    // The client reaches the host through the proxy, which records the answer.
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy_listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(None));
    let replay = Arc::new(Mutex::new(false));
    tokio::spawn(proxy(proxy_listener, host_addr, recorded.clone(), replay.clone()));
    let state = dir.path().join("client");
    let kms = proxy_addr.to_string();
    let client = Daemon::spawn(client_command(&["--kms", &kms, "--psk", psk_file.to_str().unwrap()], &state), &["admin"]);
    let admin = client.addr("admin");
    let first = ato(admin).await;
    assert_eq!(first["hresult"], "0x00000000", "{first}");
    assert_eq!(first["status"], "licensed", "{first}");
    assert!(recorded.lock().unwrap().is_some());

    let valid_until = http(admin, "GET", "/api/v1/status", None).await.1["valid_until"].clone();

    // The host goes down; the proxy replays the recorded (validly authenticated) answer.
    shutdown.cancel();
    host.await.unwrap();
    *replay.lock().unwrap() = true;
    // Client times have millisecond resolution: make sure the new request's differs.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let replayed = ato(admin).await;
    // The only host failed (0xA04B0002 for the answer, so no host could be contacted).
    assert_eq!(replayed["hresult"], HResult::NO_HOST_AVAILABLE.to_string(), "a replayed answer is not believed: {replayed}");
    let status = http(admin, "GET", "/api/v1/status", None).await.1;
    assert_eq!(status["valid_until"], valid_until, "the replay renewed nothing: {status}");
    let logged = client.log();
    assert!(logged.contains("replayed answer"), "{logged}");
}

/// A client that must refuse to start: exit code, stdout and its log.
fn start_refused(state_dir: &Path) -> (i32, String, String) {
    let mut client = Daemon::start(client_command(&["--kms", "127.0.0.1:9"], state_dir));
    let status = client.wait_exit(Duration::from_secs(30)).expect("kms-client exits within 30 s (it went on running)");
    let stdout: String = client.stdout().iter().map(|l| format!("{l}\n")).collect();
    (status.code().unwrap_or(-1), stdout, client.log())
}

#[test]
fn a_state_file_with_a_nil_cmid_is_refused_before_the_client_says_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), |s| s.cmid = Uuid::nil());
    let (code, stdout, stderr) = start_refused(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("state.json") && last.contains("nil UUID"), "{stderr}");
    assert_eq!(stderr.matches("nil UUID").count(), 1, "named once:\n{stderr}");
}

#[test]
fn an_unreadable_state_file_stops_the_client_before_it_says_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), b"{\"format\": 1, \"prod").unwrap();
    let (code, stdout, stderr) = start_refused(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(!stdout.contains("listening on"), "a client that cannot run never says it listens: {stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("kms-client: state file") && last.contains("is invalid"), "{stderr}");
}

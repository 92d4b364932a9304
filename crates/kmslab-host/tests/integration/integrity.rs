//! What the real `kms-host` binary does with a damaged registry (refuses to start, says so
//! in one line, never looks ready, `--reset-registry` moves it aside), with client times
//! at the ends of `i64`, and with machine names that try to forge log lines.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kmslab_core::HResult;
use kmslab_core::Timestamp;
use kmslab_test_support::Daemon;

use crate::support::*;

fn host_command(data_dir: &Path, extra: &[&str]) -> Command {
    let mut c = kmslab_test_support::kms_host(env!("CARGO_BIN_EXE_kms-host"), data_dir);
    c.arg("--no-dns-publish").args(extra).env("RUST_LOG", "info").env_remove("KMSLAB_LOG_FORMAT");
    c
}

/// A host that must refuse to start: its exit code, stdout and stderr.
fn start_refused(data_dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut host = Daemon::start(host_command(data_dir, extra));
    // Exit first (a host that serves instead is killed at the deadline), then read what it
    // printed.
    let status = host.wait_exit(Duration::from_secs(60)).expect("kms-host exits (it went on serving)");
    let stdout: String = host.stdout().iter().map(|l| format!("{l}\n")).collect();
    (status.code().unwrap_or(-1), stdout, host.log())
}

/// A running host binary, killed on drop.
struct RunningHost {
    daemon: Daemon,
    kms: SocketAddr,
    admin: SocketAddr,
}

impl RunningHost {
    fn start(data_dir: &Path, extra: &[&str]) -> RunningHost {
        let daemon = Daemon::spawn(host_command(data_dir, extra), &["kms", "admin"]);
        RunningHost { kms: daemon.addr("kms"), admin: daemon.addr("admin"), daemon }
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    /// SIGTERM and wait: the registry is checkpointed and closed.
    fn stop(mut self) {
        let status = self.daemon.terminate(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{}", self.log());
    }
}

fn assert_refused_as_damaged(data: &Path, what: &str) {
    let registry = data.join("registry.sqlite");
    let (code, stdout, stderr) = start_refused(data, &[]);
    assert_eq!(code, 1, "{what}: a damaged registry stops the host\n{stderr}");
    assert!(!stdout.contains("listening on"), "{what}: a host that cannot serve never says it listens: {stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("kms-host: registry "), "{what}: {stderr}");
    assert!(last.contains(&registry.display().to_string()), "{what}: the line names the file: {last}");
    assert!(last.contains("damaged") && last.contains("--reset-registry"), "{what}: the line says what to do: {last}");
    let lines_naming_it = stderr.lines().filter(|l| l.contains("damaged")).count();
    assert_eq!(lines_naming_it, 1, "{what}: one line, the cause named once:\n{stderr}");
    assert!(!stderr.contains("kms-host running"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_length_registry_is_refused_and_reset_registry_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let registry = data.join("registry.sqlite");
    std::fs::File::create(&registry).unwrap();
    assert_refused_as_damaged(&data, "zero-length file");
    // Reading the `/sprt` port (done before binding when --listen is not given) does not
    // write a fresh schema into it either.
    assert_eq!(kmslab_host::stored_port(&kmslab_host::HostConfig::with_data_dir(&data)), None);
    assert_eq!(std::fs::metadata(&registry).unwrap().len(), 0, "the damaged file is left as it was");

    // --reset-registry: moved aside with a timestamped name, a fresh registry serves.
    let host = RunningHost::start(&data, &["--reset-registry"]);
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("registry.sqlite.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(host.log().contains("moved aside"), "{}", host.log());
    host.stop();

    // --reset-registry on a sound registry keeps it (same ePID, same clients).
    let host = RunningHost::start(&data, &[]);
    let epid = get_json(host.admin, "/api/v1/status").await["epid"].clone();
    host.stop();
    let host = RunningHost::start(&data, &["--reset-registry"]);
    let status = get_json(host.admin, "/api/v1/status").await;
    assert_eq!(status["epid"], epid);
    assert_eq!(status["counters"]["total"], 1);
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_with_corrupt_pages_is_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A real registry with a few hundred clients, closed cleanly (its WAL checkpointed).
    let host = RunningHost::start(&data, &[]);
    let mut conn = KmsConn::connect(host.kms).await;
    for _ in 0..300 {
        let mut req = request("win7-enterprise");
        req.machine_name = format!("corrupt-pages-{}", req.cmid.simple());
        response(conn.ask(&req).await);
    }
    drop(conn);
    host.stop();
    let registry = data.join("registry.sqlite");
    let len = std::fs::metadata(&registry).unwrap().len();
    assert!(len > 16 * 4096, "registry of {len} bytes");
    // Garbage over pages in the middle (not the header page): the file still opens.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&registry).unwrap();
        f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
        f.write_all(&vec![0xA5; 3 * 4096]).unwrap();
        f.sync_all().unwrap();
    }
    assert_refused_as_damaged(&data, "corrupt pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_lost_its_epid_is_refused_rather_than_given_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = RunningHost::start(&data, &[]);
    response(ask_once(host.kms, &request("win7-enterprise")).await);
    host.stop();
    let registry = data.join("registry.sqlite");
    let status = Command::new("sqlite3").arg(&registry).arg("DELETE FROM host_identity;").status();
    assert!(status.is_ok_and(|s| s.success()), "this test needs the sqlite3 command-line tool (Debian package sqlite3)");
    assert_refused_as_damaged(&data, "ePID lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_times_at_the_ends_of_i64_are_refused_as_clock_skew_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let host = RunningHost::start(&dir.path().join("data"), &[]);
    for ms in [i64::MIN, i64::MIN + 1, i64::MIN + 4 * 3_600_000, i64::MAX, i64::MAX - 1, 0] {
        let mut req = request("win7-enterprise");
        req.client_time = Timestamp::from_unix_ms(ms);
        let mut conn = KmsConn::connect(host.kms).await;
        let refused = error_frame(conn.ask(&req).await);
        assert_eq!(refused.hresult, HResult::INVALID_TIMESTAMP, "client time {ms}: {refused:?}");
    }
    let status = get_json(host.admin, "/api/v1/status").await;
    let windows = status["counts"].as_array().unwrap().iter().find(|c| c["group"] == "windows").unwrap().clone();
    assert_eq!(windows["count"], 0, "{windows}");
    assert_eq!(status["counters"]["failed"], 6);
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_names_cannot_forge_text_log_lines_or_send_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let host = RunningHost::start(&dir.path().join("data"), &[]);
    let mut req = request("win7-enterprise");
    req.machine_name = "pc\nFORGED ERROR kms-host: all good\r\u{1b}[2J\u{7}".into();
    response(ask_once(host.kms, &req).await);
    // The request's 12290 line is written before the answer; give the writer a moment.
    let mut log = String::new();
    for _ in 0..100 {
        log = host.log();
        if log.contains("KMS request received") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(log.contains("KMS request received"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "a machine name started a log line:\n{log}");
    assert!(!log.contains("\u{1b}[2J") && !log.contains('\r') && !log.contains('\u{7}'), "raw control bytes in the log:\n{log:?}");
    assert!(log.contains(r"pc\nFORGED ERROR kms-host: all good\r\x1b[2J\x07"), "the name is there, escaped:\n{log}");
    host.stop();
}

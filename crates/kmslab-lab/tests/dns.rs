//! `kmslab dns` as the real binary: it prints its address and key, accepts updates signed
//! with that key only, and keeps records and key across a restart on the same data dir.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kmslab_dns::{PublishError, PublishZone, Publisher, PublisherConfig, TsigKey};

/// A running `kmslab dns`, killed by its PID if a test fails before stopping it.
struct LabDns {
    child: Child,
    addr: SocketAddr,
    key: Option<TsigKey>,
}

impl LabDns {
    fn start(args: &[&str]) -> LabDns {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kmslab"))
            .arg("dns")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first: String = lines.recv_timeout(Duration::from_secs(20)).expect("a `listening on dns` line");
        let addr = first.strip_prefix("listening on dns ").unwrap_or_else(|| panic!("unexpected first line {first:?}")).parse().unwrap();
        let key = lines
            .recv_timeout(Duration::from_millis(500))
            .ok()
            .map(|line| line.strip_prefix("tsig-key ").unwrap_or_else(|| panic!("unexpected second line {line:?}")).parse().unwrap());
        LabDns { child, addr, key }
    }

    /// SIGTERM by PID, then the exit status must be success.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "kmslab dns exited with {exit}");
    }
}

impl Drop for LabDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publisher(server: SocketAddr, hostname: &str, key: TsigKey) -> Publisher {
    Publisher::new(PublisherConfig {
        server,
        hostname: hostname.to_owned(),
        port: 1688,
        ttl: 60,
        tsig: Some(key),
        address: None,
        timeout: Duration::from_secs(3),
    })
    .unwrap()
}

fn dig_srv(server: SocketAddr, zone: &str) -> Vec<String> {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=1", "+tries=2", "+short", "SRV", &format!("_vlmcs._tcp.{zone}")])
        .output()
        .expect("dig (bind9-dnsutils) is installed");
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn zone() -> PublishZone {
    "lab.test".parse().unwrap()
}

#[tokio::test]
async fn kmslab_dns_prints_its_key_accepts_only_it_and_keeps_records_and_key_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let dns = LabDns::start(&["--zone", "lab.test", "--listen", "127.0.0.1:0", "--data-dir", data_dir]);
    let key = dns.key.clone().expect("a generated key is printed");
    publisher(dns.addr, "kms1.lab.test", key.clone()).publish(&zone()).await.unwrap();
    assert_eq!(dig_srv(dns.addr, "lab.test"), ["0 0 1688 kms1.lab.test."]);

    // Another key of the same name is refused as an authentication failure.
    let wrong = TsigKey::generate(&key.name).unwrap();
    let error = publisher(dns.addr, "kms9.lab.test", wrong).publish(&zone()).await.unwrap_err();
    assert!(matches!(error, PublishError::BadSignature { .. }), "{error}");

    let addr = dns.addr;
    dns.stop();
    let dns = LabDns::start(&["--zone", "lab.test", "--listen", &addr.to_string(), "--data-dir", data_dir]);
    assert_eq!(dns.key.as_ref(), Some(&key), "the key saved in --data-dir is reused");
    assert_eq!(dig_srv(addr, "lab.test"), ["0 0 1688 kms1.lab.test."], "records survive a restart");
    publisher(addr, "kms2.lab.test", key).publish(&zone()).await.unwrap();
    assert_eq!(dig_srv(addr, "lab.test"), ["0 0 1688 kms1.lab.test.", "0 0 1688 kms2.lab.test."]);
    dns.stop();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = Path::new(data_dir).join("tsig-key").metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the saved key is readable by its owner only");
    }
}

#[tokio::test]
async fn a_given_key_is_used_and_not_printed() {
    let key = TsigKey::generate("fleet-key").unwrap();
    let dns = LabDns::start(&["--zone", "lab.test", "--listen", "127.0.0.1:0", "--tsig-key", &key.to_string()]);
    assert!(dns.key.is_none(), "a key given with --tsig-key is not printed");
    publisher(dns.addr, "kms1.lab.test", key).publish(&zone()).await.unwrap();
    assert_eq!(dig_srv(dns.addr, "lab.test"), ["0 0 1688 kms1.lab.test."]);
    dns.stop();
}

#[test]
fn bad_usage_exits_2_naming_the_flag() {
    let check = |args: &[&str], needle: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_kmslab")).arg("dns").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr} should name {needle}");
    };
    check(&["--zone", "lab.test", "--listen", "127.0.0.1:0", "--tsig-key", "nonsense"], "--tsig-key");
    check(&["--zone", "bad..zone", "--listen", "127.0.0.1:0"], "--zone");
    check(&["--listen", "127.0.0.1:0"], "--zone");
}

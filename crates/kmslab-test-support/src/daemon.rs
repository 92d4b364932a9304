//! A real daemon binary started by a test ([`Daemon`]): it is ready once it printed its
//! `listening on NAME ADDR` lines (waited for within [`READY_DEADLINE`]), its standard
//! output is read to the end by a thread of its own (kept in [`Daemon::stdout`], so the
//! daemon never blocks on a full pipe), its standard error goes to a log file, and it is
//! killed when dropped.
//!
//! [`kms_host`], [`kms_client`] and [`kmslab_up`] give the commands of the daemons on
//! loopback port 0;
//! [`psk_file`] writes a `--psk` key file as the products expect it (owner-only).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a daemon may take to print its `listening on` lines: generous, for a busy
/// machine (a host opens and checks its registry first).
pub const READY_DEADLINE: Duration = Duration::from_secs(120);

/// How long [`Daemon::terminate`] and [`Daemon::wait_exit`] wait for the exit by default.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// A running daemon binary, killed (and reaped) on drop.
#[derive(Debug)]
pub struct Daemon {
    program: String,
    child: Child,
    listening: BTreeMap<String, Vec<SocketAddr>>,
    stdout: Arc<Mutex<Vec<String>>>,
    lines: Mutex<Receiver<String>>,
    reader: Option<JoinHandle<()>>,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Daemon {
    /// Starts `command` (its standard output piped, its standard error into [`Daemon::log`])
    /// and waits until it printed `listening on NAME ADDR` for every name in `names`. Panics,
    /// with the log, when it exits first or does not print them within [`READY_DEADLINE`].
    pub fn spawn(command: Command, names: &[&str]) -> Daemon {
        let mut daemon = Self::start(command);
        daemon.wait_ready(names).unwrap_or_else(|e| panic!("{e}"));
        daemon
    }

    /// Starts `command` without waiting for anything (for a daemon expected to refuse to
    /// start: [`Daemon::wait_exit`], then [`Daemon::stdout`] and [`Daemon::log`]).
    pub fn start(mut command: Command) -> Daemon {
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("daemon.log");
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        let kept = Arc::clone(&stdout);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Daemon { program, child, listening: BTreeMap::new(), stdout, lines: Mutex::new(rx), reader: Some(reader), log, _logs: logs }
    }

    /// Waits until the daemon printed `listening on NAME ADDR` for every name in `names`;
    /// the reason, with its output and log, when it ends first or does not within
    /// [`READY_DEADLINE`].
    pub fn wait_ready(&mut self, names: &[&str]) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        while let Some(missing) = names.iter().find(|n| !self.listening.contains_key(**n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self.lines.lock().unwrap().recv_timeout(left);
            match next {
                Ok(line) => {
                    if let Some((name, addr)) = listening_line(&line) {
                        self.listening.entry(name.to_owned()).or_default().push(addr);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(EXIT_DEADLINE);
                    return Err(format!(
                        "{} ended ({status:?}) before `listening on {missing}`; stdout: {:?}; log:\n{}",
                        self.program,
                        self.stdout(),
                        self.log()
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} did not print `listening on {missing}` within {READY_DEADLINE:?}; stdout: {:?}; log:\n{}",
                        self.program,
                        self.stdout(),
                        self.log()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The first address printed as `listening on NAME`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs(name).first().copied().unwrap_or_else(|| panic!("no `listening on {name}` line was waited for"))
    }

    /// Every address printed as `listening on NAME` before the daemon was ready.
    pub fn addrs(&self, name: &str) -> &[SocketAddr] {
        self.listening.get(name).map_or(&[], Vec::as_slice)
    }

    /// What the daemon printed on its standard output so far, line by line.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Its standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file its standard error goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process itself.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then its exit status (killed and a panic when it does not exit within
    /// `deadline`).
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {} failed", self.child.id());
        self.wait_exit(deadline).unwrap_or_else(|| panic!("no exit within {deadline:?} after SIGTERM; log:\n{}", self.log()))
    }

    /// Its exit status once it exits by itself within `deadline` (with all it printed read
    /// into [`Daemon::stdout`]); `None` (and killed) when it goes on running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= end {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(NAME, ADDR)` of a `listening on NAME ADDR[  (comment)]` line.
pub fn listening_line(line: &str) -> Option<(&str, SocketAddr)> {
    let rest = line.strip_prefix("listening on ")?;
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let addr = words.next()?.parse().ok()?;
    Some((name, addr))
}

/// `kms-host` (the binary at `binary`) on `--listen 127.0.0.1:0 --admin 127.0.0.1:0` with
/// its registry in `data_dir`; ready with `Daemon::spawn(cmd, &["kms", "admin"])`.
pub fn kms_host(binary: impl AsRef<Path>, data_dir: &Path) -> Command {
    let mut c = Command::new(binary.as_ref());
    c.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    c
}

/// `kms-client` (the binary at `binary`) for `--product PRODUCT` with its control API on
/// `--admin 127.0.0.1:0` and its state in `state_dir`; ready with
/// `Daemon::spawn(cmd, &["admin"])`.
pub fn kms_client(binary: impl AsRef<Path>, product: &str, state_dir: &Path) -> Command {
    let mut c = Command::new(binary.as_ref());
    c.args(["--product", product, "--admin", "127.0.0.1:0", "--state-dir"]).arg(state_dir);
    c
}

/// `kmslab up` (the binary at `binary`) with its lab control API on `--control 127.0.0.1:0`,
/// `XDG_RUNTIME_DIR` (where it writes the lab address file) set to `runtime_dir`, and
/// `args`; ready with `Daemon::spawn(cmd, &["lab"])`.
pub fn kmslab_up(binary: impl AsRef<Path>, runtime_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(binary.as_ref());
    c.args(["up", "--control", "127.0.0.1:0"]).args(args).env("XDG_RUNTIME_DIR", runtime_dir);
    c
}

/// Writes `key` (and a line break) as the `--psk` file `dir/NAME`, readable by its owner
/// only (the products warn about a key others can read), and returns its path.
pub fn psk_file(dir: &Path, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// One HTTP/1.1 exchange with an admin API through kmslab's own client (`kmslab-http`):
/// `json` is sent as the body with `Content-Type: application/json` (also when empty, as
/// browsers and slmgr send mutating requests). Generous timeouts: `/api/v1/ato` may wait
/// 90 s for its attempt.
pub fn http(addr: SocketAddr, method: &str, path: &str, json: Option<&str>) -> Result<kmslab_http::Response, kmslab_http::Error> {
    let address = addr.to_string();
    let request = kmslab_http::Request {
        method,
        address: &address,
        path,
        json,
        bearer: None,
        connect_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(180),
    };
    kmslab_http::request(&request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_are_read_with_or_without_a_comment() {
        assert_eq!(listening_line("listening on kms 127.0.0.1:1688"), Some(("kms", "127.0.0.1:1688".parse().unwrap())));
        assert_eq!(
            listening_line("listening on dns 127.0.0.1:53  (zone lab.test, TSIG key k)"),
            Some(("dns", "127.0.0.1:53".parse().unwrap()))
        );
        assert_eq!(listening_line("registry /tmp/x"), None);
        assert_eq!(listening_line("listening on admin nowhere"), None);
    }

    #[test]
    fn a_daemon_that_ends_before_listening_is_reported_with_its_log() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo starting; echo 'no registry' >&2; exit 3"]);
        let mut d = Daemon::start(c);
        let err = d.wait_ready(&["admin"]).unwrap_err();
        assert!(err.contains("before `listening on admin`") && err.contains("no registry") && err.contains("starting"), "{err}");
        assert_eq!(d.wait_exit(EXIT_DEADLINE).and_then(|s| s.code()), Some(3));
        assert_eq!(d.stdout(), ["starting"]);
    }

    #[test]
    fn a_ready_daemon_has_its_addresses_and_is_killed_on_drop() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo 'listening on kms 127.0.0.1:7'; echo 'listening on kms 127.0.0.1:8'; echo 'listening on admin [::1]:9'; exec sleep 600",
        ]);
        let d = Daemon::spawn(c, &["kms", "admin"]);
        assert_eq!(d.addrs("kms"), ["127.0.0.1:7".parse().unwrap(), "127.0.0.1:8".parse().unwrap()]);
        assert_eq!(d.addr("admin"), "[::1]:9".parse().unwrap());
        let pid = d.pid();
        drop(d);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "killed and reaped");
    }
}

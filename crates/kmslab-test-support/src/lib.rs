//! Test helpers shared by kmslab's crates, used only as a dev-dependency: a real BIND9
//! `named` serving test zones on a loopback port ([`Named`]), `dig` as an outside observer
//! ([`dig`], [`dig_srv`], [`dig_status`]), a port free for UDP and TCP ([`free_port`]) and
//! the `--version` check every binary's tests make ([`assert_version_line`]), and the
//! daemons' binaries started on port 0 and waited for ([`daemon`]: [`Daemon`], [`kms_host`],
//! [`kms_client`], [`kmslab_up`], [`psk_file`], and [`http`] to their admin APIs), and a
//! small tmpfs to fill ([`Tmpfs`]).
//!
//! Missing programs fail the test with the install command: tests that use BIND must not
//! pass without it.
#![forbid(unsafe_code)]
// Test helpers wait on real processes (named, binaries) in real time.
#![allow(clippy::disallowed_methods)]

pub mod daemon;

pub use daemon::{Daemon, http, kms_client, kms_host, kmslab_up, psk_file};

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One zone `named` serves as primary.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone name, e.g. `lab.test`.
    pub name: String,
    /// Records after the SOA, NS and `ns` A records every zone gets (zone-file text).
    pub records: String,
    /// The `allow-update` list, e.g. `127.0.0.1;` or `key ddns-key;` (`none;` refuses all).
    pub allow_update: String,
}

impl Zone {
    /// A zone holding `records` that accepts no updates.
    pub fn fixed(name: &str, records: &str) -> Self {
        Zone { name: name.to_owned(), records: records.to_owned(), allow_update: "none;".to_owned() }
    }

    /// An empty zone with this `allow-update` list.
    pub fn updatable(name: &str, allow_update: &str) -> Self {
        Zone { name: name.to_owned(), records: String::new(), allow_update: allow_update.to_owned() }
    }
}

/// A TSIG key named in `allow-update` lists: its name and its hmac-sha256 secret (base64).
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// The key name.
    pub name: String,
    /// The secret, base64.
    pub secret: String,
}

/// Zone whose updates the DNS-update tests' named accepts from 127.0.0.1 unsigned.
pub const IP_ZONE: &str = "ipauth.test";
/// Zone whose updates it accepts only when signed with [`UPDATE_KEY`].
pub const TSIG_ZONE: &str = "tsig.test";
/// Zone that accepts no updates at all.
pub const LOCKED_ZONE: &str = "locked.test";
/// The name of the TSIG key [`TSIG_ZONE`] accepts.
pub const UPDATE_KEY: &str = "ddns-key";

/// named for the DNS-update tests: [`IP_ZONE`], [`TSIG_ZONE`] (key [`UPDATE_KEY`] with
/// this hmac-sha256 `secret`, base64) and [`LOCKED_ZONE`], after `first` zones of the caller.
pub fn named_for_updates(secret: &str, first: Vec<Zone>) -> Named {
    let mut zones = first;
    zones.extend([
        Zone::updatable(IP_ZONE, "127.0.0.1;"),
        Zone::updatable(TSIG_ZONE, &format!("key {UPDATE_KEY};")),
        Zone::updatable(LOCKED_ZONE, "none;"),
    ]);
    Named::start(&zones, &[NamedKey { name: UPDATE_KEY.to_owned(), secret: secret.to_owned() }])
}

/// A `named` process serving test zones; killed (by its own PID) when dropped.
#[derive(Debug)]
pub struct Named {
    /// Where named answers (UDP and TCP).
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Named {
    /// Starts named on a free loopback port with `zones` and `keys`, and waits until it
    /// answers for the first zone. A port taken in between is retried with another one.
    pub fn start(zones: &[Zone], keys: &[NamedKey]) -> Self {
        let named = find_program("named", &["/usr/sbin/named", "/usr/bin/named"]).unwrap_or_else(|| {
            panic!(
                "BIND9 `named` is not installed, so the DNS tests cannot run: \
                 install it with `apt-get install -y bind9 bind9-dnsutils`"
            )
        });
        dig_path();
        let first = &zones.first().expect("named needs a zone").name;
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            write_config(dir.path(), port, zones, keys);
            let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
            let child = Command::new(&named)
                .arg("-c")
                .arg(dir.path().join("named.conf"))
                .args(["-g", "-u", "root"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {}: {error}", named.display()));
            let mut bind = Named { addr: SocketAddr::from(([127, 0, 0, 1], port)), child, dir };
            if bind.wait_until_answering(first) {
                return bind;
            }
            last_log = bind.log();
        }
        panic!("named did not start; its last log:\n{last_log}");
    }

    /// named's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// Polls with dig until named answers the zone's SOA, or it exits, or 15 s pass.
    fn wait_until_answering(&mut self, zone: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return false;
            }
            if dig(self.addr, &["+short", "SOA", zone]).contains(&format!("hostmaster.{zone}.")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        // Killed by its own PID, never by name: other tests run their own named.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16, zones: &[Zone], keys: &[NamedKey]) {
    let dir_text = dir.display();
    let mut config = format!(
        "options {{\n\
         \tdirectory \"{dir_text}\";\n\
         \tpid-file \"{dir_text}/named.pid\";\n\
         \tsession-keyfile \"{dir_text}/session.key\";\n\
         \tmanaged-keys-directory \"{dir_text}\";\n\
         \tlisten-on port {port} {{ 127.0.0.1; }};\n\
         \tlisten-on-v6 {{ none; }};\n\
         \trecursion no;\n\
         \tdnssec-validation no;\n\
         }};\n\
         controls {{ }};\n"
    );
    for key in keys {
        config.push_str(&format!("key \"{}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n", key.name, key.secret));
    }
    for zone in zones {
        let name = &zone.name;
        let text = format!(
            "$TTL 60\n@ IN SOA ns.{name}. hostmaster.{name}. ( 1 3600 600 86400 60 )\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n{}",
            zone.records
        );
        std::fs::write(dir.join(format!("{name}.zone")), text).unwrap();
        config.push_str(&format!(
            "zone \"{name}\" {{ type primary; file \"{dir_text}/{name}.zone\"; allow-update {{ {} }}; }};\n",
            zone.allow_update
        ));
    }
    std::fs::write(dir.join("named.conf"), config).unwrap();
}

/// A loopback port that is free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `name` on the PATH, else the first of `fallbacks` that exists.
pub fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file()));
    from_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|candidate| candidate.is_file()))
}

/// Headless Chromium (Debian's `chromium`), for the tests that load pages as a browser does.
pub fn chromium_path() -> PathBuf {
    find_program("chromium", &["chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("`chromium` not found on PATH: install the Debian package `chromium` (apt-get install -y chromium)"))
}

/// Runs headless Chromium (`browser`, profile in `profile`, a window of `size` "W,H") on
/// `url` with `mode` (`--dump-dom` or `--screenshot=FILE`), within 90 s; its stdout.
pub fn chromium(browser: &Path, profile: &Path, size: &str, mode: &str, url: &str) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--window-size={size}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {mode} {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dig_path() -> PathBuf {
    find_program("dig", &["/usr/bin/dig"]).unwrap_or_else(|| {
        panic!(
            "`dig` is not installed, so the DNS tests cannot check records from the outside: \
             install it with `apt-get install -y bind9-dnsutils`"
        )
    })
}

/// Runs `dig @server ARGS` and returns its standard output.
pub fn dig(server: SocketAddr, args: &[&str]) -> String {
    let output = Command::new(dig_path())
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=1", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The SRV records at `_vlmcs._tcp.<zone>` as dig sees them, as
/// `(priority, weight, port, target)` with the target's trailing dot removed, sorted.
pub fn dig_srv(server: SocketAddr, zone: &str) -> Vec<(u16, u16, u16, String)> {
    dig_srv_with(server, zone, &[])
}

/// Like [`dig_srv`] with extra dig options (e.g. `+tcp`).
pub fn dig_srv_with(server: SocketAddr, zone: &str, options: &[&str]) -> Vec<(u16, u16, u16, String)> {
    let name = format!("_vlmcs._tcp.{zone}");
    let mut args = vec!["+short", "SRV", name.as_str()];
    args.extend_from_slice(options);
    let mut records: Vec<_> = dig(server, &args)
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with(';'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "unexpected dig SRV line {line:?}");
            (fields[0].parse().unwrap(), fields[1].parse().unwrap(), fields[2].parse().unwrap(), fields[3].trim_end_matches('.').to_owned())
        })
        .collect();
    records.sort();
    records
}

/// The status dig reports (`NOERROR`, `NXDOMAIN`, ...) for a query.
pub fn dig_status(server: SocketAddr, record_type: &str, name: &str) -> String {
    let output = dig(server, &[record_type, name]);
    output.split("status: ").nth(1).and_then(|rest| rest.split(',').next()).unwrap_or("NO ANSWER").to_owned()
}

/// An SRV tuple for comparisons with [`dig_srv`].
pub fn srv(priority: u16, weight: u16, port: u16, target: &str) -> (u16, u16, u16, String) {
    (priority, weight, port, target.to_owned())
}

/// Runs `binary --version` and checks its one line: `NAME VERSION (git REVISION)`, the
/// revision 7+ hex digits or `unknown` outside a git checkout.
pub fn assert_version_line(binary: &str, name: &str, version: &str) {
    let out = Command::new(binary).arg("--version").output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let line = String::from_utf8(out.stdout).unwrap();
    let line = line.trim();
    let rest = line.strip_prefix(&format!("{name} ")).unwrap_or_else(|| panic!("{line:?} does not start with the binary name"));
    let (got, revision) = rest.split_once(" (git ").unwrap_or_else(|| panic!("no git revision in {line:?}"));
    assert_eq!(got, version, "{line:?}");
    let revision = revision.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    let is_hex = revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit());
    assert!(is_hex || revision == "unknown", "revision {revision:?} in {line:?}");
}

/// The binary `bin` of another workspace package, next to `sibling` (this package's
/// `env!("CARGO_BIN_EXE_...")`): cargo builds only the tested package's binaries, so the
/// first use in a test process runs `cargo build -p package --bin bin` (a no-op when fresh;
/// cargo does not hold the build lock while tests run).
pub fn workspace_binary(sibling: &str, package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let path = Path::new(sibling).with_file_name(bin);
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.contains(&path) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(Path::new(sibling).parent().unwrap_or(Path::new(".")))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && path.is_file(), "cannot build {bin} at {}", path.display());
        built.push(path.clone());
    }
    path
}

/// A tmpfs of a given size mounted on a fresh directory (a small disk to fill), unmounted on
/// drop. Needs root (or `CAP_SYS_ADMIN`); fails the test with that said otherwise.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=SIZE`, e.g. `4m`).
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&path).output();
        match out {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "this test mounts a small tmpfs as a full disk and needs root (or CAP_SYS_ADMIN): `mount -t tmpfs` failed: {other:?}"
            ),
        }
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

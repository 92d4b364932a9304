//! DNS test support: a real BIND9 `named` on a loopback port and `dig` as an outside observer
//! (the pattern of kmslab-dns's own tests, with the zones the host tests need).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kmslab_dns::TsigKey;

/// Zone whose updates BIND accepts from 127.0.0.1 without a signature.
pub const IP_ZONE: &str = "ipauth.test";
/// Zone whose updates BIND accepts only when signed with `ddns-key`.
pub const TSIG_ZONE: &str = "tsig.test";
/// Zone that accepts no updates at all.
pub const LOCKED_ZONE: &str = "locked.test";
/// A `named` process serving the test zones; killed when dropped.
pub struct Bind {
    /// Where named answers (UDP and TCP).
    pub addr: SocketAddr,
    /// The key the TSIG zone accepts (`ddns-key`).
    pub tsig: TsigKey,
    child: Child,
    dir: tempfile::TempDir,
}

impl Bind {
    /// Starts named on a free loopback port and waits until it answers. Panics, failing
    /// the test, when BIND is not installed: these tests must not pass without it.
    pub fn start() -> Self {
        let named = find_program("named", &["/usr/sbin/named", "/usr/bin/named"]).unwrap_or_else(|| {
            panic!(
                "BIND9 `named` is not installed, so the DNS tests cannot run: \
                     install it with `apt-get install -y bind9 bind9-dnsutils`"
            )
        });
        dig_path();
        let tsig = TsigKey::generate("ddns-key").unwrap();
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            write_config(dir.path(), port, &tsig);
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
            let mut bind = Self { addr: SocketAddr::from(([127, 0, 0, 1], port)), tsig: tsig.clone(), child, dir };
            if bind.wait_until_answering() {
                return bind;
            }
            last_log = std::fs::read_to_string(bind.dir.path().join("named.log")).unwrap_or_default();
        }
        panic!("named did not start; its last log:\n{last_log}");
    }

    /// Polls with dig until named answers for the static zone, or it exits, or 15 s pass.
    fn wait_until_answering(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return false;
            }
            let soa = dig(self.addr, &["+short", "SOA", IP_ZONE]);
            if soa.contains("ns.ipauth.test.") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        // Killed by its own PID, never by name: other tests run their own named.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16, tsig: &TsigKey) {
    let dir_text = dir.display();
    let base64 = tsig.to_string().rsplit(':').next().unwrap().to_owned();
    let soa = |zone: &str| {
        format!(
            "$TTL 60\n@ IN SOA ns.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 60 )\n\
             @ IN NS ns.{zone}.\nns IN A 127.0.0.1\n"
        )
    };
    for zone in [IP_ZONE, TSIG_ZONE, LOCKED_ZONE] {
        std::fs::write(dir.join(format!("{zone}.zone")), soa(zone)).unwrap();
    }
    let zone = |name: &str, allow_update: &str| {
        format!(
            "zone \"{name}\" {{ type primary; file \"{dir_text}/{name}.zone\"; \
             allow-update {{ {allow_update} }}; }};\n"
        )
    };
    let config = format!(
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
         key \"ddns-key\" {{ algorithm hmac-sha256; secret \"{base64}\"; }};\n\
         controls {{ }};\n\
         {}{}{}",
        zone(IP_ZONE, "127.0.0.1;"),
        zone(TSIG_ZONE, "key ddns-key;"),
        zone(LOCKED_ZONE, "none;"),
    );
    std::fs::write(dir.join("named.conf"), config).unwrap();
}

/// A loopback port that is free for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file()));
    from_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|candidate| candidate.is_file()))
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

/// An SRV tuple for comparisons.
pub fn srv(priority: u16, weight: u16, port: u16, target: &str) -> (u16, u16, u16, String) {
    (priority, weight, port, target.to_owned())
}

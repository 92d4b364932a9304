//! MAK activation end to end, against the real binaries: `kmslab activation-service` and
//! `kms-client` processes on port 0, talking kmslab's wire protocol, the admin API and the
//! client's control API over real sockets, with the service's SQLite state on disk; and a
//! `kms-host` whose KMS host key the service blocks (non-genuine), driven with `slmgr`.
// Tests wait on real processes with real-time deadlines.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmslab_test_support::Daemon;
use serde_json::{Value, json};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binaries of this revision besides `kmslab` (`cargo test -p kmslab-lab` builds only
/// `kmslab`), built once: kms-client, kms-host, slmgr.
fn built(bin: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_kmslab")).parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--bin", "kms-client", "-p", "kmslab-client", "--bin", "kms-host", "-p", "kmslab-host"])
            .args(["--bin", "slmgr", "-p", "kmslab-slmgr"])
            .status()
            .unwrap();
        assert!(status.success(), "building kms-client, kms-host and slmgr failed");
        dir
    });
    dir.join(bin)
}

fn kms_client() -> PathBuf {
    built("kms-client")
}

/// One exchange with an admin API: the status and the JSON body (the text as a JSON string
/// when it is not JSON).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let json = (method == "POST").then_some(payload.as_str());
    let answer = kmslab_test_support::http(addr, method, path, json).unwrap_or_else(|e| panic!("{e}"));
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body)))
}

fn kmslab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Generates a keys file; returns the keys in order.
fn generate(dir: &Path, specs: &[&str]) -> Vec<String> {
    let file = dir.join("keys.toml");
    let mut args = vec!["activation-service"];
    for s in specs {
        args.extend(["--generate-mak", s]);
    }
    args.extend(["--out", file.to_str().unwrap()]);
    let (code, out, err) = kmslab(&args);
    assert_eq!(code, 0, "{err}");
    let keys: Vec<String> = out
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!((w.len(), w[0]), (4, "mak"), "{l}");
            assert!(w[1].starts_with("LABM"), "{l}");
            w[1].to_owned()
        })
        .collect();
    assert_eq!(keys.len(), specs.len());
    keys
}

fn service(dir: &Path) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmslab"));
    cmd.args(["activation-service", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--keys"])
        .arg(dir.join("keys.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"));
    Daemon::spawn(cmd, &["activation", "admin"])
}

fn client(service: Option<SocketAddr>, extra: &[&str]) -> Daemon {
    let mut cmd = Command::new(kms_client());
    // A manual host nobody listens on: no DNS, and KMS attempts fail fast.
    cmd.args(["--product", "win7-enterprise", "--admin", "127.0.0.1:0", "--kms", "127.0.0.1:9"]).args(extra);
    if let Some(s) = service {
        cmd.arg("--activation-service").arg(s.to_string());
    }
    Daemon::spawn(cmd, &["admin"])
}

fn ipk(c: &Daemon, key: &str) -> (u16, Value) {
    http(c.addr("admin"), "POST", "/api/v1/ipk", Some(json!({ "key": key })))
}

fn ato(c: &Daemon) -> Value {
    let (status, body) = http(c.addr("admin"), "POST", "/api/v1/ato", Some(json!({})));
    assert_eq!(status, 200, "{body}");
    body
}

fn status(c: &Daemon) -> Value {
    http(c.addr("admin"), "GET", "/api/v1/status", None).1
}

fn count(svc: &Daemon, key: &str) -> Value {
    let (status, body) = http(svc.addr("admin"), "GET", &format!("/api/v1/keys/{key}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits (generously) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mak_counts_refusals_reactivation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["win7-enterprise=2", "win7-professional=5"]);
    let (mak, other_product) = (&keys[0], &keys[1]);
    let svc = service(dir.path());
    let state = dir.path().join("client1");
    let c1 = client(Some(svc.addr("activation")), &["--state-dir", state.to_str().unwrap()]);

    // /ipk MAK: the MAK channel, grace, no KMS.
    let (code, body) = ipk(&c1, mak);
    assert_eq!(code, 200, "{body}");
    let s = status(&c1);
    assert_eq!(s["channel"], "VOLUME_MAK");
    assert!(s["product"]["description"].as_str().unwrap().ends_with("VOLUME_MAK channel"), "{s}");
    assert_eq!(s["product"]["partial_key"], mak[mak.len() - 5..]);
    assert_eq!(s["status"], "initial_grace");

    // /ato: activated for good, one activation used.
    let r = ato(&c1);
    assert_eq!((r["hresult"].as_str(), r["activated"].as_bool()), (Some("0x00000000"), Some(true)), "{r}");
    let s = status(&c1);
    assert_eq!((s["status"].as_str(), s["valid_until"].is_null(), s["next_attempt"].is_null()), (Some("licensed"), true, true), "{s}");
    assert_eq!(s["permanently_activated"], true);
    assert_eq!((count(&svc, mak)["used"].as_u64(), count(&svc, mak)["remaining"].as_u64()), (Some(1), Some(1)));

    // The same installation again: no count. Another machine: the last one.
    assert_eq!(ato(&c1)["hresult"], "0x00000000");
    assert_eq!(count(&svc, mak)["used"], 1);
    let c2 = client(Some(svc.addr("activation")), &[]);
    assert_eq!(ipk(&c2, mak).0, 200);
    assert_eq!(ato(&c2)["hresult"], "0x00000000");
    assert_eq!(count(&svc, mak)["remaining"], 0);

    // Used up: 0xC004C020, the machine stays in grace.
    let c3 = client(Some(svc.addr("activation")), &[]);
    assert_eq!(ipk(&c3, mak).0, 200);
    let r = ato(&c3);
    assert_eq!((r["hresult"].as_str(), r["name"].as_str()), (Some("0xC004C020"), Some("SL_E_CHPA_DMAK_LIMIT_EXCEEDED")), "{r}");
    assert_eq!(status(&c3)["status"], "initial_grace");

    // A MAK for another edition: 0xC004C001. A lab MAK the service does not know: 0xC004F050.
    assert_eq!(ipk(&c3, other_product).0, 200);
    assert_eq!(ato(&c3)["hresult"], "0xC004C001");
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = generate(elsewhere.path(), &["win7-enterprise=1"]).remove(0);
    assert_eq!(ipk(&c3, &stranger).0, 200);
    assert_eq!(ato(&c3)["hresult"], "0xC004F050");
    // Not a product key at all: refused by /ipk itself.
    let (code, body) = ipk(&c3, "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE");
    assert_eq!((code, body["hresult"].as_str()), (400, Some("0xC004F050")), "{body}");

    // The service restarts: its counts survive; adding one lets the third machine in.
    drop(svc);
    let svc = service(dir.path());
    assert_eq!(count(&svc, mak)["used"], 2);
    let (code, out, err) = kmslab(&["activation-service", "add", mak, "1", "--target", &svc.addr("admin").to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{mak} remaining 1 used 2 of 3")), "{out}");
    // The client still points at the old port: restart it against the new one.
    drop(c3);
    let c3 = client(Some(svc.addr("activation")), &[]);
    assert_eq!(ipk(&c3, mak).0, 200);
    assert_eq!(ato(&c3)["hresult"], "0x00000000");

    // Blocked: 0xC004C003 for a new machine; machines already activated stay activated
    // until their next /ato (non-genuine: a_blocked_mak_makes_... below).
    let (code, out, _) = kmslab(&["activation-service", "block", mak, "--target", &svc.addr("admin").to_string()]);
    assert!(code == 0 && out.contains("blocked"), "{out}");
    let c4 = client(Some(svc.addr("activation")), &[]);
    assert_eq!(ipk(&c4, mak).0, 200);
    assert_eq!(ato(&c4)["hresult"], "0xC004C003");
    let (_, out, _) = kmslab(&["activation-service", "count", "--target", &svc.addr("admin").to_string()]);
    assert!(out.contains(&format!("{mak} remaining 0 used 3 of 3 blocked")) && out.contains(other_product.as_str()), "{out}");

    // kms-client restarts: still permanently activated with its MAK.
    drop(c1);
    let c1 = client(Some(svc.addr("activation")), &["--state-dir", state.to_str().unwrap()]);
    let s = status(&c1);
    assert_eq!(
        (s["status"].as_str(), s["channel"].as_str(), s["permanently_activated"].as_bool()),
        (Some("licensed"), Some("VOLUME_MAK"), Some(true))
    );

    // /ipk GVLK: a KMS client again (grace, KMS channel, attempts scheduled).
    assert_eq!(ipk(&c1, "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH").0, 200);
    eventually("the KMS attempt after /ipk GVLK", || status(&c1)["last_result"]["hresult"] == "0xC004F074");
    let s = status(&c1);
    assert_eq!(
        (s["channel"].as_str(), s["status"].as_str(), s["permanently_activated"].as_bool()),
        (Some("VOLUME_KMSCLIENT"), Some("initial_grace"), Some(false))
    );
    assert!(s["product"]["description"].as_str().unwrap().ends_with("VOLUME_KMSCLIENT channel"));
}

#[test]
fn phone_activation_with_a_mistyped_cid_then_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["win7-enterprise=1"]);
    let svc = service(dir.path());
    // No --activation-service: a machine without Internet.
    let c = client(None, &[]);
    assert_eq!(ipk(&c, &keys[0]).0, 200);
    assert_eq!(ato(&c)["hresult"], "0x800706BA");
    let (code, body) = http(c.addr("admin"), "GET", "/api/v1/dti", None);
    assert_eq!(code, 200);
    let iid = body["installation_id"].as_str().unwrap().to_owned();
    assert_eq!(iid.chars().filter(char::is_ascii_digit).count(), 54, "{iid}");

    // The phone call: kmslab activation-service confirm IID.
    let (code, out, err) = kmslab(&["activation-service", "confirm", &iid, "--target", &svc.addr("admin").to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let cid = out.lines().find_map(|l| l.strip_prefix("Confirmation ID: ")).unwrap().to_owned();
    assert_eq!(cid.split('-').count(), 8, "{cid}");
    assert_eq!(count(&svc, &keys[0])["used"], 1);
    // Asking again for the same IID is free.
    let (code, out, _) = kmslab(&["activation-service", "confirm", &iid, "--target", &svc.addr("admin").to_string()]);
    assert!(code == 0 && out.contains(&cid), "{out}");
    assert_eq!(count(&svc, &keys[0])["used"], 1);

    // Mistyped: one digit changed (wrong check digit), one group missing, another CID.
    let mut typo: Vec<char> = cid.chars().collect();
    typo[0] = if typo[0] == '9' { '0' } else { char::from(typo[0] as u8 + 1) };
    let typo: String = typo.into_iter().collect();
    let short = cid[..cid.len() - 7].to_owned();
    let letters = cid.replacen(|c: char| c.is_ascii_digit(), "O", 1);
    for (bad, code) in [(typo.as_str(), "0xC004F04D"), (short.as_str(), "0xC004F02C"), (letters.as_str(), "0xC004F02C")] {
        let (status_code, body) = http(c.addr("admin"), "POST", "/api/v1/atp", Some(json!({ "cid": bad })));
        assert_eq!((status_code, body["hresult"].as_str()), (400, Some(code)), "{bad}: {body}");
    }
    assert_eq!(status(&c)["status"], "initial_grace");

    let (code, body) = http(c.addr("admin"), "POST", "/api/v1/atp", Some(json!({ "cid": cid })));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["activation_id"], status(&c)["product"]["activation_id"]);
    let s = status(&c);
    assert_eq!((s["status"].as_str(), s["permanently_activated"].as_bool()), (Some("licensed"), Some(true)));
}

#[test]
fn an_oem_machine_without_a_slic_marker_fails_kms_and_activates_with_a_mak() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["win7-enterprise=1"]);
    let svc = service(dir.path());
    let c = client(Some(svc.addr("activation")), &["--slic-without-marker"]);
    let r = ato(&c);
    assert_eq!((r["hresult"].as_str(), r["name"].as_str()), (Some("0xC004F035"), Some("SL_E_VL_NOT_WINDOWS_SLP")), "{r}");
    assert!(r["meaning"].as_str().unwrap().contains("could not be activated with a Volume license product key"), "{r}");
    assert_eq!(ipk(&c, &keys[0]).0, 200);
    assert_eq!(ato(&c)["hresult"], "0x00000000");
    assert_eq!(status(&c)["status"], "licensed");
}

#[test]
fn a_bad_keys_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let check = |text: &str, expected: &str| {
        std::fs::write(&keys, text).unwrap();
        let (code, _, err) =
            kmslab(&["activation-service", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--keys", keys.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    };
    check(
        "[[mak]]\nkey = \"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\"\nproducts = [\"win7-enterprise\"]\nactivations = 1\n",
        "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
    );
    let good = generate(dir.path(), &["win7-enterprise=1"]).remove(0);
    check(
        &format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprize\"]\nactivations = 1\n"),
        &format!("[[mak]] key {good}: products: unknown product \"win7-enterprize\""),
    );
    check(&format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprise\"]\nactivations = 1\nlimit = 3\n"), "unknown field `limit`");
    let (code, _, err) = kmslab(&["activation-service", "--generate-mak", "win7-enterprise"]);
    assert!(code == 2 && err.contains("PRODUCT=COUNT"), "{err}");
}

fn vamt(cil: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab")).args(["vamt", "--cil", cil.to_str().unwrap()]).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn vamt_isolated_lab_by_file_direct_and_proxy_activation_and_key_count() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate(dir.path(), &["win7-enterprise=4"]).remove(0);
    let svc = service(dir.path());
    let admin = svc.addr("admin").to_string();

    // The isolated network: two machines that cannot reach the service.
    let (a, b) = (client(None, &["--machine-name", "iso-a"]), client(None, &["--machine-name", "iso-b"]));
    let inside = dir.path().join("inside.cil");
    let (code, out) = vamt(&inside, &["discover", &a.addr("admin").to_string(), &b.addr("admin").to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("iso-a") && out.contains("VOLUME_KMSCLIENT"), "{out}");
    let (code, out) = vamt(&inside, &["install-key", &key]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("VOLUME_MAK").count(), 2, "{out}");

    // A secure export leaves with no names or addresses, comes back with CIDs.
    let carried = dir.path().join("carried.cil");
    let (code, out) = vamt(&inside, &["export", carried.to_str().unwrap(), "--no-pii"]);
    assert!(code == 0 && out.contains("exported 2 computers"), "{out}");
    let text = std::fs::read_to_string(&carried).unwrap();
    assert!(
        text.starts_with("<?xml") && text.contains("NetworkType=\"None\"") && !text.contains("iso-a") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let (code, out) = vamt(&carried, &["acquire-cids", carried.to_str().unwrap(), "--service", &admin]);
    assert!(code == 0 && out.contains("acquired 2 confirmation IDs"), "{out}");
    assert_eq!(count(&svc, &key)["used"], 2);
    let (code, out) = vamt(&inside, &["import", carried.to_str().unwrap()]);
    assert!(code == 0 && out.contains("imported 2 confirmation IDs"), "{out}");
    let (code, out) = vamt(&inside, &["apply-cids"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(" licensed").count(), 2, "{out}");
    for m in [&a, &b] {
        assert_eq!(status(m)["permanently_activated"], true);
    }
    // Acquiring again for the same installations costs nothing.
    let (code, _) = vamt(&inside, &["acquire-cids", inside.to_str().unwrap(), "--service", &admin]);
    assert_eq!(code, 0);
    assert_eq!(count(&svc, &key)["used"], 2);

    // Direct activation and proxy activation.
    let (c, d) = (client(Some(svc.addr("activation")), &["--machine-name", "net-c"]), client(None, &["--machine-name", "net-d"]));
    let direct = dir.path().join("direct.cil");
    let proxy = dir.path().join("proxy.cil");
    assert_eq!(vamt(&direct, &["discover", &c.addr("admin").to_string()]).0, 0);
    assert_eq!(vamt(&direct, &["install-key", &key]).0, 0);
    let (code, out) = vamt(&direct, &["activate"]);
    assert!(code == 0 && out.contains("net-c") && out.contains(" licensed"), "{out}");
    assert_eq!(vamt(&proxy, &["discover", &d.addr("admin").to_string()]).0, 0);
    assert_eq!(vamt(&proxy, &["install-key", &key]).0, 0);
    let (code, out) = vamt(&proxy, &["proxy-activate", "--service", &admin]);
    assert!(code == 0 && out.contains(" licensed"), "{out}");

    // Remaining count over the wire protocol; a key the service does not know.
    let (code, out) = vamt(&proxy, &["key-count", &key, "--service", &svc.addr("activation").to_string()]);
    assert!(code == 0 && out.contains(&format!("{key} remaining 0 used 4")), "{out}");
    let (code, out) = vamt(&proxy, &["key-count", "LABMB-CDFGH-JKMPQ-RTVWX-Y234C", "--service", &svc.addr("activation").to_string()]);
    assert!(code == 1 && out.contains("0xC004F050"), "{out}");
    // The count is used up: a fifth machine fails with 0xC004C020 and says so.
    let e = client(Some(svc.addr("activation")), &["--machine-name", "net-e"]);
    let fifth = dir.path().join("fifth.cil");
    assert_eq!(vamt(&fifth, &["discover", &e.addr("admin").to_string()]).0, 0);
    assert_eq!(vamt(&fifth, &["install-key", &key]).0, 0);
    let (code, out) = vamt(&fifth, &["activate"]);
    assert!(code == 1 && out.contains("0xC004C020"), "{out}");
}

/// `slmgr --target ADDR ARGS...`: exit code and stdout.
fn slmgr(target: SocketAddr, args: &[&str]) -> (i32, String) {
    let out = Command::new(built("slmgr")).arg("--target").arg(target.to_string()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A kms-host on port 0 validating `key` with `service`, its registry in `data`.
fn kms_host(data: &Path, key: &str, service: SocketAddr, extra: &[&str]) -> Daemon {
    let mut cmd = Command::new(built("kms-host"));
    cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--host-key", key, "--activation-service"])
        .arg(service.to_string())
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    Daemon::spawn(cmd, &["kms", "admin"])
}

fn host_status(h: &Daemon) -> Value {
    http(h.addr("admin"), "GET", "/api/v1/status", None).1
}

fn host_events(h: &Daemon, id: u32) -> Vec<Value> {
    http(h.addr("admin"), "GET", &format!("/api/v1/events?id={id}"), None).1["events"].as_array().cloned().unwrap_or_default()
}

/// The `hresult` of a server's `/ato` against the host (an answer with a count is
/// 0xC004F038 for a single server: the host served it).
fn server_ato(host: &Daemon) -> String {
    let mut cmd = Command::new(kms_client());
    cmd.args(["--product", "server2008r2-standard", "--admin", "127.0.0.1:0", "--kms"]).arg(host.addr("kms").to_string());
    let c = Daemon::spawn(cmd, &["admin"]);
    ato(&c)["hresult"].as_str().unwrap_or("").to_owned()
}

#[test]
fn a_blocked_host_key_makes_the_host_non_genuine_until_a_new_key_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.toml");
    let (code, out, err) = kmslab(&[
        "activation-service",
        "--generate-host-key",
        "kms-b",
        "--generate-host-key",
        "kms-b",
        "--out",
        keys_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let keys: Vec<&str> = out.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert!(out.lines().all(|l| l.starts_with("host_key LABH") && l.ends_with(" kms-b")), "{out}");
    let (old, new) = (keys[0], keys[1]);
    let svc = service(dir.path());
    let data = dir.path().join("host");
    let host = kms_host(&data, old, svc.addr("activation"), &[]);
    let admin = host.addr("admin");

    // At start the host validates its key: genuine, Licensed, and it serves.
    eventually("the start-up validation", || host_status(&host)["genuine"]["last_result"] == "0x00000000");
    let s = host_status(&host);
    assert_eq!((s["license_status"].as_str(), s["genuine"]["state"].as_str()), (Some("Licensed"), Some("genuine")), "{s}");
    assert_eq!(s["partial_product_key"], old[old.len() - 5..]);

    // The key leaks and is blocked; the host's next validation (/ato) finds it.
    let (code, out, _) = kmslab(&["activation-service", "block", old, "--target", &svc.addr("admin").to_string()]);
    assert_eq!((code, out.trim()), (0, format!("{old} host key kms-b blocked").as_str()));
    let (code, out) = slmgr(admin, &["/ato"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Windows is running within the non-genuine notification period. Run 'slui.exe' to go online and validate Windows."),
        "{out}"
    );
    let s = host_status(&host);
    assert_eq!(s["license_status"], "Non-genuine grace period", "{s}");
    assert_eq!((s["genuine"]["state"].as_str(), s["genuine"]["reason"].as_str()), (Some("non_genuine_grace"), Some("0xC004C4A2")), "{s}");
    let e8208 = host_events(&host, 8208);
    let e8209 = host_events(&host, 8209);
    assert_eq!((e8208.len(), e8209.len()), (1, 1), "{e8208:?} {e8209:?}");
    assert!(e8208[0]["fields"]["message"].as_str().unwrap().starts_with("Acquisition of genuine ticket failed (hr=0xC004C4A2)"));
    let text = e8209[0]["fields"]["message"].as_str().unwrap();
    assert!(text.starts_with("Genuine state set to non-genuine (0x00000000) for application Id 55c92734-"), "{text}");
    assert!(text.contains("SL_E_VALIDATION_BLOCKED_PRODUCT_KEY") && text.contains(&old[old.len() - 5..]), "{text}");
    assert_eq!(e8209[0]["kind"], "genuine_state_non_genuine");
    let (_, dli) = slmgr(admin, &["/dli"]);
    assert!(dli.contains("License Status: Non-genuine grace period\nTime remaining: "), "{dli}");
    // A second /ato keeps the first start of the grace and logs nothing new.
    slmgr(admin, &["/ato"]);
    assert_eq!(host_events(&host, 8209).len(), 1);
    // During its non-genuine grace the host still answers clients with a count.
    assert_eq!(server_ato(&host), "0xC004F038");
    // A MAK is no host key.
    let (code, out) = slmgr(admin, &["/ipk", "LABM6-Y6JKP-FPP9X-MYG8Q-CKMM2"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0xC004F050") && out.contains("not a KMS host key"), "{out}");
    drop(host);

    // 31 days later (the host restarted on a clock 31 days ahead: simulated time runs twice
    // as fast from 31 days ago): Notification, 0xC004F041.
    let earlier = kmslab_core::Timestamp::from_unix_ms(
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
            - 31 * 24 * 60 * 60 * 1000,
    );
    let host = kms_host(&data, old, svc.addr("activation"), &["--time-scale", "2", "--time-origin", &earlier.to_string()]);
    let admin = host.addr("admin");
    eventually("the non-genuine state restored", || host_status(&host)["genuine"]["state"] == "notification");
    assert_eq!(host_status(&host)["license_status"], "Notification");
    let (code, out) = slmgr(admin, &["/ato"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Error: 0xC004F064 SL_E_NONGENUINE_GRACE_TIME_EXPIRED"), "{out}");
    let (_, dli) = slmgr(admin, &["/dli"]);
    assert!(dli.contains("License Status: Notification\nNotification Reason: 0xC004F200 (non-genuine)."), "{dli}");
    assert_eq!(server_ato(&host), "0xC004F041");

    // Recovery: a new KMS host key, then /ato; it stays installed across a restart (the
    // registry's key wins over --host-key).
    let (code, out) = slmgr(admin, &["/ipk", new]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("Installed product key {new} successfully.")), "{out}");
    let (code, out) = slmgr(admin, &["/ato"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Product activated successfully."), "{out}");
    assert_eq!(host_status(&host)["license_status"], "Licensed");
    drop(host);
    let host = kms_host(&data, old, svc.addr("activation"), &[]);
    eventually("the start-up validation of the new key", || host_status(&host)["genuine"]["last_result"] == "0x00000000");
    let s = host_status(&host);
    assert_eq!((s["license_status"].as_str(), s["partial_product_key"].as_str()), (Some("Licensed"), Some(&new[new.len() - 5..])), "{s}");
    assert_eq!(server_ato(&host), "0xC004F038");
}

#[test]
fn a_blocked_mak_makes_an_activated_machine_non_genuine_until_a_new_mak() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["win7-enterprise=2", "win7-enterprise=1"]);
    let (mak, new) = (&keys[0], &keys[1]);
    let svc = service(dir.path());
    let c = client(Some(svc.addr("activation")), &[]);
    assert_eq!(ipk(&c, mak).0, 200);
    assert_eq!(ato(&c)["hresult"], "0x00000000");
    // /ato again validates the MAK: in good standing, nothing changes and nothing is used.
    assert_eq!(ato(&c)["hresult"], "0x00000000");
    assert_eq!(count(&svc, mak)["used"], 1);

    let (code, out, _) = kmslab(&["activation-service", "block", mak, "--target", &svc.addr("admin").to_string()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = slmgr(c.addr("admin"), &["/ato"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Windows is running within the non-genuine notification period. Run 'slui.exe' to go online and validate Windows."),
        "{out}"
    );
    let s = status(&c);
    assert_eq!((s["status"].as_str(), s["permanently_activated"].as_bool()), (Some("non_genuine_grace"), Some(false)), "{s}");
    let (_, dli) = slmgr(c.addr("admin"), &["/dli"]);
    assert!(dli.contains("License Status: Non-genuine grace period\nTime remaining: "), "{dli}");
    let events = http(c.addr("admin"), "GET", "/api/v1/events", None).1;
    let e8209: Vec<&Value> = events["events"].as_array().unwrap().iter().filter(|e| e["event_id"] == 8209).collect();
    assert_eq!(e8209.len(), 1, "{events}");
    assert_eq!(e8209[0]["kind"], "genuine_state_non_genuine");
    assert!(e8209[0]["fields"]["message"].as_str().unwrap().contains("SL_E_VALIDATION_BLOCKED_PRODUCT_KEY"), "{events}");
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["event_id"] == 8208), "{events}");

    // A new MAK, activate again.
    assert_eq!(ipk(&c, new).0, 200);
    let (code, out) = slmgr(c.addr("admin"), &["/ato"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Product activated successfully."), "{out}");
    let s = status(&c);
    assert_eq!((s["status"].as_str(), s["permanently_activated"].as_bool()), (Some("licensed"), Some(true)), "{s}");
}

//! MAK activation end to end, against the real binaries: `kmslab activation-service` and
//! `kms-client` processes on port 0, talking kmslab's wire protocol, the admin API and the
//! client's control API over real sockets, with the service's SQLite state on disk.
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

/// `kms-client` of this revision (`cargo test -p kmslab-lab` builds only `kmslab`).
fn kms_client() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_BIN_EXE_kmslab")).parent().unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(workspace_root())
                .args(["build", "--bin", "kms-client", "-p", "kmslab-client"])
                .status()
                .unwrap();
            assert!(status.success(), "building kms-client failed");
            dir.join("kms-client")
        })
        .clone()
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

    // Blocked: 0xC004C003 for a new machine; machines already activated stay activated.
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

//! The lab control API of the real `kmslab up` binary (`--control`, port 0) and the
//! `kmslab lab` command line against it: shapes, faults and what the machines make of them.
// Tests wait on a real process with real-time deadlines and time its faults.
#![allow(clippy::disallowed_methods)]

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/up.rs"]
#[allow(dead_code)]
mod up;

use up::Up;

impl Up {
    fn get(&self, path: &str) -> Value {
        let (code, v) = self.get_code(path);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    fn get_code(&self, path: &str) -> (u16, Value) {
        answer(agent().get(self.url(path)).call())
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        answer(agent().post(self.url(path)).header("Content-Type", "application/json").send(body.to_string()))
    }

    fn post_ok(&self, path: &str, body: Value) -> Value {
        let (code, v) = self.post(path, body);
        assert_eq!(code, 200, "POST {path}: {v}");
        v
    }

    /// Polls `f` on `GET path` until it holds (generous deadline for a busy box).
    fn wait_for(&self, what: &str, path: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let v = self.get(path);
            if f(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last {path}: {v}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.unwrap();
    let code = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn host<'a>(lab: &'a Value, name: &str) -> &'a Value {
    lab["hosts"].as_array().unwrap().iter().find(|h| h["name"] == name).unwrap()
}

#[test]
fn the_lab_api_shows_hosts_and_machines_and_its_faults_reach_them() {
    let up = Up::start(30);
    let lab = up.get("/api/v1/lab");
    assert!(lab["now"].as_str().unwrap().ends_with('Z'), "{lab}");
    assert_eq!(lab["time_scale"], 28800.0);
    assert_eq!(lab["dns"]["zone"], "lab.test");
    assert_eq!(lab["dns"]["updates"], "accepted");
    let names: Vec<&str> = lab["hosts"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kms1", "kms2"]);
    assert_eq!((host(&lab, "kms1")["role"].as_str(), host(&lab, "kms2")["role"].as_str()), (Some("serving"), Some("standby")));
    for key in ["kms", "admin", "count"] {
        assert!(!host(&lab, "kms1")[key].is_null(), "{key}: {lab}");
    }
    assert_eq!(lab["machines"]["clients"], 30, "{lab}");

    // Everybody activates through kms1 first.
    let lab = up.wait_for("30 licensed machines", "/api/v1/lab", |l| l["machines"]["licensed"] == 30);
    assert_eq!(host(&lab, "kms1")["count"], 30, "{lab}");
    let machines = up.get("/api/v1/lab/machines");
    let list = machines.as_array().unwrap();
    assert_eq!(list.len(), 30);
    let m1 = &list[0];
    assert_eq!(m1["name"], "machine-1");
    assert_eq!(m1["status"], "licensed");
    assert_eq!(m1["last_result"], "0x00000000");
    let kms1_srv = host(&lab, "kms1")["srv"].as_str().unwrap().to_owned();
    assert!(kms1_srv.starts_with("kms1.lab.test:"), "{lab}");
    assert_eq!(m1["host"], kms1_srv.as_str(), "{m1}");
    for key in ["product", "cmid"] {
        assert!(m1[key].is_string(), "{key}: {m1}");
    }
    // A page of the list: machines 11 to 15 in machine order, and how many matched in all.
    let mut page = agent().get(up.url("/api/v1/lab/machines?offset=10&limit=5")).call().unwrap();
    assert_eq!(page.headers().get("x-total-count").unwrap(), "30");
    let page: Value = serde_json::from_str(&page.body_mut().read_to_string().unwrap()).unwrap();
    let names: Vec<&str> = page.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["machine-11", "machine-12", "machine-13", "machine-14", "machine-15"]);
    let detail = up.get("/api/v1/lab/machines/machine-1");
    assert_eq!(detail["status"]["status"], "licensed", "{detail}");
    assert!(detail["events"].as_array().unwrap().iter().any(|e| e["event_id"] == 12289), "{detail}");
    // The client-verb part answers as kms-client's own API does.
    let status = up.get("/api/v1/lab/machines/machine-1/status");
    assert_eq!((status["role"].as_str(), status["status"].as_str()), (Some("client"), Some("licensed")), "{status}");
    assert_eq!(status["host"]["last"], kms1_srv.as_str());

    // Unknown names, cross-site and non-JSON requests.
    let (code, v) = up.post("/api/v1/lab/hosts/kms9/stop", json!({}));
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("kms9"), "{v}");
    let (code, v) = up.post("/api/v1/lab/hosts/kms1/explode", json!({}));
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("explode"), "{v}");
    let (code, v) = up.get_code("/api/v1/lab/machines/machine-999/status");
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("machine-999"), "{v}");
    let cross = agent()
        .post(up.url("/api/v1/lab/hosts/kms1/stop"))
        .header("Content-Type", "application/json")
        .header("Origin", "http://evil.example")
        .send("{}");
    let (code, v) = answer(cross);
    assert_eq!(code, 403, "{v}");
    let (code, _) = answer(agent().post(up.url("/api/v1/lab/hosts/kms1/stop")).header("Content-Type", "text/plain").send("{}"));
    assert_eq!(code, 415);
    let (code, _) = answer(agent().get(up.url("/api/v1/lab")).header("Host", "evil.example").call());
    assert_eq!(code, 421);
    assert_eq!(host(&up.get("/api/v1/lab"), "kms1")["role"], "serving", "a refused request changed nothing");

    // Skew: the host refuses the request (0xC004F06C in event 12288); back on time, it works.
    let skewed = up.post_ok("/api/v1/lab/machines/machine-3/skew", json!({"hours": 6}));
    assert_eq!(skewed["machine_name"], "machine-3", "{skewed}");
    let ato = up.post_ok("/api/v1/lab/machines/machine-3/ato", json!({}));
    assert_ne!(ato["hresult"], "0x00000000", "{ato}");
    let events = up.get("/api/v1/lab/machines/machine-3/events");
    assert!(
        events["events"].as_array().unwrap().iter().any(|e| e["event_id"] == 12288 && e["fields"]["result"] == "0xC004F06C"),
        "{events}"
    );
    up.post_ok("/api/v1/lab/machines/machine-3/skew", json!({"hours": 0}));
    let ato = up.post_ok("/api/v1/lab/machines/machine-3/ato", json!({}));
    assert_eq!((ato["hresult"].as_str(), ato["activated"].as_bool()), (Some("0x00000000"), Some(true)), "{ato}");

    // Clone: two copies with machine-1's CMID.
    let cloned = up.post_ok("/api/v1/lab/machines/machine-1/clone", json!({"count": 2}));
    assert_eq!(cloned["added"], json!(["machine-31", "machine-32"]), "{cloned}");
    let list = up.get("/api/v1/lab/machines");
    let cmid = |name: &str| list.as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["cmid"].clone();
    assert_eq!(list.as_array().unwrap().len(), 32);
    assert_eq!(cmid("machine-31"), cmid("machine-1"));
    assert_eq!(cmid("machine-32"), cmid("machine-1"));
    let ato = up.post_ok("/api/v1/lab/machines/machine-31/ato", json!({}));
    assert_eq!(ato["hresult"], "0x00000000", "{ato}");
    assert_eq!(ato["current_count"], 30, "a clone is counted once with its original: {ato}");

    // The serving host stops: roles change at once, machines move to the standby host.
    let t = Instant::now();
    let after = up.post_ok("/api/v1/lab/hosts/kms1/stop", json!({}));
    eprintln!("stopping kms1 took {:?}", t.elapsed());
    assert_eq!((host(&after, "kms1")["role"].as_str(), host(&after, "kms2")["role"].as_str()), (Some("down"), Some("serving")));
    let moved = up.wait_for("every machine on kms2", "/api/v1/lab/machines", |l| {
        l.as_array().unwrap().iter().all(|m| m["host"].as_str().is_some_and(|h| h.starts_with("kms2.lab.test:")))
    });
    assert_eq!(moved.as_array().unwrap().len(), 32);

    // DNS refuses updates: the hosts' next publishing round fails with 12293 (0x8007232D).
    up.post_ok("/api/v1/lab/dns/refuse-updates", json!({}));
    assert_eq!(up.get("/api/v1/lab")["dns"]["updates"], "refused");
    let lab = up.wait_for("12293 on kms2", "/api/v1/lab", |l| host(l, "kms2")["dns"][0]["hresult"] == "0x8007232D");
    assert_eq!(host(&lab, "kms2")["dns"][0]["result"], "failure", "{lab}");

    let events = up.get("/api/v1/lab/events");
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["machine_skew", "machine_clone", "host_stop", "dns_refuse_updates"] {
        assert!(kinds.contains(&kind), "{kind} missing: {events}");
    }
    assert!(events["events"][0]["time"].as_str().unwrap().ends_with('Z'), "{events}");
}

fn kmslab_lab(up: &Up, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab")).arg("lab").args(args).env("XDG_RUNTIME_DIR", up.runtime_dir()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// True when a TCP connection to `addr` is refused.
fn refused(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err()
}

#[test]
fn kmslab_lab_finds_the_lab_by_its_address_file_and_applies_faults() {
    let up = Up::start(10);
    let addr_file = up.runtime_dir().join("kmslab").join("lab.addr");
    assert_eq!(std::fs::read_to_string(&addr_file).unwrap().trim(), up.lab.to_string());

    let (code, out, err) = kmslab_lab(&up, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kms1") && out.contains("serving") && out.contains("standby") && out.contains("machines 10"), "{out}");

    // Block: the port refuses connections within a second while the host keeps running.
    let kms = host(&up.get("/api/v1/lab"), "kms1")["kms"].as_str().unwrap().to_owned();
    assert!(!refused(&kms));
    let (code, out, err) = kmslab_lab(&up, &["block", "kms1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("blocked"), "{out}");
    let t = Instant::now();
    while !refused(&kms) {
        assert!(t.elapsed() < Duration::from_secs(10), "kms1's port still open");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("kms1's port refused connections {:?} after the block answer", t.elapsed());
    assert_eq!(up.get("/api/v1/lab")["hosts"][0]["activated"], true, "its admin API still answers");
    let (code, _, err) = kmslab_lab(&up, &["unblock", "kms1"]);
    assert_eq!(code, 0, "{err}");
    let t = Instant::now();
    while refused(&kms) {
        assert!(t.elapsed() < Duration::from_secs(10), "kms1's port still closed");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Unactivate: the host answers 0xC004F041.
    let (code, out, err) = kmslab_lab(&up, &["unactivate", "kms2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("unactivated"), "{out}");
    let (code, out, err) = kmslab_lab(&up, &["--json", "machines", "--search", "machine-1"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "machine-1 and machine-10: {list}");

    // slmgr on a lab machine, finding the lab through the address file as kmslab lab does:
    // the same renderer as against a kms-client, over the machine's own status.
    let slmgr = kmslab_test_support::workspace_binary(env!("CARGO_BIN_EXE_kmslab"), "kmslab-slmgr", "slmgr");
    let run = |args: &[&str]| {
        let out =
            Command::new(&slmgr).args(args).env("XDG_RUNTIME_DIR", up.runtime_dir()).env_remove("KMSLAB_SLMGR_TARGET").output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cmid = up.get("/api/v1/lab/machines/machine-1/status")["cmid"].as_str().unwrap().to_owned();
    let (code, out, err) = run(&["--machine", "machine-1", "/dli"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Name: Windows"), "{out}");
    assert!(out.contains(&format!("    Client Machine ID (CMID): {cmid}\n")) && out.contains("License Status: "), "{out}");
    let (code, out, err) = run(&["--machine", "machine-1", "/xpr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() == 2 && out.starts_with("Windows"), "{out}");
    let (code, _, err) = run(&["--machine", "nobody", "/dli"]);
    assert_eq!(code, 1);
    assert!(err.contains("no machine \"nobody\""), "{err}");

    let (code, out, err) = kmslab_lab(&up, &["add", "3", "--product", "server2008r2-standard"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("machine-11, machine-12, machine-13"), "{out}");
    let (code, out, err) = kmslab_lab(&up, &["dns", "outage"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OUTAGE"), "{out}");
    let (code, out, _) = kmslab_lab(&up, &["events"]);
    assert_eq!(code, 0);
    for kind in ["host_block", "host_unblock", "host_unactivate", "machines_added", "dns_outage"] {
        assert!(out.contains(kind), "{kind} missing: {out}");
    }

    let (code, _, err) = kmslab_lab(&up, &["stop", "kms9"]);
    assert_eq!(code, 1);
    assert!(err.contains("kms9") && err.lines().count() == 1, "{err}");
    let (code, _, err) = kmslab_lab(&up, &["skew", "nobody", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("nobody"), "{err}");
    let (code, _, err) = kmslab_lab(&up, &["--target", "127.0.0.1:1", "status"]);
    assert_eq!(code, 1, "{err}");

    // At exit the address file goes.
    let pid = up.daemon.pid().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let t = Instant::now();
    while addr_file.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "the lab address file stayed after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = kmslab_lab(&up, &["status"]);
    assert_eq!(code, 2);
    assert!(err.contains("kmslab up"), "{err}");
}

#[test]
fn the_lab_runs_an_activation_service_whose_maks_activate_its_machines_and_show_on_the_page() {
    let up = Up::start(4);
    let lab = up.get("/api/v1/lab");
    // One MAK per product of the default mix, with the default 10 activations.
    let keys = lab["activation"]["keys"].as_array().unwrap_or_else(|| panic!("no keys: {lab}")).clone();
    let products: Vec<&str> = keys.iter().map(|k| k["products"][0].as_str().unwrap()).collect();
    assert_eq!(products, ["win7-enterprise", "server2008r2-standard"], "{lab}");
    assert!(keys.iter().all(|k| k["remaining"] == 10 && k["used"] == 0), "{lab}");
    assert_eq!(lab["channels"], json!({ "kms": 4, "mak": 0 }), "{lab}");
    let mak = keys[0]["key"].as_str().unwrap().to_owned();

    // machine-1 runs Windows 7 Enterprise: /ipk MAK makes it a MAK machine, /ato activates
    // it with the lab's service for good, using one activation.
    let ipk = up.post_ok("/api/v1/lab/machines/machine-1/ipk", json!({ "key": mak }));
    assert!(ipk.to_string().contains("VOLUME_MAK"), "{ipk}");
    let ato = up.post_ok("/api/v1/lab/machines/machine-1/ato", json!({}));
    assert_eq!((&ato["hresult"], &ato["status"]), (&json!("0x00000000"), &json!("licensed")), "{ato}");
    let lab = up.wait_for("the key's count and the channels to move", "/api/v1/lab", |l| l["activation"]["keys"][0]["remaining"] == 9);
    assert_eq!(lab["activation"]["keys"][0]["used"], 1, "{lab}");
    assert_eq!(lab["channels"], json!({ "kms": 3, "mak": 1 }), "{lab}");

    // The page shows the key with its remaining count and the machines by channel.
    let page = agent().get(up.url("/")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(page.contains(&format!("<code>{mak}</code>")), "{page}");
    assert!(page.contains(r#"MAK <b id="mak-machines">1</b>"#), "{page}");
    assert!(page.contains(r#"<td class="num remaining">9</td>"#), "{page}");
}

//! The lab page (`GET /` of the lab control API) of the real `kmslab up` binary, loaded by
//! a real headless Chromium: both hosts with their roles and latest requests, the chart,
//! the machines, and the serving host's "stop" button, clicked with the mouse in Chromium
//! (driven over the DevTools protocol), moving the machines to the standby host as the
//! page shows.
// Tests wait on a real process with real-time deadlines.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/up.rs"]
#[allow(dead_code)]
mod up;

use up::Up;

fn chromium_path() -> PathBuf {
    kmslab_test_support::chromium_path()
}

/// Headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`).
fn chromium(browser: &Path, profile: &Path, mode: &str, url: &str) -> String {
    kmslab_test_support::chromium(browser, profile, "1280,1400", mode, url)
}

/// A page open in headless Chromium, driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: commands on Chromium's fd 3, answers and events on its fd 4,
/// each a JSON message ended by a NUL byte; bash maps them to our pipes).
struct Tab {
    child: Child,
    to: ChildStdin,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Tab {
    fn open(browser: &Path, profile: &Path, url: &str) -> Tab {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(
                r#"exec "$0" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars --window-size=1280,1400 \
                   --user-data-dir="$1" --remote-debugging-pipe "$2" 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null"#,
            )
            .arg(browser)
            .arg(profile)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut message = Vec::new();
                if out.read_until(0, &mut message).unwrap_or(0) == 0 {
                    return;
                }
                message.pop();
                if tx.send(serde_json::from_slice(&message).unwrap_or(Value::Null)).is_err() {
                    return;
                }
            }
        });
        let mut tab = Tab { child, to, from, next_id: 0, session: None };
        let targets = tab.call("Target.getTargets", json!({}));
        let page =
            targets["targetInfos"].as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page target")["targetId"].clone();
        let attached = tab.call("Target.attachToTarget", json!({ "targetId": page, "flatten": true }));
        tab.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        tab
    }

    /// Sends one command (to the page once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(s) = &self.session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        loop {
            let answer = self.from.recv_timeout(Duration::from_secs(90)).unwrap_or_else(|_| panic!("Chromium did not answer {method}"));
            if answer["id"] == self.next_id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }))["result"]["value"].clone()
    }

    /// A left mouse click at (x, y) of the viewport, as a user's.
    fn click(&mut self, x: f64, y: f64) {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call("Input.dispatchMouseEvent", json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }));
        }
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The centre of the button whose `data-post` is `post`, scrolled into view, once the
/// page's script is ready (null before).
fn button_centre(post: &str) -> String {
    format!(
        r#"(() => {{
            if (document.body.dataset.script !== "ready") return null;
            const b = document.querySelector('button[data-post="{post}"]');
            if (!b || b.disabled) return null;
            b.scrollIntoView({{ block: "center" }});
            const r = b.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()"#
    )
}

/// The `<tr class="host">` row of `name` in the page's DOM.
fn host_row<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("data-host=\"{name}\"")).unwrap_or_else(|| panic!("no row for {name}: {dom}"));
    let row = &dom[start..];
    &row[..row.find("</tr>").unwrap()]
}

fn role(row: &str) -> &str {
    let at = row.find("class=\"role role-").unwrap();
    let rest = &row[at..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    &text[..text.find('<').unwrap()]
}

fn count(row: &str) -> u64 {
    let at = row.find("class=\"num count\">").unwrap() + "class=\"num count\">".len();
    row[at..row[at..].find('<').unwrap() + at].parse().unwrap()
}

/// The `data-post` of the button labelled `action` in `row`.
fn button<'a>(row: &'a str, action: &str) -> &'a str {
    let end = row.find(&format!("\">{action}</button>")).unwrap_or_else(|| panic!("no {action} button: {row}"));
    let start = row[..end].rfind("data-post=\"").unwrap() + "data-post=\"".len();
    &row[start..end]
}

#[test]
fn the_lab_page_shows_both_hosts_and_its_stop_button_moves_the_machines() {
    let browser = chromium_path();
    let up = Up::start(30);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium-profile");

    // Both hosts, kms1 serving everybody once the machines have activated.
    let deadline = Instant::now() + Duration::from_secs(150);
    let dom = loop {
        let dom = chromium(&browser, &profile, "--dump-dom", &up.url("/"));
        if count(host_row(&dom, "kms1")) == 30 {
            break dom;
        }
        assert!(Instant::now() < deadline, "kms1 never counted 30 machines: {dom}");
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(dom.contains("data-script=\"ready\""), "lab.js ran under the page's CSP");
    let (kms1, kms2) = (host_row(&dom, "kms1"), host_row(&dom, "kms2"));
    assert_eq!((role(kms1), role(kms2)), ("serving", "standby"));
    assert_eq!(count(kms2), 0);
    // Each host's own dashboard, linked from its row, names the host in its header.
    let link = &kms1[kms1.find("href=\"").unwrap() + 6..];
    let dashboard = chromium(&browser, &profile, "--dump-dom", &link[..link.find('"').unwrap()]);
    assert!(dashboard.contains("<span class=\"hostname\">kms1.lab.test</span>"), "{dashboard}");
    // ... and its role, as far as the host itself knows it.
    assert!(dashboard.contains("<span class=\"role role-serving\""), "{dashboard}");
    // Its overview gives its latest request: a machine of the lab, activated or renewed.
    assert!(dashboard.contains("Last request: <time") && dashboard.contains("from <b>machine-"), "{dashboard}");
    assert!(dom.contains("<svg id=\"chart\"") && dom.contains("licensed</title>"), "the chart has bars");
    assert_eq!(dom.matches("<tr class=\"machine\">").count(), 30, "every machine listed");
    let png = dir.path().join("lab.png");
    chromium(&browser, &profile, &format!("--screenshot={}", png.display()), &up.url("/"));
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot with something on it");

    // A search narrows the list and shows the machines' /dli.
    let one = chromium(&browser, &profile, "--dump-dom", &up.url("/?q=machine-7"));
    assert_eq!(one.matches("<tr class=\"machine\">").count(), 1, "{one}");
    assert!(one.contains("License Status: Licensed") && one.contains("Client Machine ID (CMID):"), "{one}");

    // Each host row shows the host's latest request: kms1's came from one of the machines.
    assert!(kms1.contains("<td class=\"last\"><time>") && kms1.contains("machine-"), "{kms1}");
    assert!(kms2.contains("<td class=\"last\">—</td>"), "kms2 had no request: {kms2}");

    // kms1's stop button, clicked with the mouse in Chromium: the page's script sends the
    // POST (same origin, JSON) and the lab records the stop.
    let stop = button(kms1, "stop");
    assert_eq!(stop, "/api/v1/lab/hosts/kms1/stop");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let stopped = || {
        let body = agent.get(up.url("/api/v1/lab/events")).call().unwrap().body_mut().read_to_string().unwrap();
        let events: Value = serde_json::from_str(&body).unwrap();
        events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "host_stop" && e["target"] == "kms1")
    };
    let mut tab = Tab::open(&browser, &dir.path().join("devtools-profile"), &up.url("/"));
    let deadline = Instant::now() + Duration::from_secs(120);
    'click: loop {
        assert!(Instant::now() < deadline, "clicking kms1's stop button never stopped kms1");
        if let Some([x, y]) = tab.eval(&button_centre(stop)).as_array().map(|a| [a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]) {
            tab.click(x, y);
            // The page may have been reloading under the mouse: give the click time to
            // show, then click again.
            let shown = Instant::now() + Duration::from_secs(20);
            while Instant::now() < shown {
                if stopped() {
                    break 'click;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        } else {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    drop(tab);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let dom = chromium(&browser, &profile, "--dump-dom", &up.url("/"));
        let (kms1, kms2) = (host_row(&dom, "kms1"), host_row(&dom, "kms2"));
        let on_kms2 = dom.matches("<td class=\"mhost\">kms2.lab.test:").count();
        if role(kms1) == "down" && role(kms2) == "serving" && count(kms2) == 30 && on_kms2 == 30 {
            assert!(dom.contains("<td>host_stop</td><td>kms1</td>"), "the stop is a lab event: {dom}");
            break;
        }
        assert!(Instant::now() < deadline, "the machines never moved to kms2 on the page: {kms1} {kms2} ({on_kms2} machines on kms2)");
        std::thread::sleep(Duration::from_secs(2));
    }
}

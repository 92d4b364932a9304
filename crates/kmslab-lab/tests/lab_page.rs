//! The lab page (`GET /` of the lab control API) of the real `kmslab up` binary, loaded by
//! a real headless Chromium: both hosts with their roles, the chart, the machines, and a
//! host's "stop" button moving the machines to the standby host as the page shows.
// Tests wait on a real process with real-time deadlines.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/up.rs"]
#[allow(dead_code)]
mod up;

use up::Up;

fn chromium_path() -> PathBuf {
    kmslab_test_support::find_program("chromium", &["chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("`chromium` not found on PATH: install the Debian package `chromium` (apt-get install -y chromium)"))
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`).
fn chromium(browser: &Path, profile: &Path, mode: &str, url: &str) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,1400"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {mode} {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    assert!(dom.contains("<svg id=\"chart\"") && dom.contains("licensed</title>"), "the chart has bars");
    assert_eq!(dom.matches("<tr class=\"machine\">").count(), 30, "every machine listed");
    let png = dir.path().join("lab.png");
    chromium(&browser, &profile, &format!("--screenshot={}", png.display()), &up.url("/"));
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot with something on it");

    // A search narrows the list and shows the machines' /dli.
    let one = chromium(&browser, &profile, "--dump-dom", &up.url("/?q=machine-7"));
    assert_eq!(one.matches("<tr class=\"machine\">").count(), 1, "{one}");
    assert!(one.contains("License Status: Licensed") && one.contains("Client Machine ID (CMID):"), "{one}");

    // The request kms1's stop button sends (lab.js: same origin, JSON), then the page.
    let stop = button(kms1, "stop");
    assert_eq!(stop, "/api/v1/lab/hosts/kms1/stop");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent
        .post(up.url(stop))
        .header("Content-Type", "application/json")
        .header("Origin", format!("http://{}", up.lab))
        .send("{}")
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.body_mut().read_to_string().unwrap());
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

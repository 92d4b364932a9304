//! The dashboard: pages and reports checked against the JSON API on a host seeded through
//! the wire, alerts on simulated time, `/metrics` through `promtool`, and every page loaded
//! by a real headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kmslab_core::wire::Request;
use kmslab_core::{LicenseStatus, Timestamp};
use serde_json::Value;

use crate::support::{KmsConn, TestHost, config, get_json, http, request};

/// Statuses the seeded clients report, in rotation.
const STATUSES: [LicenseStatus; 4] =
    [LicenseStatus::InitialGrace, LicenseStatus::Licensed, LicenseStatus::Notification, LicenseStatus::Unlicensed];

fn seeded_request(i: usize) -> Request {
    let product = if i.is_multiple_of(3) { "server2008r2-standard" } else { "win7-enterprise" };
    let mut r = request(product);
    r.license_status = STATUSES[i % STATUSES.len()];
    r.machine_name = format!("pc-{i:04}");
    r
}

/// `r` with the host's simulated now as its client time (a host refuses a request more
/// than 4 hours off its clock, and scaled hosts run ahead of the real one).
async fn at_host_time(host: &TestHost, mut r: Request) -> Request {
    r.client_time = Timestamp::parse_rfc3339(host.status().await["now"].as_str().unwrap()).unwrap();
    r
}

/// A host with `n` clients, each sent once over one real KMS connection.
async fn seeded_host(dir: &Path, n: usize) -> TestHost {
    let host = TestHost::start(config(dir)).await;
    let mut conn = KmsConn::connect(host.kms).await;
    for i in 0..n {
        conn.ask(&seeded_request(i)).await;
    }
    host
}

async fn page(host: &TestHost, path: &str) -> String {
    let (code, body) = http(host.admin, "GET", path, None).await.unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    assert!(body.starts_with("<!doctype html>"), "{path} is an HTML page");
    body
}

fn api_total(v: &Value) -> u64 {
    v["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_reports_match_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let host = seeded_host(dir.path(), 300).await;
    let status = host.status().await;

    // Overview: counts per group, counters, DNS, settings.
    let overview = page(&host, "/").await;
    let windows = status["counts"].as_array().unwrap().iter().find(|g| g["group"] == "windows").unwrap();
    assert!(overview.contains(&format!("<td>windows</td><td class=\"num\">{}</td>", windows["count"])), "{overview}");
    assert!(overview.contains(&format!("Total requests received: <b>{}</b>", status["counters"]["total"])));
    assert!(overview.contains("DNS publishing not configured"));
    assert!(overview.contains(status["epid"].as_str().unwrap()));
    assert!(overview.matches("<svg").count() >= 4, "count bar, two charts, status bars");

    // 03A/03B: counts by licence state, drill-down totals.
    let by_state = page(&host, "/reports/03A").await;
    for s in LicenseStatus::ALL {
        let total = api_total(&get_json(host.admin, &format!("/api/v1/clients?state={}&limit=1", s.key())).await);
        let row = format!("<a href=\"/reports/03B?state={}\">{}</a></td><td class=\"num\">{total}</td>", s.key(), s.label());
        assert!(by_state.contains(&row), "03A row {row}");
        if total > 0 {
            let list = page(&host, &format!("/reports/03B?state={}&per=500", s.key())).await;
            assert!(list.contains(&format!("Rows 1–{total} of {total}")), "03B {}", s.key());
        }
    }

    // 04A/04B: counts by product.
    let by_product = page(&host, "/reports/04A").await;
    for (name, display) in
        [("server2008r2-standard", "Windows Server(R), ServerStandard edition"), ("win7-enterprise", "Windows(R) 7, Enterprise edition")]
    {
        let total = api_total(&get_json(host.admin, &format!("/api/v1/clients?product={name}&limit=1")).await);
        assert!(total > 0);
        assert!(by_product.contains(&format!("/reports/04B?product={name}\">")), "04A links to 04B for {name}");
        assert!(by_product.contains(&format!("</a></td><td class=\"num\">{total}</td>")), "04A count {total} for {name}");
        let list = page(&host, &format!("/reports/04B?product={name}")).await;
        assert!(list.contains(&format!("of {total} ·")), "04B total for {name}");
        assert!(list.contains(display), "04B names the product");
    }

    // Clients: filters and paging give the API's rows in the API's order.
    let api = get_json(host.admin, "/api/v1/clients?state=initial_grace&product=win7-enterprise&limit=10&offset=10").await;
    let html = page(&host, "/clients?state=initial_grace&product=win7-enterprise&per=10&page=2").await;
    let mut at = 0;
    for c in api["clients"].as_array().unwrap() {
        let cmid = c["cmid"].as_str().unwrap();
        at = at + html[at..].find(cmid).unwrap_or_else(|| panic!("client {cmid} on page 2, in API order"));
    }
    let total = api_total(&api);
    assert!(html.contains(&format!("Rows 11–20 of {total}")));
    assert!(html.contains("rel=\"next\"") && html.contains("rel=\"prev\""));
    let search = page(&host, "/clients?search=PC-0007").await;
    assert!(search.contains("pc-0007") && search.contains("Rows 1–1 of 1"), "search by name is case-insensitive");
    let cmid = api["clients"][0]["cmid"].as_str().unwrap();
    let by_cmid = page(&host, &format!("/clients?search={}", &cmid[..13])).await;
    assert!(by_cmid.contains(cmid));
    let (code, _) = http(host.admin, "GET", "/clients?state=bogus", None).await.unwrap();
    assert_eq!(code, 400);
    let past_the_end = page(&host, "/clients?page=18446744073709551615").await;
    assert!(past_the_end.contains(&format!("Rows 0–0 of {}", status["counters"]["total"])), "a page past the end is empty");

    // 02A/02B/02C: every activated client expires within 180 days of now.
    let all = get_json(host.admin, "/api/v1/clients?limit=1000").await;
    let activated: Vec<&Value> = all["clients"].as_array().unwrap().iter().filter(|c| !c["last_activation"].is_null()).collect();
    assert!(!activated.is_empty());
    let expiring = page(&host, "/reports/02A").await;
    let row = format!(
        "<a href=\"/reports/02B?range=180\">Licences expiring within the next 180 days</a></td><td class=\"num\">{}</td>",
        activated.len()
    );
    assert!(expiring.contains(&row), "02A 180-day row");
    assert!(
        expiring.contains("<a href=\"/reports/02B?range=7\">Licences expiring within the next 7 days</a></td><td class=\"num\">0</td>")
    );
    let range = page(&host, "/reports/02B?range=180&per=500").await;
    assert!(range.contains(&format!("Rows 1–{n} of {n}", n = activated.len())));
    let first = activated[0]["cmid"].as_str().unwrap();
    assert!(range.contains(&format!("href=\"/reports/02C?cmid={first}\"")), "02B drills down to 02C");
    let machine = page(&host, &format!("/reports/02C?cmid={first}")).await;
    assert!(machine.contains(activated[0]["machine_name"].as_str().unwrap()));
    assert!(machine.contains(activated[0]["last_activation"].as_str().unwrap()));
    let (code, _) = http(host.admin, "GET", "/reports/02C?cmid=00000000-0000-0000-0000-000000000001", None).await.unwrap();
    assert_eq!(code, 404);
    let (code, _) = http(host.admin, "GET", "/reports/99Z", None).await.unwrap();
    assert_eq!(code, 404);

    // Port at next start: the port the host will use when /sprt never set one.
    assert!(overview.contains(&format!("<th>Port at next start</th><td>{} (as now)</td>", host.kms.port())), "{overview}");
    // The header carries the simulated now with the real time in its hover, and no stray separator.
    assert!(overview.contains("simulated now <time title=\"real time "), "{overview}");
    assert!(!overview.contains("· </span>") && !overview.contains("·\n"), "{overview}");

    // 05A without DNS publishing: this host only.
    let hosts = page(&host, "/reports/05A").await;
    assert!(hosts.contains("(this host)") && hosts.contains(&host.kms.to_string()));
    assert!(hosts.contains("DNS publishing not configured"));

    // Events: filtered view and CSV export that parses.
    let events = page(&host, "/events?id=12290&per=20").await;
    assert_eq!(events.matches("12290 KMS request received</td>").count(), 20);
    // Fields are columns: one header per field name, no key=value text.
    for column in ["<th>result</th>", "<th>cmid</th>", "<th>machine_name</th>", "<th>license_status</th>"] {
        assert!(events.contains(column), "{column} in {events}");
    }
    assert!(!events.contains("cmid=") && events.contains("<td>0x00000000</td>"), "{events}");
    let export = events.find("href=\"/api/v1/events?format=csv").expect("CSV export link");
    assert!(events[export..export + 60].contains("id=12290\""), "the export link keeps the filter");
    let (code, csv) = http(host.admin, "GET", "/api/v1/events?format=csv&id=12290", None).await.unwrap();
    assert_eq!(code, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], kmslab_host::events_csv::header().join(","));
    assert_eq!(lines.len(), 301);
    assert!(lines[1..].iter().all(|l| l.split(',').nth(1) == Some("12290")));

    // Alerts page lists every alert.
    let alerts = page(&host, "/alerts").await;
    for name in ["count_below_threshold_no_activity", "dns_publishing_failing", "host_not_activated", "store_unhealthy"] {
        assert!(alerts.contains(name), "{name}");
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vista_and_server_2008_clients_show_in_the_reports_by_product_name() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(config(dir.path())).await;
    let mut conn = KmsConn::connect(host.kms).await;
    // 24 Windows 7 machines, then the 25th (a Vista machine) and a Server 2008 machine: one
    // combined count, so both activate, as on a Windows 7-era host.
    let mut machines: Vec<(String, &str)> = (0..24).map(|i| (format!("w7-{i:02}"), "win7-enterprise")).collect();
    machines.push(("VISTA-01".into(), "vista-enterprise"));
    machines.push(("SRV2008-01".into(), "server2008-standard"));
    for (name, product) in &machines {
        let mut r = at_host_time(&host, request(product)).await;
        r.machine_name = name.clone();
        conn.ask(&r).await;
    }
    let cases = [
        ("vista-enterprise", "VISTA-01", "Windows(TM) Vista, Enterprise edition"),
        ("server2008-standard", "SRV2008-01", "Windows Server(R) 2008, ServerStandard edition"),
    ];
    let by_product = page(&host, "/reports/04A").await;
    let expiring = page(&host, "/reports/02B?range=180&per=500").await;
    for (name, machine, display) in cases {
        let api = get_json(host.admin, &format!("/api/v1/clients?product={name}")).await;
        assert_eq!(api_total(&api), 1, "{name}");
        assert_eq!(api["clients"][0]["machine_name"], machine);
        assert!(!api["clients"][0]["last_activation"].is_null(), "{machine} activated: {api}");
        let row = format!("<a href=\"/reports/04B?product={name}\">{display}</a></td><td class=\"num\">1</td>");
        assert!(by_product.contains(&row), "04A row {row}");
        let list = page(&host, &format!("/reports/04B?product={name}")).await;
        assert!(list.contains(&format!("Machines with {display}")) && list.contains(machine), "04B for {name}");
        let at = expiring.find(machine).unwrap_or_else(|| panic!("02B lists {machine}"));
        let line_end = at + expiring[at..].find("</tr>").unwrap();
        assert!(expiring[at..line_end].contains(display), "02B shows {machine} as {display}");
        let detail = page(&host, &format!("/reports/02C?cmid={}", api["clients"][0]["cmid"].as_str().unwrap())).await;
        assert!(detail.contains(&format!("{display} ({name})")), "02C names the product");
    }
    host.stop().await;
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_clear_on_simulated_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    // 8 simulated hours take 1.44 s.
    c.time_scale = 20_000.0;
    let host = TestHost::start(c).await;
    let low = "kmslab_host_alert{alert=\"count_below_threshold_no_activity\"}";
    let metrics = || async { http(host.admin, "GET", "/metrics", None).await.unwrap().1 };
    let mut conn = KmsConn::connect(host.kms).await;
    for i in 0..3u32 {
        let answer = conn.ask(&at_host_time(&host, seeded_request(3 * i as usize + 1)).await).await;
        assert_eq!(crate::support::response(answer).current_count, i + 1);
    }
    assert_eq!(metric(&metrics().await, low), Some(0.0), "recent activity: no alert yet");
    assert_eq!(metric(&metrics().await, "kmslab_host_alert{alert=\"host_not_activated\"}"), Some(0.0));
    let started = Instant::now();
    loop {
        if metric(&metrics().await, low) == Some(1.0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "alert raised after 8 quiet simulated hours");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1_000), "not before 8 simulated hours");
    let page = http(host.admin, "GET", "/", None).await.unwrap().1;
    assert!(page.contains("count_below_threshold_no_activity</b>: windows count 3 ") && page.contains("no KMS request for"), "{page}");
    // Activity clears it.
    conn.ask(&at_host_time(&host, seeded_request(100)).await).await;
    assert_eq!(metric(&metrics().await, low), Some(0.0));
    host.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.activated = false;
    let host = TestHost::start(c).await;
    let text = http(host.admin, "GET", "/metrics", None).await.unwrap().1;
    assert_eq!(metric(&text, "kmslab_host_alert{alert=\"host_not_activated\"}"), Some(1.0));
    assert_eq!(metric(&text, "kmslab_host_activated"), Some(0.0));
    host.stop().await;
}

/// A tool the suite needs; a missing one fails the test with the way to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("`{name}` not found on PATH: install the Debian package `{package}` (apt-get install -y {package}); scripts/test.sh does")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool() {
    let promtool = tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let host = seeded_host(dir.path(), 30).await;
    let (code, text) = http(host.admin, "GET", "/metrics", None).await.unwrap();
    assert_eq!(code, 200);
    host.stop().await;
    let build_info =
        format!("kmslab_build_info{{version=\"{}\",revision=\"{}\"}} 1", env!("CARGO_PKG_VERSION"), kmslab_runtime::GIT_REVISION);
    for series in
        ["kmslab_host_alert{alert=\"store_unhealthy\"} 0", "kmslab_host_activated 1", "kmslab_host_registry_clients 30", &build_info]
    {
        assert!(text.contains(series), "{series} in\n{text}");
    }
    for standard in
        ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"]
    {
        assert!(text.contains(&format!("# TYPE {standard} ")), "{standard} in\n{text}");
    }
    // The shipped Grafana dashboard only uses series this host exports.
    let grafana = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana-kmslab.json")).unwrap();
    for word in grafana.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("kmslab_")) {
        assert!(
            text.contains(&format!("# TYPE {} ", word.trim_end_matches("_bucket"))),
            "docs/grafana-kmslab.json uses {word}, not exported"
        );
    }
    let text_for_child = text.clone();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text_for_child.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`).
fn chromium(chromium: &Path, profile: &Path, mode: &str, url: &str) -> String {
    kmslab_test_support::chromium(chromium, profile, "1280,900", mode, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_headless_chromium() {
    let browser = tool("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    // Spread over about 20 simulated hours so the request charts have something to show.
    let mut c = config(dir.path());
    c.time_scale = 12_000.0;
    let host = TestHost::start(c).await;
    let mut conn = KmsConn::connect(host.kms).await;
    for i in 0..120 {
        // The client's clock agrees with the host's simulated one (the host refuses a
        // request more than 4 hours off).
        conn.ask(&at_host_time(&host, seeded_request(i)).await).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cmid = get_json(host.admin, "/api/v1/clients?limit=1").await["clients"][0]["cmid"].as_str().unwrap().to_owned();
    let pages: Vec<(&str, String, &str)> = vec![
        ("overview", "/".into(), "Current count per counted group"),
        ("clients", "/clients?state=licensed".into(), "Rows 1–"),
        ("reports", "/reports".into(), "KMS hosts"),
        ("02A", "/reports/02A".into(), "expiring within the next 180 days"),
        ("02B", "/reports/02B?range=180".into(), "Activation expires"),
        ("02C", format!("/reports/02C?cmid={cmid}"), "Client Machine ID (CMID)"),
        ("03A", "/reports/03A".into(), "Initial grace period"),
        ("03B", "/reports/03B?state=notification".into(), "Machines in licence state Notification"),
        ("04A", "/reports/04A".into(), "Windows(R) 7"),
        ("04B", "/reports/04B?product=win7-enterprise".into(), "Machines with Windows(R) 7"),
        ("05A", "/reports/05A".into(), "(this host)"),
        ("events", "/events".into(), "12290 KMS request received"),
        ("alerts", "/alerts".into(), "count_below_threshold_no_activity"),
    ];
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let admin = host.admin;
    let profile = dir.path().join("chromium-profile");
    let shots_dir = shots.clone();
    tokio::task::spawn_blocking(move || {
        for (name, path, expected) in &pages {
            let url = format!("http://{admin}{path}");
            let dom = chromium(&browser, &profile, "--dump-dom", &url);
            assert!(dom.contains(expected), "{name}: rendered DOM lacks {expected:?}:\n{dom}");
            assert!(dom.contains("id=\"autorefresh\""), "{name}: page chrome rendered");
            let png = shots_dir.join(format!("{name}.png"));
            chromium(&browser, &profile, &format!("--screenshot={}", png.display()), &url);
            let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{name}: no screenshot {}: {e}", png.display()));
            assert!(bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"), "{name}: screenshot is a non-empty PNG");
        }
    })
    .await
    .unwrap();
    host.stop().await;
    eprintln!("screenshots in {}", shots.display());
}

/// Benchmark, not a test (`cargo test -p kmslab-host --release -- --ignored bench_pages`):
/// 100,000 clients written straight into a registry, then each page timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand"]
async fn bench_pages_with_100k_clients() {
    use kmslab_store::{RequestRecord, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let catalog = cfg.catalog.clone();
    let path = cfg.registry_path();
    let now = crate::support::now().as_unix_ms();
    let seeded = Instant::now();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let products: Vec<_> = catalog.products().iter().take(12).cloned().collect();
        let mut pending = Vec::new();
        for i in 0..100_000u32 {
            let p = &products[i as usize % products.len()];
            let t = now - i64::from(i) * 150_000;
            pending.push(store.record_request(RequestRecord {
                cmid: kmslab_core::Uuid::new_v4(),
                machine_name: format!("pc-{i:06}"),
                activation_id: p.activation_id,
                application_id: p.application_id,
                counted_id: p.kms_counted_id,
                license_status: (i % 7) as u8,
                minutes_to_expiry: 0,
                time_ms: t,
                source: None,
                result: 0,
                failed: false,
                activated_at_ms: (i % 5 != 0).then_some(t),
                event: None,
            }));
            if pending.len() == 4096 {
                pending.drain(..).for_each(|p| p.wait().unwrap());
            }
        }
        pending.into_iter().for_each(|p| p.wait().unwrap());
        store.close();
    })
    .await
    .unwrap();
    eprintln!("seeded 100000 clients in {:?}", seeded.elapsed());
    let host = TestHost::start(config(dir.path())).await;
    for path in [
        "/",
        "/clients",
        "/clients?page=1000",
        "/clients?page=1999",
        "/clients?state=licensed&page=200",
        "/clients?product=win7-enterprise&page=100",
        "/clients?search=pc-09999",
        "/clients?search=PC-0999&state=licensed",
        "/reports/02A",
        "/reports/02B?range=180&page=500",
        "/reports/03A",
        "/reports/03B?state=notification&page=100",
        "/reports/04A",
        "/reports/04B?product=win7-enterprise",
        "/reports/05A",
        "/events",
        "/alerts",
        "/metrics",
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let (code, _) = http(host.admin, "GET", path, None).await.unwrap();
            times.push(t.elapsed());
            assert_eq!(code, 200, "{path}");
        }
        times.sort();
        eprintln!("{path:45} median {:>7.1} ms  max {:>7.1} ms", times[2].as_secs_f64() * 1e3, times[4].as_secs_f64() * 1e3);
    }
    host.stop().await;
}

/// Polls `/api/v1/status` until every zone of `host` has a result.
async fn wait_published(host: &TestHost) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = host.status().await;
        let zones = status["dns"]["zones"].as_array().cloned().unwrap_or_default();
        if !zones.is_empty() && zones.iter().all(|z| z["result"].is_string()) {
            return;
        }
        assert!(Instant::now() < deadline, "no DNS publishing result: {:#}", status["dns"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_zones_alert_and_05a_with_real_bind() {
    use crate::dns_support::{Bind, IP_ZONE, LOCKED_ZONE};
    let bind = Bind::start();
    let dns_config = |dir: &Path, zones: &[&str], hostname: &str| {
        let mut c = config(dir);
        c.dns.server = Some(bind.addr.into());
        c.dns.zones = zones.iter().map(|z| z.parse().unwrap()).collect();
        c.dns.hostname = Some(hostname.to_owned());
        c.dns.ttl = 60;
        c
    };
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = TestHost::start(dns_config(dir1.path(), &[IP_ZONE, LOCKED_ZONE], "kms1.example.test")).await;
    let other = TestHost::start(dns_config(dir2.path(), &[IP_ZONE], "kms2.example.test")).await;
    wait_published(&host).await;
    wait_published(&other).await;

    let overview = page(&host, "/").await;
    assert!(!overview.contains("DNS publishing not configured"));
    assert!(
        overview.contains(&format!("<td>{IP_ZONE}</td><td >success</td>"))
            || overview.contains(&format!("<td>{IP_ZONE}</td><td>success</td>")),
        "{overview}"
    );
    assert!(overview.contains(&format!("<td>{LOCKED_ZONE}</td><td class=\"fail\">failure</td>")), "{overview}");
    // The zone details are a table with columns, not a key=value dump.
    for column in ["<th>HRESULT</th>", "<th>Message</th>", "<th>Last attempt</th>", "<th>Next attempt</th>", "<th>SRV</th>"] {
        assert!(overview.contains(column), "{column} in {overview}");
    }
    assert!(overview.contains("<td>0x00000000</td>"), "the successful zone's HRESULT cell: {overview}");
    assert!(!overview.contains("consecutive_failures:") && !overview.contains("last_attempt:"), "{overview}");
    assert!(overview.contains("dns_publishing_failing</b>: zone"), "the failing zone raises the alert");
    let text = http(host.admin, "GET", "/metrics", None).await.unwrap().1;
    assert_eq!(metric(&text, "kmslab_host_alert{alert=\"dns_publishing_failing\"}"), Some(1.0));
    let text = http(other.admin, "GET", "/metrics", None).await.unwrap().1;
    assert_eq!(metric(&text, "kmslab_host_alert{alert=\"dns_publishing_failing\"}"), Some(0.0));

    // 05A: this host, plus both SRV targets of the zone it publishes in.
    let hosts = page(&host, "/reports/05A").await;
    assert!(hosts.contains("kms1.example.test <b>(this host)</b>"), "{hosts}");
    assert!(hosts.contains("kms2.example.test</td>"), "{hosts}");
    assert!(hosts.contains(&format!("SRV _vlmcs._tcp.{IP_ZONE}")));
    assert!(hosts.contains(&format!("SRV lookup failed: {LOCKED_ZONE}")), "nothing published in the refusing zone: {hosts}");
    other.stop().await;
    host.stop().await;
}

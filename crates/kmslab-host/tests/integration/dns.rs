//! DNS publishing against real DNS servers: BIND9 `named` and the embedded hickory server,
//! with real `kms-client`s discovering the hosts through SRV records.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kmslab_client::ClientConfig;
use kmslab_core::catalog::Catalog;
use kmslab_dns::{DnsServerChoice, LabDnsConfig, LabDnsServer, PublishZone, TsigKey};
use kmslab_host::HostConfig;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::dns_support::{Bind, IP_ZONE, LOCKED_ZONE, TSIG_ZONE, dig, dig_srv, srv};
use crate::support::{TestHost, ask_once, config, get_json, http, request, response};

/// A host config publishing `zones` to `server` as `hostname`, retrying quickly.
fn dns_config(dir: &Path, server: SocketAddr, zones: &[&str], hostname: &str, tsig: Option<TsigKey>) -> HostConfig {
    let mut c = config(dir);
    c.dns.server = Some(server.into());
    c.dns.zones = zones.iter().map(|z| z.parse::<PublishZone>().unwrap()).collect();
    c.dns.hostname = Some(hostname.to_owned());
    c.dns.tsig = tsig;
    c.dns.ttl = 60;
    c.dns.retry_initial = Duration::from_millis(200);
    c
}

/// Polls `/api/v1/status` until the `dns.zones` entry of `zone` satisfies `pred`.
async fn wait_zone(host: &TestHost, zone: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = host.status().await;
        let entry = status["dns"]["zones"].as_array().and_then(|zones| zones.iter().find(|z| z["zone"] == zone)).cloned();
        if let Some(entry) = entry.filter(|e| pred(e)) {
            return entry;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} in {zone}; dns status: {:#}", status["dns"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn succeeded(zone: &Value) -> bool {
    zone["result"] == "success"
}

fn failed(zone: &Value) -> bool {
    zone["result"] == "failure"
}

/// Events of one id from the host's registry.
async fn events(host: &TestHost, id: u32) -> Vec<Value> {
    get_json(host.admin, &format!("/api/v1/events?id={id}")).await["events"].as_array().unwrap().clone()
}

async fn metrics(host: &TestHost) -> String {
    http(host.admin, "GET", "/metrics", None).await.unwrap().1
}

/// Polls dig until the SRV RRset of `zone` at `server` equals `expected` (sorted).
async fn wait_srv(server: SocketAddr, zone: &str, expected: &[(u16, u16, u16, String)]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = dig_srv(server, zone);
        if seen == expected {
            return;
        }
        assert!(Instant::now() < deadline, "dig sees {seen:?} in {zone}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_dns_publishing(host: &TestHost, on: bool) {
    let (code, body) = http(host.admin, "POST", "/api/v1/settings", Some(&format!("{{\"dns_publishing\":{on}}}"))).await.unwrap();
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_publishes_into_ip_and_tsig_zones_and_a_second_host_joins() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    let zones = [format!("{IP_ZONE},0,5"), format!("{TSIG_ZONE},10,20")];
    let zones: Vec<&str> = zones.iter().map(String::as_str).collect();
    let host = TestHost::start(dns_config(dir.path(), bind.addr, &zones, "kms1.example.test", Some(bind.tsig.clone()))).await;
    let port = host.kms.port();
    for zone in [IP_ZONE, TSIG_ZONE] {
        let entry = wait_zone(&host, zone, "a successful publish", succeeded).await;
        assert_eq!(entry["hresult"], "0x00000000");
        assert!(entry["next_attempt"].is_string(), "{entry}");
    }
    assert_eq!(dig_srv(bind.addr, IP_ZONE), [srv(0, 5, port, "kms1.example.test")]);
    assert_eq!(dig_srv(bind.addr, TSIG_ZONE), [srv(10, 20, port, "kms1.example.test")]);

    // 12294 per domain in the registry; the status and metrics say so too.
    let published = events(&host, 12294).await;
    for zone in [IP_ZONE, TSIG_ZONE] {
        assert!(published.iter().any(|e| e["fields"]["domain"] == zone), "no 12294 for {zone}: {published:?}");
    }
    let status = host.status().await;
    assert_eq!(status["dns"]["hostname"], "kms1.example.test");
    assert_eq!(status["dns"]["port"], port);
    assert_eq!(status["dns"]["tsig_key"], "ddns-key");
    assert_eq!(status["dns_publishing"], true);
    let text = metrics(&host).await;
    assert!(text.contains(&format!("kmslab_host_dns_publish_success{{zone=\"{TSIG_ZONE}\"}} 1")), "{text}");
    assert!(text.contains(&format!("kmslab_host_dns_publish_attempts_total{{zone=\"{IP_ZONE}\",result=\"success\"}} 1")), "{text}");

    // A second host adds its own record; the first one's stays.
    let dir2 = tempfile::tempdir().unwrap();
    let ip_zone = format!("{IP_ZONE},0,5");
    let host2 = TestHost::start(dns_config(dir2.path(), bind.addr, &[&ip_zone], "kms2.example.test", None)).await;
    wait_zone(&host2, IP_ZONE, "a successful publish", succeeded).await;
    wait_srv(bind.addr, IP_ZONE, &[srv(0, 5, port, "kms1.example.test"), srv(0, 5, host2.kms.port(), "kms2.example.test")]).await;
    host2.stop().await;
    host.stop().await;
}

// `--dns-server NAME:PORT` and `--dns-address NAME`, as in a Swarm stack (`dns:53`,
// `kms1`): `localhost` stands for a service name here. A server name that does not
// resolve is a failed attempt naming it, retried like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_and_address_given_by_name_are_resolved_when_publishing() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = dns_config(dir.path(), bind.addr, &[IP_ZONE], "kms1.ipauth.test", None);
    c.dns.server = Some(DnsServerChoice::parse_server(&format!("localhost:{}", bind.addr.port())).unwrap());
    c.dns.address_name = Some("localhost".into());
    let host = TestHost::start(c).await;
    wait_zone(&host, IP_ZONE, "a successful publish", succeeded).await;
    assert_eq!(dig_srv(bind.addr, IP_ZONE), [srv(0, 0, host.kms.port(), "kms1.ipauth.test")]);
    assert_eq!(dig(bind.addr, &["+short", "kms1.ipauth.test", "A"]).trim(), "127.0.0.1");
    assert_eq!(host.status().await["dns"]["server"], format!("localhost:{}", bind.addr.port()));
    host.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = dns_config(dir.path(), bind.addr, &[IP_ZONE], "kms2.ipauth.test", None);
    c.dns.server = Some(DnsServerChoice::parse_server("no-such-dns-server.invalid:53").unwrap());
    let host = TestHost::start(c).await;
    let entry = wait_zone(&host, IP_ZONE, "a failed publish", failed).await;
    assert_eq!(entry["hresult"], "0x8007232A");
    let message = entry["message"].as_str().unwrap();
    assert!(message.contains("no-such-dns-server.invalid:53") && message.contains("cannot resolve"), "{entry}");
    assert!(entry["next_attempt"].is_string(), "a retry is scheduled: {entry}");
    wait_zone(&host, IP_ZONE, "a second failed attempt", |z| z["failures"].as_u64() >= Some(2)).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_that_refuses_updates_gives_12293_while_the_host_keeps_serving() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::start(dns_config(dir.path(), bind.addr, &[LOCKED_ZONE], "kms1.example.test", None)).await;
    let entry = wait_zone(&host, LOCKED_ZONE, "a failed publish", failed).await;
    assert_eq!(entry["hresult"], "0x8007232D");
    assert!(entry["message"].as_str().unwrap().contains("REFUSED"), "{entry}");
    assert!(entry["next_attempt"].is_string(), "a retry is scheduled: {entry}");

    let failures = events(&host, 12293).await;
    let event = failures.first().unwrap_or_else(|| panic!("no 12293 event"));
    assert_eq!(event["fields"]["domain"], LOCKED_ZONE);
    assert_eq!(event["fields"]["result"], "0x8007232D");
    assert!(event["fields"]["error"].as_str().unwrap().contains("refused"), "{event}");
    assert!(events(&host, 12294).await.is_empty());

    // KMS keeps working, and the failures are retried with back-off.
    let answer = response(ask_once(host.kms, &request("win7-enterprise")).await);
    assert_eq!(answer.current_count, 1);
    wait_zone(&host, LOCKED_ZONE, "a retry", |z| z["failures"].as_u64() >= Some(2)).await;
    let text = metrics(&host).await;
    assert!(text.contains(&format!("kmslab_host_dns_publish_success{{zone=\"{LOCKED_ZONE}\"}} 0")), "{text}");
    assert!(dig_srv(bind.addr, LOCKED_ZONE).is_empty());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_tsig_key_gives_12293_naming_an_authentication_failure() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = TsigKey::generate("ddns-key").unwrap();
    let host = TestHost::start(dns_config(dir.path(), bind.addr, &[TSIG_ZONE], "kms1.example.test", Some(wrong))).await;
    let entry = wait_zone(&host, TSIG_ZONE, "a failed publish", failed).await;
    assert!(entry["message"].as_str().unwrap().contains("TSIG authentication failed"), "{entry}");
    let failures = events(&host, 12293).await;
    assert!(
        failures.iter().any(|e| e["fields"]["domain"] == TSIG_ZONE && e["fields"]["error"].as_str().unwrap().contains("authentication")),
        "{failures:?}"
    );
    assert!(dig_srv(bind.addr, TSIG_ZONE).is_empty());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdns_stops_publishing_persistently_and_sdns_publishes_at_once() {
    let bind = Bind::start();
    let dir = tempfile::tempdir().unwrap();
    // 24 simulated hours take 0.864 s here, so the republish timer is visible.
    let make = || {
        let mut c = dns_config(dir.path(), bind.addr, &[IP_ZONE], "kms1.example.test", None);
        c.time_scale = 100_000.0;
        c
    };
    let host = TestHost::start(make()).await;
    let port = host.kms.port();
    wait_srv(bind.addr, IP_ZONE, &[srv(0, 0, port, "kms1.example.test")]).await;
    // Removed behind the host's back: the 24-hour republish puts it back.
    nsupdate_delete(&bind, "kms1.example.test", port);
    wait_srv(bind.addr, IP_ZONE, &[srv(0, 0, port, "kms1.example.test")]).await;
    wait_zone(&host, IP_ZONE, "a republish", |z| z["successes"].as_u64() >= Some(2)).await;

    // /cdns: no more publishing, across a restart too.
    set_dns_publishing(&host, false).await;
    assert_eq!(host.status().await["dns"]["enabled"], false);
    nsupdate_delete(&bind, "kms1.example.test", port);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(dig_srv(bind.addr, IP_ZONE).is_empty(), "republished despite /cdns");
    host.stop().await;
    // Restarted in real time (scale 1): only /sdns, not a timer, can publish within the test.
    let host = TestHost::start(HostConfig { time_scale: 1.0, ..make() }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(dig_srv(bind.addr, IP_ZONE).is_empty(), "published after a restart despite /cdns");
    assert_eq!(host.status().await["dns"]["enabled"], false);

    // /sdns: published at once.
    set_dns_publishing(&host, true).await;
    wait_srv(bind.addr, IP_ZONE, &[srv(0, 0, host.kms.port(), "kms1.example.test")]).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_on_exit_removes_only_this_hosts_record() {
    let bind = Bind::start();
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leaving = dns_config(dir1.path(), bind.addr, &[IP_ZONE], "kms1.example.test", None);
    leaving.dns.unpublish_on_exit = true;
    let leaving = TestHost::start(leaving).await;
    let staying = TestHost::start(dns_config(dir2.path(), bind.addr, &[IP_ZONE], "kms2.example.test", None)).await;
    let both = [srv(0, 0, leaving.kms.port(), "kms1.example.test"), srv(0, 0, staying.kms.port(), "kms2.example.test")];
    wait_srv(bind.addr, IP_ZONE, &both).await;
    leaving.stop().await;
    assert_eq!(dig_srv(bind.addr, IP_ZONE), [srv(0, 0, staying.kms.port(), "kms2.example.test")]);
    // Without the flag (the default) a stopped host's record stays.
    let port = staying.kms.port();
    staying.stop().await;
    assert_eq!(dig_srv(bind.addr, IP_ZONE), [srv(0, 0, port, "kms2.example.test")]);
}

/// Deletes one SRV record with BIND's own `nsupdate` (the IP-authorised zone needs no key).
fn nsupdate_delete(bind: &Bind, target: &str, port: u16) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("nsupdate")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("nsupdate (bind9-dnsutils) is installed");
    let script = format!(
        "server {} {}\nzone {IP_ZONE}\nupdate delete _vlmcs._tcp.{IP_ZONE} SRV 0 0 {port} {target}.\nsend\n",
        bind.addr.ip(),
        bind.addr.port()
    );
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nsupdate failed");
    assert!(dig_srv(bind.addr, IP_ZONE).iter().all(|r| r.3 != target), "nsupdate did not delete the record");
}

// ---------------------------------------------------------------------------------------
// End to end: hosts publish, kms-clients with only --domain and --dns-server find them.

/// The time scale of the end-to-end tests: 15 simulated minutes (the host's renewal
/// interval here) take 1.5 s.
const E2E_SCALE: f64 = 600.0;
/// Server editions need a count of 5: five clients activate one host on their own.
const CLIENTS: usize = 5;
const PRODUCT: &str = "server2008r2-standard";

/// A host for the end-to-end tests: publishes `hostname` with an A record for 127.0.0.1.
fn e2e_host(dir: &Path, server: SocketAddr, zone: &str, hostname: &str, tsig: Option<TsigKey>) -> HostConfig {
    let mut c = dns_config(dir, server, &[zone], hostname, tsig);
    c.dns.address = Some("127.0.0.1".parse().unwrap());
    c.time_scale = E2E_SCALE;
    c.activation_interval = Some(15);
    c.renewal_interval = Some(15);
    c
}

/// A kms-client in this process.
struct Client {
    admin: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn start(domain: &str, dns_server: SocketAddr, number: usize) -> Client {
        let mut config = ClientConfig {
            product: Some(Catalog::builtin().product_by_name(PRODUCT).unwrap().clone()),
            domain: Some(domain.to_owned()),
            dns_server: Some(dns_server.into()),
            machine_name: Some(format!("srv{number}")),
            time_scale: E2E_SCALE,
            ..ClientConfig::default()
        };
        config.timeouts.connect = Duration::from_secs(2);
        config.timeouts.response = Duration::from_secs(3);
        config.timeouts.dns = Duration::from_secs(2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { kmslab_client::run(config, listener, token).await.unwrap() });
        Client { admin, shutdown, task }
    }

    async fn status(&self) -> Value {
        get_json(self.admin, "/api/v1/status").await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Waits until every client is licensed and its last answer came from `hostname`.
async fn wait_clients_on(clients: &[Client], hostname: &str, port: u16) {
    let wanted = format!("{hostname}:{port}");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut all = true;
        let mut last = Value::Null;
        for client in clients {
            let status = client.status().await;
            let ok = status["status"] == "licensed"
                && status["host"]["last"].as_str() == Some(wanted.as_str())
                && status["last_result"]["hresult"].as_str().is_some_and(|h| h.ends_with("00000000"));
            if !ok {
                all = false;
                last = status;
                break;
            }
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "clients not all licensed by {wanted}; one of them: {last:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One end-to-end run against a DNS server: a host publishes itself and clients activate
/// through it; then two hosts at priorities 0 and 10, clients use priority 0 and move to
/// priority 10 when it stops.
async fn end_to_end(server: SocketAddr, zone: &str, tsig: Option<TsigKey>) {
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first_name = format!("kms1.{zone}");
    let second_name = format!("kms2.{zone}");
    let first = TestHost::start(e2e_host(dir1.path(), server, &format!("{zone},0"), &first_name, tsig.clone())).await;
    wait_zone(&first, zone, "a successful publish", succeeded).await;
    assert_eq!(dig(server, &["+short", "A", &first_name]).trim(), "127.0.0.1");

    let mut clients = Vec::new();
    for number in 0..CLIENTS {
        clients.push(Client::start(zone, server, number).await);
    }
    wait_clients_on(&clients, &first_name, first.kms.port()).await;
    assert_eq!(first.status().await["counts"][0]["count"], CLIENTS);

    // A second host at priority 10: clients stay with priority 0.
    let second = TestHost::start(e2e_host(dir2.path(), server, &format!("{zone},10"), &second_name, tsig)).await;
    wait_zone(&second, zone, "a successful publish", succeeded).await;
    let renewals = first.status().await["counters"]["total"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(first.status().await["counters"]["total"].as_u64().unwrap() > renewals, "clients kept renewing with priority 0");
    assert_eq!(second.status().await["counters"]["total"], 0, "nobody used priority 10 while priority 0 was up");

    // Priority 0 stops: the clients move to priority 10.
    first.stop().await;
    wait_clients_on(&clients, &second_name, second.kms.port()).await;
    assert!(second.status().await["counters"]["total"].as_u64().unwrap() >= CLIENTS as u64);
    for client in clients {
        client.stop().await;
    }
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_with_bind() {
    let bind = Bind::start();
    end_to_end(bind.addr, TSIG_ZONE, Some(bind.tsig.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_with_the_embedded_lab_dns_server_which_keeps_records_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let lab = |listen: SocketAddr| LabDnsConfig { zone: "lab.test".into(), listen, data_dir: data.path().to_owned(), tsig: key.clone() };
    let dns = LabDnsServer::start(lab("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = dns.local_addr();
    end_to_end(addr, "lab.test", Some(key.clone())).await;
    let before = dig_srv(addr, "lab.test");
    assert_eq!(before.len(), 2, "{before:?}");
    dns.shutdown().await.unwrap();
    let dns = LabDnsServer::start(lab(addr)).await.unwrap();
    assert_eq!(dig_srv(addr, "lab.test"), before, "records lost across a restart");
    dns.shutdown().await.unwrap();
}

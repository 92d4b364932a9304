//! DNS publishing: the host writes its own `_vlmcs._tcp` SRV record into every zone of its
//! publish list, at start and every 24 hours of simulated time, and reports each outcome as
//! event 12294 (success) or 12293 (failure) in the log and the registry.
//!
//! The updates themselves are `kmslab-dns`'s [`Publisher`]; this module only schedules them,
//! retries failures with exponential back-off, keeps the state of the last attempt per zone
//! for `/api/v1/status` and `/metrics`, and obeys `/sdns` / `/cdns`. It runs as its own task
//! and never blocks serving: a DNS server that is down only produces 12293 events.
//!
//! Back-off is in *real* time (1 s doubling to 5 min, never past the next 24-hour
//! republish): it protects a real DNS server from being hammered, and a lab running at
//! `--time-scale 100000` must not turn a one-minute simulated back-off into a busy loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kmslab_core::Timestamp;
use kmslab_core::events::{DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED};
use kmslab_dns::{DnsServerChoice, PublishError, PublishZone, Publisher, PublisherConfig, TsigKey};
use kmslab_runtime::SimClock;
use kmslab_runtime::config::ConfigError;
use kmslab_store::{EventRecord, Store};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The republish interval, simulated milliseconds (docs/kms-behaviour.md: every 24 hours).
pub const REPUBLISH_MS: i64 = 24 * 3600 * 1000;
/// Default TTL of the published records, seconds.
pub const DEFAULT_TTL: u32 = 600;
/// Longest wait between two retries of a failed publish (real time).
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The validated DNS publishing settings.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Server receiving the updates (`--dns-server`, an address or a name resolved before
    /// each publishing round that follows a failure); no publishing without it.
    pub server: Option<DnsServerChoice>,
    /// The publish list (`--dns-zone`, repeatable); when empty and the host name has a
    /// domain, the host publishes in its own domain.
    pub zones: Vec<PublishZone>,
    /// The SRV target (`--dns-hostname`, or derived: see [`finish_config`]).
    pub hostname: Option<String>,
    /// False with `--no-dns-publish`.
    pub publish: bool,
    /// Signing key (`--tsig-key`, `--tsig-key-file`).
    pub tsig: Option<TsigKey>,
    /// Address record for the host name (`--dns-address IP`).
    pub address: Option<IpAddr>,
    /// `--dns-address NAME`: the A record gets the address this name resolves to (in a
    /// Swarm, the host's service name: its virtual IP), looked up at every publishing round.
    pub address_name: Option<String>,
    /// TTL of the records (`--dns-ttl`).
    pub ttl: u32,
    /// Remove the record on a clean shutdown (`--unpublish-on-exit`).
    pub unpublish_on_exit: bool,
    /// How long to wait for each DNS answer (no flag).
    pub timeout: Duration,
    /// First retry delay after a failure, real time (no flag; tests shorten it).
    pub retry_initial: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            server: None,
            zones: Vec::new(),
            hostname: None,
            publish: true,
            tsig: None,
            address: None,
            address_name: None,
            ttl: DEFAULT_TTL,
            unpublish_on_exit: false,
            timeout: Duration::from_secs(3),
            retry_initial: Duration::from_secs(1),
        }
    }
}

impl DnsConfig {
    /// True when this configuration publishes anything at all.
    pub fn active(&self) -> bool {
        self.publish && self.server.is_some() && !self.zones.is_empty() && self.hostname.is_some()
    }

    /// The publisher for SRV records pointing at `port`, sending to `server` (the
    /// configured server's address, resolved by [`resolve_publisher`] for a name).
    pub fn publisher(&self, port: u16, server: SocketAddr, address: Option<IpAddr>) -> Result<Option<Publisher>, PublishError> {
        let Some(hostname) = &self.hostname else { return Ok(None) };
        Publisher::new(PublisherConfig {
            server,
            hostname: hostname.clone(),
            port,
            ttl: self.ttl,
            tsig: self.tsig.clone(),
            address: address.or(self.address),
            timeout: self.timeout,
        })
        .map(Some)
    }
}

/// The publisher of one publishing round: the server's and the A record's names (when
/// given as names) are resolved now, so a container that came back with a new address
/// is found again. A name that does not resolve is a failed attempt like any other.
async fn resolve_publisher(config: &DnsConfig, port: u16) -> Result<Option<Publisher>, PublishError> {
    let Some(server) = &config.server else { return Ok(None) };
    let unresolved = |detail: String| PublishError::Other {
        zone: config.zones.first().map(|z| z.zone.clone()).unwrap_or_default(),
        detail,
        rcode: None,
    };
    let address = server.server_address(config.timeout).await.map_err(|e| unresolved(e.to_string()))?;
    let address = address.ok_or_else(|| unresolved("no DNS server to publish in".to_owned()))?;
    let record = match &config.address_name {
        Some(name) => {
            let ips = kmslab_dns::resolve_host(&DnsServerChoice::System, name, config.timeout)
                .await
                .map_err(|e| unresolved(format!("cannot resolve --dns-address {name}: {e}")))?;
            Some(*ips.iter().find(|ip| ip.is_ipv4()).unwrap_or(&ips[0]))
        }
        None => None,
    };
    config.publisher(port, address, record)
}

/// Completes and checks the DNS settings once every value is read: the host name and the
/// zones are derived where they can be, and a publish list without a server (or a host name)
/// is refused. `hostname` is the given `--dns-hostname` value and the name of its source.
///
/// Derivation: without `--dns-hostname` the system host name is used, completed with the
/// first zone when it has no dot (`kms1` + `lab.test` = `kms1.lab.test`). Without
/// `--dns-zone` the host publishes in the domain of its host name, as Windows does.
pub fn finish_config(dns: &mut DnsConfig, hostname: Option<(String, String)>) -> Result<(), ConfigError> {
    finish_config_with(dns, hostname, system_hostname)
}

/// [`finish_config`] with the system host name from `system_hostname`, called only when it
/// is needed (`config::validate_file` reads none).
pub(crate) fn finish_config_with(
    dns: &mut DnsConfig,
    hostname: Option<(String, String)>,
    system_hostname: impl FnOnce() -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some((value, name)) = &hostname {
        // Spaces and final dots in any order: `trim` then `trim_end_matches('.')` kept the
        // space of "kms1.lab.test. ." ("kms1.lab.test. "), which the next check would drop.
        let trimmed = value.trim_start().trim_end_matches(|c: char| c == '.' || c.is_whitespace());
        if trimmed.is_empty() || !trimmed.contains('.') {
            return Err(ConfigError::value(name, value, "expected a fully qualified name such as kms1.lab.test"));
        }
        dns.hostname = Some(trimmed.to_owned());
    }
    if !dns.publish {
        return Ok(());
    }
    if dns.server.is_none() {
        if !dns.zones.is_empty() {
            return Err(ConfigError::new("--dns-zone", "publishing needs --dns-server IP:PORT (or --no-dns-publish)"));
        }
        return Ok(());
    }
    if dns.hostname.is_none() {
        let system = system_hostname().filter(|h| !h.is_empty() && h != "localhost");
        dns.hostname = match (system, dns.zones.first()) {
            (Some(h), _) if h.contains('.') => Some(h),
            (Some(h), Some(zone)) => Some(format!("{h}.{}", zone.zone)),
            _ => {
                return Err(ConfigError::new("--dns-server", "publishing needs --dns-hostname FQDN (no usable system host name)"));
            }
        };
    }
    if dns.zones.is_empty() {
        let own = dns.hostname.as_deref().and_then(|h| h.split_once('.')).map(|(_, domain)| domain.to_owned());
        match own.map(|d| PublishZone::new(&d)) {
            Some(Ok(zone)) => dns.zones.push(zone),
            _ => return Err(ConfigError::new("--dns-server", "no --dns-zone given and the host name has no domain")),
        }
    }
    // Check the host name and key now, before anything is bound (port is filled in later).
    let any_server = SocketAddr::from(([127, 0, 0, 1], 53));
    dns.publisher(1688, any_server, None).map_err(|e| ConfigError::new("--dns-hostname", e))?;
    Ok(())
}

/// The system host name, without a trailing dot (`/proc/sys/kernel/hostname` or `/etc/hostname`).
pub(crate) fn system_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().trim_end_matches('.').to_owned())
}

/// The state of publishing in one zone, as shown on `/api/v1/status`.
#[derive(Debug, Clone)]
struct ZoneState {
    zone: PublishZone,
    last_attempt: Option<Timestamp>,
    last_success: Option<Timestamp>,
    /// HRESULT and message of the last attempt (0 and "" on success).
    last_result: Option<(u32, String)>,
    next_attempt: Option<Timestamp>,
    consecutive_failures: u32,
    successes: u64,
    failures: u64,
}

impl ZoneState {
    fn new(zone: &PublishZone) -> Self {
        ZoneState {
            zone: zone.clone(),
            last_attempt: None,
            last_success: None,
            last_result: None,
            next_attempt: None,
            consecutive_failures: 0,
            successes: 0,
            failures: 0,
        }
    }
}

/// DNS publishing's own state, shared between the publishing task, the admin API and
/// `/sdns`: the validated configuration, whether publishing is on, and each zone's last
/// attempt.
#[derive(Debug)]
pub struct DnsStatus {
    config: DnsConfig,
    /// `/sdns` (true) or `/cdns` (false).
    enabled: AtomicBool,
    zones: Mutex<BTreeMap<String, ZoneState>>,
    /// Woken by `/sdns` and `/cdns`.
    changed: Notify,
    /// The SRV port in use, once known.
    port: Mutex<Option<u16>>,
}

impl Default for DnsStatus {
    fn default() -> Self {
        DnsStatus::new(DnsConfig::default(), true)
    }
}

impl DnsStatus {
    /// The state for `config`, publishing on or off as the stored setting says.
    pub fn new(config: DnsConfig, enabled: bool) -> Self {
        DnsStatus {
            config,
            enabled: AtomicBool::new(enabled),
            zones: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            port: Mutex::new(None),
        }
    }

    fn zones(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ZoneState>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &DnsConfig {
        &self.config
    }

    /// Publishing is on (`/sdns`).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// `/sdns` (true) or `/cdns` (false): the publishing task follows at once.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// The `dns` object of `/api/v1/status`.
    pub fn view(&self) -> kmslab_api::DnsStatus {
        let config = &self.config;
        let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
        let zones = self
            .zones()
            .values()
            .map(|z| kmslab_api::ZoneStatus {
                zone: z.zone.zone.clone(),
                priority: z.zone.priority,
                weight: z.zone.weight,
                last_attempt: time(z.last_attempt),
                last_success: time(z.last_success),
                result: z.last_result.as_ref().map(|(code, _)| if *code == 0 { "success" } else { "failure" }.to_owned()),
                hresult: z.last_result.as_ref().map(|(code, _)| format!("0x{code:08X}")),
                message: z.last_result.as_ref().map(|(_, m)| m.clone()),
                next_attempt: time(z.next_attempt),
                consecutive_failures: z.consecutive_failures,
                successes: z.successes,
                failures: z.failures,
            })
            .collect();
        kmslab_api::DnsStatus {
            configured: config.active(),
            enabled: self.enabled(),
            server: config.server.as_ref().map(|s| s.to_string()),
            hostname: config.hostname.clone(),
            port: *self.port.lock().unwrap_or_else(|p| p.into_inner()),
            address: config.address.map(|a| a.to_string()).or_else(|| config.address_name.clone()),
            ttl: config.ttl,
            tsig_key: config.tsig.as_ref().map(|k| k.name.clone()),
            unpublish_on_exit: config.unpublish_on_exit,
            zones,
        }
    }

    /// Appends the DNS series to the `/metrics` text.
    pub fn render_metrics(&self, out: &mut String) {
        use kmslab_runtime::prometheus::{ConstCounter, ConstGauge, MetricType, Registry, Series, counters, register};
        let zones = self.zones();
        let mut r = Registry::default();
        let mut success = Series::new(MetricType::Gauge);
        let mut attempts = counters();
        for z in zones.values() {
            let ok = z.last_result.as_ref().is_some_and(|(code, _)| *code == 0);
            success.push([("zone", z.zone.zone.as_str())], ConstGauge::new(i64::from(ok)));
            attempts.push([("zone", z.zone.zone.as_str()), ("result", "success")], ConstCounter::new(z.successes));
            attempts.push([("zone", z.zone.zone.as_str()), ("result", "failure")], ConstCounter::new(z.failures));
        }
        register(&mut r, "kmslab_host_dns_publish_success", "1 when the last publish in the zone succeeded.", success);
        register(&mut r, "kmslab_host_dns_publish_attempts_total", "DNS publish attempts, by zone and result.", attempts);
        out.push_str(&kmslab_runtime::prometheus::encode(&r));
    }
}

/// Per-zone schedule of the publishing task.
struct Schedule {
    zone: PublishZone,
    due: Instant,
    backoff: Duration,
}

/// Where the publishing task records its attempts: the simulated clock and the registry.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    /// Simulated time.
    pub clock: SimClock,
    /// The registry (events 12293/12294).
    pub store: Store,
}

/// The publishing task: runs until `shutdown`, then (with `--unpublish-on-exit`) removes
/// this host's records. `port` is the first KMS listener's real port.
pub(crate) async fn run(dns: std::sync::Arc<DnsStatus>, ctx: Recorder, port: u16, shutdown: CancellationToken) {
    let config = dns.config.clone();
    if !config.active() {
        return;
    }
    // Built again for the round after a failed attempt (see resolve_publisher).
    let mut publisher: Option<Publisher> = None;
    *dns.port.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);
    {
        let mut zones = dns.zones();
        for z in &config.zones {
            zones.insert(z.zone.clone(), ZoneState::new(z));
        }
    }
    let start = Instant::now();
    let mut schedule: Vec<Schedule> =
        config.zones.iter().map(|z| Schedule { zone: z.clone(), due: start, backoff: config.retry_initial }).collect();
    let mut was_enabled = dns.enabled();
    loop {
        let enabled = dns.enabled();
        if enabled && !was_enabled {
            // `/sdns`: publish everywhere at once.
            for s in &mut schedule {
                s.due = Instant::now();
                s.backoff = config.retry_initial;
            }
        }
        was_enabled = enabled;
        if enabled {
            for s in schedule.iter_mut().filter(|s| s.due <= Instant::now()) {
                let attempt = async {
                    if publisher.is_none() {
                        match resolve_publisher(&config, port).await {
                            Ok(Some(p)) => publisher = Some(p),
                            Ok(None) => return Ok(()),
                            Err(e) => return Err(e),
                        }
                    }
                    let p = publisher.as_ref().expect("built above");
                    let result = p.publish(&s.zone).await;
                    if result.is_err() {
                        publisher = None;
                    }
                    result
                };
                let result = tokio::select! {
                    r = attempt => r,
                    () = shutdown.cancelled() => break,
                };
                publish_done(&dns, &ctx, &config, port, s, result).await;
            }
        } else {
            for z in dns.zones().values_mut() {
                z.next_attempt = None;
            }
        }
        let next = schedule.iter().map(|s| s.due).min().filter(|_| enabled);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = dns.changed.notified() => {}
            () = sleep_until(next) => {}
        }
    }
    // Also after `/cdns`: the flag asks that no record of a stopped host is left behind.
    if config.unpublish_on_exit {
        let publisher = match publisher {
            Some(p) => Ok(Some(p)),
            None => resolve_publisher(&config, port).await,
        };
        for z in &config.zones {
            let result = match &publisher {
                Ok(Some(p)) => p.unpublish(z).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e.clone()),
            };
            match result {
                Ok(()) => tracing::info!(domain = %z.zone, "DNS record removed (--unpublish-on-exit)"),
                Err(e) => tracing::warn!(domain = %z.zone, error = %e, "could not remove the DNS record at exit"),
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Records one attempt: event, log line, zone state, next due time.
async fn publish_done(
    dns: &DnsStatus,
    state: &Recorder,
    config: &DnsConfig,
    port: u16,
    s: &mut Schedule,
    result: Result<(), PublishError>,
) {
    let now = state.clock.now();
    let zone = &s.zone;
    let server = config.server.as_ref().map(|a| a.to_string()).unwrap_or_default();
    let (event, next_at) = match &result {
        Ok(()) => {
            tracing::info!(
                event_id = DNS_PUBLISH_SUCCEEDED,
                domain = %zone.zone,
                priority = zone.priority,
                weight = zone.weight,
                port,
                target = config.hostname.as_deref().unwrap_or_default(),
                "DNS publishing succeeded"
            );
            s.backoff = config.retry_initial;
            let next = Timestamp::from_unix_ms(now.as_unix_ms() + REPUBLISH_MS);
            s.due = state.clock.deadline(next);
            let fields = json!({
                "domain": zone.zone, "priority": zone.priority, "weight": zone.weight, "port": port,
                "target": config.hostname, "server": server,
            });
            (EventRecord { event_id: DNS_PUBLISH_SUCCEEDED, time_ms: now.as_unix_ms(), fields_json: fields.to_string() }, next)
        }
        Err(e) => {
            let hresult = format!("0x{:08X}", e.hresult());
            tracing::warn!(event_id = DNS_PUBLISH_FAILED, result = %hresult, domain = %zone.zone, error = %e, "DNS publishing failed");
            // Never later than the regular republish would have been.
            let wait = s.backoff.min(state.clock.real_duration(REPUBLISH_MS));
            s.due = Instant::now() + wait;
            s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
            let next = Timestamp::from_unix_ms(now.as_unix_ms() + (wait.as_millis() as f64 * state.clock.scale()) as i64);
            let fields = json!({ "result": hresult, "domain": zone.zone, "error": e.to_string(), "server": server });
            (EventRecord { event_id: DNS_PUBLISH_FAILED, time_ms: now.as_unix_ms(), fields_json: fields.to_string() }, next)
        }
    };
    // The event is committed before the status shows the attempt, so that whatever the
    // status reports can also be found in the registry.
    if let Err(e) = state.store.append_event(event).await {
        tracing::error!(error = %e, "registry write of a DNS publishing event failed");
    }
    {
        let mut zones = dns.zones();
        let z = zones.entry(zone.zone.clone()).or_insert_with(|| ZoneState::new(zone));
        z.last_attempt = Some(now);
        z.next_attempt = Some(next_at);
        match &result {
            Ok(()) => {
                z.last_success = Some(now);
                z.last_result = Some((0, String::new()));
                z.consecutive_failures = 0;
                z.successes += 1;
            }
            Err(e) => {
                z.last_result = Some((e.hresult(), e.to_string()));
                z.consecutive_failures += 1;
                z.failures += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(server: Option<&str>, zones: &[&str], hostname: Option<&str>, expected: Result<(&str, &[&str]), &str>) {
        let mut dns = DnsConfig {
            server: server.map(|s| DnsServerChoice::parse_server(s).unwrap()),
            zones: zones.iter().map(|z| z.parse().unwrap()).collect(),
            ..DnsConfig::default()
        };
        let result = finish_config(&mut dns, hostname.map(|h| (h.to_owned(), "--dns-hostname".to_owned())));
        match (result, expected) {
            (Ok(()), Ok((host, zones))) => {
                assert_eq!(dns.hostname.as_deref(), Some(host));
                assert_eq!(dns.zones.iter().map(|z| z.zone.as_str()).collect::<Vec<_>>(), zones);
            }
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{e} should mention {needle}"),
            (other, expected) => panic!("{other:?} but expected {expected:?}"),
        }
    }

    #[test]
    fn hostname_and_zones_are_derived_or_refused() {
        check(Some("127.0.0.1:53"), &["lab.test,10"], Some("kms1.lab.test."), Ok(("kms1.lab.test", &["lab.test"])));
        // No publish list: the host name's own domain.
        check(Some("127.0.0.1:53"), &[], Some("kms1.corp.test"), Ok(("kms1.corp.test", &["corp.test"])));
        check(None, &["lab.test"], Some("kms1.lab.test"), Err("--dns-server"));
        check(Some("127.0.0.1:53"), &["lab.test"], Some("kms1"), Err("fully qualified"));
        check(Some("127.0.0.1:53"), &["lab.test"], Some("bad..name.test"), Err("bad..name.test"));
        // Found by the host_config fuzz target: the name kept is the name checked, and
        // checking it again changes nothing.
        check(None, &[], Some("kms1.lab.test. ."), Ok(("kms1.lab.test", &[])));
        check(Some("127.0.0.1:53"), &[], Some(" kms1.lab.test . \t"), Ok(("kms1.lab.test", &["lab.test"])));
        // Nothing configured: nothing to publish, no error.
        let mut none = DnsConfig::default();
        finish_config(&mut none, None).unwrap();
        assert!(!none.active());
    }
}

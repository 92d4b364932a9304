//! The pieces a drill builds its lab from: in-process KMS hosts (`kmslab_host::run` on
//! 127.0.0.1, port 0, a temporary data directory) that publish their own SRV records
//! ([`LabDns::host_publishing`]), the embedded DNS server and `/dli`-like renderings of
//! what the hosts report (status, events 12293/12294). Every host carries a fault handle
//! ([`LabHost::faults`]): the firewall closing its port and the loss of its activation
//! are the switches `kmslab up`'s control API flips too ([`crate::control`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kmslab_core::events::{DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::{HResult, Timestamp};
use kmslab_dns::{LabDnsConfig, LabDnsServer, PublishZone, Publisher, PublisherConfig, TsigKey};
use kmslab_host::HostConfig;
use kmslab_host::faults::Faults;
use kmslab_runtime::SimClock;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The DNS zone of every drill.
pub const ZONE: &str = "lab.test";

/// Simulated time settings shared by every daemon of one drill.
#[derive(Debug, Clone, Copy)]
pub struct LabTime {
    /// Time scale.
    pub scale: f64,
    /// Common origin.
    pub origin: Timestamp,
}

impl LabTime {
    /// A lab clock running `scale` times faster from now.
    pub fn new(scale: f64) -> Self {
        LabTime { scale, origin: SimClock::real().now() }
    }

    /// A clock agreeing with every other one of this lab.
    pub fn clock(&self) -> SimClock {
        SimClock::new(self.scale, Some(self.origin)).expect("valid drill scale")
    }
}

/// One running in-process KMS host.
#[derive(Debug)]
pub struct LabHost {
    /// Its name (also its DNS name `<name>.lab.test`).
    pub name: String,
    /// The KMS listener.
    pub kms: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
    config: HostConfig,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl LabHost {
    /// A host configuration for this lab: its clock, short intervals so that failed
    /// clients retry within seconds of real time, and a data directory.
    pub fn config(time: LabTime, data_dir: PathBuf) -> HostConfig {
        let mut c = HostConfig::with_data_dir(data_dir);
        c.time_scale = time.scale;
        c.time_origin = Some(time.origin);
        c.activation_interval = Some(15);
        c.shutdown_grace = Duration::from_secs(3);
        c
    }

    /// Starts a host named `name` with `edit` applied to the lab configuration.
    pub async fn start(name: &str, time: LabTime, edit: impl FnOnce(&mut HostConfig)) -> anyhow::Result<LabHost> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let mut config = LabHost::config(time, dir.path().to_path_buf());
        edit(&mut config);
        let mut host = LabHost::start_with(name, config, 0, 0).await?;
        host._dir = Some(dir);
        Ok(host)
    }

    async fn start_with(name: &str, mut config: HostConfig, port: u16, admin_port: u16) -> anyhow::Result<LabHost> {
        let faults = Arc::clone(config.faults.get_or_insert_with(Arc::default));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await.with_context(|| format!("binding {name}'s KMS port"))?;
        let admin = TcpListener::bind((Ipv4Addr::LOCALHOST, admin_port)).await.context("binding the admin port")?;
        let (kms, admin_addr) = (listener.local_addr()?, admin.local_addr()?);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let host_name = name.to_owned();
        let run_config = config.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = kmslab_host::run(vec![listener], admin, run_config, token).await {
                tracing::error!(host = %host_name, error = %e, "lab host stopped");
            }
        });
        let host = LabHost { name: name.to_owned(), kms, admin: admin_addr, config, faults, shutdown, task, _dir: None };
        // The registry opens in the background: wait until the admin API answers.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while host.status().await.is_err() {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "host {name} did not start within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(host)
    }

    /// Its fault switches (kept across a stop and start): [`Faults::set_blocked`] closes its
    /// KMS port as a firewall would, [`Faults::set_unactivated`] takes its activation away.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The host as `/skms` would name it: `<name>.lab.test:<port>`.
    pub fn dns_addr(&self) -> HostAddr {
        HostAddr::new(format!("{}.{ZONE}", self.name), self.kms.port())
    }

    /// The host by IP literal.
    pub fn ip_addr(&self) -> HostAddr {
        HostAddr::new(self.kms.ip().to_string(), self.kms.port())
    }

    /// Stops the host (the registry is closed) and keeps its data directory.
    pub async fn stop(self) -> StoppedHost {
        self.shutdown.cancel();
        let _ = self.task.await;
        StoppedHost { name: self.name, port: self.kms.port(), admin_port: self.admin.port(), config: self.config, dir: self._dir }
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> anyhow::Result<Value> {
        http_get_json(self.admin, "/api/v1/status").await
    }

    /// `slmgr /ipk KEY` on the host (a new KMS host key): the HTTP status and the answer.
    pub async fn ipk(&self, key: &str) -> anyhow::Result<(u16, Value)> {
        http_post_json(self.admin, "/api/v1/ipk", &serde_json::json!({ "key": key })).await
    }

    /// `slmgr /ato` on the host (genuine validation of its host key): the answer
    /// (`hresult`, `name`, `meaning`).
    pub async fn ato(&self) -> anyhow::Result<Value> {
        let (status, body) = http_post_json(self.admin, "/api/v1/ato", &serde_json::json!({})).await?;
        anyhow::ensure!(status == 200, "{}: /ato: HTTP {status}: {body}", self.name);
        Ok(body)
    }

    /// The host's events `id` from its registry (`/api/v1/events?id=ID`), oldest first.
    pub async fn events(&self, id: u32) -> Vec<Value> {
        match http_get_json(self.admin, &format!("/api/v1/events?id={id}")).await {
            Ok(v) => v["events"].as_array().cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The host's `/dli` lines.
    pub async fn dli_lines(&self) -> Vec<String> {
        match self.status().await {
            Ok(s) => host_dli_lines(&s),
            Err(e) => vec![format!("(no answer from the host's admin API: {e})")],
        }
    }

    /// The Windows group's current count.
    pub async fn current_count(&self) -> u64 {
        self.status().await.map(|s| windows_count(&s)).unwrap_or(0)
    }

    /// The host's own DNS publishing state for [`ZONE`]: the `dns.zones[]` entry of its
    /// `/api/v1/status`, read as the typed view the host serialises it from (`None` before
    /// the first attempt or without an answer).
    pub async fn dns_zone(&self) -> Option<kmslab_api::ZoneStatus> {
        let status = serde_json::from_value::<kmslab_api::HostStatus>(self.status().await.ok()?).ok()?;
        status.zone(ZONE).cloned()
    }

    /// The host's events 12293 and 12294 from its registry (`/api/v1/events`), oldest first.
    pub async fn dns_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for id in [DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED] {
            if let Ok(v) = http_get_json(self.admin, &format!("/api/v1/events?id={id}")).await {
                events.extend(v["events"].as_array().cloned().unwrap_or_default());
            }
        }
        events.sort_by_key(|e| e["seq"].as_u64().unwrap_or(0));
        events
    }

    /// What the host itself reports about its DNS publishing: the `dns` object of its
    /// status and its last `last` events 12293/12294, as lines.
    pub async fn dns_lines(&self, last: usize) -> Vec<String> {
        let mut lines = Vec::new();
        match self.dns_zone().await {
            None => lines.push(format!("{}: /api/v1/status dns: no attempt in {ZONE} yet", self.name)),
            Some(z) => {
                let mut line = format!(
                    "{}: /api/v1/status dns.zones[{ZONE}]: result {}, hresult {}, successes {}, failures {}",
                    self.name,
                    z.result.as_deref().unwrap_or("null"),
                    z.hresult.as_deref().unwrap_or("null"),
                    z.successes,
                    z.failures
                );
                if let Some(m) = z.message.as_deref().filter(|m| !m.is_empty()) {
                    line.push_str(&format!(", message {m:?}"));
                }
                lines.push(line);
            }
        }
        let events = self.dns_events().await;
        let skip = events.len().saturating_sub(last);
        for e in &events[skip..] {
            lines.push(dns_event_line(&self.name, e));
        }
        lines
    }
}

/// One event 12293/12294 of `/api/v1/events` as an Event Viewer line.
pub fn dns_event_line(host: &str, e: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let f = &e["fields"];
    if e["event_id"] == DNS_PUBLISH_FAILED {
        let result = text(&f["result"]);
        let name = HResult::parse(&result).map_or("", |h| h.name());
        format!(
            "Event 12293 (DNS publishing failed) on {host} at {}: result {result} {name}, domain {}: {}",
            text(&e["time"]),
            text(&f["domain"]),
            text(&f["error"])
        )
    } else {
        format!(
            "Event 12294 (DNS publishing succeeded) on {host} at {}: domain {}, SRV priority {} weight {} port {} target {}",
            text(&e["time"]),
            text(&f["domain"]),
            f["priority"],
            f["weight"],
            f["port"],
            text(&f["target"])
        )
    }
}

/// A stopped host that can be started again on the same port and data directory.
#[derive(Debug)]
pub struct StoppedHost {
    name: String,
    port: u16,
    admin_port: u16,
    config: HostConfig,
    dir: Option<tempfile::TempDir>,
}

impl StoppedHost {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its KMS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts it again with `edit` applied to its configuration.
    pub async fn restart(self, edit: impl FnOnce(&mut HostConfig)) -> anyhow::Result<LabHost> {
        let mut config = self.config;
        edit(&mut config);
        // The port was just closed; binding it again can fail for a moment on a busy box.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match LabHost::start_with(&self.name, config.clone(), self.port, self.admin_port).await {
                Ok(mut h) => {
                    h._dir = self.dir;
                    return Ok(h);
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The embedded DNS server of a drill, with its TSIG key.
#[derive(Debug)]
pub struct LabDns {
    /// The server.
    pub server: LabDnsServer,
    /// The only key allowed to update the zone.
    pub key: TsigKey,
    _dir: tempfile::TempDir,
}

impl LabDns {
    /// Starts the server for [`ZONE`] on 127.0.0.1, port 0.
    pub async fn start() -> anyhow::Result<LabDns> {
        let dir = tempfile::tempdir()?;
        let key = TsigKey::generate("lab-update-key").map_err(|e| anyhow::anyhow!("{e}"))?;
        let server = LabDnsServer::start(LabDnsConfig {
            zone: ZONE.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            data_dir: dir.path().to_path_buf(),
            tsig: key.clone(),
        })
        .await?;
        Ok(LabDns { server, key, _dir: dir })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Makes the host named `name` publish itself into this server, as `kms-host
    /// --dns-server ADDR --dns-zone lab.test,PRIORITY --dns-hostname NAME.lab.test
    /// --dns-address 127.0.0.1 [--tsig-key-file ...]` would: `key` None sends unsigned
    /// updates (which this server refuses). Records stay when the host stops
    /// (no `--unpublish-on-exit`).
    pub fn host_publishing(&self, c: &mut HostConfig, name: &str, priority: u16, key: Option<TsigKey>) {
        c.dns.server = Some(self.addr().into());
        c.dns.zones = vec![PublishZone { zone: ZONE.into(), priority, weight: 0 }];
        c.dns.hostname = Some(format!("{name}.{ZONE}"));
        c.dns.address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        c.dns.tsig = key;
        c.dns.ttl = 60;
        c.dns.publish = true;
        c.dns.unpublish_on_exit = false;
    }

    /// Publishes `host`'s SRV record (and its A record) signed with `key` (None: unsigned)
    /// on the host's behalf, for tests of hosts started without DNS settings. The drills do
    /// not use it: their hosts publish themselves ([`LabDns::host_publishing`]).
    /// Returns the event the host would log: 12294 on success, 12293 with the HRESULT.
    pub async fn publish(&self, host: &LabHost, key: Option<TsigKey>) -> Result<String, String> {
        let publisher = self.publisher(host, key).map_err(|e| format!("{e}"))?;
        match publisher.publish(&PublishZone::new(ZONE).expect("valid zone")).await {
            Ok(()) => Ok(format!("Event 12294 (DNS publishing succeeded) on {}: domain {ZONE}", host.name)),
            Err(e) => {
                let code = kmslab_core::HResult(e.hresult());
                Err(format!("Event 12293 (DNS publishing failed) on {}: result {code} {}, domain {ZONE}: {e}", host.name, code.name()))
            }
        }
    }

    fn publisher(&self, host: &LabHost, key: Option<TsigKey>) -> Result<Publisher, kmslab_dns::PublishError> {
        Publisher::new(PublisherConfig {
            server: self.addr(),
            hostname: format!("{}.{ZONE}", host.name),
            port: host.kms.port(),
            ttl: 60,
            tsig: key,
            address: Some(host.kms.ip()),
            timeout: Duration::from_secs(5),
        })
    }

    /// What `nslookup -type=srv _vlmcs._tcp.lab.test` shows.
    pub async fn srv_lines(&self) -> Vec<String> {
        let choice = kmslab_dns::DnsServerChoice::Server(self.addr());
        match kmslab_dns::lookup_vlmcs(&choice, ZONE, Duration::from_secs(5)).await {
            Ok(records) => records
                .iter()
                .map(|r| {
                    format!(
                        "_vlmcs._tcp.{ZONE}  SRV service location: priority {} weight {} port {} svr hostname {}",
                        r.priority, r.weight, r.port, r.target
                    )
                })
                .collect(),
            Err(e) => vec![format!("_vlmcs._tcp.{ZONE}: {e} ({})", kmslab_core::HResult(e.hresult()))],
        }
    }
}

/// A POST of a JSON body to a loopback admin API (`kmslab-http`, on tokio's blocking
/// pool); the answer's status code and JSON body.
pub async fn http_post_json(addr: SocketAddr, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let (owned_path, body) = (path.to_owned(), body.to_string());
    let answer = tokio::task::spawn_blocking(move || {
        let address = addr.to_string();
        let mut request = kmslab_http::Request::get(&address, &owned_path, Duration::from_secs(10));
        request.method = "POST";
        request.json = Some(&body);
        request.connect_timeout = Duration::from_secs(5);
        kmslab_http::request(&request)
    })
    .await??;
    Ok((answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::Null)))
}

/// A GET of a JSON document from a loopback admin API.
pub async fn http_get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&http_get_text(addr, path).await?)?)
}

/// A GET from a loopback admin API; the body of a 200 answer. The blocking request
/// (`kmslab-http`, the workspace's one HTTP client) runs on tokio's blocking pool.
pub async fn http_get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let owned_path = path.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let address = addr.to_string();
        let mut request = kmslab_http::Request::get(&address, &owned_path, Duration::from_secs(10));
        request.connect_timeout = Duration::from_secs(5);
        kmslab_http::request(&request)
    })
    .await??;
    anyhow::ensure!(answer.status == 200, "GET {path}: HTTP {}", answer.status);
    Ok(answer.body)
}

/// The Windows group's count in a status document (0 when it is not a host's status).
pub fn windows_count(status: &Value) -> u64 {
    serde_json::from_value::<kmslab_api::HostStatus>(status.clone()).map_or(0, |s| u64::from(s.count_of("windows")))
}

/// A host's `/dli` lines (docs/interfaces.md) from its status document, from the one
/// renderer slmgr uses.
pub fn host_dli_lines(s: &Value) -> Vec<String> {
    match serde_json::from_value::<kmslab_api::HostStatus>(s.clone()) {
        Ok(status) => kmslab_api::render::host_dli_lines(&status, false, false),
        Err(e) => vec![format!("(the host's status is not a kms-host status: {e})")],
    }
}

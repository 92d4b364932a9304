//! The lab's control plane: one [`Lab`] owns the embedded DNS server, the KMS hosts and
//! the fleet of `kmslab up`, and every fault is one of its methods (stop, start, restart,
//! block, unblock, unactivate a host; refuse updates, outage, remove a record in DNS; skew,
//! clone, rearm, add machines: [`crate::labapi::MachineApi`], over the fleet). The lab control API ([`crate::labapi`]) and the drills
//! call these same methods, so a fault is applied one way only. Each fault is recorded as
//! a lab event with the simulated time it took effect at.
//!
//! Host roles ([`Role`]): `down` (stopped), `blocked` (its KMS port refuses connections),
//! `unactivated` (it answers 0xC004F041), else `serving` for the host of lowest SRV priority
//! among those left and `standby` for the others.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmslab_core::{HResult, Timestamp};
use kmslab_dns::{PublishZone, Publisher, PublisherConfig};
use kmslab_host::faults::Faults;
use kmslab_runtime::SimClock;
use serde_json::{Value, json};

use crate::drill::lab::{LabDns, LabHost, LabTime, StoppedHost, ZONE, http_get_json, http_post_json, windows_count};
use crate::engine::{FleetHandle, MachineSetup};

/// Lab events kept for `/api/v1/lab/events`.
pub const EVENT_RING: usize = 1000;

/// How often the hosts' status documents are read again for the lab summary.
pub const REFRESH: Duration = Duration::from_millis(250);

/// Why a fault could not be applied: what was wrong, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultError {
    /// No host, machine or action of that name (HTTP 404).
    NotFound(String),
    /// The fault does not apply in the current state, e.g. stopping a stopped host (409).
    Conflict(String),
    /// A bad argument (400).
    Invalid(String),
    /// The fault failed (500).
    Failed(String),
}

impl std::fmt::Display for FaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultError::NotFound(m) | FaultError::Conflict(m) | FaultError::Invalid(m) | FaultError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FaultError {}

/// A host's role in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The available host of lowest SRV priority: where discovery sends new clients.
    Serving,
    /// Available, behind a host of lower priority.
    Standby,
    /// Stopped.
    Down,
    /// Running, its KMS port refusing connections.
    Blocked,
    /// Running without its own activation: answers 0xC004F041.
    Unactivated,
}

impl Role {
    /// The name the API uses.
    pub fn key(self) -> &'static str {
        match self {
            Role::Serving => "serving",
            Role::Standby => "standby",
            Role::Down => "down",
            Role::Blocked => "blocked",
            Role::Unactivated => "unactivated",
        }
    }
}

/// A host action of `POST /api/v1/lab/hosts/{name}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAction {
    /// Stop the service (its SRV record stays).
    Stop,
    /// Start it again on the same ports and registry.
    Start,
    /// Stop and start: the CMID collection starts again.
    Restart,
    /// Close its KMS port while it keeps running.
    Block,
    /// Open it again.
    Unblock,
    /// It loses its own activation.
    Unactivate,
    /// It gets its activation back.
    Activate,
}

impl HostAction {
    /// Every action with its name.
    pub const ALL: [(&'static str, HostAction); 7] = [
        ("stop", HostAction::Stop),
        ("start", HostAction::Start),
        ("restart", HostAction::Restart),
        ("block", HostAction::Block),
        ("unblock", HostAction::Unblock),
        ("unactivate", HostAction::Unactivate),
        ("activate", HostAction::Activate),
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<HostAction> {
        HostAction::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Its name.
    pub fn key(self) -> &'static str {
        HostAction::ALL.iter().find(|(_, a)| *a == self).map_or("", |(n, _)| n)
    }
}

/// A DNS action of `POST /api/v1/lab/dns/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAction {
    /// Dynamic updates are refused (the hosts log 12293).
    RefuseUpdates,
    /// Updates are accepted again.
    AcceptUpdates,
    /// Queries and updates go unanswered (time out).
    Outage,
    /// The outage ends.
    Restore,
}

impl DnsAction {
    /// Every action with its name.
    pub const ALL: [(&'static str, DnsAction); 4] = [
        ("refuse-updates", DnsAction::RefuseUpdates),
        ("accept-updates", DnsAction::AcceptUpdates),
        ("outage", DnsAction::Outage),
        ("restore", DnsAction::Restore),
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<DnsAction> {
        DnsAction::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Its name.
    pub fn key(self) -> &'static str {
        DnsAction::ALL.iter().find(|(_, a)| *a == self).map_or("", |(n, _)| n)
    }
}

/// A host is running or stopped; `Moving` only while a stop or start is under way.
#[derive(Debug)]
enum Run {
    Running(LabHost),
    Stopped(StoppedHost),
    Moving,
}

#[derive(Debug)]
struct HostSlot {
    name: String,
    priority: u16,
    kms: SocketAddr,
    admin: SocketAddr,
    faults: Arc<Faults>,
    run: tokio::sync::Mutex<Run>,
    /// The last status document read (`Null` while down or not read yet).
    status: Mutex<Value>,
    running: std::sync::atomic::AtomicBool,
}

/// One entry of the lab's event log.
#[derive(Debug, Clone)]
struct LabEvent {
    seq: u64,
    time: Timestamp,
    kind: String,
    target: String,
    detail: Value,
}

/// The lab's own simulated activation service (`kmslab activation-service` in process).
#[derive(Debug, Clone)]
pub struct LabActivation {
    /// Where its wire protocol listens.
    pub addr: std::net::SocketAddr,
    /// The service (keys and their counts).
    pub service: Arc<kmslab_activation::Service>,
}

/// A whole lab: DNS, hosts, machines, the activation service, and the faults applied to them.
#[derive(Debug)]
pub struct Lab {
    /// The lab's clock settings.
    pub time: LabTime,
    dns: LabDns,
    hosts: Vec<HostSlot>,
    fleet: Mutex<Option<FleetHandle>>,
    activation: Mutex<Option<LabActivation>>,
    events: Mutex<(u64, VecDeque<LabEvent>)>,
    /// The runtime the hosts run on (the control API may be served from another one).
    runtime: tokio::runtime::Handle,
}

impl Lab {
    /// A lab of `dns` and `hosts` with their SRV priorities; machines join with
    /// [`Lab::set_fleet`]. Faults go through each host's own switches ([`LabHost::faults`]).
    pub fn new(time: LabTime, dns: LabDns, hosts: Vec<(LabHost, u16)>) -> Lab {
        let hosts = hosts
            .into_iter()
            .map(|(h, priority)| HostSlot {
                faults: Arc::clone(h.faults()),
                name: h.name.clone(),
                priority,
                kms: h.kms,
                admin: h.admin,
                run: tokio::sync::Mutex::new(Run::Running(h)),
                status: Mutex::new(Value::Null),
                running: std::sync::atomic::AtomicBool::new(true),
            })
            .collect();
        let runtime = tokio::runtime::Handle::current();
        Lab { time, dns, hosts, fleet: Mutex::new(None), activation: Mutex::new(None), events: Mutex::new((0, VecDeque::new())), runtime }
    }

    /// The lab's activation service (its MAKs are shown with their remaining counts).
    pub fn set_activation(&self, activation: LabActivation) {
        *self.activation.lock().expect("lab lock") = Some(activation);
    }

    /// The machines the lab's machine faults act on.
    pub fn set_fleet(&self, fleet: FleetHandle) {
        *self.fleet.lock().expect("lab lock") = Some(fleet);
    }

    /// The fleet, once set.
    pub fn fleet(&self) -> Option<FleetHandle> {
        self.fleet.lock().expect("lab lock").clone()
    }

    /// The lab's clock.
    pub fn clock(&self) -> SimClock {
        self.time.clock()
    }

    /// The embedded DNS server.
    pub fn dns(&self) -> &LabDns {
        &self.dns
    }

    /// Host names, in SRV priority order.
    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn host(&self, name: &str) -> Result<&HostSlot, FaultError> {
        self.hosts
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| FaultError::NotFound(format!("no host named {name:?} in this lab (hosts: {})", self.host_names().join(", "))))
    }

    /// Records a lab event at the simulated now.
    pub fn record(&self, kind: &str, target: &str, detail: Value) {
        let time = self.clock().now();
        let mut g = self.events.lock().expect("lab lock");
        g.0 += 1;
        let seq = g.0;
        if g.1.len() >= EVENT_RING {
            g.1.pop_front();
        }
        g.1.push_back(LabEvent { seq, time, kind: kind.to_owned(), target: target.to_owned(), detail });
    }

    /// The lab events with a sequence number above `since`, oldest first.
    pub fn events_since(&self, since: u64) -> Vec<Value> {
        let g = self.events.lock().expect("lab lock");
        g.1.iter()
            .filter(|e| e.seq > since)
            .map(|e| json!({"seq": e.seq, "time": e.time.to_string(), "kind": e.kind, "target": e.target, "detail": e.detail}))
            .collect()
    }

    /// Applies a host action; the lab event records it. A host started again runs on the
    /// runtime the lab was made on, whichever runtime calls this.
    pub async fn host_action(self: &Arc<Self>, name: &str, action: HostAction) -> Result<(), FaultError> {
        self.host(name)?;
        let (lab, name) = (Arc::clone(self), name.to_owned());
        self.runtime
            .spawn(async move { lab.host_action_here(&name, action).await })
            .await
            .map_err(|e| FaultError::Failed(format!("the host action stopped: {e}")))?
    }

    async fn host_action_here(&self, name: &str, action: HostAction) -> Result<(), FaultError> {
        let host = self.host(name)?;
        match action {
            HostAction::Stop => self.stop_host(host).await?,
            HostAction::Start => self.start_host(host).await?,
            HostAction::Restart => {
                self.stop_host(host).await?;
                self.start_host(host).await?;
            }
            HostAction::Block => host.faults.set_blocked(true),
            HostAction::Unblock => host.faults.set_blocked(false),
            HostAction::Unactivate => host.faults.set_unactivated(true),
            HostAction::Activate => host.faults.set_unactivated(false),
        }
        self.record(&format!("host_{}", action.key()), &host.name, Value::Null);
        Ok(())
    }

    async fn stop_host(&self, host: &HostSlot) -> Result<(), FaultError> {
        let mut run = host.run.lock().await;
        match std::mem::replace(&mut *run, Run::Moving) {
            Run::Running(h) => {
                host.running.store(false, std::sync::atomic::Ordering::Relaxed);
                *run = Run::Stopped(h.stop().await);
                *host.status.lock().expect("lab lock") = Value::Null;
                Ok(())
            }
            other => {
                *run = other;
                Err(FaultError::Conflict(format!("{} is not running", host.name)))
            }
        }
    }

    async fn start_host(&self, host: &HostSlot) -> Result<(), FaultError> {
        let mut run = host.run.lock().await;
        match std::mem::replace(&mut *run, Run::Moving) {
            Run::Stopped(s) => match s.restart(|_| {}).await {
                Ok(h) => {
                    *run = Run::Running(h);
                    host.running.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => Err(FaultError::Failed(format!("cannot start {}: {e:#}", host.name))),
            },
            other => {
                *run = other;
                Err(FaultError::Conflict(format!("{} is already running", host.name)))
            }
        }
    }

    /// `slmgr /sai` (`activation: true`) or `/sri` on a host, through its admin API.
    pub async fn host_interval(&self, name: &str, activation: bool, minutes: u64) -> Result<(), FaultError> {
        let host = self.host(name)?;
        if !host.running.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(FaultError::Conflict(format!("{} is not running", host.name)));
        }
        let key = if activation { "activation_interval" } else { "renewal_interval" };
        let (code, body) = http_post_json(host.admin, "/api/v1/settings", &json!({ key: minutes }))
            .await
            .map_err(|e| FaultError::Failed(format!("{}'s admin API: {e:#}", host.name)))?;
        if code != 200 {
            return Err(FaultError::Invalid(body["error"].as_str().unwrap_or("the host refused the setting").to_owned()));
        }
        self.record(if activation { "host_sai" } else { "host_sri" }, &host.name, json!({ "minutes": minutes }));
        Ok(())
    }

    /// Adds one machine per CMID of `cmids` (a CMID given twice: machines cloned from one
    /// image) with `product` and `setup`, as a cohort of a scenario joins; the lab event
    /// `machines_added` records it. Their indexes in the fleet.
    pub async fn add_machines_with(
        &self,
        cmids: Vec<kmslab_core::Uuid>,
        product: Arc<kmslab_core::catalog::Product>,
        setup: MachineSetup,
    ) -> Result<std::ops::Range<usize>, FaultError> {
        let fleet = self.fleet().ok_or_else(|| FaultError::Conflict("this lab has no machines".into()))?;
        let (count, name) = (cmids.len(), product.name.clone());
        let range = fleet.add_machines_with(cmids, product, setup).await;
        let names = fleet.names(range.clone()).await;
        self.record("machines_added", &name, json!({ "count": count, "first": names.first(), "last": names.last() }));
        Ok(range)
    }

    /// `slmgr /rearm` on machines `range` (new CMIDs, initial grace, an attempt at once);
    /// the lab event `machines_rearm` records it.
    pub async fn rearm_machines(&self, range: std::ops::Range<usize>) -> Result<(), FaultError> {
        let fleet = self.fleet().ok_or_else(|| FaultError::Conflict("this lab has no machines".into()))?;
        let names = fleet.names(range.clone()).await;
        fleet.rearm(range);
        self.record("machines_rearm", names.first().map_or("", String::as_str), json!({ "count": names.len(), "last": names.last() }));
        Ok(())
    }

    /// Whether each host (in the lab's order) takes KMS connections now: running and
    /// not blocked.
    pub fn reachable(&self) -> Vec<bool> {
        self.hosts.iter().map(|h| h.running.load(std::sync::atomic::Ordering::Relaxed) && !h.faults.blocked()).collect()
    }

    /// Whether each host is running (its status can be read).
    pub fn running(&self) -> Vec<bool> {
        self.hosts.iter().map(|h| h.running.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    /// Applies a DNS action; the lab event records it.
    pub fn dns_action(&self, action: DnsAction) {
        let faults = self.dns.server.faults();
        match action {
            DnsAction::RefuseUpdates => faults.set_refuse_updates(true),
            DnsAction::AcceptUpdates => faults.set_refuse_updates(false),
            DnsAction::Outage => faults.set_outage(true),
            DnsAction::Restore => faults.set_outage(false),
        }
        self.record(&format!("dns_{}", action.key().replace('-', "_")), ZONE, Value::Null);
    }

    /// Removes host `name`'s SRV record (a TSIG-signed update, as an administrator with the
    /// zone's key would). The host publishes it again at its next round (every 24 hours).
    pub async fn remove_record(&self, name: &str) -> Result<(), FaultError> {
        let host = self.host(name)?;
        let publisher = Publisher::new(PublisherConfig {
            server: self.dns.addr(),
            hostname: format!("{}.{ZONE}", host.name),
            port: host.kms.port(),
            ttl: 60,
            tsig: Some(self.dns.key.clone()),
            address: Some(host.kms.ip()),
            timeout: Duration::from_secs(3),
        })
        .map_err(|e| FaultError::Failed(e.to_string()))?;
        let zone = PublishZone::new(ZONE).map_err(|e| FaultError::Failed(e.to_string()))?;
        publisher.unpublish(&zone).await.map_err(|e| {
            FaultError::Conflict(format!("the DNS server did not remove {}'s record: {e} ({})", host.name, HResult(e.hresult())))
        })?;
        self.record("dns_remove_record", &host.name, Value::Null);
        Ok(())
    }

    /// Reads every running host's status again (the lab summary uses the last one read).
    pub async fn refresh(&self) {
        for h in &self.hosts {
            let status = if h.running.load(std::sync::atomic::Ordering::Relaxed) {
                http_get_json(h.admin, "/api/v1/status").await.unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            *h.status.lock().expect("lab lock") = status;
        }
    }

    /// Each host's Windows count from the last status read.
    pub fn counts(&self) -> Vec<u64> {
        self.hosts.iter().map(|h| windows_count(&h.status.lock().expect("lab lock"))).collect()
    }

    /// The last status documents read, by host.
    pub fn statuses(&self) -> Vec<(String, Value)> {
        self.hosts.iter().map(|h| (h.name.clone(), h.status.lock().expect("lab lock").clone())).collect()
    }

    /// Each host's role now.
    pub fn roles(&self) -> Vec<Role> {
        let mut serving_taken = false;
        let mut order: Vec<usize> = (0..self.hosts.len()).collect();
        order.sort_by_key(|&i| self.hosts[i].priority);
        let mut roles = vec![Role::Down; self.hosts.len()];
        for i in order {
            let h = &self.hosts[i];
            roles[i] = if !h.running.load(std::sync::atomic::Ordering::Relaxed) {
                Role::Down
            } else if h.faults.blocked() {
                Role::Blocked
            } else if !h.status.lock().expect("lab lock")["activated"].as_bool().unwrap_or(true) {
                Role::Unactivated
            } else if !serving_taken {
                serving_taken = true;
                Role::Serving
            } else {
                Role::Standby
            };
        }
        roles
    }

    /// `GET /api/v1/lab`.
    pub fn summary(&self) -> Value {
        let roles = self.roles();
        let hosts: Vec<Value> = self
            .hosts
            .iter()
            .zip(roles)
            .map(|(h, role)| {
                let s = h.status.lock().expect("lab lock").clone();
                json!({
                    "name": h.name,
                    "kms": h.kms.to_string(),
                    "srv": format!("{}.{ZONE}:{}", h.name, h.kms.port()),
                    "admin": h.admin.to_string(),
                    "dashboard": format!("http://{}/", h.admin),
                    "priority": h.priority,
                    "role": role.key(),
                    "count": windows_count(&s),
                    "counts": s["counts"],
                    "requests": s["counters"]["total"],
                    "failed": s["counters"]["failed"],
                    "activated": s["activated"],
                    "blocked": h.faults.blocked(),
                    "dns": s["dns"]["zones"],
                    "last_request": s["last_request"],
                })
            })
            .collect();
        let faults = self.dns.server.faults();
        let fleet = self.fleet();
        let machines = fleet.as_ref().map_or(Value::Null, |f| f.stats().summary());
        let channels = fleet.as_ref().map_or(Value::Null, |f| {
            let stats = f.stats();
            let mak = stats.mak_machines.load(std::sync::atomic::Ordering::Relaxed);
            let all = stats.clients.load(std::sync::atomic::Ordering::Relaxed);
            json!({ "kms": all.saturating_sub(mak), "mak": mak })
        });
        let activation = match &*self.activation.lock().expect("lab lock") {
            Some(a) => json!({
                "addr": a.addr.to_string(),
                "keys": a.service.statuses().map(|k| json!(k)).unwrap_or_else(|e| json!({ "error": e.message })),
            }),
            None => Value::Null,
        };
        json!({
            "now": self.clock().now().to_string(),
            "time_scale": self.time.scale,
            "hosts": hosts,
            "dns": {
                "addr": self.dns.addr().to_string(),
                "zone": ZONE,
                "tsig_key": self.dns.key.name,
                "updates": if faults.refusing_updates() { "refused" } else { "accepted" },
                "outage": faults.in_outage(),
            },
            "machines": machines,
            "channels": channels,
            "activation": activation,
        })
    }

    /// Stops every running host.
    pub async fn stop_hosts(&self) {
        for h in &self.hosts {
            let mut run = h.run.lock().await;
            if let Run::Running(host) = std::mem::replace(&mut *run, Run::Moving) {
                h.running.store(false, std::sync::atomic::Ordering::Relaxed);
                *run = Run::Stopped(host.stop().await);
            }
        }
    }

    /// Stops the hosts and the DNS server.
    pub async fn shutdown(self) {
        self.stop_hosts().await;
        let _ = self.dns.server.shutdown().await;
    }
}

//! A deterministic world of KMS hosts, DNS and client machines on one simulated clock.
//!
//! No sockets and no threads: the world advances `now` to the earliest moment any client
//! has something to do, runs that client's [`Activator`] and answers its actions at once
//! from in-memory hosts ([`Ledger`]s), an in-memory DNS table and an in-memory activation
//! service for MAK machines ([`SimMak`]: the counting rules of `kmslab activation-service`).
//! The same seed gives the same run. The scenario tests, `kmslab sim` and the benchmarks build on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::activator::{Action, Activator, ClientEvent, HostOutcome};
use crate::catalog::Catalog;
use crate::hostaddr::HostAddr;
use crate::hresult::HResult;
use crate::ledger::{HostSettings, Ledger};
use crate::license::LicenseStatus;
use crate::rng::{KmsRng, SplitMix64};
use crate::srv::SrvCandidate;
use crate::time::Timestamp;
use crate::wire::{ErrorFrame, ServiceAnswer, ServiceRequest};

/// A host in the world.
#[derive(Debug)]
pub struct SimHost {
    /// Where clients reach it.
    pub addr: HostAddr,
    /// Its ledger.
    pub ledger: Ledger,
    /// False while it is down (clients get 0x800706BA).
    pub up: bool,
}

/// A MAK of the world's activation service, with its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMak {
    /// The key (a lab MAK, [`crate::labkey`]).
    pub key: String,
    /// Catalog names of the products it activates.
    pub products: Vec<String>,
    /// Activations still available.
    pub remaining: u32,
    /// Activations used.
    pub used: u32,
    /// Installation IDs activated with it (activating one of them again uses no count).
    activated: HashSet<String>,
}

impl SimMak {
    /// A key for `products` with `count` activations.
    pub fn new(key: impl Into<String>, products: Vec<String>, count: u32) -> Self {
        SimMak { key: key.into(), products, remaining: count, used: 0, activated: HashSet::new() }
    }

    /// The service's answer to an online activation with this key, by the rules of the real
    /// service: a product the key is not for is 0xC004C001, an installation activated before
    /// is activated again without using a count, and none left is 0xC004C020.
    fn activate(&mut self, product: &str, installation_id: &str) -> Result<ServiceAnswer, HResult> {
        if !self.products.iter().any(|p| p == product) {
            return Err(HResult::MAK_OUT_OF_RANGE);
        }
        let counted = !self.activated.contains(installation_id);
        if counted {
            if self.remaining == 0 {
                return Err(HResult::MAK_LIMIT_EXCEEDED);
            }
            self.remaining -= 1;
            self.used += 1;
            self.activated.insert(installation_id.to_owned());
        }
        Ok(ServiceAnswer { confirmation_id: String::new(), remaining: self.remaining, used: self.used, blocked: false, counted })
    }
}

/// The world. Fields are public so scenarios can change anything between steps.
#[derive(Debug)]
pub struct World {
    /// Simulated now.
    pub now: Timestamp,
    /// The catalog every machine and host uses.
    pub catalog: Arc<Catalog>,
    /// The hosts.
    pub hosts: Vec<SimHost>,
    /// SRV records by domain (a domain absent from the map does not exist).
    pub dns: HashMap<String, Vec<SrvCandidate>>,
    /// False while the DNS server is down (lookups fail with 0x8007232A).
    pub dns_up: bool,
    /// The machines' own DNS domain, used when no `/skms-domain` is set.
    pub default_domain: Option<String>,
    /// The machines.
    pub clients: Vec<Activator>,
    /// Requests sent to hosts (reachable or not).
    pub requests: u64,
    /// Attempt results by HRESULT.
    pub results: BTreeMap<HResult, u64>,
    /// Requests each host answered, by host index.
    pub answered_by: Vec<u64>,
    /// The MAKs of the world's activation service.
    pub maks: Vec<SimMak>,
    /// When true, every client event is kept in `event_log`.
    pub record_events: bool,
    /// (time, client index, event), when `record_events` is on.
    pub event_log: Vec<(Timestamp, usize, ClientEvent)>,
    /// Machines in each license status (index = status value), kept up to date from the
    /// machines' LicenseChanged events as they are drained.
    pub tally: [u64; 7],
    rng: SplitMix64,
    // Clients due at each moment. Machines cluster on few distinct moments (joins spread
    // over minutes, then fixed intervals), so buckets beat a heap of one entry per machine.
    queue: BTreeMap<Timestamp, Vec<u32>>,
    scheduled: Vec<Option<Timestamp>>,
}

impl World {
    /// An empty world at `now` whose choices all come from `seed`.
    pub fn new(catalog: Arc<Catalog>, now: Timestamp, seed: u64) -> Self {
        World {
            now,
            catalog,
            hosts: Vec::new(),
            dns: HashMap::new(),
            dns_up: true,
            default_domain: None,
            clients: Vec::new(),
            requests: 0,
            results: BTreeMap::new(),
            answered_by: Vec::new(),
            maks: Vec::new(),
            record_events: false,
            event_log: Vec::new(),
            tally: [0; 7],
            rng: SplitMix64::new(seed),
            queue: BTreeMap::new(),
            scheduled: Vec::new(),
        }
    }

    /// The world's RNG (for CMIDs and such in scenarios).
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    /// Adds a host reachable as `addr`; returns its index.
    pub fn add_host(&mut self, addr: HostAddr, settings: HostSettings) -> usize {
        self.hosts.push(SimHost { addr, ledger: Ledger::new(settings, self.catalog.clone()), up: true });
        self.answered_by.push(0);
        self.hosts.len() - 1
    }

    /// Publishes an SRV record for host `index` in `domain`.
    pub fn publish(&mut self, domain: &str, index: usize, priority: u16, weight: u16) {
        let target = self.hosts[index].addr.clone();
        self.dns.entry(domain.to_owned()).or_default().push(SrvCandidate { priority, weight, target });
    }

    /// Restarts host `index`: its count starts empty, its counters and settings are kept.
    pub fn restart_host(&mut self, index: usize) {
        let h = &mut self.hosts[index];
        let mut ledger = Ledger::new(h.ledger.settings().clone(), self.catalog.clone());
        ledger.set_counters(*h.ledger.counters());
        h.ledger = ledger;
    }

    /// Adds a machine with `product` and a fresh CMID; returns its index.
    pub fn add_client(&mut self, product: &str, machine_name: impl Into<String>) -> usize {
        let cmid = self.rng.uuid_v4();
        self.add_client_with_cmid(product, machine_name, cmid)
    }

    /// Adds a machine with a given CMID (clones share one); returns its index.
    pub fn add_client_with_cmid(&mut self, product: &str, machine_name: impl Into<String>, cmid: uuid::Uuid) -> usize {
        let p = self.catalog.product_by_name(product).unwrap_or_else(|| panic!("unknown product {product}")).clone();
        let mut machine = Activator::new(p, cmid, machine_name, self.now);
        // Events 12288/12289 are only worth building when someone keeps them.
        machine.set_request_events(self.record_events);
        self.clients.push(machine);
        self.tally[LicenseStatus::Unlicensed as usize] += 1;
        self.scheduled.push(None);
        let i = self.clients.len() - 1;
        self.schedule(i);
        i
    }

    /// Re-reads client `i`'s next timeout (call after changing a client from outside).
    pub fn schedule(&mut self, i: usize) {
        let t = self.clients[i].poll_timeout();
        self.scheduled[i] = t;
        if let Some(t) = t {
            self.queue.entry(t).or_default().push(i as u32);
        }
    }

    /// Runs client `i`'s pending actions (after a user command such as `/ato`).
    pub fn kick(&mut self, i: usize) {
        self.drive(i);
        self.schedule(i);
    }

    /// Advances the world to `end`, running every client when it is due.
    pub fn run_until(&mut self, end: Timestamp) {
        while let Some(entry) = self.queue.first_entry() {
            let t = *entry.key();
            if t > end {
                break;
            }
            let due = entry.remove();
            self.now = self.now.max(t);
            for i in due {
                let i = i as usize;
                if self.scheduled[i] != Some(t) {
                    continue; // stale entry: the machine was rescheduled since
                }
                self.clients[i].handle_timeout(self.now);
                self.drive(i);
                self.schedule(i);
            }
        }
        self.now = self.now.max(end);
    }

    /// Advances the world by `days`.
    pub fn run_days(&mut self, days: i64) {
        let end = self.now.plus_days(days);
        self.run_until(end);
    }

    /// How many machines are in each license status.
    pub fn status_counts(&self) -> BTreeMap<LicenseStatus, usize> {
        let mut m = BTreeMap::new();
        for c in &self.clients {
            *m.entry(c.status()).or_insert(0) += 1;
        }
        m
    }

    /// How many machines are in `status`.
    pub fn count_in(&self, status: LicenseStatus) -> usize {
        self.clients.iter().filter(|c| c.status() == status).count()
    }

    fn drive(&mut self, i: usize) {
        while let Some(action) = self.clients[i].poll_action() {
            match action {
                Action::Discover { attempt, domain } => {
                    let result = self.lookup(domain.or_else(|| self.default_domain.clone()));
                    let now = self.now;
                    let client = &mut self.clients[i];
                    client.handle_discovery(now, attempt, result, &mut self.rng);
                }
                Action::Send { attempt, host, request } => {
                    self.requests += 1;
                    let outcome = match self.hosts.iter_mut().enumerate().find(|(_, h)| h.addr == host) {
                        Some((hi, h)) if h.up => {
                            self.answered_by[hi] += 1;
                            match h.ledger.handle_request(&request, self.now) {
                                Ok(resp) => HostOutcome::Response(resp),
                                Err(r) => HostOutcome::Refused(ErrorFrame {
                                    hresult: r.hresult,
                                    cmid: request.cmid,
                                    message: r.reason.to_owned(),
                                }),
                            }
                        }
                        _ => HostOutcome::Unreachable(HResult::HOST_UNREACHABLE),
                    };
                    self.clients[i].handle_host_outcome(self.now, attempt, outcome);
                }
                Action::ActivateOnline { attempt, request } => {
                    let outcome = self.service(&request);
                    let now = self.now;
                    self.clients[i].handle_service_outcome(now, attempt, outcome);
                }
            }
        }
        while let Some(ev) = self.clients[i].poll_event() {
            match &ev {
                ClientEvent::AttemptFinished { result, .. } => *self.results.entry(*result).or_insert(0) += 1,
                ClientEvent::LicenseChanged { from, to, .. } => {
                    self.tally[*from as usize] -= 1;
                    self.tally[*to as usize] += 1;
                }
                _ => {}
            }
            if self.record_events {
                self.event_log.push((self.now, i, ev));
            }
        }
    }

    /// The activation service's answer: a key it does not have is 0xC004F050, as the real
    /// service answers; a world without MAKs has no service to reach (0x800706BA).
    fn service(&mut self, request: &ServiceRequest) -> Result<ServiceAnswer, HResult> {
        if self.maks.is_empty() {
            return Err(HResult::HOST_UNREACHABLE);
        }
        match request {
            ServiceRequest::Activate { key, product, installation_id } => match self.maks.iter_mut().find(|m| &m.key == key) {
                Some(m) => m.activate(product, installation_id),
                None => Err(HResult::INVALID_PRODUCT_KEY),
            },
            // Machines of the world only activate online.
            _ => Err(HResult::INVALID_ARG),
        }
    }

    fn lookup(&self, domain: Option<String>) -> Result<Vec<SrvCandidate>, HResult> {
        if !self.dns_up {
            return Err(HResult::DNS_SERVER_FAILURE);
        }
        let domain = domain.ok_or(HResult::DNS_NO_SERVERS)?;
        match self.dns.get(&domain) {
            None => Err(HResult::DNS_NAME_ERROR),
            Some(records) if records.is_empty() => Err(HResult::DNS_NO_RECORDS),
            Some(records) => Ok(records.clone()),
        }
    }
}

/// Default settings for a simulated host with `key_groups`, activated, default intervals.
pub fn host_settings(key_groups: &[&str], epid_seed: u64, now: Timestamp) -> HostSettings {
    let mut rng = SplitMix64::new(epid_seed);
    let first = key_groups.first().copied().unwrap_or("kms-b");
    HostSettings {
        key_groups: key_groups.iter().map(|s| (*s).to_owned()).collect(),
        activated: true,
        activation_interval: crate::ledger::DEFAULT_ACTIVATION_INTERVAL,
        renewal_interval: crate::ledger::DEFAULT_RENEWAL_INTERVAL,
        epid: crate::epid::generate(first, now, &mut rng),
    }
}

// Keep the trait in scope for `uuid_v4` on the world's RNG.
#[allow(unused_imports)]
use KmsRng as _;

//! The fleet engine: many simulated KMS client machines in one task, over real TCP and DNS.
//!
//! `kmslab fleet`, the drills and `kmslab up` drive their clients with it. Each machine is
//! one core [`Activator`] (request events off); there is no task per machine. One driver
//! task owns every activator, keeps their due times in one `BTreeSet<(due, index)>`, and
//! follows the activator's call order (handle_timeout, poll_action, handle_discovery /
//! handle_host_outcome, poll_event, poll_timeout). Only the network work leaves the driver:
//! each TCP exchange and each SRV lookup is a short task reporting back on a channel.
//!
//! Load is bounded by a count of machines with an outstanding action (a lookup or an
//! exchange): due timers are only taken up while that count is below `concurrency`, so a
//! burst of 10,000 due machines waits in the timer set (16 bytes each) rather than as
//! 10,000 queued requests. The driver is the only task touching the count, so a plain
//! integer does what a semaphore would. SRV answers and host addresses are reused for
//! `srv_cache` of real time, and lookups for the same domain are coalesced. The network
//! work itself is the client daemon's edge (`kmslab_client::net`: SRV discovery through the
//! whole search list, resolution, the exchange with its `--psk` nonce check), not a copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmslab_api::{ClientStatus, render};
use kmslab_client::net::Resolver;
use kmslab_core::activator::{Action, Activator, ActivatorState, AttemptId, ClientEvent, HostOutcome, HostSource};
use kmslab_core::catalog::{Catalog, Product};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::srv::SrvCandidate;
use kmslab_core::wire::Request;
use kmslab_core::{HResult, LicenseStatus, Timestamp, Uuid};
use kmslab_dns::DnsServerChoice;
use kmslab_runtime::SimClock;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::eventlog::{EventRing, Interner};

/// How the machines find their KMS host.
#[derive(Debug, Clone)]
pub enum Target {
    /// A host set by hand (`--kms`, like `slmgr /skms`).
    Manual(HostAddr),
    /// SRV discovery in this domain (`--domain`, like `slmgr /skms-domain`).
    Discover(String),
}

/// Product shares: `win7-enterprise=80,server2008r2-standard=20`.
#[derive(Debug, Clone)]
pub struct ProductMix(pub Vec<(Arc<Product>, u32)>);

impl ProductMix {
    /// Parses `NAME=WEIGHT,...` (a bare `NAME` weighs 1) against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Self, String> {
        let mut mix = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (n.trim(), w.trim().parse::<u32>().map_err(|_| format!("weight {w:?} of {n} is not a number"))?),
                None => (part, 1),
            };
            let product = catalog.product_by_name(name).ok_or_else(|| catalog.unknown_product(name))?;
            mix.push((product.clone(), weight));
        }
        if mix.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err("no product with a weight above 0".into());
        }
        Ok(ProductMix(mix))
    }

    /// One product for everybody.
    pub fn single(product: Arc<Product>) -> Self {
        ProductMix(vec![(product, 1)])
    }

    /// The product of each of `n` machines: exact shares (largest remainder), in blocks.
    pub fn assign(&self, n: usize) -> Vec<Arc<Product>> {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut counts: Vec<(usize, u64)> =
            self.0.iter().map(|(_, w)| ((n as u64 * u64::from(*w) / total) as usize, n as u64 * u64::from(*w) % total)).collect();
        let mut missing = n - counts.iter().map(|c| c.0).sum::<usize>();
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(counts[i].1));
        for i in order {
            if missing == 0 {
                break;
            }
            counts[i].0 += 1;
            missing -= 1;
        }
        self.0.iter().zip(counts).flat_map(|((p, _), (c, _))| std::iter::repeat_n(p.clone(), c)).collect()
    }
}

/// Network timeouts of one exchange (real time).
#[derive(Debug, Clone, Copy)]
pub struct NetTimeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Waiting for the answer.
    pub response: Duration,
    /// One DNS lookup.
    pub dns: Duration,
}

impl Default for NetTimeouts {
    fn default() -> Self {
        NetTimeouts { connect: Duration::from_secs(5), response: Duration::from_secs(10), dns: Duration::from_secs(3) }
    }
}

/// Everything a fleet needs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of machines.
    pub clients: usize,
    /// What they have installed.
    pub mix: ProductMix,
    /// Machines 0..clones share one CMID (a cloned image that was not sysprepped).
    pub clones: usize,
    /// How they find a host.
    pub target: Target,
    /// The DNS server for discovery and host names.
    pub dns: DnsServerChoice,
    /// The simulated clock (share scale and origin with the hosts).
    pub clock: SimClock,
    /// Seed for CMIDs and SRV choices.
    pub seed: u64,
    /// Most machines with a lookup or exchange outstanding.
    pub concurrency: usize,
    /// How long (real time) an SRV answer or host address is reused.
    pub srv_cache: Duration,
    /// Network timeouts.
    pub timeouts: NetTimeouts,
    /// Every machine's clock runs this far ahead of the simulated now (negative: behind).
    pub clock_offset_ms: i64,
    /// Machine names are `<prefix><index>`.
    pub name_prefix: String,
    /// Keep each machine's last event 12288 result (for drills; costs the events' work).
    pub request_events: bool,
    /// Pre-shared key of authenticated framing (`--psk`): requests carry a MAC, answers must.
    pub psk: Option<kmslab_core::wire::FrameKey>,
    /// KMS host caching (off: like `slmgr /ckhc` on every machine).
    pub host_caching: bool,
    /// Machine `i` is named `<prefix><i + name_base>`, the number padded to `name_width` digits.
    pub name_base: usize,
    /// Digits of the machine number (0: no padding).
    pub name_width: usize,
    /// Each machine keeps its last `event_ring` events for [`Fleet::events`] (0: none).
    pub event_ring: usize,
    /// The activation service a MAK machine's `/ato` asks (`--activation-service`); none:
    /// such an attempt fails as unreachable (0x800706BA).
    pub activation_service: Option<HostAddr>,
}

impl FleetConfig {
    /// A fleet of `clients` machines of one mix with defaults for the rest.
    pub fn new(clients: usize, mix: ProductMix, target: Target, clock: SimClock) -> Self {
        FleetConfig {
            clients,
            mix,
            clones: 0,
            target,
            dns: DnsServerChoice::System,
            clock,
            seed: 0,
            concurrency: 256,
            srv_cache: Duration::from_secs(1),
            timeouts: NetTimeouts::default(),
            clock_offset_ms: 0,
            name_prefix: "FLEET-".into(),
            request_events: false,
            psk: None,
            host_caching: true,
            name_base: 0,
            name_width: 5,
            event_ring: 0,
            activation_service: None,
        }
    }
}

/// Live counters of a fleet, shared with the progress bar and `/metrics`.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Requests sent (one per host tried).
    pub requests: AtomicU64,
    /// Answers received (responses and error frames).
    pub answers: AtomicU64,
    /// Machines in each license status (index: the status's numeric value).
    pub by_status: [AtomicU64; 7],
    /// Machines with a lookup or exchange outstanding.
    pub in_flight: AtomicU64,
    /// The simulated time the driver last worked at (Unix ms).
    pub sim_now_ms: AtomicI64,
    /// Failed attempts by HRESULT.
    pub errors: Mutex<BTreeMap<u32, u64>>,
    /// Machines.
    pub clients: AtomicU64,
    /// Machines with a MAK installed (the rest are KMS clients).
    pub mak_machines: AtomicU64,
}

impl FleetStats {
    fn count(&self, s: LicenseStatus) -> u64 {
        self.by_status[s as usize].load(Ordering::Relaxed)
    }

    /// The JSON summary shape of docs/interfaces (`clients`, the states, `errors`, `requests`).
    pub fn summary(&self) -> Value {
        let errors: serde_json::Map<String, Value> =
            self.errors.lock().expect("stats lock").iter().map(|(c, n)| (format!("0x{c:08X}"), json!(n))).collect();
        json!({
            "clients": self.clients.load(Ordering::Relaxed),
            "licensed": self.count(LicenseStatus::Licensed),
            "initial_grace": self.count(LicenseStatus::InitialGrace),
            "additional_grace": self.count(LicenseStatus::AdditionalGrace),
            "notification": self.count(LicenseStatus::Notification),
            "unlicensed": self.count(LicenseStatus::Unlicensed),
            "errors": errors,
            "requests": self.requests.load(Ordering::Relaxed),
        })
    }

    /// Prometheus text format (encoded by `prometheus-client`, from a registry of this
    /// fleet's own).
    pub fn prometheus(&self) -> String {
        use kmslab_runtime::prometheus::{ConstCounter, ConstGauge, MetricType, Registry, Series, counters, register};
        let mut r = Registry::default();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        register(
            &mut r,
            "kmslab_fleet_clients",
            "Simulated client machines.",
            ConstGauge::new(self.clients.load(Ordering::Relaxed) as i64),
        );
        let mut machines = Series::new(MetricType::Gauge);
        for s in LicenseStatus::ALL {
            machines.push([("status", s.key())], ConstGauge::new(self.count(s) as i64));
        }
        register(&mut r, "kmslab_fleet_machines", "Machines by license status.", machines);
        register(&mut r, "kmslab_fleet_requests_total", "Requests sent to KMS hosts.", ConstCounter::new(load(&self.requests)));
        register(&mut r, "kmslab_fleet_answers_total", "Answers received from KMS hosts.", ConstCounter::new(load(&self.answers)));
        let mut failed = counters();
        for (code, n) in self.errors.lock().expect("stats lock").iter() {
            failed.push([("hresult", format!("0x{code:08X}"))], ConstCounter::new(*n));
        }
        register(&mut r, "kmslab_fleet_failed_attempts_total", "Failed activation attempts by HRESULT.", failed);
        register(
            &mut r,
            "kmslab_fleet_in_flight",
            "Machines with a lookup or exchange outstanding.",
            ConstGauge::new(self.in_flight.load(Ordering::Relaxed) as i64),
        );
        register(
            &mut r,
            "kmslab_fleet_sim_time_seconds",
            "Simulated time of the fleet.",
            ConstGauge::new(self.sim_now_ms.load(Ordering::Relaxed) / 1000),
        );
        kmslab_runtime::prometheus::encode(&r)
    }
}

/// What `slmgr /dli` would show of one machine (plain data for drills and reports).
#[derive(Debug, Clone)]
pub struct MachineView {
    /// Index in the fleet.
    pub index: usize,
    /// Machine name.
    pub machine_name: String,
    /// The installed product.
    pub product: Option<Arc<Product>>,
    /// CMID.
    pub cmid: Uuid,
    /// License status.
    pub status: LicenseStatus,
    /// Minutes left of the current state.
    pub minutes_remaining: u32,
    /// Reason for Notification.
    pub notification_reason: Option<HResult>,
    /// Result of the last attempt.
    pub last_result: Option<HResult>,
    /// Host that answered last.
    pub last_host: Option<HostAddr>,
    /// Result of the last request sent (event 12288), when `request_events` is on.
    pub last_request_result: Option<HResult>,
    /// Host and result of every 12288 of the last finished attempt, in the order tried,
    /// when `request_events` is on.
    pub attempt_requests: Vec<(HostAddr, HResult)>,
    /// How that host was chosen.
    pub last_source: Option<HostSource>,
    /// Its ePID.
    pub last_epid: Option<String>,
    /// The count it reported.
    pub last_count: Option<u32>,
    /// Host set with /skms.
    pub manual_host: Option<HostAddr>,
    /// Host caching on.
    pub host_caching: bool,
    /// Intervals.
    pub activation_interval: u32,
    /// Renewal interval.
    pub renewal_interval: u32,
    /// The machine's status as kms-client's `/api/v1/status` would serve it: what
    /// [`MachineView::dli_lines`] renders.
    pub client_status: ClientStatus,
}

impl MachineView {
    /// One entry of `GET /api/v1/lab/machines` (docs/interfaces.md, "Lab control").
    pub fn json(&self) -> Value {
        json!({
            "name": self.machine_name,
            "product": self.product.as_ref().map(|p| p.name.clone()),
            "cmid": self.cmid.to_string(),
            "status": self.status.key(),
            "host": self.last_host.as_ref().map(ToString::to_string),
            "last_result": self.last_result.map(|r| r.to_string()),
        })
    }

    /// The `slmgr /dli` lines of this machine (docs/interfaces.md), from the one renderer
    /// slmgr uses.
    pub fn dli_lines(&self) -> Vec<String> {
        render::client_dli_lines(&self.client_status, false, false)
    }
}

/// What a [`MachineOp`] may use besides the machine itself.
#[derive(Debug)]
pub struct OpContext<'a> {
    /// The simulated now.
    pub now: Timestamp,
    /// Randomness (rearm CMIDs).
    pub rng: &'a mut SplitMix64,
    /// The product catalog (`/ipk`).
    pub catalog: &'a Catalog,
}

/// Something done to one machine's activator (a client verb), answering with JSON.
pub type MachineOp = Box<dyn FnOnce(&mut Activator, &mut OpContext<'_>) -> Value + Send>;

/// How an attempt started by [`Fleet::activate_machine`] ended.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// The attempt.
    pub attempt: AttemptId,
    /// 0 when activated.
    pub result: HResult,
    /// The host that answered.
    pub host: Option<HostAddr>,
    /// The machine's state after the attempt.
    pub state: Box<ActivatorState>,
}

/// One event of a machine's ring ([`FleetConfig::event_ring`]).
#[derive(Debug, Clone)]
pub struct MachineEvent {
    /// Sequence number within the machine (1, 2, ...).
    pub seq: u64,
    /// Simulated time it happened at.
    pub time: Timestamp,
    /// The event.
    pub event: ClientEvent,
}

/// Something done to a range of machines, as a technician would on each (`slmgr`).
enum Command {
    ActivateNow(Range<usize>),
    Rearm(Range<usize>),
    SetManualHost(Range<usize>, Option<HostAddr>),
    SetClockOffset(Range<usize>, i64),
    Snapshot(oneshot::Sender<Vec<MachineView>>),
    Find(String, oneshot::Sender<Option<usize>>),
    Op(usize, MachineOp, oneshot::Sender<Option<Value>>),
    Ato(usize, oneshot::Sender<Option<oneshot::Receiver<AttemptReport>>>),
    Events(usize, u64, oneshot::Sender<Option<Vec<MachineEvent>>>),
    Add(usize, Arc<Product>, oneshot::Sender<Range<usize>>),
    AddWith(Vec<Uuid>, Arc<Product>, MachineSetup, oneshot::Sender<Range<usize>>),
    CloneMachine(usize, usize, oneshot::Sender<Option<Range<usize>>>),
    Names(Range<usize>, oneshot::Sender<Vec<String>>),
}

/// How machines added with [`FleetHandle::add_machines_with`] differ from the fleet's
/// configuration (a cohort of a scenario: `kmslab up --scenario`). Applied before the
/// machines' first attempt.
#[derive(Debug, Clone, Default)]
pub struct MachineSetup {
    /// Their clock offset (ms, negative: behind) instead of the fleet's.
    pub clock_offset_ms: Option<i64>,
    /// Host caching (`/skhc`, `/ckhc`) instead of the fleet's.
    pub host_caching: Option<bool>,
    /// A host set by hand (`/skms`) instead of discovery.
    pub manual_host: Option<HostAddr>,
}

/// A running fleet. It derefs to its [`FleetHandle`], the part that can be shared.
#[derive(Debug)]
pub struct Fleet {
    handle: FleetHandle,
    stop: CancellationToken,
    /// The driver; `None` once awaited.
    task: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Starts the driver. It runs until simulated time reaches `until` (if given) or
    /// `shutdown` is cancelled.
    pub fn start(config: FleetConfig, until: Option<Timestamp>, shutdown: CancellationToken) -> Fleet {
        let stats = Arc::new(FleetStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = shutdown.child_token();
        let driver = Driver::new(config, Arc::clone(&stats));
        let task = tokio::spawn(driver.run(rx, until, stop.clone()));
        Fleet { handle: FleetHandle { commands: tx, stats }, stop, task: Some(task) }
    }

    /// A handle on the machines for other tasks (a control API).
    pub fn handle(&self) -> FleetHandle {
        self.handle.clone()
    }

    /// Waits until the fleet reached its end time (or was cancelled).
    pub async fn finished(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the fleet and returns its summary.
    pub async fn stop(self) -> Value {
        self.stop.cancel();
        if let Some(task) = self.task {
            let _ = task.await;
        }
        self.handle.stats.summary()
    }
}

impl std::ops::Deref for Fleet {
    type Target = FleetHandle;

    fn deref(&self) -> &FleetHandle {
        &self.handle
    }
}

/// The machines of a running fleet, for any number of tasks: every call is a command to
/// the driver (a stopped fleet answers nothing: empty lists, `None`).
#[derive(Debug, Clone)]
pub struct FleetHandle {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<FleetStats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl FleetHandle {
    /// The live counters.
    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.stats
    }

    /// `/dli` views of every machine.
    pub async fn machines(&self) -> Vec<MachineView> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Snapshot(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// `slmgr /ato` on machines `range`.
    pub fn activate_now(&self, range: Range<usize>) {
        let _ = self.commands.send(Command::ActivateNow(range));
    }

    /// `slmgr /rearm` on machines `range` (new CMIDs, initial grace, an attempt at once).
    pub fn rearm(&self, range: Range<usize>) {
        let _ = self.commands.send(Command::Rearm(range));
    }

    /// `slmgr /skms HOST` (Some) or `/ckms` (None) on machines `range`.
    pub fn set_manual_host(&self, range: Range<usize>, host: Option<HostAddr>) {
        let _ = self.commands.send(Command::SetManualHost(range, host));
    }

    /// Sets the clock offset of machines `range`.
    pub fn set_clock_offset(&self, range: Range<usize>, offset_ms: i64) {
        let _ = self.commands.send(Command::SetClockOffset(range, offset_ms));
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// The names of machines `range`.
    pub async fn names(&self, range: Range<usize>) -> Vec<String> {
        self.ask(|tx| Command::Names(range, tx)).await.unwrap_or_default()
    }

    /// The index of the machine named `name` (ASCII case does not matter), if any.
    pub async fn find(&self, name: &str) -> Option<usize> {
        self.ask(|tx| Command::Find(name.to_owned(), tx)).await.flatten()
    }

    /// Runs `op` on machine `index`'s activator, then lets the machine act on what changed
    /// (an attempt it abandoned is dropped, a new one starts). `None`: no such machine.
    pub async fn machine_op(&self, index: usize, op: MachineOp) -> Option<Value> {
        self.ask(|tx| Command::Op(index, op, tx)).await.flatten()
    }

    /// `slmgr /ato` on machine `index`: starts an attempt (or joins the one in progress)
    /// and gives how it ends; the receiver fails when the attempt is abandoned
    /// (`/ipk`, `/upk`, `/rearm`). `None`: no such machine.
    pub async fn activate_machine(&self, index: usize) -> Option<oneshot::Receiver<AttemptReport>> {
        self.ask(|tx| Command::Ato(index, tx)).await.flatten()
    }

    /// Machine `index`'s events with a sequence number above `since`, oldest first
    /// (empty unless [`FleetConfig::event_ring`] is set). `None`: no such machine.
    pub async fn events(&self, index: usize, since: u64) -> Option<Vec<MachineEvent>> {
        self.ask(|tx| Command::Events(index, since, tx)).await.flatten()
    }

    /// Adds `count` machines with `product`, set up like the others; their indexes.
    pub async fn add_machines(&self, count: usize, product: Arc<Product>) -> Range<usize> {
        self.ask(|tx| Command::Add(count, product, tx)).await.unwrap_or(0..0)
    }

    /// Adds one machine per CMID of `cmids` (the same CMID twice: a cloned image) with
    /// `product`, set up like the others but for `setup`; their indexes.
    pub async fn add_machines_with(&self, cmids: Vec<Uuid>, product: Arc<Product>, setup: MachineSetup) -> Range<usize> {
        self.ask(|tx| Command::AddWith(cmids, product, setup, tx)).await.unwrap_or(0..0)
    }

    /// Adds `count` copies of machine `index` (a disk image cloned without sysprep): the
    /// same CMID, product and license state under new names; their indexes.
    pub async fn clone_machine(&self, index: usize, count: usize) -> Option<Range<usize>> {
        self.ask(|tx| Command::CloneMachine(index, count, tx)).await.flatten()
    }
}

/// What a network task reports back. `generation` tells a machine's current exchange from
/// one it abandoned (a rearm in the middle of an attempt).
enum Done {
    Exchange { index: u32, generation: u32, attempt: AttemptId, outcome: HostOutcome },
    Service { index: u32, generation: u32, attempt: AttemptId, outcome: Result<kmslab_core::wire::ServiceAnswer, HResult> },
    Lookup { domain: String, result: Result<Vec<SrvCandidate>, HResult> },
}

/// A machine's activator: live while it has an attempt on the network (at most
/// `concurrency` of them, plus machines in Notification), else only its persistent state.
/// An idle `ActivatorState` is 344 bytes against 752 for an `Activator` plus its event
/// queue's buffer; that difference is what keeps a machine small. The idle state is kept
/// in the machine itself and moved in and out of the activator, not boxed and cloned:
/// machines waking and sleeping by the thousand then only reuse activator-sized blocks,
/// instead of scattering small long-lived ones through the allocator's free memory.
/// (Hence the variants' sizes differ on purpose: nearly every machine is idle.)
#[allow(clippy::large_enum_variant)]
enum Slot {
    Live(Box<Activator>),
    Idle(ActivatorState),
    Moving,
}

struct Machine {
    slot: Slot,
    /// The due time currently in the timer set, if any.
    due: Option<Timestamp>,
    /// The generation of the lookup or exchange outstanding, if any.
    busy: Option<u32>,
    /// Bumped for every lookup or exchange.
    generation: u32,
    /// Result of the last event 12288 (only with `request_events`).
    last_request_result: Option<HResult>,
    /// The 12288s of the attempt in progress and of the last finished one (only with
    /// `request_events`; boxed so that machines without them stay small).
    requests: Option<Box<RequestLog>>,
    /// The last events (only with `event_ring`).
    events: Option<Box<EventRing>>,
}

/// Host (an [`Interner`] index) and result of each event 12288 of an attempt.
#[derive(Debug, Default)]
struct RequestLog {
    current: Vec<(u32, HResult)>,
    last_attempt: Vec<(u32, HResult)>,
}

struct Driver {
    config: FleetConfig,
    stats: Arc<FleetStats>,
    machines: Vec<Machine>,
    timers: BTreeSet<(Timestamp, u32)>,
    rng: SplitMix64,
    in_flight: usize,
    srv_cache: HashMap<String, (Instant, Result<Vec<SrvCandidate>, HResult>)>,
    waiting_for_lookup: HashMap<String, Vec<(u32, u32, AttemptId)>>,
    addr_cache: Resolver,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: Option<mpsc::UnboundedReceiver<Done>>,
    /// Products installed by `/ipk` besides the mix's.
    catalog: Arc<Catalog>,
    /// `/ato` callers waiting for an attempt of a machine to end.
    waiters: HashMap<usize, Vec<(AttemptId, oneshot::Sender<AttemptReport>)>>,
    /// Host addresses, UUIDs and texts of the machines' event rings and request logs.
    interner: Interner,
}

impl Driver {
    fn new(config: FleetConfig, stats: Arc<FleetStats>) -> Driver {
        let now = config.clock.now();
        let mut rng = SplitMix64::new(config.seed);
        let products = config.mix.assign(config.clients);
        let clone_cmid = rng.uuid_v4();
        stats.clients.store(config.clients as u64, Ordering::Relaxed);
        stats.by_status[LicenseStatus::Unlicensed as usize].store(config.clients as u64, Ordering::Relaxed);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let srv_cache = config.srv_cache;
        let mut driver = Driver {
            machines: Vec::with_capacity(config.clients),
            config,
            stats,
            timers: BTreeSet::new(),
            rng,
            in_flight: 0,
            srv_cache: HashMap::new(),
            waiting_for_lookup: HashMap::new(),
            addr_cache: Resolver::new(srv_cache),
            done_tx,
            done_rx: Some(done_rx),
            catalog: Arc::new(Catalog::builtin()),
            waiters: HashMap::new(),
            interner: Interner::default(),
        };
        for (i, product) in products.into_iter().enumerate() {
            let config = &driver.config;
            let cmid = if config.clones >= 2 && i < config.clones { clone_cmid } else { driver.rng.uuid_v4() };
            driver.push_machine(product, cmid, now);
        }
        driver
    }

    /// The name of machine `i`.
    fn machine_name(&self, i: usize) -> String {
        format!("{}{:0width$}", self.config.name_prefix, i + self.config.name_base, width = self.config.name_width)
    }

    /// Makes a new machine at the end, set up from the fleet's config.
    fn push_machine(&mut self, product: Arc<Product>, cmid: Uuid, now: Timestamp) {
        let i = self.machines.len();
        let config = &self.config;
        let mut a = Activator::new(product, cmid, self.machine_name(i), now);
        a.set_request_events(config.request_events);
        match &config.target {
            Target::Manual(h) => a.set_manual_host(Some(h.clone())),
            Target::Discover(d) => a.set_domain(Some(d.clone())),
        }
        a.set_clock_offset(config.clock_offset_ms);
        if !config.host_caching {
            a.set_host_caching(false);
        }
        self.push_live(a);
    }

    /// Adds a new machine while the fleet runs: it counts as Unlicensed until its own
    /// events (the install: initial grace) move it, as the machines made at start do.
    fn push_fresh(&mut self, product: Arc<Product>, cmid: Uuid, now: Timestamp) {
        self.stats.by_status[LicenseStatus::Unlicensed as usize].fetch_add(1, Ordering::Relaxed);
        self.push_machine(product, cmid, now);
    }

    fn push_live(&mut self, a: Activator) {
        let i = self.machines.len();
        let events = (self.config.event_ring > 0).then(Box::default);
        self.machines.push(Machine {
            slot: Slot::Live(Box::new(a)),
            due: None,
            busy: None,
            generation: 0,
            last_request_result: None,
            requests: None,
            events,
        });
        // Compact each machine as it is made, so that the peak is never N live activators.
        self.drain_events(i);
        self.reschedule(i);
        self.compact(i);
    }

    /// A product by name: the mix's, else the catalog's (installed by `/ipk`).
    fn product_of(&self, name: Option<&str>) -> Option<Arc<Product>> {
        let name = name?;
        self.config
            .mix
            .0
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(p, _)| p.clone())
            .or_else(|| self.catalog.product_by_name(name).cloned())
    }

    /// Machine `i`'s activator, rebuilt from its state if it was idle.
    fn live(&mut self, i: usize) -> &mut Activator {
        if let Slot::Idle(state) = &self.machines[i].slot {
            let product = self.product_of(state.product.as_deref());
            let m = &mut self.machines[i];
            let Slot::Idle(state) = std::mem::replace(&mut m.slot, Slot::Moving) else { unreachable!("checked above") };
            let mut a = Activator::from_state(state, product);
            a.set_request_events(self.config.request_events);
            m.slot = Slot::Live(Box::new(a));
        }
        let m = &mut self.machines[i];
        match &mut m.slot {
            Slot::Live(a) => a,
            _ => unreachable!("made live above"),
        }
    }

    /// Keeps only the state of an idle machine. Machines in Notification stay live: a
    /// rebuilt activator would remind at once, every time.
    fn compact(&mut self, i: usize) {
        let m = &mut self.machines[i];
        if m.busy.is_some() {
            return;
        }
        if let Slot::Live(a) = &m.slot
            && a.status() != LicenseStatus::Notification
            && !a.attempt_in_progress()
        {
            let Slot::Live(a) = std::mem::replace(&mut m.slot, Slot::Moving) else { unreachable!("checked above") };
            m.slot = Slot::Idle(a.into_state());
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, until: Option<Timestamp>, stop: CancellationToken) {
        let mut done_rx = self.done_rx.take().expect("taken once");
        let clock = self.config.clock;
        loop {
            let now = clock.now();
            self.stats.sim_now_ms.store(now.as_unix_ms(), Ordering::Relaxed);
            if until.is_some_and(|u| now >= u) {
                break;
            }
            while self.in_flight < self.config.concurrency {
                let Some(&(due, index)) = self.timers.first() else { break };
                if due > now {
                    break;
                }
                self.timers.pop_first();
                let i = index as usize;
                self.machines[i].due = None;
                self.live(i).handle_timeout(now);
                self.pump(i, now);
            }
            let next_due = if self.in_flight < self.config.concurrency { self.timers.first().map(|(t, _)| *t) } else { None };
            let wake = match (next_due, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(cmd) = commands.recv() => self.command(cmd),
                Some(done) = done_rx.recv() => self.done(done),
                _ = sleep => {}
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.config.clock.now();
        let n = self.machines.len();
        let clamp = |r: Range<usize>| r.start.min(n)..r.end.min(n);
        match cmd {
            Command::Snapshot(tx) => {
                let views = (0..n).map(|i| self.view(i, now)).collect();
                let _ = tx.send(views);
            }
            Command::ActivateNow(r) => {
                for i in clamp(r) {
                    if self.machines[i].busy.is_none() {
                        self.live(i).activate_now(now);
                        self.pump(i, now);
                    }
                }
            }
            Command::Rearm(r) => {
                for i in clamp(r) {
                    if self.machines[i].busy.take().is_some() {
                        // The answer to the abandoned attempt is dropped by its generation.
                        self.in_flight -= 1;
                    }
                    let mut rng = SplitMix64::new(self.rng.next_u64());
                    if let Err(code) = self.live(i).rearm(now, &mut rng) {
                        tracing::info!(machine = i, %code, "rearm refused");
                    }
                    self.pump(i, now);
                }
            }
            Command::SetManualHost(r, host) => {
                for i in clamp(r) {
                    self.live(i).set_manual_host(host.clone());
                    self.compact(i);
                }
            }
            Command::SetClockOffset(r, ms) => {
                for i in clamp(r) {
                    self.live(i).set_clock_offset(ms);
                    self.compact(i);
                }
            }
            Command::Names(r, tx) => {
                let _ = tx.send(clamp(r).map(|i| self.machine_name(i)).collect());
            }
            Command::Find(name, tx) => {
                // The usual case, `<prefix><number>`, without a scan.
                let guess = name
                    .get(..self.config.name_prefix.len())
                    .filter(|p| p.eq_ignore_ascii_case(&self.config.name_prefix))
                    .and_then(|_| name[self.config.name_prefix.len()..].parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(self.config.name_base))
                    .filter(|&i| i < n && self.machine_name(i).eq_ignore_ascii_case(&name));
                if let Some(i) = guess {
                    let _ = tx.send(Some(i));
                    return;
                }
                let found = self.machines.iter().position(|m| {
                    let state = match &m.slot {
                        Slot::Live(a) => a.state(),
                        Slot::Idle(s) => s,
                        Slot::Moving => return false,
                    };
                    state.machine_name.eq_ignore_ascii_case(&name)
                });
                let _ = tx.send(found);
            }
            Command::Op(i, op, tx) => {
                if i >= n {
                    let _ = tx.send(None);
                    return;
                }
                let mut rng = SplitMix64::new(self.rng.next_u64());
                let catalog = Arc::clone(&self.catalog);
                let mut cx = OpContext { now, rng: &mut rng, catalog: &catalog };
                let had_mak = self.live(i).mak().is_some();
                let value = op(self.live(i), &mut cx);
                match (had_mak, self.live(i).mak().is_some()) {
                    (false, true) => _ = self.stats.mak_machines.fetch_add(1, Ordering::Relaxed),
                    (true, false) => _ = self.stats.mak_machines.fetch_sub(1, Ordering::Relaxed),
                    _ => {}
                }
                self.after_op(i, now);
                let _ = tx.send(Some(value));
            }
            Command::Ato(i, tx) => {
                if i >= n {
                    let _ = tx.send(None);
                    return;
                }
                let attempt = self.live(i).activate_now(now);
                let (report_tx, report_rx) = oneshot::channel();
                self.waiters.entry(i).or_default().push((attempt, report_tx));
                let _ = tx.send(Some(report_rx));
                if self.machines[i].busy.is_none() {
                    self.pump(i, now);
                }
            }
            Command::Events(i, since, tx) => {
                let events =
                    self.machines.get(i).map(|m| m.events.as_ref().map(|e| e.events_since(&self.interner, since)).unwrap_or_default());
                let _ = tx.send(events);
            }
            Command::Add(count, product, tx) => {
                let start = self.machines.len();
                for _ in 0..count {
                    let cmid = self.rng.uuid_v4();
                    self.push_fresh(product.clone(), cmid, now);
                }
                self.stats.clients.store(self.machines.len() as u64, Ordering::Relaxed);
                let _ = tx.send(start..self.machines.len());
            }
            Command::AddWith(cmids, product, setup, tx) => {
                let start = self.machines.len();
                for cmid in cmids {
                    self.push_fresh(product.clone(), cmid, now);
                    let i = self.machines.len() - 1;
                    let a = self.live(i);
                    if let Some(ms) = setup.clock_offset_ms {
                        a.set_clock_offset(ms);
                    }
                    if let Some(on) = setup.host_caching {
                        a.set_host_caching(on);
                    }
                    if let Some(h) = &setup.manual_host {
                        a.set_manual_host(Some(h.clone()));
                    }
                    self.reschedule(i);
                    self.compact(i);
                }
                self.stats.clients.store(self.machines.len() as u64, Ordering::Relaxed);
                let _ = tx.send(start..self.machines.len());
            }
            Command::CloneMachine(i, count, tx) => {
                if i >= n {
                    let _ = tx.send(None);
                    return;
                }
                let state = self.live(i).state().clone();
                let product = self.product_of(state.product.as_deref());
                self.compact(i);
                let start = self.machines.len();
                for _ in 0..count {
                    let mut copy = state.clone();
                    copy.machine_name = self.machine_name(self.machines.len());
                    let mut a = Activator::from_state(copy, product.clone());
                    a.set_request_events(self.config.request_events);
                    self.push_live(a);
                }
                self.count_new(start);
                let _ = tx.send(Some(start..self.machines.len()));
            }
        }
        self.stats.in_flight.store(self.in_flight as u64, Ordering::Relaxed);
    }

    /// Counts machines `start..` in the stats (a new machine counts in its own status).
    fn count_new(&mut self, start: usize) {
        for i in start..self.machines.len() {
            let (status, mak) = match &self.machines[i].slot {
                Slot::Live(a) => (a.status(), a.mak().is_some()),
                Slot::Idle(s) => (s.status, s.mak.is_some()),
                Slot::Moving => continue,
            };
            self.stats.by_status[status as usize].fetch_add(1, Ordering::Relaxed);
            if mak {
                self.stats.mak_machines.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.clients.store(self.machines.len() as u64, Ordering::Relaxed);
    }

    /// After a client verb on machine `i`: drops an exchange or lookup of an attempt the
    /// verb abandoned, releases `/ato` callers of abandoned attempts, lets the machine act.
    fn after_op(&mut self, i: usize, now: Timestamp) {
        let in_progress = self.live(i).attempt_in_progress();
        if !in_progress {
            if self.machines[i].busy.take().is_some() {
                // The answer to the abandoned attempt is dropped by its generation.
                self.in_flight -= 1;
            }
            self.waiters.remove(&i);
        }
        if self.machines[i].busy.is_none() {
            self.pump(i, now);
        } else {
            self.drain_events(i);
            self.reschedule(i);
        }
    }

    fn view(&self, i: usize, now: Timestamp) -> MachineView {
        let m = &self.machines[i];
        let rebuilt;
        let a: &Activator = match &m.slot {
            Slot::Live(a) => a,
            Slot::Idle(state) => {
                let product = self.product_of(state.product.as_deref());
                rebuilt = Activator::from_state(state.clone(), product);
                &rebuilt
            }
            Slot::Moving => unreachable!("never left moving"),
        };
        let s = a.state();
        MachineView {
            index: i,
            machine_name: s.machine_name.clone(),
            product: a.product().cloned(),
            cmid: s.cmid,
            status: s.status,
            minutes_remaining: a.minutes_remaining(now),
            notification_reason: s.notification_reason,
            last_result: s.last.result,
            last_host: s.last.host.clone(),
            last_request_result: m.last_request_result,
            attempt_requests: m
                .requests
                .as_ref()
                .map(|r| r.last_attempt.iter().map(|&(host, result)| (self.interner.host(host).clone(), result)).collect())
                .unwrap_or_default(),
            last_source: s.last.source,
            last_epid: s.last.epid.clone(),
            last_count: s.last.current_count,
            manual_host: s.manual_host.clone(),
            host_caching: s.host_caching,
            activation_interval: s.activation_interval,
            renewal_interval: s.renewal_interval,
            client_status: ClientStatus::of(a, now),
        }
    }

    fn done(&mut self, done: Done) {
        let now = self.config.clock.now();
        match done {
            Done::Exchange { index, generation, attempt, outcome } => {
                let i = index as usize;
                if !matches!(outcome, HostOutcome::Unreachable(_)) {
                    self.stats.answers.fetch_add(1, Ordering::Relaxed);
                }
                if self.release(i, generation) {
                    self.live(i).handle_host_outcome(now, attempt, outcome);
                    self.pump(i, now);
                }
            }
            Done::Service { index, generation, attempt, outcome } => {
                let i = index as usize;
                if self.release(i, generation) {
                    self.live(i).handle_service_outcome(now, attempt, outcome);
                    self.pump(i, now);
                }
            }
            Done::Lookup { domain, result } => {
                self.srv_cache.insert(domain.clone(), (Instant::now(), result.clone()));
                for (index, generation, attempt) in self.waiting_for_lookup.remove(&domain).unwrap_or_default() {
                    let i = index as usize;
                    if self.release(i, generation) {
                        let mut rng = SplitMix64::new(self.rng.next_u64());
                        self.live(i).handle_discovery(now, attempt, result.clone(), &mut rng);
                        self.pump(i, now);
                    }
                }
            }
        }
        self.stats.in_flight.store(self.in_flight as u64, Ordering::Relaxed);
    }

    /// Frees machine `i`'s slot if `generation` is what it waits for; false for an answer
    /// to an abandoned attempt.
    fn release(&mut self, i: usize, generation: u32) -> bool {
        if self.machines[i].busy == Some(generation) {
            self.machines[i].busy = None;
            self.in_flight -= 1;
            true
        } else {
            false
        }
    }

    fn occupy(&mut self, i: usize) -> u32 {
        let m = &mut self.machines[i];
        m.generation = m.generation.wrapping_add(1);
        m.busy = Some(m.generation);
        self.in_flight += 1;
        m.generation
    }

    /// Runs machine `i`'s actions until one must wait for the network, then reschedules it.
    fn pump(&mut self, i: usize, now: Timestamp) {
        loop {
            self.drain_events(i);
            let Some(action) = self.live(i).poll_action() else { break };
            match action {
                Action::Discover { attempt, domain } => {
                    // "" stands for the system search list (every domain of it, in turn).
                    let domain = domain.unwrap_or_default();
                    let fresh = self.srv_cache.get(&domain).filter(|(at, _)| at.elapsed() < self.config.srv_cache).map(|(_, r)| r.clone());
                    if let Some(result) = fresh {
                        let mut rng = SplitMix64::new(self.rng.next_u64());
                        self.live(i).handle_discovery(now, attempt, result, &mut rng);
                        continue;
                    }
                    let generation = self.occupy(i);
                    let waiting = self.waiting_for_lookup.entry(domain.clone()).or_default();
                    waiting.push((i as u32, generation, attempt));
                    if waiting.len() == 1 {
                        let (dns, timeout, tx) = (self.config.dns.clone(), self.config.timeouts.dns, self.done_tx.clone());
                        tokio::spawn(async move {
                            let result = Box::pin(discover(&dns, &domain, timeout)).await;
                            let _ = tx.send(Done::Lookup { domain, result });
                        });
                    }
                    break;
                }
                Action::Send { attempt, host, request } => {
                    let generation = self.occupy(i);
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    let (dns, timeouts, resolver, tx) =
                        (self.config.dns.clone(), self.config.timeouts, self.addr_cache.clone(), self.done_tx.clone());
                    let index = i as u32;
                    let psk = self.config.psk.clone();
                    let (clock, built) = (self.config.clock, now);
                    tokio::spawn(async move {
                        let outcome = exchange(&dns, &resolver, &host, request, timeouts, psk.as_ref(), (clock, built)).await;
                        let _ = tx.send(Done::Exchange { index, generation, attempt, outcome });
                    });
                    break;
                }
                Action::ActivateOnline { attempt, request } => {
                    let Some(service) = self.config.activation_service.clone() else {
                        // No activation service configured: nothing to reach.
                        self.live(i).handle_service_outcome(now, attempt, Err(HResult::HOST_UNREACHABLE));
                        continue;
                    };
                    let generation = self.occupy(i);
                    let (dns, timeouts, resolver, tx) =
                        (self.config.dns.clone(), self.config.timeouts, self.addr_cache.clone(), self.done_tx.clone());
                    let index = i as u32;
                    tokio::spawn(async move {
                        let timeouts =
                            kmslab_client::Timeouts { connect: timeouts.connect, response: timeouts.response, dns: timeouts.dns };
                        let outcome = kmslab_client::net::activate_online(&dns, &resolver, &service, request, timeouts).await;
                        let _ = tx.send(Done::Service { index, generation, attempt, outcome });
                    });
                    break;
                }
            }
        }
        self.drain_events(i);
        self.reschedule(i);
        self.compact(i);
    }

    fn drain_events(&mut self, i: usize) {
        let Machine { slot, last_request_result, requests, events, .. } = &mut self.machines[i];
        let Slot::Live(a) = slot else { return };
        let now = self.config.clock.now();
        while let Some(event) = a.poll_event() {
            if let Some(ring) = events.as_mut() {
                ring.push(&mut self.interner, self.config.event_ring, now, &event);
            }
            match event {
                ClientEvent::LicenseChanged { from, to, .. } => {
                    self.stats.by_status[from as usize].fetch_sub(1, Ordering::Relaxed);
                    self.stats.by_status[to as usize].fetch_add(1, Ordering::Relaxed);
                }
                ClientEvent::RequestSent(sent) => {
                    *last_request_result = Some(sent.result);
                    let host = self.interner.host_id(&sent.host);
                    let log = requests.get_or_insert_default();
                    log.current.push((host, sent.result));
                }
                ClientEvent::AttemptFinished { result, attempt, host } => {
                    if let Some(log) = requests.as_mut() {
                        std::mem::swap(&mut log.last_attempt, &mut log.current);
                        log.current.clear();
                    }
                    if let Some(waiting) = self.waiters.get_mut(&i) {
                        let state = Box::new(a.state().clone());
                        for (_, tx) in waiting.extract_if(.., |(id, _)| *id == attempt) {
                            let _ = tx.send(AttemptReport { attempt, result, host: host.clone(), state: state.clone() });
                        }
                        if waiting.is_empty() {
                            self.waiters.remove(&i);
                        }
                    }
                    if result != HResult::SUCCESS {
                        *self.stats.errors.lock().expect("stats lock").entry(result.0).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn reschedule(&mut self, i: usize) {
        let busy = self.machines[i].busy.is_some();
        let due = if busy { None } else { self.live(i).poll_timeout() };
        let m = &mut self.machines[i];
        if m.due != due {
            if let Some(old) = m.due {
                self.timers.remove(&(old, i as u32));
            }
            if let Some(new) = due {
                self.timers.insert((new, i as u32));
            }
            m.due = due;
        }
    }
}

/// One SRV lookup, as the core wants it: `_vlmcs._tcp.<domain>`, or with an empty domain
/// each domain of the system search list in turn (the client daemon's discovery).
pub async fn discover(dns: &DnsServerChoice, domain: &str, timeout: Duration) -> Result<Vec<SrvCandidate>, HResult> {
    kmslab_client::net::discover(dns, Some(domain), timeout).await
}

/// Resolves `host` (reusing a recent answer) and runs one request/response, as the client
/// daemon does.
async fn exchange(
    dns: &DnsServerChoice,
    resolver: &Resolver,
    host: &HostAddr,
    mut request: Request,
    timeouts: NetTimeouts,
    psk: Option<&kmslab_core::wire::FrameKey>,
    (clock, built): (SimClock, Timestamp),
) -> HostOutcome {
    let timeouts = kmslab_client::Timeouts { connect: timeouts.connect, response: timeouts.response, dns: timeouts.dns };
    let addrs = match resolver.resolve(dns, &host.host, timeouts.dns).await {
        Ok(ips) => ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, host.port)).collect::<Vec<_>>(),
        Err(e) => return HostOutcome::Unreachable(kmslab_client::net::lookup_code(&e)),
    };
    // The machine's clock when it sends, as a client stamps a request it is about to send:
    // the driver built it `built`, and on a fast lab clock the real moments the task waited
    // for its turn and for the host's address are simulated hours (the host refuses a
    // request more than 4 hours off with 0xC004F06C).
    request.client_time = request.client_time.plus_ms(clock.now().ms_since(built).max(0));
    kmslab_client::net::exchange(addrs, request, timeouts, psk).await
}

/// Parses a simulated duration: `30d`, `12h`, `90m`, `45s` (a bare number is seconds).
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => t.split_at(at),
        None => (t, "s"),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("invalid duration {text:?} (expected e.g. 30d, 12h, 90m, 45s)"))?;
    let unit_ms = match unit {
        "d" => 86_400_000.0,
        "h" => 3_600_000.0,
        "m" | "min" => 60_000.0,
        "s" => 1_000.0,
        "ms" => 1.0,
        _ => return Err(format!("invalid duration unit {unit:?} in {text:?} (d, h, m, s)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok((n * unit_ms) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_split_exactly_and_durations_parse() {
        let catalog = Catalog::builtin();
        let mix = ProductMix::parse("win7-enterprise=80,server2008r2-standard=20", &catalog).unwrap();
        let assigned = mix.assign(10);
        assert_eq!(assigned.iter().filter(|p| p.name == "win7-enterprise").count(), 8);
        assert_eq!(mix.assign(7).len(), 7);
        assert!(ProductMix::parse("nope=1", &catalog).is_err());
        assert!(ProductMix::parse("win7-enterprise=0", &catalog).is_err());
        assert_eq!(parse_duration_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_duration_ms("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert!(parse_duration_ms("3x").is_err());
    }
}

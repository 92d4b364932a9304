//! `kmslab up`: a whole KMS deployment in one process, with nothing else installed.
//!
//! The embedded DNS server (a generated TSIG key), `--hosts` KMS hosts on loopback that
//! publish their `_vlmcs._tcp` SRV and A records into it (priorities 0, 10, 20 ...: the
//! first host serves, the others stand by for failover), and `--clients` simulated
//! machines (the fleet engine) that find the hosts only through DNS; all on one simulated
//! clock. A live line shows the simulated date, each host's count, the machines by license
//! state and the failed attempts by HRESULT. Ctrl-C (or `--duration`) stops everything
//! cleanly and prints a summary.
//!
//! The lab control API (`--control`, [`kmslab_lab::labapi`]) shows the hosts with their
//! roles, the machines and the lab events, and takes the faults ([`kmslab_lab::control`]);
//! its address is also written to the lab address file ([`kmslab_lab::labaddr`]) for
//! `kmslab lab` and `slmgr --machine`.
//!
//! `--scenario FILE` builds the lab from a `kmslab sim` scenario instead (its hosts, with
//! their priorities, weights, key groups and intervals; no machines at first) and plays it
//! ([`crate::play`]): the lab exits when the scenario ends, unless `--keep-running`, and
//! `--timeline` writes the per-day timeline sampled from it.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kmslab_activation::MakSpec;
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::{HResult, LicenseStatus, Timestamp};
use kmslab_dns::{DnsServerChoice, PublishZone};
use kmslab_lab::control::{Lab, LabActivation};
use kmslab_lab::drill::lab::{LabDns, LabHost, LabTime, ZONE};
use kmslab_lab::engine::{Fleet, FleetConfig, FleetStats, ProductMix, Target, parse_duration_ms};
use kmslab_lab::labapi::{MachineApi, lab_router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Default pace: 12 simulated hours per real second, so the first activations take a
/// moment, weekly renewals come every 14 s and three months pass in about three minutes.
pub const DEFAULT_TIME_SCALE: f64 = 43_200.0;

/// Events each simulated machine keeps for `/api/v1/lab/machines/{name}/events`.
const MACHINE_EVENTS: usize = 16;

/// Flags of `kmslab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// KMS hosts (SRV priorities 0, 10, 20, ...).
    #[arg(long, default_value_t = 2, env = "KMSLAB_HOSTS", conflicts_with = "scenario")]
    pub hosts: usize,
    /// Simulated client machines.
    #[arg(long, default_value_t = 40, env = "KMSLAB_CLIENTS", conflicts_with = "scenario")]
    pub clients: usize,
    /// Product mix of the machines.
    #[arg(long, default_value = "win7-enterprise=80,server2008r2-standard=20", env = "KMSLAB_PRODUCTS", conflicts_with = "scenario")]
    pub products: String,
    /// Play a `kmslab sim` scenario file (docs/sim.md) over the lab: its hosts, DNS
    /// outages and cohorts, day by day on simulated time; exits when its last day ends.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// With --scenario: write the per-day timeline sampled from the lab, with the columns
    /// of `kmslab sim --timeline` (CSV, or JSON when the name ends in .json).
    #[arg(long, value_name = "FILE", requires = "scenario")]
    pub timeline: Option<PathBuf>,
    /// With --scenario: keep the lab running when the scenario ends (until Ctrl-C).
    #[arg(long, requires = "scenario")]
    pub keep_running: bool,
    /// Simulated time runs this many times faster than real time.
    #[arg(long, default_value_t = DEFAULT_TIME_SCALE, env = "KMSLAB_TIME_SCALE")]
    pub time_scale: f64,
    /// Stop by itself after this much simulated time (e.g. `90d`); default: until Ctrl-C.
    #[arg(long, value_name = "D", conflicts_with = "scenario")]
    pub duration: Option<String>,
    /// Keep the hosts' registries here (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seed for CMIDs and SRV choices [0; with --scenario: the scenario's `seed`].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Serve the lab control API (hosts, machines, faults: `kmslab lab`) on this address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", env = "KMSLAB_CONTROL")]
    pub control: SocketAddr,
    /// Bearer token file of the control API: sources outside loopback need it to change
    /// anything (as the daemons' `--admin-token-file`).
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
    /// A name the control API answers to besides IP addresses and localhost (`Host` header
    /// check, as the daemons' `--admin-host`); repeatable.
    #[arg(long, value_name = "NAME")]
    pub control_host: Vec<String>,
    /// Activations of each MAK of the lab's activation service (one MAK per product of
    /// `--products`; `slmgr --machine NAME /ipk MAK`, then `/ato`).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub mak_activations: u32,
}

/// Runs the lab until Ctrl-C or the end of `--duration`.
pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin();
    let usage = |msg: String| -> anyhow::Result<ExitCode> {
        eprintln!("kmslab: {msg}");
        Ok(ExitCode::from(2))
    };
    if args.hosts == 0 || args.hosts > 16 {
        return usage(format!("--hosts must be between 1 and 16, got {}", args.hosts));
    }
    if args.clients == 0 || args.clients > 100_000 {
        return usage(format!("--clients must be between 1 and 100000, got {}", args.clients));
    }
    let mix = match ProductMix::parse(&args.products, &catalog) {
        Ok(m) => m,
        Err(e) => return usage(format!("--products: {e}")),
    };
    let duration_ms = match args.duration.as_deref().map(parse_duration_ms).transpose() {
        Ok(d) => d,
        Err(e) => return usage(format!("--duration: {e}")),
    };
    if !(args.time_scale.is_finite() && args.time_scale > 0.0 && args.time_scale <= 10_000_000.0) {
        return usage(format!("--time-scale must be > 0 and <= 10000000, got {}", args.time_scale));
    }
    let token = match args.control_token_file.as_deref().map(kmslab_admin::AdminToken::from_file).transpose() {
        Ok(t) => t,
        Err(e) => return usage(format!("--control-token-file: {e}")),
    };
    let scenario = match args.scenario.as_deref().map(|p| load_scenario(p, &catalog)).transpose() {
        Ok(s) => s,
        Err(msg) => return usage(msg),
    };
    let seed = args.seed.or(scenario.as_ref().map(|s| s.seed)).unwrap_or(0);
    let specs: Vec<HostSpec> = match &scenario {
        Some(s) => s
            .hosts
            .iter()
            .map(|h| HostSpec {
                name: h.name.clone(),
                priority: h.priority,
                weight: h.weight,
                key_groups: Some(h.key_groups.clone()),
                activation_interval: Some(h.activation_interval),
                renewal_interval: Some(h.renewal_interval),
                activated: h.activated,
                publish: h.publish,
            })
            .collect(),
        None => (0..args.hosts)
            .map(|i| HostSpec {
                name: format!("kms{}", i + 1),
                priority: (i as u16) * 10,
                weight: 0,
                key_groups: None,
                activation_interval: None,
                renewal_interval: None,
                activated: true,
                publish: true,
            })
            .collect(),
    };
    let control = tokio::net::TcpListener::bind(args.control).await.with_context(|| format!("--control {}", args.control))?;
    let time = LabTime::new(args.time_scale);
    let clock = time.clock();
    let shutdown = CancellationToken::new();

    // DNS first: the hosts publish into it as they start.
    let dns = LabDns::start().await.context("starting the embedded DNS server")?;
    println!("listening on dns {}  (zone {ZONE}, TSIG key {})", dns.addr(), dns.key.name);

    let mut hosts = Vec::new();
    for spec in &specs {
        let name = spec.name.clone();
        let key = dns.key.clone();
        let dns_addr = dns.addr();
        let data_dir = args.data_dir.as_ref().map(|d| d.join(&name));
        let host = LabHost::start(&name, time, |c| {
            if let Some(dir) = data_dir {
                c.data_dir = dir;
            }
            // Real KMS defaults (a failed client retries every 120 minutes) unless the
            // scenario sets the intervals.
            c.activation_interval = spec.activation_interval;
            c.renewal_interval = spec.renewal_interval;
            if let Some(groups) = &spec.key_groups {
                c.host_key_groups = groups.clone();
            }
            c.activated = spec.activated;
            c.dns.server = Some(dns_addr.into());
            c.dns.zones = vec![PublishZone { zone: ZONE.into(), priority: spec.priority, weight: spec.weight }];
            c.dns.hostname = Some(format!("{name}.{ZONE}"));
            c.dns.address = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
            // A host whose record DNS refuses sends unsigned updates: the server refuses them.
            c.dns.tsig = spec.publish.then_some(key);
        })
        .await
        .with_context(|| format!("starting {name}"))?;
        println!("listening on kms {}  ({name}.{ZONE}, SRV priority {})", host.kms, spec.priority);
        println!("dashboard of {name}: http://{}/", host.admin);
        hosts.push((host, spec.priority));
    }
    let publishing = specs.iter().filter(|s| s.publish).count();

    // The hosts publish in the background; start the machines once DNS shows every record,
    // so the first attempts do not all fail with 0x8007232B.
    let dns_choice = DnsServerChoice::Server(dns.addr());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = kmslab_dns::lookup_vlmcs(&dns_choice, ZONE, Duration::from_secs(2)).await.map_or(0, |r| r.len());
        if found >= publishing {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("kmslab: only {found} of {publishing} SRV records appeared in {ZONE}; starting the machines anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (clients, mix) = match &scenario {
        // The cohorts join on their days; every product of the scenario is in the mix.
        Some(s) => {
            let mut mix = Vec::new();
            for c in &s.cohorts {
                let p = catalog.product_by_name(&c.product).expect("validated scenario").clone();
                if !mix.iter().any(|(q, _): &(Arc<kmslab_core::catalog::Product>, u32)| q.name == p.name) {
                    mix.push((p, 1));
                }
            }
            if mix.is_empty() {
                mix.push((catalog.product_by_name("win7-enterprise").expect("built-in product").clone(), 1));
            }
            (0, ProductMix(mix))
        }
        None => (args.clients, mix),
    };
    // The lab's own activation service: a MAK per product of the mix, state kept with the
    // hosts' registries (or in a temporary directory).
    let activation_dir = match &args.data_dir {
        Some(d) => {
            let dir = d.join("activation");
            std::fs::create_dir_all(&dir).with_context(|| format!("--data-dir {}", dir.display()))?;
            (dir, None)
        }
        None => {
            let t = tempfile::tempdir().context("a temporary directory for the activation service")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let (activation, activation_addr, _activation_tmp) = {
        let (dir, tmp) = activation_dir;
        let keys_file = dir.join("keys.toml");
        if !keys_file.exists() {
            let specs: Vec<MakSpec> =
                mix.0.iter().map(|(p, _)| MakSpec { product: p.name.clone(), activations: args.mak_activations }).collect();
            std::fs::write(&keys_file, kmslab_activation::keys::generate(&specs).to_toml())
                .with_context(|| format!("writing {}", keys_file.display()))?;
        }
        let service = Arc::new(kmslab_activation::start(&keys_file, &dir, &catalog).context("starting the activation service")?);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("the activation service's port")?;
        let addr = listener.local_addr()?;
        tokio::spawn(kmslab_activation::serve::serve(listener, Arc::clone(&service), shutdown.clone()));
        (service, addr, tmp)
    };
    println!("listening on activation {activation_addr}  (the lab's activation service)");
    for k in &activation.keys().maks {
        println!("MAK for {}: {} ({} activations)", k.products.join(", "), k.key, k.activations);
    }

    let mut config = FleetConfig::new(clients, mix, Target::Discover(ZONE.into()), clock);
    config.activation_service = Some(HostAddr::new(activation_addr.ip().to_string(), activation_addr.port()));
    config.dns = DnsServerChoice::Server(dns.addr());
    config.seed = seed;
    // machine-1, machine-2, ...: the names `kmslab lab` and `slmgr --machine` take.
    config.name_prefix = "machine-".into();
    config.name_base = 1;
    config.name_width = 0;
    config.event_ring = MACHINE_EVENTS;
    config.request_events = true;
    // One start instant (below) for the end time and the day count, so `--duration 2d`
    // reports 2 days; with a scenario, the start of its day 0.
    let lab = Arc::new(Lab::new(time, dns, hosts));
    if let Some(s) = &scenario {
        crate::play::prepare(&lab, s).await;
    }
    let started = clock.now();
    let until = duration_ms.map(|d| started.plus_ms(d));
    let mut fleet = Fleet::start(config, until, shutdown.clone());
    lab.set_fleet(fleet.handle());
    lab.set_activation(LabActivation { addr: activation_addr, service: activation });
    lab.refresh().await;

    let control_addr = control.local_addr()?;
    let mut access = kmslab_admin::AdminAccess::new("kmslab up", control_addr);
    access.token = token;
    access.csp = kmslab_lab::labpage::LAB_PAGE_CSP;
    access.names = args.control_host.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    let machines = MachineApi::new(fleet.handle(), clock, Some(dns_choice.clone()), Some(Arc::clone(&lab)));
    let app = lab_router(Arc::clone(&lab), machines, Arc::new(access));
    let control_thread = serve_control(control, app, shutdown.clone())?;
    // The file first: once the line is out, `kmslab lab` finds the lab.
    let _addr_file = match kmslab_lab::labaddr::AddrFile::write(control_addr) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!(
                "kmslab: cannot write the lab address file {}: {e} (use kmslab lab --target {control_addr})",
                kmslab_lab::labaddr::path().display()
            );
            None
        }
    };
    println!("listening on lab {control_addr}  (lab control API: kmslab lab status)");
    let timeline = Arc::new(crate::play::Timeline::default());
    let mut player = None;
    let scenario_played = scenario.is_some();
    match scenario {
        Some(s) => {
            println!(
                "playing scenario {:?}: {} days, {} hosts, {} cohorts; time runs {}x (a day every {:.1} s; Ctrl-C stops)",
                s.name,
                s.days,
                s.hosts.len(),
                s.cohorts.len(),
                args.time_scale,
                86_400.0 / args.time_scale
            );
            if s.domain != ZONE {
                println!("the scenario's domain {} is played as the lab's zone {ZONE}", s.domain);
            }
            let catalog = Arc::new(Catalog::builtin());
            player = Some(tokio::spawn(crate::play::play(Arc::clone(&lab), s, catalog, started, seed, Arc::clone(&timeline))));
        }
        None => {
            println!("{} client machines discovering _vlmcs._tcp.{ZONE}; time runs {}x (Ctrl-C stops)", args.clients, args.time_scale)
        }
    }

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let progress = Progress::new();
    let stats = Arc::clone(fleet.stats());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    {
        // One future for the fleet's end, polled across iterations (a new one each time
        // would drop the first and lose the driver's handle).
        let finished = fleet.finished();
        tokio::pin!(finished);
        let names = lab.host_names();
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = &mut finished => break,
                _ = async { player.as_mut().expect("checked by the guard").await }, if player.is_some() => {
                    player = None;
                    if !args.keep_running {
                        break;
                    }
                    progress.finish();
                    println!("the scenario ended at simulated {}; the lab keeps running (Ctrl-C stops)", clock.now());
                }
                _ = tick.tick() => {
                    lab.refresh().await;
                    progress.show(&line(clock.now(), started, &names, &lab.counts(), &stats));
                }
            }
        }
    }
    progress.finish();
    if let Some(p) = player.take() {
        p.abort();
    }
    if let Some(path) = &args.timeline {
        let rows = timeline.rows();
        let groups: Vec<String> = catalog.counted_groups().iter().map(|g| g.name.clone()).collect();
        let body = if path.extension().is_some_and(|e| e == "json") {
            kmslab_sim::timeline_json(&rows)
        } else {
            kmslab_sim::timeline_csv(&rows, &groups)
        };
        std::fs::write(path, body).with_context(|| format!("writing --timeline {}", path.display()))?;
        println!("timeline of {} days written to {}", rows.len(), path.display());
    }
    let now = clock.now();
    lab.refresh().await;
    let mut summary = fleet.stop().await;
    let lab_summary = lab.summary();
    let statuses = lab.statuses();
    let mut host_summaries = Vec::new();
    for (h, (_, status)) in lab_summary["hosts"].as_array().into_iter().flatten().zip(&statuses) {
        host_summaries.push(json!({
            "name": h["name"],
            "kms": h["kms"],
            "dashboard": h["dashboard"],
            "role": h["role"],
            "count": h["count"],
            "requests": status["counters"]["total"],
            "failed": status["counters"]["failed"],
            "epid": status["epid"],
        }));
    }
    shutdown.cancel();
    let _ = tokio::task::spawn_blocking(move || control_thread.join()).await;
    match Arc::try_unwrap(lab) {
        Ok(lab) => lab.shutdown().await,
        Err(lab) => lab.stop_hosts().await,
    }
    summary["hosts"] = Value::Array(host_summaries);
    summary["simulated_days"] = json!(now.ms_since(started) / kmslab_core::time::DAY_MS);
    if scenario_played {
        summary["restart_failovers"] = json!(timeline.restart_failovers());
    }
    print_summary(&summary, now);
    if args.json {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One host of the lab: `kmsN` at priority 10(N-1), or a scenario's `[[host]]`.
struct HostSpec {
    name: String,
    priority: u16,
    weight: u16,
    key_groups: Option<Vec<String>>,
    activation_interval: Option<u32>,
    renewal_interval: Option<u32>,
    activated: bool,
    publish: bool,
}

/// Reads and checks a scenario file; the message names the file.
fn load_scenario(path: &std::path::Path, catalog: &Catalog) -> Result<kmslab_sim::Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--scenario {}: {e}", path.display()))?;
    let s = kmslab_sim::Scenario::from_toml(&text, catalog).map_err(|e| format!("--scenario {}: {e}", path.display()))?;
    let machines: u64 = s.cohorts.iter().map(|c| u64::from(c.count)).sum();
    if s.hosts.len() > 16 || machines > 100_000 {
        return Err(format!(
            "--scenario {}: a lab runs at most 16 hosts and 100000 machines, the scenario has {} and {machines} (kmslab sim runs it)",
            path.display(),
            s.hosts.len()
        ));
    }
    if !s.maks.is_empty() {
        return Err(format!(
            "--scenario {}: its [[mak]] keys and MAK cohorts are played by kmslab sim only; a lab plays KMS scenarios",
            path.display()
        ));
    }
    Ok(s)
}

/// Serves the control API on a thread of its own (a single-threaded runtime), so that its
/// answers do not wait behind the work of thousands of machines on the main runtime.
fn serve_control(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let listener = listener.into_std().context("the control listener")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the control API's runtime")?;
    let thread = std::thread::Builder::new()
        .name("lab-control".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        let stats = Arc::new(kmslab_admin::ServeStats::default());
                        kmslab_admin::serve(l, app, kmslab_admin::ServeLimits::default(), stats, shutdown).await;
                    }
                    Err(e) => eprintln!("kmslab: the lab control API cannot serve: {e}"),
                }
            });
        })
        .context("starting the control API's thread")?;
    Ok(thread)
}

fn line(now: Timestamp, started: Timestamp, names: &[String], counts: &[u64], stats: &Arc<FleetStats>) -> String {
    let c = now.civil();
    let day = now.ms_since(started) / kmslab_core::time::DAY_MS;
    let hosts: Vec<String> = names.iter().zip(counts).map(|(name, n)| format!("{name} {n}")).collect();
    let by = |s: LicenseStatus| stats.by_status[s as usize].load(Ordering::Relaxed);
    let mut text = format!(
        "{:04}-{:02}-{:02} (day {day})  count: {}  | Licensed {}  Initial grace {}  Additional grace {}  Notification {}",
        c.year,
        c.month,
        c.day,
        hosts.join(", "),
        by(LicenseStatus::Licensed),
        by(LicenseStatus::InitialGrace),
        by(LicenseStatus::AdditionalGrace),
        by(LicenseStatus::Notification),
    );
    let errors = stats.errors.lock().map(|e| e.clone()).unwrap_or_default();
    if !errors.is_empty() {
        let parts: Vec<String> = errors.iter().map(|(code, n)| format!("{} x{n}", HResult(*code))).collect();
        text.push_str(&format!("  | failed: {}", parts.join(", ")));
    }
    text
}

fn print_summary(summary: &Value, now: Timestamp) {
    println!("kmslab up stopped at simulated {now} after {} simulated days", summary["simulated_days"]);
    println!(
        "machines {}: Licensed {}, Initial grace {}, Additional grace {}, Notification {}, Unlicensed {}; {} requests",
        summary["clients"],
        summary["licensed"],
        summary["initial_grace"],
        summary["additional_grace"],
        summary["notification"],
        summary["unlicensed"],
        summary["requests"]
    );
    if let Some(errors) = summary["errors"].as_object() {
        for (code, n) in errors {
            let name = HResult::parse(code).map_or("", |h| h.name());
            println!("  failed attempts {code} {name}: {n}");
        }
    }
    for h in summary["hosts"].as_array().into_iter().flatten() {
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        println!(
            "host {} ({}): count {}, {} requests ({} failed), ePID {}, dashboard {}",
            text(&h["name"]),
            text(&h["kms"]),
            h["count"],
            h["requests"],
            h["failed"],
            text(&h["epid"]),
            text(&h["dashboard"])
        );
    }
}

/// The live line: an indicatif spinner on a terminal, a plain line every few seconds
/// otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_plain: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
            bar
        });
        Progress { bar, last_plain: std::sync::Mutex::new(None) }
    }

    // Paces plain progress lines in real time (one every 5 s), whatever the time scale.
    #[allow(clippy::disallowed_methods)]
    fn show(&self, text: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(text.to_owned());
                bar.tick();
            }
            None => {
                let mut last = self.last_plain.lock().expect("progress lock");
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    eprintln!("{text}");
                    *last = Some(std::time::Instant::now());
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

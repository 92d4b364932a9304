//! `kmslab fleet`: N simulated client machines in one process against real KMS hosts over
//! TCP (the engine is `kmslab_lab::engine`), with a progress bar, `/metrics` and the JSON
//! summary. `--admin` also serves the machine part of the lab control API
//! (`/api/v1/lab/machines...`, [`kmslab_lab::labapi`]) behind kmslab-admin's guard.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::{HResult, Timestamp};
use kmslab_dns::DnsServerChoice;
use kmslab_lab::engine::{Fleet, FleetConfig, FleetStats, ProductMix, Target, parse_duration_ms};
use kmslab_lab::labapi::{MachineApi, machine_routes};
use kmslab_runtime::SimClock;
use tokio_util::sync::CancellationToken;

/// Flags of `kmslab fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// KMS host to use (like `slmgr /skms`): HOST[:PORT].
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "domain")]
    pub kms: Option<String>,
    /// Find hosts by SRV lookup in this domain (like `slmgr /skms-domain`).
    #[arg(long, value_name = "FQDN")]
    pub domain: Option<String>,
    /// DNS server for discovery, IP:PORT or NAME:PORT (resolved on first use and again
    /// after a failure) [system resolver].
    #[arg(long, value_name = "IP:PORT|NAME:PORT")]
    pub dns_server: Option<String>,
    /// Turn KMS host caching off on every machine (like `slmgr /ckhc`): each renewal
    /// discovers the hosts again and takes them by priority.
    #[arg(long)]
    pub no_host_caching: bool,
    /// Number of simulated machines.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Product shares, NAME=WEIGHT,...
    #[arg(long, value_name = "MIX", default_value = "win7-enterprise=80,server2008r2-standard=20")]
    pub products: String,
    /// Simulated time to run (30d, 12h, 90m, 45s).
    #[arg(long, value_name = "D", default_value = "30d")]
    pub duration: String,
    /// Machines sharing one CMID (a cloned image); 0 or 1: none.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub clones: usize,
    /// Simulated time runs F times faster than real time (use the hosts' value).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Simulated time origin, RFC 3339 (use the hosts' value) [process start].
    #[arg(long, value_name = "T")]
    pub time_origin: Option<String>,
    /// Seed for CMIDs and SRV choices [random: fleet containers started from one service
    /// definition must not share their CMIDs, or the host would count them once].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most concurrent lookups and TCP exchanges.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub concurrency: usize,
    /// Milliseconds (real time) an SRV answer or host address is reused.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub srv_cache_ms: u64,
    /// Machine names are PREFIX00000, PREFIX00001, ... (tells fleets apart in a host's
    /// registry).
    #[arg(long, value_name = "PREFIX", default_value = "FLEET-")]
    pub name_prefix: String,
    /// Serve /metrics, /healthz and the machine API (`/api/v1/lab/machines`) on this address.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Print the JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Pre-shared key file of hosts started with --psk: requests carry a MAC, answers must.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<std::path::PathBuf>,
    /// The activation service (`kmslab activation-service`) a machine given a MAK
    /// (`slmgr --machine NAME /ipk MAK`) activates with on `/ato`, as HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub activation_service: Option<String>,
}

fn usage(msg: String) -> anyhow::Result<ExitCode> {
    eprintln!("kmslab: {msg}");
    Ok(ExitCode::from(2))
}

/// Runs a fleet until its duration passed or Ctrl-C, then prints the summary.
pub async fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin();
    let mix = match ProductMix::parse(&args.products, &catalog) {
        Ok(m) => m,
        Err(e) => return usage(format!("--products: {e}")),
    };
    let duration_ms = match parse_duration_ms(&args.duration) {
        Ok(d) => d,
        Err(e) => return usage(format!("--duration: {e}")),
    };
    let origin = match args.time_origin.as_deref().map(Timestamp::parse_rfc3339).transpose() {
        Ok(o) => o,
        Err(e) => return usage(format!("--time-origin: {e}")),
    };
    let clock = match SimClock::new(args.time_scale, origin) {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    let target = match (&args.kms, &args.domain) {
        (Some(k), None) => match k.parse::<HostAddr>() {
            Ok(h) => Target::Manual(h),
            Err(e) => return usage(format!("--kms: {e}")),
        },
        (None, Some(d)) => Target::Discover(d.trim().trim_end_matches('.').to_owned()),
        _ => return usage("one of --kms or --domain is required".into()),
    };
    if args.concurrency == 0 {
        return usage("--concurrency must be at least 1".into());
    }
    let mut config = FleetConfig::new(args.clients, mix, target, clock);
    config.clones = args.clones.min(args.clients);
    config.dns = match args.dns_server.as_deref().map(DnsServerChoice::parse_server).transpose() {
        Ok(choice) => choice.unwrap_or(DnsServerChoice::System),
        Err(e) => return usage(format!("--dns-server: {e}")),
    };
    config.host_caching = !args.no_host_caching;
    config.name_prefix = args.name_prefix.clone();
    config.seed = args.seed.unwrap_or_else(random_seed);
    config.concurrency = args.concurrency;
    config.srv_cache = Duration::from_millis(args.srv_cache_ms);
    if let Some(path) = &args.psk {
        match kmslab_runtime::psk::load(path) {
            Ok(key) => config.psk = Some(key),
            Err(e) => return usage(format!("--psk {e}")),
        }
    }
    if let Some(service) = &args.activation_service {
        match service.parse::<HostAddr>() {
            Ok(h) => config.activation_service = Some(h),
            Err(e) => return usage(format!("--activation-service: {e}")),
        }
    }

    let shutdown = CancellationToken::new();
    let start = clock.now();
    let until = start.plus_ms(duration_ms);
    // Real elapsed time of the run, for the summary's request rate.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let dns = config.dns.clone();
    let mut fleet = Fleet::start(config, Some(until), shutdown.clone());
    let stats = Arc::clone(fleet.stats());
    if let Some(addr) = args.admin {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("--admin {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        eprintln!("listening on admin {bound}");
        let machines = MachineApi::new(fleet.handle(), clock, Some(dns), None);
        let mut access = kmslab_admin::AdminAccess::new("kmslab fleet", bound);
        // The fleet's counts are what Prometheus and the compose and Swarm drills scrape from
        // outside its container; the machine API stays behind the source rules.
        access.public_paths = &["/healthz", "/metrics"];
        let access = Arc::new(access);
        let app = admin_router(Arc::clone(&stats), machines, access);
        let stats = Arc::new(kmslab_admin::ServeStats::default());
        tokio::spawn(kmslab_admin::serve(listener, app, kmslab_admin::ServeLimits::default(), stats, shutdown.clone()));
    }
    let bar = ProgressBar::with_draw_target(Some((duration_ms / 60_000).max(1) as u64), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}").expect("valid template"));
    let ticker = {
        let (bar, stats) = (bar.clone(), Arc::clone(&stats));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = Timestamp::from_unix_ms(stats.sim_now_ms.load(Ordering::Relaxed));
                bar.set_position((now.ms_since(start).max(0) / 60_000) as u64);
                bar.set_message(progress_line(&stats, now));
            }
        })
    };
    let ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    fleet.finished().await;
    ticker.abort();
    bar.finish_and_clear();
    shutdown.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = fleet.stop().await;
    let requests = stats.requests.load(Ordering::Relaxed);
    summary["real_seconds"] = serde_json::json!((elapsed * 1000.0).round() / 1000.0);
    summary["request_rate"] = serde_json::json!((requests as f64 / elapsed.max(1e-9)).round());
    eprintln!("{} machines, {} simulated, {requests} requests in {elapsed:.1} s", stats.clients.load(Ordering::Relaxed), args.duration);
    if args.json {
        println!("{summary}");
    } else {
        print_summary(&summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// A seed that differs between processes (and between containers of one image): the
/// hasher's per-process random keys, mixed with the wall clock and the process id.
// A seed that differs between runs; not a time reading.
#[allow(clippy::disallowed_methods)]
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

/// `/metrics` (Prometheus text), `/healthz` and the machine API of a fleet, behind `access`.
pub fn admin_router(stats: Arc<FleetStats>, machines: Arc<MachineApi>, access: Arc<kmslab_admin::AdminAccess>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let stats = Arc::clone(&stats);
                async move {
                    let mut body = stats.prometheus();
                    kmslab_runtime::process_metrics::render(&mut body);
                    body
                }
            }),
        )
        .merge(machine_routes(machines))
        .layer(axum::middleware::from_fn_with_state(access, kmslab_admin::guard::middleware))
}

fn progress_line(stats: &FleetStats, now: Timestamp) -> String {
    let s = stats.summary();
    let errors: u64 = s["errors"].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    format!(
        "{} | licensed {} initial {} additional {} notification {} | requests {} | failed attempts {errors}",
        &now.to_string()[..10],
        s["licensed"],
        s["initial_grace"],
        s["additional_grace"],
        s["notification"],
        s["requests"]
    )
}

fn print_summary(s: &serde_json::Value) {
    println!(
        "clients {}  licensed {}  initial grace {}  additional grace {}  notification {}  unlicensed {}  requests {}",
        s["clients"], s["licensed"], s["initial_grace"], s["additional_grace"], s["notification"], s["unlicensed"], s["requests"]
    );
    if let Some(errors) = s["errors"].as_object() {
        for (code, n) in errors {
            let name = HResult::parse(code).map_or("", |h| h.name());
            println!("  failed attempts {code} {name}: {n}");
        }
    }
}

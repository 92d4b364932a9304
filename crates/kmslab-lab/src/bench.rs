//! `kmslab bench`: drives a KMS host with distinct random CMIDs (or a pool of `--cmids N`
//! machines, so that most requests are renewals) over real TCP and reports
//! rate, latency percentiles and errors by HRESULT; `--baseline` measures a minimal echo
//! server with the same frame sizes the same way, so the host's rate can be given as a ratio.
//! Requests carry the wall clock, or the simulated clock of a host on simulated time
//! (`--time-scale`/`--time-origin` as the host was given, or `--learn-time ADMIN`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use kmslab_core::catalog::Catalog;
use kmslab_core::wire::{self, FrameKey, KMS_PROTOCOL_V4, Message, Request, Response};
use kmslab_core::{HResult, LicenseStatus, Timestamp, Uuid};
use kmslab_runtime::framed::{read_message_with, write_message_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Flags of `kmslab bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// KMS host address (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,
    /// Concurrent connections (workers).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// One connection per request, as real KMS clients do.
    #[arg(long)]
    new_connection: bool,
    /// Also bench a minimal echo server with the same frame sizes and print the ratio.
    #[arg(long)]
    baseline: bool,
    /// With --baseline: also bench a durable echo server, which answers each frame only
    /// after appending it to a file and fdatasync-ing (group commit), the floor of any
    /// server that stores each request before answering.
    #[arg(long, requires = "baseline")]
    durable_baseline: bool,
    /// Cap the offered load at this many requests per second in all (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Draw CMIDs from a pool of this many machines instead of a new CMID per request, so
    /// that once each machine has been seen most requests are renewals of known CMIDs (what
    /// a real fleet sends); 0 = a new CMID for every request.
    #[arg(long, value_name = "N", default_value_t = 0)]
    cmids: u64,
    /// Product the simulated clients ask for.
    #[arg(long, default_value = "win7-enterprise")]
    product: String,
    /// End with one JSON line.
    #[arg(long)]
    json: bool,
    /// Pre-shared key file of a host started with --psk: every request carries a MAC and
    /// every answer must (the --baseline echo server runs without one).
    #[arg(long, value_name = "FILE")]
    psk: Option<std::path::PathBuf>,
    /// The host runs on simulated time at this scale (its `--time-scale`): requests carry
    /// that clock, not the wall clock, so the host does not refuse them as skewed
    /// (0xC004F06C).
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    time_scale: f64,
    /// The host's `--time-origin` (RFC 3339), with --time-scale.
    #[arg(long, value_name = "T", value_parser = parse_time, conflicts_with = "learn_time")]
    time_origin: Option<Timestamp>,
    /// Learn the host's simulated time from its admin API (`/api/v1/status` `now`, at
    /// ADDR) before the run and advance it at --time-scale: no need to know its origin.
    #[arg(long, value_name = "ADMIN")]
    learn_time: Option<SocketAddr>,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let f = s.parse::<f64>().map_err(|_| format!("{s:?} is not a number"))?;
    kmslab_runtime::SimClock::new(f, None).map(|_| f).map_err(|e| e.to_string())
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| format!("not an RFC 3339 time such as 2030-01-01T00:00:00Z: {e}"))
}

/// The clock the bench's requests carry.
#[derive(Debug, Clone, Copy)]
enum BenchClock {
    /// The same clock as a host given the same scale and origin (scale 1, no origin: the
    /// wall clock).
    Shared(kmslab_runtime::SimClock),
    /// The host's time as read from its status, advancing at `scale` since `at`.
    Learned { base: Timestamp, at: Instant, scale: f64 },
}

impl BenchClock {
    fn now(&self) -> Timestamp {
        match self {
            BenchClock::Shared(clock) => clock.now(),
            BenchClock::Learned { base, at, scale } => base.plus_ms((at.elapsed().as_millis() as f64 * scale) as i64),
        }
    }
}

/// The clock for these flags; `--learn-time` asks the host's admin API.
async fn bench_clock(args: &BenchArgs) -> anyhow::Result<BenchClock> {
    let shared = kmslab_runtime::SimClock::new(args.time_scale, args.time_origin).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(admin) = args.learn_time else {
        return Ok(BenchClock::Shared(shared));
    };
    let status = kmslab_lab::drill::http_get_json(admin, "/api/v1/status")
        .await
        .with_context(|| format!("--learn-time {admin}: GET /api/v1/status"))?;
    let at = Instant::now();
    let now = status["now"].as_str().with_context(|| format!("--learn-time {admin}: /api/v1/status has no \"now\" time"))?;
    let base = Timestamp::parse_rfc3339(now).map_err(|e| anyhow::anyhow!("--learn-time {admin}: /api/v1/status \"now\" {now:?}: {e}"))?;
    Ok(BenchClock::Learned { base, at, scale: args.time_scale })
}

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        (self.ok + self.errors.values().sum::<u64>()) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

// The bench sends to hosts on real time: its requests carry the wall clock.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> Timestamp {
    Timestamp::from_unix_ms(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}

/// Runs the bench.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 || args.requests == 0 {
        bail!("--connections and --requests must be at least 1");
    }
    let clock = bench_clock(&args).await?;
    let catalog = Catalog::builtin();
    let product = catalog.product_by_name(&args.product).with_context(|| format!("unknown --product {:?}", args.product))?;
    let template = Request {
        protocol: KMS_PROTOCOL_V4,
        vm: false,
        license_status: LicenseStatus::InitialGrace,
        minutes_to_expiry: 43_200,
        application_id: product.application_id,
        activation_id: product.activation_id,
        kms_counted_id: product.kms_counted_id,
        cmid: Uuid::nil(),
        previous_cmid: Uuid::nil(),
        n_policy: product.required_count,
        client_time: clock.now(),
        machine_name: "bench-client".into(),
    };
    let connection_mode = if args.new_connection { "new connection per request" } else { "keep-alive" };
    let mode = if args.cmids > 0 { format!("{connection_mode}, CMIDs from a pool of {}", args.cmids) } else { connection_mode.to_owned() };
    let psk = args.psk.as_deref().map(kmslab_runtime::psk::load).transpose().map_err(|e| anyhow::anyhow!("--psk {e}"))?;
    let ours = load(args.target, &args, &template, psk, clock).await;
    let mut baseline = None;
    if args.baseline {
        let echo = start_echo_server(None).await?;
        baseline = Some(load(echo, &args, &template, None, clock).await);
    }
    let mut durable = None;
    if args.durable_baseline {
        let dir = tempfile::tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
            .context("a scratch directory for the durable echo server's file")?;
        let echo = start_echo_server(Some(dir.path().join("durable-echo.log"))).await?;
        durable = Some((load(echo, &args, &template, None, clock).await, dir));
    }
    if ours.ok == 0 && !ours.errors.is_empty() && !args.json {
        eprintln!("kmslab bench: every request failed");
    }
    let errors_text: Vec<String> = ours.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("target {} ({mode}, {} connections)", args.target, args.connections);
    println!("requests: {} ok, {} errors", ours.ok, ours.errors.values().sum::<u64>());
    println!("rate: {:.0} requests/s over {:.2} s", ours.rate(), ours.elapsed.as_secs_f64());
    println!("latency: p50 {:.3} ms, p99 {:.3} ms", ours.percentile_ms(0.5), ours.percentile_ms(0.99));
    println!("errors by HRESULT: {}", if errors_text.is_empty() { "none".into() } else { errors_text.join(", ") });
    let mut json = serde_json::json!({
        "requests": ours.ok + ours.errors.values().sum::<u64>(),
        "rate": round2(ours.rate()),
        "p50_ms": round3(ours.percentile_ms(0.5)),
        "p99_ms": round3(ours.percentile_ms(0.99)),
        "errors": ours.errors,
    });
    if let Some(b) = &baseline {
        let ratio = ours.rate() / b.rate().max(1e-9);
        println!(
            "baseline echo server: {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms; kmslab/baseline ratio {:.2}",
            b.rate(),
            b.percentile_ms(0.5),
            b.percentile_ms(0.99),
            ratio
        );
        json["baseline_rate"] = serde_json::json!(round2(b.rate()));
        json["ratio"] = serde_json::json!(round3(ratio));
        if let Some((d, _dir)) = &durable {
            println!(
                "durable echo server (fdatasync per batch): {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms; durable-echo/baseline ratio {:.2}, kmslab/durable-echo ratio {:.2}",
                d.rate(),
                d.percentile_ms(0.5),
                d.percentile_ms(0.99),
                d.rate() / b.rate().max(1e-9),
                ours.rate() / d.rate().max(1e-9)
            );
            json["durable_baseline_rate"] = serde_json::json!(round2(d.rate()));
            json["durable_ratio"] = serde_json::json!(round3(ours.rate() / d.rate().max(1e-9)));
        }
    }
    if args.json {
        println!("{json}");
    }
    Ok(if ours.ok > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn load(target: SocketAddr, args: &BenchArgs, template: &Request, psk: Option<FrameKey>, clock: BenchClock) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let total = args.requests;
    // A pool per load (the echo baselines ignore CMIDs, so theirs does not matter).
    let pool: Arc<Vec<Uuid>> = Arc::new((0..args.cmids).map(|_| Uuid::new_v4()).collect());
    let start = Instant::now();
    // Per-request spacing when --rate paces the load: request k is due at start + k/rate.
    let spacing = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let next = Arc::clone(&next);
        let template = template.clone();
        let new_connection = args.new_connection;
        let psk = psk.clone();
        let pool = Arc::clone(&pool);
        workers.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut conn: Option<TcpStream> = None;
            let (mut rbuf, mut wbuf) = (Vec::with_capacity(256), Vec::with_capacity(256));
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                if let Some(s) = spacing {
                    tokio::time::sleep_until(start + s * (k as u32)).await;
                }
                let mut req = template.clone();
                // Request k goes to machine k mod N: every machine is seen once in each
                // round of N requests, as a fleet renewing on a schedule would be.
                req.cmid = if pool.is_empty() { Uuid::new_v4() } else { pool[(k % pool.len() as u64) as usize] };
                req.client_time = clock.now();
                let t0 = Instant::now();
                let result = one_request(&mut conn, target, &req, &mut rbuf, &mut wbuf, psk.as_ref()).await;
                let took = t0.elapsed();
                match result {
                    Ok(()) => {
                        out.ok += 1;
                        out.latencies_us.push(took.as_micros() as u64);
                    }
                    Err(code) => {
                        *out.errors.entry(code).or_default() += 1;
                        conn = None;
                    }
                }
                if new_connection {
                    conn = None;
                }
            }
            out
        }));
    }
    let mut all = Outcome::default();
    for w in workers {
        if let Ok(o) = w.await {
            all.ok += o.ok;
            for (k, v) in o.errors {
                *all.errors.entry(k).or_default() += v;
            }
            all.latencies_us.extend(o.latencies_us);
        }
    }
    all.elapsed = start.elapsed();
    all.latencies_us.sort_unstable();
    all
}

/// One request; `Err` is the HRESULT text the error is counted under.
async fn one_request(
    conn: &mut Option<TcpStream>,
    target: SocketAddr,
    req: &Request,
    rbuf: &mut Vec<u8>,
    wbuf: &mut Vec<u8>,
    psk: Option<&FrameKey>,
) -> Result<(), String> {
    let code = |h: HResult| format!("0x{:08X}", h.0);
    if conn.is_none() {
        let s = TcpStream::connect(target).await.map_err(|_| code(HResult::HOST_UNREACHABLE))?;
        let _ = s.set_nodelay(true);
        *conn = Some(s);
    }
    let Some(stream) = conn.as_mut() else { return Err(code(HResult::HOST_UNREACHABLE)) };
    write_message_with(stream, &Message::Request(req.clone()), wbuf, psk).await.map_err(|_| code(HResult::KMS_NOT_ENABLED))?;
    match tokio::time::timeout(Duration::from_secs(10), read_message_with(stream, rbuf, psk)).await {
        Ok(Ok(Some(Message::Response(_)))) => Ok(()),
        Ok(Ok(Some(Message::Error(e)))) => Err(code(e.hresult)),
        Ok(Err(kmslab_runtime::framed::FrameError::Decode(e))) if e.is_auth() => Err(code(HResult::FRAME_AUTH_FAILED)),
        Ok(Ok(_)) | Ok(Err(_)) => Err(code(HResult::KMS_NOT_ENABLED)),
        Err(_) => Err(code(HResult::TIMEOUT)),
    }
}

/// A minimal tokio server that reads request frames and answers each with a response frame
/// of the size kms-host sends, doing nothing else. It runs on its own two-thread runtime,
/// like a separate process would, so it does not share the load generator's workers.
///
/// With `durable`, each request frame is first appended to that file by one writer thread
/// that takes every frame queued, writes them, calls `fdatasync` once and only then lets
/// their answers go: the least any server does that answers only after storing a request.
async fn start_echo_server(durable: Option<std::path::PathBuf>) -> anyhow::Result<SocketAddr> {
    let answer = wire::encode_to_vec(&Message::Response(Response {
        protocol: KMS_PROTOCOL_V4,
        epid: "55041-00168-305-123456-03-1033-7600.0000-0012026".into(),
        cmid: Uuid::new_v4(),
        client_time: wall_now(),
        current_count: 50,
        activation_interval: 120,
        renewal_interval: 10_080,
    }))?;
    let journal = match durable {
        None => None,
        Some(path) => Some(start_durable_writer(&path)?),
    };
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    std::thread::Builder::new().name("bench-echo".into()).spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = TcpListener::from_std(std_listener) else { return };
            loop {
                let Ok((mut s, _)) = listener.accept().await else { continue };
                let _ = s.set_nodelay(true);
                let answer = answer.clone();
                let journal = journal.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; wire::MAX_FRAME_LEN];
                    loop {
                        if s.read_exact(&mut buf[..wire::HEADER_LEN]).await.is_err() {
                            return;
                        }
                        let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
                        if len > wire::MAX_BODY_LEN || s.read_exact(&mut buf[wire::HEADER_LEN..wire::HEADER_LEN + len]).await.is_err() {
                            return;
                        }
                        if let Some(journal) = &journal {
                            let (done, stored) = tokio::sync::oneshot::channel();
                            if journal.send((buf[..wire::HEADER_LEN + len].to_vec(), done)).is_err() || stored.await.is_err() {
                                return;
                            }
                        }
                        if s.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    })?;
    Ok(addr)
}

type DurableQueue = std::sync::mpsc::Sender<(Vec<u8>, tokio::sync::oneshot::Sender<()>)>;

/// The durable echo server's writer thread (group commit: one fdatasync per batch).
fn start_durable_writer(path: &std::path::Path) -> anyhow::Result<DurableQueue> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("{}", path.display()))?;
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, tokio::sync::oneshot::Sender<()>)>();
    std::thread::Builder::new().name("bench-durable".into()).spawn(move || {
        let mut batch = Vec::new();
        let mut bytes = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            bytes.clear();
            for (frame, _) in &batch {
                bytes.extend_from_slice(frame);
            }
            if file.write_all(&bytes).and_then(|()| file.sync_data()).is_err() {
                return; // the connections see their answers dropped
            }
            for (_, done) in batch.drain(..) {
                let _ = done.send(());
            }
        }
    })?;
    Ok(tx)
}

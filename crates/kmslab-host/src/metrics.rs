//! The host's Prometheus metrics, kept per host instance and encoded on `/metrics` by the
//! `prometheus-client` crate (`kmslab_runtime::prometheus`), from a registry of this host's
//! own filled at each scrape.
//!
//! We keep our own few atomics rather than a global recorder: a process may run several
//! hosts (tests, `kmslab up`), and a global recorder would mix their numbers. Every series
//! here is cheap to update on the request path (a relaxed atomic add, or a short lock on a
//! small map for the labelled request counter).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use kmslab_runtime::prometheus::{ConstCounter, ConstGauge, HistogramValues, MetricType, Registry, Series, counters, register};

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The values now, for the registry.
    fn values(&self) -> HistogramValues {
        HistogramValues {
            buckets: BUCKETS.iter().zip(&self.buckets).map(|(bound, n)| (*bound, n.load(Ordering::Relaxed))).collect(),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// Every metric one host exports.
#[derive(Debug, Default)]
pub struct HostMetrics {
    /// Requests by (HRESULT, license status key).
    requests: Mutex<BTreeMap<(u32, &'static str), u64>>,
    /// Frames that could not be decoded.
    pub malformed: AtomicU64,
    /// Open KMS connections.
    pub open_connections: AtomicI64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections closed at accept because `--allow` does not cover the source.
    pub refused_not_allowed: AtomicU64,
    /// Connections closed at accept because their source already held
    /// `--max-connections-per-source`.
    pub refused_per_source: AtomicU64,
    /// Answers not written within the idle timeout (the peer does not read): closed.
    pub write_timeouts: AtomicU64,
    /// The admin listener's own counts.
    pub admin: std::sync::Arc<kmslab_admin::ServeStats>,
    /// Requests refused by `--rate-limit`.
    pub rate_limited: AtomicU64,
    /// Frames refused for a missing, unexpected or wrong MAC (`--psk`).
    pub frame_auth_failed: AtomicU64,
    /// Time from a request's last byte read to its answer written.
    pub request_latency: Histogram,
    /// Time a request waited for the registry to store it (its journal group on the disk).
    pub store_commit_latency: Histogram,
}

/// Values read at render time from elsewhere (ledger, store).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// (group name, current count).
    pub counts: Vec<(String, u32)>,
    /// Registry writer stats.
    pub store: kmslab_store::StoreStats,
    /// Registry health.
    pub store_ok: bool,
}

impl HostMetrics {
    /// Counts one request answered with `hresult`, reported with `license_status`.
    pub fn count_request(&self, hresult: u32, license_status: &'static str) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((hresult, license_status)).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry, snap);
        kmslab_runtime::prometheus::encode(&registry)
    }

    /// Registers this host's series, as they are now, in `r`.
    pub fn register(&self, r: &mut Registry, snap: &Snapshot) {
        let load = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
        let mut requests = counters();
        for ((hr, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            requests.push([("result", format!("0x{hr:08X}")), ("license_status", (*status).to_owned())], ConstCounter::new(*n));
        }
        register(r, "kmslab_host_requests_total", "KMS requests answered, by result and reported license status.", requests);
        register(
            r,
            "kmslab_host_malformed_requests_total",
            "Frames that could not be decoded (answered with an error frame or a close), and connections closed without a complete request (incomplete frame or nothing sent by the idle timeout, reset mid-frame).",
            load(&self.malformed),
        );
        let mut counted = Series::new(MetricType::Gauge);
        for (group, n) in &snap.counts {
            counted.push([("group", group.as_str())], ConstGauge::new(i64::from(*n)));
        }
        register(r, "kmslab_host_counted_cmids", "Distinct CMIDs in the current count, per counted group.", counted);
        register(
            r,
            "kmslab_host_open_connections",
            "KMS connections open now.",
            ConstGauge::new(self.open_connections.load(Ordering::Relaxed)),
        );
        register(r, "kmslab_host_connections_total", "KMS connections accepted.", load(&self.connections_total));
        let mut refused = counters();
        refused.push([("reason", "not_allowed")], load(&self.refused_not_allowed));
        refused.push([("reason", "per_source")], load(&self.refused_per_source));
        register(r, "kmslab_host_refused_connections_total", "KMS connections closed at accept, by reason.", refused);
        register(
            r,
            "kmslab_host_write_timeouts_total",
            "KMS connections closed because an answer could not be written within the idle timeout (the peer does not read); also counted as malformed.",
            load(&self.write_timeouts),
        );
        let admin = &self.admin;
        register(
            r,
            "kmslab_host_admin_open_connections",
            "Admin API connections open now.",
            ConstGauge::new(admin.open.load(Ordering::Relaxed)),
        );
        let mut admin_refused = counters();
        admin_refused.push([("reason", "per_source")], load(&admin.refused_per_source));
        admin_refused.push([("reason", "header_timeout")], load(&admin.header_timeouts));
        register(
            r,
            "kmslab_host_admin_refused_connections_total",
            "Admin API connections closed without a request, by reason (per_source: closed at accept; header_timeout: no request headers in time).",
            admin_refused,
        );
        register(
            r,
            "kmslab_host_rate_limited_total",
            "KMS requests refused with 0xA04B0001 by the per-source rate limit.",
            load(&self.rate_limited),
        );
        register(
            r,
            "kmslab_host_frame_auth_failures_total",
            "Frames refused for a missing, unexpected or wrong MAC (--psk); also counted as malformed.",
            load(&self.frame_auth_failed),
        );
        register(
            r,
            "kmslab_host_request_duration_seconds",
            "Time from a request read to its answer written.",
            self.request_latency.values(),
        );
        register(
            r,
            "kmslab_store_commit_wait_seconds",
            "Time a request waited for the registry to store it (its journal group on the disk).",
            self.store_commit_latency.values(),
        );
        let s = &snap.store;
        register(r, "kmslab_store_commits_total", "Registry transactions committed.", ConstCounter::new(s.commits));
        register(
            r,
            "kmslab_store_commit_seconds_total",
            "Time spent in committed registry transactions.",
            ConstCounter::new(s.total_commit_micros as f64 / 1e6),
        );
        register(r, "kmslab_store_writes_failed_total", "Registry writes that failed.", ConstCounter::new(s.writes_failed));
        register(r, "kmslab_store_healthy", "1 when registry writes succeed.", ConstGauge::new(i64::from(snap.store_ok)));
    }
}

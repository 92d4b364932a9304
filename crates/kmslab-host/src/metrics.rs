//! The host's Prometheus metrics, kept per host instance and rendered as text on `/metrics`.
//!
//! We keep our own few atomics rather than the global `metrics` recorder: a process may
//! run several hosts (tests, `kmslab up`), and a global recorder would mix their numbers.
//! Every series here is cheap to update on the request path (a relaxed atomic add, or a
//! short lock on a small map for the labelled request counter).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

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

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
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
    /// Time a request waited for its registry commit.
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
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP kmslab_host_requests_total KMS requests answered, by result and reported license status.\n");
        out.push_str("# TYPE kmslab_host_requests_total counter\n");
        for ((hr, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "kmslab_host_requests_total{{result=\"0x{hr:08X}\",license_status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP kmslab_host_malformed_requests_total Frames that could not be decoded (answered with an error frame or a close), and connections closed without a complete request (incomplete frame or nothing sent by the idle timeout, reset mid-frame).\n# TYPE kmslab_host_malformed_requests_total counter\nkmslab_host_malformed_requests_total {}",
            self.malformed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP kmslab_host_counted_cmids Distinct CMIDs in the current count, per counted group.\n# TYPE kmslab_host_counted_cmids gauge\n",
        );
        for (group, n) in &snap.counts {
            let _ = writeln!(out, "kmslab_host_counted_cmids{{group=\"{group}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP kmslab_host_open_connections KMS connections open now.\n# TYPE kmslab_host_open_connections gauge\nkmslab_host_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_connections_total KMS connections accepted.\n# TYPE kmslab_host_connections_total counter\nkmslab_host_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_refused_connections_total KMS connections closed at accept, by reason.\n# TYPE kmslab_host_refused_connections_total counter\nkmslab_host_refused_connections_total{{reason=\"not_allowed\"}} {}\nkmslab_host_refused_connections_total{{reason=\"per_source\"}} {}",
            self.refused_not_allowed.load(Ordering::Relaxed),
            self.refused_per_source.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_write_timeouts_total KMS connections closed because an answer could not be written within the idle timeout (the peer does not read); also counted as malformed.\n# TYPE kmslab_host_write_timeouts_total counter\nkmslab_host_write_timeouts_total {}",
            self.write_timeouts.load(Ordering::Relaxed)
        );
        let admin = &self.admin;
        let _ = writeln!(
            out,
            "# HELP kmslab_host_admin_open_connections Admin API connections open now.\n# TYPE kmslab_host_admin_open_connections gauge\nkmslab_host_admin_open_connections {}",
            admin.open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_admin_refused_connections_total Admin API connections closed without a request, by reason (per_source: closed at accept; header_timeout: no request headers in time).\n# TYPE kmslab_host_admin_refused_connections_total counter\nkmslab_host_admin_refused_connections_total{{reason=\"per_source\"}} {}\nkmslab_host_admin_refused_connections_total{{reason=\"header_timeout\"}} {}",
            admin.refused_per_source.load(Ordering::Relaxed),
            admin.header_timeouts.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_rate_limited_total KMS requests refused with 0xA04B0001 by the per-source rate limit.\n# TYPE kmslab_host_rate_limited_total counter\nkmslab_host_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_host_frame_auth_failures_total Frames refused for a missing, unexpected or wrong MAC (--psk); also counted as malformed.\n# TYPE kmslab_host_frame_auth_failures_total counter\nkmslab_host_frame_auth_failures_total {}",
            self.frame_auth_failed.load(Ordering::Relaxed)
        );
        self.request_latency.render(&mut out, "kmslab_host_request_duration_seconds", "Time from a request read to its answer written.");
        self.store_commit_latency.render(&mut out, "kmslab_store_commit_wait_seconds", "Time a request waited for its registry commit.");
        let s = &snap.store;
        let _ = writeln!(
            out,
            "# HELP kmslab_store_commits_total Registry transactions committed.\n# TYPE kmslab_store_commits_total counter\nkmslab_store_commits_total {}",
            s.commits
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_store_commit_seconds_total Time spent in committed registry transactions.\n# TYPE kmslab_store_commit_seconds_total counter\nkmslab_store_commit_seconds_total {}",
            s.total_commit_micros as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_store_writes_failed_total Registry writes that failed.\n# TYPE kmslab_store_writes_failed_total counter\nkmslab_store_writes_failed_total {}",
            s.writes_failed
        );
        let _ = writeln!(
            out,
            "# HELP kmslab_store_healthy 1 when registry writes succeed.\n# TYPE kmslab_store_healthy gauge\nkmslab_store_healthy {}",
            u8::from(snap.store_ok)
        );
        out
    }
}

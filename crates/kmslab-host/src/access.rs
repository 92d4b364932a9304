//! Access control at the host's edges (docs/reliability.md, "Access control"): CIDR lists
//! (`--allow` for KMS sources, `--admin-read-network` and `--admin-local-network` for the
//! admin API), the per-source token bucket of `--rate-limit`, and throttled refusal logs.
//!
//! None of this is KMS behaviour, so it lives here and not in the core: it decides which
//! bytes reach the core at all.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kmslab_core::HResult;
use kmslab_core::wire::{DecodeError, ErrorFrame, Message, Request};
use tokio::time::Instant;

use crate::metrics::HostMetrics;

/// How often a refused source is logged at most.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// Most sources whose rate-limit bucket (or last refusal log) is remembered; beyond it,
/// idle entries are evicted first, then the least recently used one.
pub const MAX_TRACKED_SOURCES: usize = 65_536;

pub use kmslab_runtime::cidr::{Cidr, any_contains};

/// `--rate-limit PER_SECOND[,BURST]`: requests per second per source address, and how many
/// may come at once after a quiet spell (default: PER_SECOND rounded up, at least 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<RateLimit, String> {
        let (rate, burst) = match s.split_once(',') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let per_second: f64 = rate.trim().parse().map_err(|_| "expected PER_SECOND[,BURST], e.g. 5 or 0.5,10".to_owned())?;
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 1_000_000.0) {
            return Err("PER_SECOND must be > 0 and <= 1000000".into());
        }
        let burst = match burst {
            Some(b) => {
                b.trim().parse::<u32>().ok().filter(|b| (1..=1_000_000).contains(b)).ok_or("BURST must be a whole number 1..=1000000")?
            }
            None => per_second.ceil().max(1.0) as u32,
        };
        Ok(RateLimit { per_second, burst: f64::from(burst) })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One token bucket per source address, bounded to [`MAX_TRACKED_SOURCES`] entries. A
/// bucket that has refilled completely holds nothing a fresh one would not, so evicting it
/// changes no decision; only when every tracked source is active does the least recently
/// seen one lose its (partly drained) bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    max_sources: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter remembering at most `max_sources` sources.
    pub fn new(limit: RateLimit, max_sources: usize) -> RateLimiter {
        RateLimiter { limit, max_sources: max_sources.max(1), buckets: Mutex::default() }
    }

    /// Takes a token for `ip` at `now`: true when the request may go on.
    pub fn check(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        // A std mutex: a few arithmetic operations, never held across an await.
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&ip) && map.len() >= self.max_sources {
            self.evict(&mut map, now);
        }
        let limit = self.limit;
        let bucket = map.entry(ip).or_insert(Bucket { tokens: limit.burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn evict(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let limit = self.limit;
        map.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * limit.per_second < limit.burst);
        if map.len() >= self.max_sources
            && let Some(oldest) = map.iter().min_by_key(|(_, b)| b.last).map(|(ip, _)| *ip)
        {
            map.remove(&oldest);
        }
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Remembers when each source was last logged, so that a refused source is logged once
/// per [`REFUSAL_LOG_EVERY`] and not once per connection or frame.
#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Mutex<HashMap<(IpAddr, &'static str), Instant>>,
}

impl LogThrottle {
    /// True when `ip` should be logged for `reason` at `now` (and records it).
    pub fn should_log(&self, ip: IpAddr, reason: &'static str, now: Instant) -> bool {
        let mut map = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_SOURCES {
            map.retain(|_, t| now.saturating_duration_since(*t) < REFUSAL_LOG_EVERY);
            if map.len() >= MAX_TRACKED_SOURCES {
                // Every entry is recent: an address sweep. Forget them; worst case a few
                // more log lines.
                map.clear();
            }
        }
        match map.get(&(ip, reason)) {
            Some(t) if now.saturating_duration_since(*t) < REFUSAL_LOG_EVERY => false,
            _ => {
                map.insert((ip, reason), now);
                true
            }
        }
    }
}

/// The host's access-control state (built from the config at start).
#[derive(Debug)]
pub struct Access {
    /// `--allow` (empty: everyone).
    allow: Vec<Cidr>,
    limiter: Option<RateLimiter>,
    log: LogThrottle,
}

impl Access {
    /// The state for `--allow` and `--rate-limit`.
    pub fn new(allow: Vec<Cidr>, rate_limit: Option<RateLimit>) -> Access {
        Access { allow, limiter: rate_limit.map(|l| RateLimiter::new(l, MAX_TRACKED_SOURCES)), log: LogThrottle::default() }
    }

    /// Called for each accepted KMS connection: false (and counted, and logged once a minute
    /// per source) when `--allow` does not cover the source; the caller closes it.
    pub(crate) fn admit(&self, metrics: &HostMetrics, peer: SocketAddr) -> bool {
        let allow = &self.allow;
        if allow.is_empty() || any_contains(allow, peer.ip()) {
            return true;
        }
        metrics.refused_not_allowed.fetch_add(1, Ordering::Relaxed);
        if self.log.should_log(peer.ip(), "not_allowed", Instant::now()) {
            tracing::warn!(%peer, "KMS connection refused: source not in --allow (logged once a minute per source)");
        }
        false
    }

    /// Counts (and logs once a minute per source) a KMS connection closed at accept because
    /// its source already holds `cap` connections (`--max-connections-per-source`).
    pub(crate) fn note_per_source(&self, metrics: &HostMetrics, peer: SocketAddr, cap: usize) {
        metrics.refused_per_source.fetch_add(1, Ordering::Relaxed);
        if self.log.should_log(peer.ip(), "per_source", Instant::now()) {
            tracing::warn!(%peer, max_connections_per_source = cap, "KMS connection refused: its source already holds --max-connections-per-source connections (logged once a minute per source)");
        }
    }

    /// The error frame answering `req` when its source is over `--rate-limit`, else `None`.
    pub(crate) fn rate_limited(&self, metrics: &HostMetrics, peer: SocketAddr, req: &Request) -> Option<Message> {
        let limiter = self.limiter.as_ref()?;
        if limiter.check(peer.ip(), Instant::now()) {
            return None;
        }
        metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        if self.log.should_log(peer.ip(), "rate_limited", Instant::now()) {
            tracing::warn!(%peer, "KMS request refused: source over --rate-limit (logged once a minute per source)");
        }
        Some(Message::Error(ErrorFrame {
            hresult: HResult::RATE_LIMITED,
            cmid: req.cmid,
            message: "too many requests from this address: over the host's --rate-limit".into(),
        }))
    }

    /// Counts a MAC failure (`--psk`); true when `err` is one, in which case the error frame is
    /// sent without a MAC so that a peer without the key can still read why.
    pub(crate) fn note_decode_error(&self, metrics: &HostMetrics, err: &DecodeError) -> bool {
        if err.is_auth() {
            metrics.frame_auth_failed.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_match_and_refuse_nonsense() {
        let check = |cidr: &str, inside: &[&str], outside: &[&str]| {
            let c: Cidr = cidr.parse().unwrap();
            for a in inside {
                assert!(c.contains(ip(a)), "{cidr} should contain {a}");
            }
            for a in outside {
                assert!(!c.contains(ip(a)), "{cidr} should not contain {a}");
            }
        };
        check("10.0.0.0/8", &["10.1.2.3", "::ffff:10.9.9.9"], &["11.0.0.1", "::1"]);
        check("127.0.0.2", &["127.0.0.2"], &["127.0.0.3", "127.0.0.1"]);
        check("0.0.0.0/0", &["1.2.3.4"], &["::1"]);
        check("fd00::/8", &["fd12::1"], &["fe80::1", "10.0.0.1"]);
        check("::1/128", &["::1"], &["::2"]);
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} accepted");
        }
        assert_eq!("192.168.0.0/16".parse::<Cidr>().unwrap().to_string(), "192.168.0.0/16");
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!("5".parse::<RateLimit>().unwrap(), RateLimit { per_second: 5.0, burst: 5.0 });
        assert_eq!("0.5,10".parse::<RateLimit>().unwrap(), RateLimit { per_second: 0.5, burst: 10.0 });
        assert_eq!("0.2".parse::<RateLimit>().unwrap().burst, 1.0);
        for bad in ["0", "-1", "x", "5,0", "5,x", "inf"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(RateLimit { per_second: 2.0, burst: 3.0 }, 16);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!((0..5).map(|_| limiter.check(a, t0)).collect::<Vec<_>>(), [true, true, true, false, false]);
        // Another source has its own bucket.
        assert!(limiter.check(ip("10.0.0.2"), t0));
        // Half a second later one token is back (2 per second), not two.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check(a, t1));
        assert!(!limiter.check(a, t1));
        // After a long pause the bucket is full again, never fuller.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..4).filter(|_| limiter.check(a, t2)).count(), 3);
    }

    #[test]
    fn memory_is_bounded_and_idle_buckets_go_first() {
        let limiter = RateLimiter::new(RateLimit { per_second: 1.0, burst: 2.0 }, 100);
        let t0 = Instant::now();
        // An active source that has drained its bucket.
        let busy = ip("10.9.9.9");
        assert!(limiter.check(busy, t0) && limiter.check(busy, t0) && !limiter.check(busy, t0));
        // An address sweep: ten thousand sources, one request each, a millisecond apart.
        for i in 0..10_000u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            assert!(limiter.check(IpAddr::from((0x0A00_0000 + i).to_be_bytes()), t));
            assert!(limiter.tracked() <= 100);
        }
        // The busy source's bucket was refilled by then, evicted, and it starts full again.
        let later = t0 + Duration::from_secs(11);
        assert!(limiter.check(busy, later) && limiter.check(busy, later) && !limiter.check(busy, later));
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_source_and_reason() {
        let log = LogThrottle::default();
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert!(log.should_log(a, "not_allowed", t0));
        assert!(!log.should_log(a, "not_allowed", t0 + Duration::from_secs(59)));
        assert!(log.should_log(a, "rate_limited", t0));
        assert!(log.should_log(ip("10.0.0.2"), "not_allowed", t0));
        assert!(log.should_log(a, "not_allowed", t0 + Duration::from_secs(60)));
    }
}

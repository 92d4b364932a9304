//! The simulated clock: `sim_now = origin + (real_now - origin) * scale`.
//!
//! Real time is read as a wall-clock reading taken once at start plus a
//! `tokio::time::Instant` elapsed since then, so tests with paused tokio time move the
//! simulated clock too (`SystemTime` is not paused). Processes that share `scale` and
//! `origin` agree on the simulated time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kmslab_core::Timestamp;
use tokio::time::Instant;

/// A simulated clock running `scale` times faster than real time from `origin`.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    scale: f64,
    origin_ms: i64,
    real_at_start_ms: i64,
    started: Instant,
}

/// The longest wait [`SimClock::real_duration`] returns, about 100 years: never, in
/// practice, and still far from overflowing an `Instant`.
pub const MAX_REAL_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A clock setting that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--time-scale must be a finite number > 0 and <= 10000000, got {0}")]
pub struct ScaleError(pub f64);

impl SimClock {
    /// A clock with the given scale; `origin` defaults to the real time now.
    pub fn new(scale: f64, origin: Option<Timestamp>) -> Result<Self, ScaleError> {
        if !scale.is_finite() || scale <= 0.0 || scale > 10_000_000.0 {
            return Err(ScaleError(scale));
        }
        // The clock module: the one place that anchors simulated time to the wall clock.
        #[allow(clippy::disallowed_methods)]
        let real_at_start_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Ok(SimClock { scale, origin_ms: origin.map_or(real_at_start_ms, |t| t.as_unix_ms()), real_at_start_ms, started: Instant::now() })
    }

    /// A real-time clock (scale 1, origin now).
    pub fn real() -> Self {
        SimClock::new(1.0, None).expect("1 is a valid scale")
    }

    /// The scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The origin.
    pub fn origin(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.origin_ms)
    }

    /// Real milliseconds since the Unix epoch, as this clock sees them.
    pub fn real_now_ms(&self) -> i64 {
        self.real_at_start_ms + self.started.elapsed().as_millis() as i64
    }

    /// Simulated now. It stays within the years RFC 3339 can write
    /// ([`Timestamp::RFC3339_MIN`]..=[`Timestamp::RFC3339_MAX`]): a large scale with an
    /// origin far in the past would otherwise overflow (`--time-scale 10000000
    /// --time-origin 1970-01-02T00:00:00Z` is past the year 292 million and past `i64`).
    pub fn now(&self) -> Timestamp {
        let real = self.real_now_ms();
        // `as i64` saturates.
        let ms = self.origin_ms.saturating_add(((real - self.origin_ms) as f64 * self.scale) as i64);
        Timestamp::from_unix_ms(ms.clamp(Timestamp::RFC3339_MIN.as_unix_ms(), Timestamp::RFC3339_MAX.as_unix_ms()))
    }

    /// The real duration that `sim_ms` simulated milliseconds take, at most
    /// [`MAX_REAL_DURATION`] (a tiny scale such as `1e-20` makes a simulated day longer than
    /// any `Duration`).
    pub fn real_duration(&self, sim_ms: i64) -> Duration {
        let secs = (sim_ms.max(0) as f64 / self.scale) / 1000.0;
        Duration::try_from_secs_f64(secs).map_or(MAX_REAL_DURATION, |d| d.min(MAX_REAL_DURATION))
    }

    /// The tokio instant at which simulated time reaches `at` (now if already past).
    pub fn deadline(&self, at: Timestamp) -> Instant {
        Instant::now() + self.real_duration(at.ms_since(self.now()))
    }

    /// Sleeps until simulated time reaches `at`.
    pub async fn sleep_until(&self, at: Timestamp) {
        tokio::time::sleep_until(self.deadline(at)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_scaled_clock_runs_scale_times_faster_under_paused_time() {
        let origin = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let clock = SimClock::new(3600.0, Some(origin)).unwrap();
        let start = clock.now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        // 10 real seconds at 3600x are 10 simulated hours.
        let elapsed = clock.now().ms_since(start);
        assert!((elapsed - 36_000_000).abs() < 3_600 * 5, "{elapsed}");
        let target = clock.now().plus_days(1);
        clock.sleep_until(target).await;
        assert!(clock.now() >= target);
    }

    /// Found by running the host_config fuzz target on edge values: a scale and origin that
    /// validation accepts made `now` overflow and `real_duration` panic (kms-host's DNS
    /// republish calls both).
    #[test]
    fn extreme_accepted_scales_and_origins_give_a_working_clock() {
        let day = 86_400_000;
        let past = Timestamp::parse_rfc3339("1970-01-02T00:00:00Z").unwrap();
        let far_past = Timestamp::parse_rfc3339("0000-01-01T00:00:00Z").unwrap();
        let future = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap();
        for (scale, origin, now) in [
            (10_000_000.0, Some(past), Some(Timestamp::RFC3339_MAX)),
            (10_000_000.0, Some(far_past), Some(Timestamp::RFC3339_MAX)),
            (10_000_000.0, Some(future), Some(Timestamp::RFC3339_MIN)),
            (1e-300, None, None),
            (f64::MIN_POSITIVE, Some(past), None),
        ] {
            let clock = SimClock::new(scale, origin).unwrap();
            let t = clock.now();
            if let Some(now) = now {
                assert_eq!(t, now, "{scale} {origin:?}");
            }
            assert!(Timestamp::parse_rfc3339(&t.to_string()).is_ok());
            let wait = clock.real_duration(day);
            assert!(wait <= MAX_REAL_DURATION && (scale > 1.0 || wait == MAX_REAL_DURATION), "{wait:?}");
            let _ = clock.deadline(t.plus_ms(day));
        }
        // Ordinary scales are untouched.
        let clock = SimClock::new(86_400.0, None).unwrap();
        assert_eq!(clock.real_duration(day), Duration::from_secs(1));
    }

    #[test]
    fn bad_scales_are_refused() {
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(SimClock::new(s, None).is_err(), "{s}");
        }
    }
}

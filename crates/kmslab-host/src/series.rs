//! The host's small in-memory time series (drawn by the dashboard): requests per simulated hour and per
//! simulated day, plus the latest request: its time (for the no-activity alert), machine
//! and result (the status's `last_request`).
//!
//! It lives in memory on purpose: it is a picture of recent traffic, not a record (the
//! registry's event log is the record), so a restart starting it empty is fine, and
//! updating it costs the request path one short lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use kmslab_core::{HResult, Timestamp};

/// One simulated hour, ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One simulated day, ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Hourly buckets kept.
pub const HOURS_KEPT: i64 = 48;
/// Daily buckets kept.
pub const DAYS_KEPT: i64 = 30;

/// Requests in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Requests answered (successes and refusals).
    pub requests: u64,
    /// Requests refused or failed.
    pub failed: u64,
}

/// Request counts by simulated hour and day.
#[derive(Debug, Default)]
pub struct RequestSeries {
    hours: BTreeMap<i64, Bucket>,
    days: BTreeMap<i64, Bucket>,
}

impl RequestSeries {
    /// Counts one request at `now_ms`.
    pub fn record(&mut self, now_ms: i64, failed: bool) {
        for (map, width, kept) in [(&mut self.hours, HOUR_MS, HOURS_KEPT), (&mut self.days, DAY_MS, DAYS_KEPT)] {
            let index = now_ms.div_euclid(width);
            let b = map.entry(index).or_default();
            b.requests += 1;
            b.failed += u64::from(failed);
            // Drop what fell out of the window (at most a few entries per call).
            while map.first_key_value().is_some_and(|(k, _)| *k <= index - kept) {
                map.pop_first();
            }
        }
    }

    /// The last `HOURS_KEPT` hours up to `now_ms`, oldest first, empty hours included:
    /// (bucket start, counts).
    pub fn hourly(&self, now_ms: i64) -> Vec<(Timestamp, Bucket)> {
        window(&self.hours, now_ms, HOUR_MS, HOURS_KEPT)
    }

    /// The last `DAYS_KEPT` days up to `now_ms`, oldest first.
    pub fn daily(&self, now_ms: i64) -> Vec<(Timestamp, Bucket)> {
        window(&self.days, now_ms, DAY_MS, DAYS_KEPT)
    }
}

fn window(map: &BTreeMap<i64, Bucket>, now_ms: i64, width: i64, kept: i64) -> Vec<(Timestamp, Bucket)> {
    let last = now_ms.div_euclid(width);
    (last - kept + 1..=last).map(|i| (Timestamp::from_unix_ms(i * width), map.get(&i).copied().unwrap_or_default())).collect()
}

/// What the dashboard keeps in the host's state.
#[derive(Debug)]
pub struct DashState {
    /// Requests over time.
    pub series: Mutex<RequestSeries>,
    /// Simulated time of the latest request since start (`i64::MIN`: none yet).
    last_request_ms: AtomicI64,
    /// The latest request: its simulated time, machine name and result.
    last: Mutex<Option<(i64, String, HResult)>>,
    /// Alert states last logged, so each change is logged once.
    pub(crate) logged_alerts: Mutex<BTreeMap<&'static str, bool>>,
}

impl Default for DashState {
    fn default() -> Self {
        DashState {
            series: Mutex::default(),
            last_request_ms: AtomicI64::new(i64::MIN),
            last: Mutex::default(),
            logged_alerts: Mutex::default(),
        }
    }
}

impl DashState {
    /// Counts one answered request from `machine_name` with its `result` (called by the
    /// host for every decoded request).
    pub fn record_request(&self, now: Timestamp, machine_name: &str, result: HResult) {
        let ms = now.as_unix_ms();
        self.series.lock().unwrap_or_else(|p| p.into_inner()).record(ms, result != HResult::SUCCESS);
        self.last_request_ms.fetch_max(ms, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_none_or(|(t, _, _)| *t <= ms) {
            *last = Some((ms, machine_name.to_owned(), result));
        }
    }

    /// The latest request since start: time, machine name, result.
    pub fn last_request(&self) -> Option<(Timestamp, String, HResult)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(ms, m, r)| (Timestamp::from_unix_ms(*ms), m.clone(), *r))
    }

    /// Simulated time of the latest request since start.
    pub fn last_request_ms(&self) -> Option<i64> {
        Some(self.last_request_ms.load(Ordering::Relaxed)).filter(|ms| *ms != i64::MIN)
    }

    pub(crate) fn series(&self) -> std::sync::MutexGuard<'_, RequestSeries> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_hour_and_day_and_forgets_old_ones() {
        let mut s = RequestSeries::default();
        let t0 = 100 * DAY_MS;
        s.record(t0, false);
        s.record(t0 + 10, true);
        s.record(t0 + HOUR_MS, false);
        let hourly = s.hourly(t0 + HOUR_MS);
        assert_eq!(hourly.len(), HOURS_KEPT as usize);
        assert_eq!(hourly[hourly.len() - 2].1, Bucket { requests: 2, failed: 1 });
        assert_eq!(hourly[hourly.len() - 1].1, Bucket { requests: 1, failed: 0 });
        assert_eq!(s.daily(t0).last().unwrap().1.requests, 3);
        s.record(t0 + 60 * DAY_MS, false);
        assert_eq!(s.hours.len(), 1);
        assert_eq!(s.days.len(), 1);
    }
}

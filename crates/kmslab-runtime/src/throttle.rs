//! Log throttling: the same failure repeated is logged once per interval, with a count.
//!
//! A full disk fails every request; logging each failure wrote 145 MB of identical ERROR
//! lines in 16 seconds. A [`LogThrottle`] lets the first occurrence through at once, then
//! at most one line per interval saying how many were held back since the last line.
//! Time is `tokio::time::Instant`, so paused-time tests can move it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The interval a throttled failure is logged at most once per.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Whether to log an occurrence now, and how many went unlogged before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    /// Log it; `held_back` occurrences since the last logged line were not logged.
    Log {
        /// Occurrences not logged since the previous line.
        held_back: u64,
    },
    /// Do not log it (counted for the next line).
    Hold,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last_logged: Option<Instant>,
    held_back: u64,
}

/// Rate limit for one kind of log line. Cheap to check; shareable between tasks.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(DEFAULT_LOG_INTERVAL)
    }
}

impl LogThrottle {
    /// A throttle letting one line through per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogThrottle { interval, state: Mutex::new(ThrottleState::default()) }
    }

    /// The interval, for the "in the last ..." part of a line.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records one occurrence now.
    pub fn occurred(&self) -> Occurrence {
        self.occurred_at(Instant::now())
    }

    /// Records one occurrence at `now`.
    pub fn occurred_at(&self, now: Instant) -> Occurrence {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.last_logged {
            Some(at) if now.saturating_duration_since(at) < self.interval => {
                s.held_back += 1;
                Occurrence::Hold
            }
            _ => {
                s.last_logged = Some(now);
                Occurrence::Log { held_back: std::mem::take(&mut s.held_back) }
            }
        }
    }

    /// The failure stopped (e.g. a write succeeded again): returns how many occurrences
    /// were held back since the last line (to log once), and lets the next one through
    /// at once.
    pub fn cleared(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.last_logged = None;
        std::mem::take(&mut s.held_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_once_per_interval_with_the_count() {
        let t = LogThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.occurred_at(t0), Occurrence::Log { held_back: 0 });
        for i in 1..1000 {
            assert_eq!(t.occurred_at(t0 + Duration::from_millis(i)), Occurrence::Hold);
        }
        assert_eq!(t.occurred_at(t0 + Duration::from_secs(60)), Occurrence::Log { held_back: 999 });
        assert_eq!(t.occurred_at(t0 + Duration::from_secs(61)), Occurrence::Hold);
        assert_eq!(t.cleared(), 1);
        assert_eq!(t.cleared(), 0);
        assert_eq!(t.occurred_at(t0 + Duration::from_secs(62)), Occurrence::Log { held_back: 0 });
    }
}

//! State the writer thread shares with every `Store` handle: counters and health.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::StoreError;
use crate::types::{Health, StoreStats};

#[derive(Debug, Default)]
pub(crate) struct AtomicStats {
    pub(crate) commits: AtomicU64,
    pub(crate) writes_committed: AtomicU64,
    pub(crate) writes_failed: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) queue_depth: AtomicU64,
    pub(crate) last_batch_size: AtomicU64,
    pub(crate) max_batch_size: AtomicU64,
    pub(crate) last_commit_micros: AtomicU64,
    pub(crate) total_commit_micros: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: AtomicStats,
    healthy: AtomicBool,
    // A std Mutex is fine: it is held only to copy a short string in or out, never
    // across an await or an SQLite call.
    last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared { stats: AtomicStats::default(), healthy: AtomicBool::new(true), last_error: Mutex::new(None) }
    }

    pub(crate) fn set_healthy(&self) {
        self.healthy.store(true, Ordering::Release);
    }

    pub(crate) fn set_unhealthy(&self, err: &StoreError) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
        self.healthy.store(false, Ordering::Release);
    }

    pub(crate) fn health(&self) -> Health {
        Health { ok: self.healthy.load(Ordering::Acquire), last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone() }
    }

    pub(crate) fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            commits: s.commits.load(Ordering::Relaxed),
            writes_committed: s.writes_committed.load(Ordering::Relaxed),
            writes_failed: s.writes_failed.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            last_batch_size: s.last_batch_size.load(Ordering::Relaxed),
            max_batch_size: s.max_batch_size.load(Ordering::Relaxed),
            last_commit_micros: s.last_commit_micros.load(Ordering::Relaxed),
            total_commit_micros: s.total_commit_micros.load(Ordering::Relaxed),
        }
    }
}

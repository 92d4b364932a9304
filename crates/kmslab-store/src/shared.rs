//! State the writer thread shares with every `Store` handle: counters and health.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

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
    /// Sequence number of the newest journaled write acknowledged to its caller.
    acked: AtomicU64,
    /// Sequence number of the newest journaled write committed to the database (visible
    /// to reads), with a condition readers wait on.
    folded: Mutex<u64>,
    folded_changed: Condvar,
    /// ... and committed and on the disk (the journal may drop what is at or below it).
    durable_folded: AtomicU64,
    /// Set while folding into the database fails (full, I/O error): new writes are refused
    /// with it, acknowledged ones wait in the writer to be retried.
    fold_error: Mutex<Option<StoreError>>,
    healthy: AtomicBool,
    // A std Mutex is fine: it is held only to copy a short string in or out, never
    // across an await or an SQLite call.
    last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            stats: AtomicStats::default(),
            acked: AtomicU64::new(0),
            folded: Mutex::new(0),
            folded_changed: Condvar::new(),
            durable_folded: AtomicU64::new(0),
            fold_error: Mutex::new(None),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    /// At open: everything up to `seq` is folded and durable.
    pub(crate) fn start_at(&self, seq: u64) {
        self.acked.store(seq, Ordering::Release);
        *self.folded.lock().unwrap_or_else(|p| p.into_inner()) = seq;
        self.durable_folded.store(seq, Ordering::Release);
    }

    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    pub(crate) fn set_acked(&self, seq: u64) {
        self.acked.fetch_max(seq, Ordering::AcqRel);
    }

    pub(crate) fn folded(&self) -> u64 {
        *self.folded.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_folded(&self, seq: u64) {
        let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        if seq > *folded {
            *folded = seq;
            self.folded_changed.notify_all();
        }
    }

    /// Waits up to `timeout` for the writes up to `seq` to be folded; whether they are.
    pub(crate) fn wait_folded(&self, seq: u64, timeout: Duration) -> bool {
        let folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        let (folded, _) = self.folded_changed.wait_timeout_while(folded, timeout, |f| *f < seq).unwrap_or_else(|p| p.into_inner());
        *folded >= seq
    }

    pub(crate) fn durable_folded(&self) -> u64 {
        self.durable_folded.load(Ordering::Acquire)
    }

    pub(crate) fn set_durable_folded(&self, seq: u64) {
        self.durable_folded.fetch_max(seq, Ordering::AcqRel);
    }

    pub(crate) fn fold_error(&self) -> Option<StoreError> {
        self.fold_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_fold_error(&self, err: Option<StoreError>) {
        let mut slot = self.fold_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() || err.is_some() {
            *slot = err;
            // Readers waiting for a fold stop waiting when folds fail.
            self.folded_changed.notify_all();
        }
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

//! Group commit: concurrent writers share transactions, and nothing completed is lost.

use std::sync::{Arc, Barrier};

use kmslab_store::{Store, StoreOptions, integrity_check};
use uuid::Uuid;

use crate::support::{db_path, open, request};

#[test]
fn concurrent_writers_share_commits_and_all_survive_reopen() {
    const THREADS: u128 = 8;
    const PER_THREAD: u128 = 250;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                // Each thread waits for its write before the next, as a host does per
                // connection; batching must come from the threads overlapping.
                for i in 0..PER_THREAD {
                    let cmid = Uuid::from_u128(t << 64 | i);
                    store.record_request(request(cmid, i as i64, 1)).wait().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let writes = (THREADS * PER_THREAD) as u64;
    // Acknowledged writes are folded into the tables a little later; the stats count folds.
    store.flush().wait().unwrap();
    let stats = store.stats();
    eprintln!("{stats:?} mean batch {:.1}", stats.average_batch_size());
    assert_eq!(stats.writes_committed, writes);
    assert!(stats.commits < writes, "{} commits for {writes} writes: no batching", stats.commits);
    assert!(stats.max_batch_size > 1);
    assert_eq!(stats.queue_depth, 0);
    assert!(stats.total_commit_micros > 0);
    store.close();
    drop(store);

    let reopened = open(dir.path());
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let cmid = Uuid::from_u128(t << 64 | i);
            assert!(reopened.client(cmid).unwrap().is_some(), "{cmid} lost");
        }
    }
    assert_eq!(reopened.counters().unwrap().total, writes);
    assert_eq!(integrity_check(&db_path(dir.path())).unwrap(), "ok");
}

#[test]
fn pipelined_writes_batch_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { max_batch: 16, ..StoreOptions::default() };
    let store = Store::open(&db_path(dir.path()), options).unwrap();
    let pending: Vec<_> = (0..2_000u128).map(|i| store.record_request(request(Uuid::from_u128(i), i as i64, 1))).collect();
    for p in pending {
        p.wait().unwrap();
    }
    store.flush().wait().unwrap();
    let stats = store.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.writes_committed, 2_000);
    assert!(stats.max_batch_size <= 16, "cap exceeded: {stats:?}");
    assert!(stats.commits >= 2_000 / 16);
    assert!(stats.commits <= 1_000, "hardly batched: {stats:?}");
    assert_eq!(store.client_count().unwrap(), 2_000);
}

#[test]
fn flush_waits_for_everything_queued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..300u128 {
        drop(store.record_request(request(Uuid::from_u128(i), 1, 1)));
    }
    store.flush().wait().unwrap();
    assert_eq!(store.client_count().unwrap(), 300);
    assert_eq!(store.stats().queue_depth, 0);
}

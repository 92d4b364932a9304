//! Measures group commit: acknowledged writes per second and commits per second for
//! several numbers of concurrent writers, with `synchronous=FULL` and `NORMAL`, the
//! writer thread's CPU time per recorded request as the registry grows, and the time to
//! page through 100,000 clients.
//!
//! `cargo run --release -p kmslab-store --example commit_rate [DIR] [cost]` (DIR defaults
//! to a temporary directory; put it on the disk you want to measure; `cost` runs only the
//! per-write cost section).
// A measurement of real commit rates.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kmslab_store::{ClientQuery, RequestRecord, Store, StoreOptions, Synchronous};
use uuid::Uuid;

const RUN_FOR: Duration = Duration::from_secs(2);

fn record(cmid: Uuid, time_ms: i64) -> RequestRecord {
    RequestRecord {
        cmid,
        machine_name: format!("PC-{}", &cmid.simple().to_string()[20..]),
        activation_id: Uuid::from_u128(0xae2ee509_1b34_41c0_acb7_6d4650168915),
        application_id: Uuid::from_u128(0x55c92734_d682_4d71_983e_d6ec3f16059f),
        counted_id: Uuid::from_u128(0x7fde5219_fbfa_484a_82c9_34d1ad53e856),
        license_status: (time_ms % 7) as u8,
        minutes_to_expiry: 259_200,
        time_ms,
        source: Some("192.0.2.7:49152".parse().unwrap()),
        result: 0,
        failed: false,
        activated_at_ms: Some(time_ms),
        event: Some(kmslab_store::EventRecord {
            event_id: 12290,
            time_ms,
            fields_json: format!(r#"{{"result":0,"cmid":"{cmid}","n_policy":25}}"#),
        }),
    }
}

/// `writers` threads, each waiting for its write before sending the next (like one host
/// connection each), for `RUN_FOR`.
fn closed_loop(dir: &std::path::Path, synchronous: Synchronous, writers: u64) {
    let path = dir.join(format!("closed-{synchronous:?}-{writers}.sqlite"));
    let store = Store::open(&path, StoreOptions { synchronous, ..StoreOptions::default() }).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut n = 0i64;
                while started.elapsed() < RUN_FOR {
                    store.record_request(record(Uuid::new_v4(), n)).wait().unwrap();
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = store.stats();
    println!(
        "{:>6} writers={:>3}  {:>8.0} writes/s  {:>6.0} commits/s  mean batch {:>6.1}  mean commit {:>6.2} ms",
        format!("{synchronous:?}"),
        writers,
        done.load(Ordering::Relaxed) as f64 / secs,
        stats.commits as f64 / secs,
        stats.average_batch_size(),
        stats.average_commit_micros() / 1000.0,
    );
}

/// Everything submitted at once, then waited for.
fn pipelined(dir: &std::path::Path, synchronous: Synchronous, writes: u64) {
    let path = dir.join(format!("pipelined-{synchronous:?}.sqlite"));
    let store = Store::open(&path, StoreOptions { synchronous, ..StoreOptions::default() }).unwrap();
    let started = Instant::now();
    let pending: Vec<_> = (0..writes).map(|n| store.record_request(record(Uuid::new_v4(), n as i64))).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = store.stats();
    println!(
        "{:>6} pipelined {writes}  {:>8.0} writes/s  {} commits  mean batch {:.1}",
        format!("{synchronous:?}"),
        writes as f64 / secs,
        stats.commits,
        stats.average_batch_size(),
    );
}

/// CPU time the writer thread (`kmslab-store-writer`, shown as `kmslab-store-wr`) has used
/// so far, from `/proc/self/task/*/schedstat` (Linux only; `None` elsewhere).
fn writer_cpu() -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "kmslab-store-wr" {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(nanos));
        }
    }
    None
}

/// What one recorded request costs the writer thread: 64 closed-loop writers (like 64
/// keep-alive host connections), new CMIDs with a host-sized 12290 event, in rounds of
/// 20,000 so that growth of the registry shows.
fn per_write_cost(dir: &std::path::Path, synchronous: Synchronous) {
    const WRITERS: u64 = 64;
    const ROUND: u64 = 20_000;
    let path = dir.join(format!("cost-{synchronous:?}.sqlite"));
    let store = Store::open(&path, StoreOptions { synchronous, ..StoreOptions::default() }).unwrap();
    // The writer names its thread when it starts; make sure it has.
    store.flush().wait().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    for round in 1..=3u64 {
        let (cpu_before, stats_before) = (writer_cpu(), store.stats());
        let started = Instant::now();
        let threads: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (store, next) = (store.clone(), Arc::clone(&next));
                std::thread::spawn(move || {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= round * ROUND {
                            break;
                        }
                        store.record_request(record(Uuid::new_v4(), n as i64)).wait().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let stats = store.stats();
        let commits = stats.commits - stats_before.commits;
        let cpu = match (cpu_before, writer_cpu()) {
            (Some(before), Some(after)) => format!("{:>6.1} us", (after - before).as_secs_f64() * 1e6 / ROUND as f64),
            _ => "     n/a".to_owned(),
        };
        println!(
            "{:>6} cost round {round} ({:>6} clients after)  {:>8.0} writes/s  writer CPU {cpu}/write  mean batch {:>5.1}  mean commit {:>5.2} ms",
            format!("{synchronous:?}"),
            round * ROUND,
            ROUND as f64 / secs,
            ROUND as f64 / commits.max(1) as f64,
            (stats.total_commit_micros - stats_before.total_commit_micros) as f64 / commits.max(1) as f64 / 1000.0,
        );
        next.store(round * ROUND, Ordering::Relaxed);
    }
}

fn paging(dir: &std::path::Path) {
    let store =
        Store::open(&dir.join("paging.sqlite"), StoreOptions { synchronous: Synchronous::Normal, ..StoreOptions::default() }).unwrap();
    let pending: Vec<_> = (0..100_000u128).map(|i| store.record_request(record(Uuid::from_u128(i * 7919), i as i64))).collect();
    for p in pending {
        p.wait().unwrap();
    }
    let time = |label: &str, query: ClientQuery| {
        let started = Instant::now();
        let page = store.clients(&query).unwrap();
        println!(
            "paging 100k: {label:<34} {:>7.2} ms (total {}, rows {})",
            started.elapsed().as_secs_f64() * 1000.0,
            page.total,
            page.rows.len()
        );
    };
    time("first page", ClientQuery::default());
    time("page at offset 99,900", ClientQuery { offset: 99_900, ..ClientQuery::default() });
    time("status=3, offset 10,000", ClientQuery { status: Some(3), offset: 10_000, ..ClientQuery::default() });
    time("seen_since last 1,000", ClientQuery { seen_since: Some(99_000), ..ClientQuery::default() });
    time("search machine name substring", ClientQuery { search: Some("pc-000".into()), ..ClientQuery::default() });
    let started = Instant::now();
    let recent = store.recent_cmids(70_000).unwrap();
    println!("recent_cmids 30,000 of 100k:              {:>7.2} ms ({} rows)", started.elapsed().as_secs_f64() * 1000.0, recent.len());
}

fn main() {
    let tmp = match std::env::args().nth(1).filter(|dir| dir != "cost") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            tempfile::tempdir_in(dir).unwrap()
        }
        None => tempfile::tempdir().unwrap(),
    };
    let dir = tmp.path();
    println!("measuring in {}", dir.display());
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        per_write_cost(dir, synchronous);
    }
    if std::env::args().any(|arg| arg == "cost") {
        return;
    }
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        for writers in [1, 4, 16, 64] {
            closed_loop(dir, synchronous, writers);
        }
        pipelined(dir, synchronous, 20_000);
    }
    paging(dir);
}

//! Crash safety: SIGKILL a writer mid-load, reopen, and find every acknowledged write.
//!
//! The test re-executes its own binary as the writer process: with
//! `KMSLAB_STORE_CRASH_HELPER` set, the same test function becomes the helper, which writes
//! requests from several threads and prints `ack <cmid>` only after each write's `Pending`
//! resolved. Without the variable it is the parent that kills the helper and checks.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use kmslab_store::{ClientQuery, StoreOptions, integrity_check};
use uuid::Uuid;

use crate::support::{db_path, open, request};

const HELPER_ENV: &str = "KMSLAB_STORE_CRASH_HELPER";
const TEST_NAME: &str = "crash::kill_9_loses_no_acknowledged_write";
const ROUNDS: usize = 4;

fn run_helper(dir: &Path) -> ! {
    let store = kmslab_store::Store::open(&db_path(dir), StoreOptions::default()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                // Bounded so that an orphaned helper cannot run for ever.
                for n in 0..200_000i64 {
                    let cmid = Uuid::new_v4();
                    let mut record = request(cmid, n, 1);
                    record.event = Some(crate::support::event(12290, n));
                    store.record_request(record).wait().unwrap();
                    println!("ack {cmid}");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(3)
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    if let Some(dir) = std::env::var_os(HELPER_ENV) {
        run_helper(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: HashSet<Uuid> = HashSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill at a different point each round, always while writes are in flight.
        let kill_after = 200 + 350 * round;
        let mut this_round = 0;
        while this_round < kill_after {
            let line = lines.next().expect("helper ended early").unwrap();
            if let Some(cmid) = line.strip_prefix("ack ") {
                acknowledged.insert(cmid.parse().unwrap());
                this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "helper was not killed: {status}");
        // Acks already in the pipe were sent before the kill: they count too.
        for line in lines {
            if let Some(cmid) = line.unwrap().strip_prefix("ack ") {
                acknowledged.insert(cmid.parse().unwrap());
            }
        }

        let path = db_path(dir.path());
        assert_eq!(integrity_check(&path).unwrap(), "ok", "round {round}");
        let store = open(dir.path());
        let missing: Vec<_> = acknowledged.iter().filter(|cmid| store.client(**cmid).unwrap().is_none()).collect();
        assert!(missing.is_empty(), "round {round}: {} acknowledged writes lost, e.g. {:?}", missing.len(), missing.first());
        // Each request is one transaction with its counters and event: they agree.
        let counters = store.counters().unwrap();
        let clients = store.clients(&ClientQuery { limit: u64::MAX >> 1, ..ClientQuery::default() }).unwrap();
        let requests: u64 = clients.rows.iter().map(|r| r.request_count).sum();
        assert_eq!(counters.total, requests, "round {round}");
        assert_eq!(store.event_count().unwrap(), requests, "round {round}");
        assert!(clients.total as usize >= acknowledged.len());
        store.close();
    }
}

//! A full database: clear errors, health flag, nothing half-written, recovery.
//!
//! "Full" is produced with the `max_page_count` lab knob (SQLite then reports
//! SQLITE_FULL exactly as for a full disk) so the test runs anywhere without root or a
//! tiny file system.

use kmslab_store::{EventRecord, Store, StoreError, StoreOptions, integrity_check};
use uuid::Uuid;

use crate::support::{db_path, request};

fn fat_request(i: u128) -> kmslab_store::RequestRecord {
    let mut record = request(Uuid::from_u128(i), i as i64, (i % 7) as u8);
    // A 12290 event with some bulk makes each write cost real pages.
    record.event = Some(EventRecord {
        event_id: 12290,
        time_ms: i as i64,
        fields_json: format!(r#"{{"machine":"{}","pad":"{}"}}"#, record.machine_name, "x".repeat(300)),
    });
    record
}

#[test]
fn full_database_fails_writes_cleanly_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { max_page_count: Some(40), ..StoreOptions::default() };
    let store = Store::open(&db_path(dir.path()), options).unwrap();
    assert!(store.health().ok);

    // Fill it one write at a time until the limit bites.
    let mut committed = Vec::new();
    let first_failure = loop {
        let i = committed.len() as u128;
        assert!(i < 10_000, "40 pages never filled up");
        match store.record_request(fat_request(i)).wait() {
            Ok(()) => committed.push(i),
            Err(err) => break (i, err),
        }
    };
    let (failed_index, err) = first_failure;
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    let health = store.health();
    assert!(!health.ok);
    assert!(health.last_error.unwrap().contains("full"));

    // Nothing of the refused write is visible: no client row, no counter, no event. The
    // writes acknowledged before the limit bit are kept (journal and writer) and are not
    // all in the tables yet: the one whose fold met the limit is among them.
    let failed_cmid = Uuid::from_u128(failed_index);
    assert_eq!(store.client(failed_cmid).unwrap(), None);
    let folded = store.counters().unwrap().total;
    assert!(folded < committed.len() as u64, "{folded} folded of {} acknowledged", committed.len());
    assert_eq!(store.event_count().unwrap(), folded);

    // A burst while full: every caller hears about it, the writer stays alive.
    let burst: Vec<_> = (20_000..20_050u128).map(|i| (i, store.record_request(fat_request(i)))).collect();
    for (i, p) in burst {
        match p.wait() {
            Ok(()) => committed.push(i),
            Err(err) => assert!(matches!(err, StoreError::Full(_)), "{err:?}"),
        }
    }
    assert!(!store.health().ok);
    let stats = store.stats();
    assert!(stats.writes_failed >= 1 && stats.failed_commits >= 1, "{stats:?}");

    // Space returns: the next writes succeed and health recovers.
    assert!(store.set_max_page_count(100_000).unwrap() >= 100_000);
    store.record_request(fat_request(failed_index)).wait().unwrap();
    committed.push(failed_index);
    let batch: Vec<_> = (30_000..30_100u128).map(|i| (i, store.record_request(fat_request(i)))).collect();
    for (i, p) in batch {
        p.wait().unwrap();
        committed.push(i);
    }
    let health = store.health();
    assert!(health.ok);
    assert!(health.last_error.is_some(), "the last failure is kept for diagnosis");
    // Everything acknowledged is in the tables now, the writes held while full included.
    assert_eq!(store.counters().unwrap().total, committed.len() as u64);
    assert_eq!(store.client_count().unwrap(), committed.len() as u64);
    store.close();
    drop(store);

    assert_eq!(integrity_check(&db_path(dir.path())).unwrap(), "ok");
    let reopened = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap();
    assert_eq!(reopened.client_count().unwrap(), committed.len() as u64);
    assert_eq!(reopened.counters().unwrap().total, committed.len() as u64);
    for i in committed {
        assert!(reopened.client(Uuid::from_u128(i)).unwrap().is_some());
    }
}

#[test]
fn writes_acknowledged_while_full_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { max_page_count: Some(40), ..StoreOptions::default() };
    let store = Store::open(&db_path(dir.path()), options).unwrap();
    let mut committed = Vec::new();
    loop {
        let i = committed.len() as u128;
        assert!(i < 10_000, "40 pages never filled up");
        match store.record_request(fat_request(i)).wait() {
            Ok(()) => committed.push(i),
            Err(err) => {
                assert!(matches!(err, StoreError::Full(_)), "{err:?}");
                break;
            }
        }
    }
    let folded = store.counters().unwrap().total;
    assert!(folded < committed.len() as u64);
    // Stopped while still full: the unfolded writes are only in the journal.
    store.close();
    drop(store);

    let reopened = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap();
    assert_eq!(reopened.counters().unwrap().total, committed.len() as u64);
    for i in &committed {
        assert!(reopened.client(Uuid::from_u128(*i)).unwrap().is_some(), "write {i} lost");
    }
    // And the journal goes on from there.
    reopened.record_request(fat_request(50_000)).wait().unwrap();
    reopened.close();
    drop(reopened);
    let again = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap();
    assert_eq!(again.counters().unwrap().total, committed.len() as u64 + 1);
    assert_eq!(integrity_check(&db_path(dir.path())).unwrap(), "ok");
}

/// Unmounts the tmpfs (and removes its mount point) even when the test fails.
struct TmpfsMount(std::path::PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The same story on a real full file system: a 4 MiB tmpfs filled with a ballast file.
/// Needs root and mount(8), so it is opt-in.
#[test]
#[ignore = "needs root to mount a tmpfs; run with `cargo test -p kmslab-store -- --ignored`"]
fn real_enospc_on_tmpfs_is_reported_as_full_and_recovers() {
    use std::io::Write;

    let outer = tempfile::tempdir().unwrap();
    let mount_point = outer.path().join("tiny");
    std::fs::create_dir(&mount_point).unwrap();
    let status = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mount_point).status().unwrap();
    assert!(status.success(), "mount failed: {status}");
    let _mount = TmpfsMount(mount_point.clone());

    let store = Store::open(&db_path(&mount_point), StoreOptions::default()).unwrap();
    let mut committed = Vec::new();
    for i in 0..50u128 {
        store.record_request(fat_request(i)).wait().unwrap();
        committed.push(i);
    }
    // Take every free byte.
    let ballast_path = mount_point.join("ballast");
    let mut ballast = std::fs::File::create(&ballast_path).unwrap();
    let chunk = vec![0u8; 4096];
    while ballast.write_all(&chunk).is_ok() {}
    drop(ballast);

    let mut failure = None;
    for i in 1_000..11_000u128 {
        match store.record_request(fat_request(i)).wait() {
            Ok(()) => committed.push(i),
            Err(err) => {
                failure = Some((i, err));
                break;
            }
        }
    }
    let (failed_index, err) = failure.expect("the full file system never refused a write");
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert!(!store.health().ok);
    assert_eq!(store.client(Uuid::from_u128(failed_index)).unwrap(), None);

    std::fs::remove_file(&ballast_path).unwrap();
    store.record_request(fat_request(failed_index)).wait().unwrap();
    committed.push(failed_index);
    assert!(store.health().ok);
    store.close();
    drop(store);

    assert_eq!(integrity_check(&db_path(&mount_point)).unwrap(), "ok");
    let reopened = Store::open(&db_path(&mount_point), StoreOptions::default()).unwrap();
    assert_eq!(reopened.counters().unwrap().total, committed.len() as u64);
    for i in committed {
        assert!(reopened.client(Uuid::from_u128(i)).unwrap().is_some());
    }
}

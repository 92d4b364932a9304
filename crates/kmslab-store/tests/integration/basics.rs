//! Upsert semantics, counters, ePID, settings, events and lifecycle.

use kmslab_store::{EventQuery, Store, StoreError, StoreOptions, integrity_check};
use uuid::Uuid;

use crate::support::{WIN7_COUNTED, db_path, event, open, request};

#[test]
fn upsert_keeps_first_seen_counts_requests_and_activation_only_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cmid = Uuid::from_u128(1);

    store.record_request(request(cmid, 100, 2)).wait().unwrap();
    let row = store.client(cmid).unwrap().expect("row after first request");
    assert_eq!((row.first_seen_ms, row.last_seen_ms, row.request_count), (100, 100, 1));
    assert_eq!(row.last_activation_ms, None);
    assert_eq!(row.license_status, 2);

    let mut activated = request(cmid, 200, 2);
    activated.activated_at_ms = Some(200);
    store.record_request(activated).wait().unwrap();

    let mut failed = request(cmid, 300, 1);
    failed.failed = true;
    failed.result = 0xC004_F042;
    failed.minutes_to_expiry = 7;
    failed.source = Some("[2001:db8::5]:1234".parse().unwrap());
    failed.machine_name = "RENAMED".into();
    store.record_request(failed).wait().unwrap();

    let row = store.client(cmid).unwrap().unwrap();
    assert_eq!(row.first_seen_ms, 100, "first seen is set once");
    assert_eq!(row.last_seen_ms, 300);
    assert_eq!(row.request_count, 3);
    assert_eq!(row.last_activation_ms, Some(200), "kept through a failed request");
    assert_eq!(row.last_result, 0xC004_F042);
    assert_eq!(row.license_status, 1);
    assert_eq!(row.minutes_to_expiry, 7);
    assert_eq!(row.machine_name, "RENAMED");
    assert_eq!(row.last_address, Some("[2001:db8::5]:1234".parse().unwrap()));
    assert_eq!(row.counted_id, WIN7_COUNTED);
    assert_eq!(store.client(Uuid::from_u128(2)).unwrap(), None);
    assert_eq!(store.client_count().unwrap(), 1);
}

#[test]
fn counters_count_each_status_and_failures_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // status s is reported s + 1 times; every third request fails.
    let mut pending = Vec::new();
    let mut n = 0u128;
    for status in 0..7u8 {
        for _ in 0..=status {
            let mut record = request(Uuid::from_u128(n), n as i64, status);
            record.failed = n.is_multiple_of(3);
            pending.push(store.record_request(record));
            n += 1;
        }
    }
    for p in pending {
        p.wait().unwrap();
    }
    let expected_failed = (0..n).filter(|i| i % 3 == 0).count() as u64;
    let check = |store: &Store| {
        let counters = store.counters().unwrap();
        assert_eq!(counters.total, 28);
        assert_eq!(counters.failed, expected_failed);
        assert_eq!(counters.by_status, [1, 2, 3, 4, 5, 6, 7]);
    };
    check(&store);
    store.close();
    check(&open(dir.path()));
}

#[test]
fn license_status_above_six_is_refused_before_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store.record_request(request(Uuid::from_u128(9), 1, 7)).wait().unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(store.counters().unwrap().total, 0);
}

#[test]
fn epid_is_generated_once_and_kept_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let epid = "55041-00168-305-123456-03-1033-7600.0000-0012026";
    {
        let store = open(dir.path());
        assert_eq!(store.get_or_init_epid(|| epid.to_string()).unwrap(), epid);
        let again = store.get_or_init_epid(|| panic!("must not generate a second ePID")).unwrap();
        assert_eq!(again, epid);
    }
    let store = open(dir.path());
    let kept = store.get_or_init_epid(|| panic!("must not generate after reopen")).unwrap();
    assert_eq!(kept, epid);
}

#[test]
fn settings_overwrite_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert_eq!(store.get_setting("activation_interval").unwrap(), None);
        store.set_setting("activation_interval", "120").wait().unwrap();
        store.set_setting("activation_interval", "60").wait().unwrap();
        store.set_setting("dns_publishing", "off").wait().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.get_setting("activation_interval").unwrap().as_deref(), Some("60"));
    assert_eq!(
        store.settings().unwrap(),
        vec![("activation_interval".to_string(), "60".to_string()), ("dns_publishing".to_string(), "off".to_string()),]
    );
}

#[test]
fn event_retention_keeps_the_newest_n() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { event_retention: 10, ..StoreOptions::default() };
    let store = Store::open(&db_path(dir.path()), options).unwrap();
    // Some one at a time, some in one batch, some attached to requests.
    for t in 0..8 {
        store.append_event(event(12294, t)).wait().unwrap();
    }
    let batch: Vec<_> = (8..20).map(|t| store.append_event(event(12293, t))).collect();
    for p in batch {
        p.wait().unwrap();
    }
    for t in 20..25 {
        let mut record = request(Uuid::from_u128(t as u128), t, 1);
        record.event = Some(event(12290, t));
        store.record_request(record).wait().unwrap();
    }
    assert_eq!(store.event_count().unwrap(), 10);
    let all = store.events(&EventQuery::default()).unwrap();
    let times: Vec<i64> = all.iter().map(|e| e.time_ms).collect();
    assert_eq!(times, (15..25).collect::<Vec<_>>());
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

    let requests = store.events(&EventQuery { event_id: Some(12290), newest_first: true, ..EventQuery::default() }).unwrap();
    let times: Vec<i64> = requests.iter().map(|e| e.time_ms).collect();
    assert_eq!(times, vec![24, 23, 22, 21, 20]);
    assert_eq!(requests[0].fields_json, r#"{"n":24}"#);

    let window =
        store.events(&EventQuery { since_ms: Some(17), until_ms: Some(21), limit: 2, offset: 1, ..EventQuery::default() }).unwrap();
    let times: Vec<i64> = window.iter().map(|e| e.time_ms).collect();
    assert_eq!(times, vec![18, 19]);
}

#[test]
fn invalid_event_json_fails_alone_and_neighbours_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let before = store.append_event(event(12294, 1));
    let bad = store.append_event(kmslab_store::EventRecord { event_id: 12293, time_ms: 2, fields_json: "{not json".into() });
    let after = store.record_request(request(Uuid::from_u128(5), 3, 1));
    before.wait().unwrap();
    let err = bad.wait().unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(text) if text.contains("not JSON")), "{err:?}");
    let mut bad_request = request(Uuid::from_u128(6), 4, 1);
    bad_request.event = Some(kmslab_store::EventRecord { event_id: 12290, time_ms: 4, fields_json: "{\"n\":".into() });
    assert!(matches!(store.record_request(bad_request).wait(), Err(StoreError::Invalid(_))));
    after.wait().unwrap();
    assert_eq!(store.event_count().unwrap(), 1);
    assert_eq!(store.client_count().unwrap(), 1);
    assert!(store.health().ok, "a bad record is not a storage failure");
}

#[test]
fn recent_cmids_returns_clients_seen_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let office_counted = Uuid::from_u128(0x0ff1ce);
    let (a, b, c) = (Uuid::from_u128(0xa), Uuid::from_u128(0xb), Uuid::from_u128(0xc));
    store.record_request(request(a, 1_000, 1)).wait().unwrap();
    let mut office = request(b, 2_000, 1);
    office.counted_id = office_counted;
    store.record_request(office).wait().unwrap();
    store.record_request(request(c, 3_000, 1)).wait().unwrap();
    assert_eq!(store.recent_cmids(2_000).unwrap().len(), 2);
    // a renews later and comes back into the window.
    store.record_request(request(a, 4_000, 1)).wait().unwrap();
    let recent: Vec<_> = store.recent_cmids(2_000).unwrap().into_iter().map(|r| (r.cmid, r.counted_id, r.last_seen_ms)).collect();
    assert_eq!(recent, vec![(a, WIN7_COUNTED, 4_000), (c, WIN7_COUNTED, 3_000), (b, office_counted, 2_000),]);
    assert!(store.recent_cmids(4_001).unwrap().is_empty());
}

#[test]
fn close_commits_queued_writes_then_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let clone = store.clone();
    for i in 0..500u128 {
        // Dropping the Pending does not cancel the write.
        drop(store.record_request(request(Uuid::from_u128(i), i as i64, 1)));
    }
    store.close();
    let err = clone.record_request(request(Uuid::from_u128(999), 1, 1)).wait().unwrap_err();
    assert_eq!(err, StoreError::Closed);
    assert_eq!(clone.flush().wait(), Err(StoreError::Closed));
    drop((store, clone));

    let reopened = open(dir.path());
    assert_eq!(reopened.client_count().unwrap(), 500);
    assert_eq!(reopened.counters().unwrap().total, 500);
    assert_eq!(integrity_check(&db_path(dir.path())).unwrap(), "ok");
}

#[test]
fn schema_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close();
    set_user_version_in_header(&db_path(dir.path()), 99);
    let err = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap_err();
    assert_eq!(err, StoreError::SchemaTooNew { found: 99, supported: 5 });
}

/// Bumps `user_version` with the sqlite3 file format itself: the header's user version is
/// the big-endian u32 at byte offset 60 (https://www.sqlite.org/fileformat.html), so the
/// test needs no SQLite binding of its own. Only valid on a checkpointed, closed file.
fn set_user_version_in_header(path: &std::path::Path, version: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&version.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn integrity_check_reports_ok_and_fails_on_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.record_request(request(Uuid::from_u128(1), 1, 1)).wait().unwrap();
    assert_eq!(integrity_check(store.path()).unwrap(), "ok");
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    assert!(matches!(integrity_check(&garbage), Err(StoreError::Corrupt(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_await_their_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tasks = Vec::new();
    for i in 0..64u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.record_request(request(Uuid::from_u128(i), i as i64, 1)).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.client_count().unwrap(), 64);
}

#[tokio::test]
async fn epid_init_works_from_inside_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // A host calls this during startup inside its runtime; it must not panic there.
    assert_eq!(store.get_or_init_epid(|| "E1".into()).unwrap(), "E1");
    assert_eq!(store.get_or_init_epid(|| "E2".into()).unwrap(), "E1");
}

#[test]
fn store_is_a_shareable_handle() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<Store>();
    fn assert_sendable_future<T: std::future::Future + Send + Unpin>() {}
    assert_sendable_future::<kmslab_store::Pending>();
}

#[test]
fn a_second_store_on_an_open_registry_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.record_request(request(Uuid::from_u128(1), 1, 1)).wait().unwrap();
    // It would fold the first store's journal as its own.
    let err = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert!(err.to_string().contains("open in another store or process"), "{err}");
    store.close();
    let again = Store::open(&db_path(dir.path()), StoreOptions::default()).unwrap();
    assert_eq!(again.client_count().unwrap(), 1);
}

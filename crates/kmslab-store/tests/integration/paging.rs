//! Client paging, filters and search over a few thousand rows.

use std::collections::HashSet;

use kmslab_store::{ClientQuery, Store};
use uuid::Uuid;

use crate::support::{WIN7_ENTERPRISE, open, request};

const CLIENTS: u128 = 5_000;
const SERVER_STANDARD: Uuid = Uuid::from_u128(0x68531fb9_5511_4989_97be_d11a0f55633f);

/// Client `i`: seen at time 10_000 + i, status i % 7, every fourth one a server.
fn fill(store: &Store) {
    let pending: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut record = request(Uuid::from_u128(i), 10_000 + i as i64, (i % 7) as u8);
            record.machine_name = format!("PC-{i:05}");
            if i % 4 == 0 {
                record.activation_id = SERVER_STANDARD;
            }
            store.record_request(record)
        })
        .collect();
    for p in pending {
        p.wait().unwrap();
    }
}

/// Walks every page of `query` and returns the client indices in order.
fn walk(store: &Store, query: ClientQuery, page: u64) -> (u64, Vec<u128>) {
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut total = None;
    loop {
        let result = store.clients(&ClientQuery { offset, limit: page, ..query.clone() }).unwrap();
        assert_eq!(*total.get_or_insert(result.total), result.total);
        if result.rows.is_empty() {
            break;
        }
        assert!(result.rows.len() as u64 <= page);
        seen.extend(result.rows.iter().map(|r| r.cmid.as_u128()));
        offset += page;
    }
    (total.unwrap(), seen)
}

fn expect(filter: impl Fn(u128) -> bool) -> Vec<u128> {
    // Newest first: the highest index was seen last.
    (0..CLIENTS).rev().filter(|&i| filter(i)).collect()
}

#[test]
fn paging_filters_and_search_over_5000_clients() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    fill(&store);
    assert_eq!(store.client_count().unwrap(), CLIENTS as u64);

    let (total, all) = walk(&store, ClientQuery::default(), 100);
    assert_eq!(total, CLIENTS as u64);
    assert_eq!(all, expect(|_| true));
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), CLIENTS as usize);

    let (total, notification) = walk(&store, ClientQuery { status: Some(5), ..ClientQuery::default() }, 77);
    assert_eq!(notification, expect(|i| i % 7 == 5));
    assert_eq!(total, notification.len() as u64);

    let (total, servers_recent) =
        walk(&store, ClientQuery { activation_id: Some(SERVER_STANDARD), seen_since: Some(10_000 + 4_000), ..ClientQuery::default() }, 50);
    assert_eq!(servers_recent, expect(|i| i % 4 == 0 && i >= 4_000));
    assert_eq!(total, 250);

    let (_, win7_status1) =
        walk(&store, ClientQuery { status: Some(1), activation_id: Some(WIN7_ENTERPRISE), ..ClientQuery::default() }, 500);
    assert_eq!(win7_status1, expect(|i| i % 7 == 1 && i % 4 != 0));

    // Machine-name substring, case-insensitive.
    let (total, by_name) = walk(&store, ClientQuery { search: Some("pc-0012".into()), ..ClientQuery::default() }, 4);
    assert_eq!(by_name, expect(|i| (120..130).contains(&i)));
    assert_eq!(total, 10);

    // CMID substring, typed in upper case: client 0xabc's CMID ends in "000000000abc".
    let (_, by_cmid) = walk(&store, ClientQuery { search: Some("0000000ABC".into()), ..ClientQuery::default() }, 10);
    assert_eq!(by_cmid, vec![0xabc]);

    // Search combined with a status filter that excludes the match.
    let page = store
        .clients(&ClientQuery { search: Some("0000000abc".into()), status: Some(((0xabc + 1) % 7) as u8), ..ClientQuery::default() })
        .unwrap();
    assert_eq!((page.total, page.rows.len()), (0, 0));

    // A page past the end is empty but still reports the total.
    let past = store.clients(&ClientQuery { offset: 10_000, ..ClientQuery::default() }).unwrap();
    assert_eq!((past.total, past.rows.len()), (CLIENTS as u64, 0));
}

//! Aggregate reads for the host dashboard's reports: counts by licence state and by
//! product, clients by activation time (licence expiry), the latest of some events.
//!
//! Every query here walks an index (`clients_by_status`, `clients_by_activation`,
//! `clients_by_last_activation`, `events_by_id_time` for the non-12290 events), so a
//! report over 100,000 clients reads index pages only and never sorts the table.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::read::{CLIENT_COLUMNS, client_row, u64_column};
use crate::schema::REQUEST_RECEIVED_EVENT;
use crate::types::{ClientPage, EventRow};
use crate::{Store, StoreError};

/// One row of a count report: a key (licence status, activation ID) and how many clients
/// have it in their latest request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally<K> {
    /// What was counted.
    pub key: K,
    /// Number of clients.
    pub clients: u64,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn count_by_status(conn: &Connection) -> Result<Vec<Tally<u8>>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT license_status, count(*) FROM clients GROUP BY license_status ORDER BY license_status")?
        .query_map([], |row| Ok(Tally { key: row.get(0)?, clients: u64_column(row, 1)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn count_by_activation_id(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT activation_id, count(*) FROM clients GROUP BY activation_id ORDER BY count(*) DESC, activation_id")?
        .query_map([], |row| Ok((row.get(0)?, u64_column(row, 1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn count_activated_between(conn: &Connection, from_ms: i64, until_ms: i64) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM clients WHERE last_activation_ms >= ?1 AND last_activation_ms < ?2")?
        .query_row(params![from_ms, until_ms], |row| u64_column(row, 0))?)
}

fn clients_activated_between(
    conn: &mut Connection,
    from_ms: i64,
    until_ms: i64,
    offset: u64,
    limit: u64,
) -> Result<ClientPage, StoreError> {
    let tx = conn.transaction()?;
    let total = count_activated_between(&tx, from_ms, until_ms)?;
    let rows = tx
        .prepare_cached(&format!(
            // A deferred join, as in `read::clients`: skip over the covering index only.
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id IN (
                 SELECT id FROM clients WHERE last_activation_ms >= ?1 AND last_activation_ms < ?2
                 ORDER BY last_activation_ms, cmid LIMIT ?3 OFFSET ?4)
             ORDER BY last_activation_ms, cmid"
        ))?
        .query_map(params![from_ms, until_ms, to_i64(limit), to_i64(offset)], client_row)?
        .collect::<Result<Vec<_>, _>>()?;
    tx.finish()?;
    Ok(ClientPage { total, rows })
}

fn latest_event(conn: &Connection, event_ids: &[u32]) -> Result<Option<EventRow>, StoreError> {
    let mut latest: Option<EventRow> = None;
    // One index probe per id (`events_by_id_time`, which leaves out 12290: the literal
    // `<> 12290` lets SQLite use it) rather than an `IN` over the table; for 12290, a walk
    // of the time index from the newest end, which nearly always stops at once.
    for id in event_ids {
        let sql = if *id == REQUEST_RECEIVED_EVENT {
            "SELECT seq, event_id, time_ms, fields_json FROM events INDEXED BY events_by_time WHERE event_id = ?1
             ORDER BY time_ms DESC, seq DESC LIMIT 1"
        } else {
            "SELECT seq, event_id, time_ms, fields_json FROM events WHERE event_id = ?1 AND event_id <> 12290
             ORDER BY time_ms DESC, seq DESC LIMIT 1"
        };
        let row = conn
            .prepare_cached(sql)?
            .query_row(params![id], |row| {
                Ok(EventRow { seq: row.get(0)?, event_id: row.get(1)?, time_ms: row.get(2)?, fields_json: row.get(3)? })
            })
            .optional()?;
        if let Some(row) = row
            && latest.as_ref().is_none_or(|l| (row.time_ms, row.seq) > (l.time_ms, l.seq))
        {
            latest = Some(row);
        }
    }
    Ok(latest)
}

fn last_seen_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.prepare_cached("SELECT max(last_seen_ms) FROM clients")?.query_row([], |row| row.get(0))?)
}

impl Store {
    /// Number of clients per licence status of their latest request (statuses with no
    /// client are left out), by status.
    pub fn count_by_status(&self) -> Result<Vec<Tally<u8>>, StoreError> {
        count_by_status(&self.reader())
    }

    /// Number of clients per activation ID (product) of their latest request, most
    /// clients first.
    pub fn count_by_activation_id(&self) -> Result<Vec<Tally<Uuid>>, StoreError> {
        count_by_activation_id(&self.reader())?
            .into_iter()
            .map(|(text, clients)| {
                let key = Uuid::parse_str(&text).map_err(|err| {
                    StoreError::from(rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, err.into()))
                })?;
                Ok(Tally { key, clients })
            })
            .collect()
    }

    /// Number of clients whose latest successful activation lies in `[from_ms, until_ms)`.
    pub fn count_activated_between(&self, from_ms: i64, until_ms: i64) -> Result<u64, StoreError> {
        count_activated_between(&self.reader(), from_ms, until_ms)
    }

    /// A page of the clients whose latest successful activation lies in
    /// `[from_ms, until_ms)`, earliest activation (so earliest expiry) first, with the
    /// number of matches.
    pub fn clients_activated_between(&self, from_ms: i64, until_ms: i64, offset: u64, limit: u64) -> Result<ClientPage, StoreError> {
        clients_activated_between(&mut self.reader(), from_ms, until_ms, offset, limit)
    }

    /// The most recent event among those with one of `event_ids`.
    pub fn latest_event(&self, event_ids: &[u32]) -> Result<Option<EventRow>, StoreError> {
        latest_event(&self.reader(), event_ids)
    }

    /// Time of the most recent request from any client, if any client was ever seen.
    pub fn last_seen_ms(&self) -> Result<Option<i64>, StoreError> {
        last_seen_ms(&self.reader())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventRecord, RequestRecord, StoreOptions};

    const DAY_MS: i64 = 86_400_000;

    fn record(cmid: Uuid, activation_id: Uuid, status: u8, time_ms: i64, activated: bool) -> RequestRecord {
        RequestRecord {
            cmid,
            machine_name: format!("pc-{}", &cmid.to_string()[..8]),
            activation_id,
            application_id: Uuid::nil(),
            counted_id: Uuid::nil(),
            license_status: status,
            minutes_to_expiry: 0,
            time_ms,
            source: None,
            result: 0,
            failed: false,
            activated_at_ms: activated.then_some(time_ms),
            event: None,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite"), StoreOptions::default()).unwrap();
        (dir, store)
    }

    #[test]
    fn counts_by_status_and_product() {
        let (_dir, store) = open();
        let (a, b) = (Uuid::from_u128(0xA), Uuid::from_u128(0xB));
        for i in 0..10u128 {
            let product = if i < 7 { a } else { b };
            let status = if i % 2 == 0 { 1 } else { 2 };
            store.record_request(record(Uuid::from_u128(100 + i), product, status, 1_000 + i as i64, true)).wait().unwrap();
        }
        assert_eq!(store.count_by_status().unwrap(), vec![Tally { key: 1, clients: 5 }, Tally { key: 2, clients: 5 }]);
        assert_eq!(store.count_by_activation_id().unwrap(), vec![Tally { key: a, clients: 7 }, Tally { key: b, clients: 3 }]);
        store.close();
    }

    #[test]
    fn clients_by_activation_time_page_in_expiry_order() {
        let (_dir, store) = open();
        let product = Uuid::from_u128(0xA);
        for day in 0..20i64 {
            store.record_request(record(Uuid::from_u128(day as u128 + 1), product, 1, day * DAY_MS, true)).wait().unwrap();
        }
        // Never activated: not in any expiry range.
        store.record_request(record(Uuid::from_u128(999), product, 2, 5 * DAY_MS, false)).wait().unwrap();
        assert_eq!(store.count_activated_between(0, 7 * DAY_MS).unwrap(), 7);
        let page = store.clients_activated_between(3 * DAY_MS, 13 * DAY_MS, 2, 3).unwrap();
        assert_eq!(page.total, 10);
        let days: Vec<i64> = page.rows.iter().map(|r| r.last_activation_ms.unwrap() / DAY_MS).collect();
        assert_eq!(days, vec![5, 6, 7]);
        assert_eq!(store.last_seen_ms().unwrap(), Some(19 * DAY_MS));
        store.close();
    }

    #[test]
    fn latest_event_among_ids() {
        let (_dir, store) = open();
        assert_eq!(store.latest_event(&[12293, 12294]).unwrap(), None);
        assert_eq!(store.last_seen_ms().unwrap(), None);
        for (id, t) in [(12294, 10), (12293, 20), (12290, 30), (12294, 15)] {
            store.append_event(EventRecord { event_id: id, time_ms: t, fields_json: "{}".into() }).wait().unwrap();
        }
        let latest = store.latest_event(&[12293, 12294]).unwrap().unwrap();
        assert_eq!((latest.event_id, latest.time_ms), (12293, 20));
        store.close();
    }

    #[test]
    fn search_matches_wildcard_characters_literally() {
        let (_dir, store) = open();
        for (i, name) in ["LAB_PC1", "LABXPC1", "50%-pc", "500-pc"].iter().enumerate() {
            let mut r = record(Uuid::from_u128(i as u128 + 1), Uuid::nil(), 1, 10 + i as i64, false);
            r.machine_name = (*name).into();
            store.record_request(r).wait().unwrap();
        }
        let names = |search: &str| -> Vec<String> {
            let q = crate::ClientQuery { search: Some(search.into()), ..crate::ClientQuery::default() };
            store.clients(&q).unwrap().rows.into_iter().map(|r| r.machine_name).collect()
        };
        assert_eq!(names("lab_pc"), vec!["LAB_PC1"]);
        assert_eq!(names("0%"), vec!["50%-pc"]);
        assert_eq!(names("PC1"), vec!["LABXPC1", "LAB_PC1"]);
        assert_eq!(names("00000000-0000-0000-0000-00000000000"), vec!["500-pc", "50%-pc", "LABXPC1", "LAB_PC1"]);
        store.close();
    }

    #[test]
    fn a_version_1_registry_gains_the_activation_index() {
        let (dir, store) = open();
        let path = dir.path().join("r.sqlite");
        store.record_request(record(Uuid::from_u128(1), Uuid::nil(), 1, 5, true)).wait().unwrap();
        store.close();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("DROP INDEX clients_by_last_activation; DROP INDEX IF EXISTS clients_by_name; PRAGMA user_version = 1;")
                .unwrap();
        }
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(store.count_activated_between(0, 10).unwrap(), 1);
        let conn = store.reader();
        let n: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'clients_by_last_activation'", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        drop(conn);
        store.close();
    }

    #[test]
    fn reports_use_indexes() {
        let (_dir, store) = open();
        let conn = store.reader();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map([], |row| row.get::<_, String>(3)).unwrap().map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        assert!(
            plan("SELECT count(*) FROM clients WHERE last_activation_ms >= 1 AND last_activation_ms < 2")
                .contains("clients_by_last_activation")
        );
        assert!(plan("SELECT license_status, count(*) FROM clients GROUP BY license_status").contains("clients_by_status"));
        assert!(plan("SELECT activation_id, count(*) FROM clients GROUP BY activation_id").contains("clients_by_activation"));
        // The deferred join of a deep client page skips over a covering index.
        assert!(
            plan("SELECT id FROM clients ORDER BY last_seen_ms DESC, cmid DESC LIMIT 50 OFFSET 90000")
                .contains("COVERING INDEX clients_by_last_seen")
        );
        drop(conn);
        store.close();
    }
}

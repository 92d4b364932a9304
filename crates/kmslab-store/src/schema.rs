//! Opening connections and migrating the schema (`PRAGMA user_version`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// One migration per schema version, applied in order; entry `i` takes the database from
/// version `i` to `i + 1`. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE clients (
        cmid               TEXT PRIMARY KEY NOT NULL,
        machine_name       TEXT NOT NULL,
        activation_id      TEXT NOT NULL,
        application_id     TEXT NOT NULL,
        counted_id         TEXT NOT NULL,
        license_status     INTEGER NOT NULL CHECK (license_status BETWEEN 0 AND 6),
        minutes_to_expiry  INTEGER NOT NULL,
        first_seen_ms      INTEGER NOT NULL,
        last_seen_ms       INTEGER NOT NULL,
        request_count      INTEGER NOT NULL,
        last_address       TEXT,
        last_result        INTEGER NOT NULL,
        last_activation_ms INTEGER
    ) WITHOUT ROWID;
    -- Paging is most recently seen first; each filter has an index that also yields
    -- that order, so a page is an index range walk rather than a sort of every client.
    CREATE INDEX clients_by_last_seen ON clients (last_seen_ms, cmid);
    CREATE INDEX clients_by_status ON clients (license_status, last_seen_ms, cmid);
    CREATE INDEX clients_by_activation ON clients (activation_id, last_seen_ms, cmid);

    CREATE TABLE counters (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        total    INTEGER NOT NULL,
        failed   INTEGER NOT NULL,
        status_0 INTEGER NOT NULL,
        status_1 INTEGER NOT NULL,
        status_2 INTEGER NOT NULL,
        status_3 INTEGER NOT NULL,
        status_4 INTEGER NOT NULL,
        status_5 INTEGER NOT NULL,
        status_6 INTEGER NOT NULL
    );
    INSERT INTO counters VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    CREATE TABLE host_identity (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        epid TEXT NOT NULL
    );

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- seq is the rowid: it only grows, so retention deletes the smallest ones.
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        event_id    INTEGER NOT NULL,
        time_ms     INTEGER NOT NULL,
        fields_json TEXT NOT NULL CHECK (json_valid(fields_json))
    );
    CREATE INDEX events_by_time ON events (time_ms, seq);
    CREATE INDEX events_by_id_time ON events (event_id, time_ms, seq);
    ",
    // Version 2: the dashboard's expiring-licence reports (02A/02B) walk clients by the
    // time of their latest activation; its substring search scans a narrow covering
    // index instead of the table (a fifth of the pages to read).
    "
    CREATE INDEX clients_by_last_activation ON clients (last_activation_ms, cmid);
    CREATE INDEX clients_by_name ON clients (machine_name, last_seen_ms, cmid);
    ",
    // Version 3: fewer b-tree entries written per request (each index entry is more
    // writer CPU and more WAL pages on every request). The substring search scans the
    // table again: `clients_by_name` made that scan narrower at the price of an index
    // update on every request. The index by event id leaves out the 12290 events, nearly
    // the whole log, so it is written only for the rare DNS events it is there to find; a
    // filter on 12290 walks `events_by_time` instead.
    "
    DROP INDEX IF EXISTS clients_by_name;
    DROP INDEX IF EXISTS events_by_id_time;
    CREATE INDEX events_by_id_time ON events (event_id, time_ms, seq) WHERE event_id <> 12290;
    ",
    // Version 4, two table copies (SQLite alters neither in place):
    // - clients becomes a rowid table with a unique index by CMID. Keyed by the random
    //   CMID, every new client was a wide row inserted at a random place in the table's
    //   b-tree (page splits of 200-byte rows); now its row is appended at the end and
    //   only a narrow (CMID, rowid) entry goes in at a random place, and a renewal
    //   rewrites its row in place. The other indexes and every query stay as they were;
    //   rows are copied in first-seen order.
    // - events loses its `json_valid` CHECK, which parsed every event's JSON on the writer
    //   thread (7% of the writer's work per request); the store now checks the JSON when
    //   the write is queued, on the caller's thread (`Store::append_event`,
    //   `Store::record_request`). seq values are kept.
    "
    CREATE TABLE clients_v4 (
        id                 INTEGER PRIMARY KEY,
        cmid               TEXT NOT NULL,
        machine_name       TEXT NOT NULL,
        activation_id      TEXT NOT NULL,
        application_id     TEXT NOT NULL,
        counted_id         TEXT NOT NULL,
        license_status     INTEGER NOT NULL CHECK (license_status BETWEEN 0 AND 6),
        minutes_to_expiry  INTEGER NOT NULL,
        first_seen_ms      INTEGER NOT NULL,
        last_seen_ms       INTEGER NOT NULL,
        request_count      INTEGER NOT NULL,
        last_address       TEXT,
        last_result        INTEGER NOT NULL,
        last_activation_ms INTEGER
    );
    INSERT INTO clients_v4 (cmid, machine_name, activation_id, application_id, counted_id,
            license_status, minutes_to_expiry, first_seen_ms, last_seen_ms, request_count,
            last_address, last_result, last_activation_ms)
        SELECT cmid, machine_name, activation_id, application_id, counted_id,
            license_status, minutes_to_expiry, first_seen_ms, last_seen_ms, request_count,
            last_address, last_result, last_activation_ms
        FROM clients ORDER BY first_seen_ms, cmid;
    DROP TABLE clients;
    ALTER TABLE clients_v4 RENAME TO clients;
    CREATE UNIQUE INDEX clients_by_cmid ON clients (cmid);
    CREATE INDEX clients_by_last_seen ON clients (last_seen_ms, cmid);
    CREATE INDEX clients_by_status ON clients (license_status, last_seen_ms, cmid);
    CREATE INDEX clients_by_activation ON clients (activation_id, last_seen_ms, cmid);
    CREATE INDEX clients_by_last_activation ON clients (last_activation_ms, cmid);

    CREATE TABLE events_v4 (
        seq         INTEGER PRIMARY KEY,
        event_id    INTEGER NOT NULL,
        time_ms     INTEGER NOT NULL,
        fields_json TEXT NOT NULL
    );
    INSERT INTO events_v4 (seq, event_id, time_ms, fields_json) SELECT seq, event_id, time_ms, fields_json FROM events;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;
    CREATE INDEX events_by_time ON events (time_ms, seq);
    CREATE INDEX events_by_id_time ON events (event_id, time_ms, seq) WHERE event_id <> 12290;
    ",
    // Version 5: the sequence number of the newest journaled write folded into the tables
    // (`journal.rs`), stored by every fold in the same transaction.
    "
    CREATE TABLE IF NOT EXISTS journal_state (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        folded_seq INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO journal_state (id, folded_seq) VALUES (1, 0);
    ",
];

/// Event id of the 12290 "request received" event, the one left out of the partial index
/// `events_by_id_time` (schema version 3). A query for another id must say
/// `event_id <> 12290` for SQLite to use that index.
pub(crate) const REQUEST_RECEIVED_EVENT: u32 = 12290;

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits for another connection's lock before failing with
/// [`StoreError::Busy`]. Only a second process on the same file ever waits here.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages at which the writer checkpoints by itself (about 128 MB at 4 KiB pages): only
/// a backstop should the checkpointer thread (`checkpoint.rs`) stop, since that checkpoint
/// runs inside a commit; the checkpointer rewinds the WAL every 1000 pages or so.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 32_000;

/// The writer's page cache (KiB): SQLite's default size, on purpose. A bigger cache costs
/// more than the reads it saves, at every registry size measured (up to 1,000,000
/// clients): whenever a b-tree page splits, SQLite renumbers the new pages through a
/// temporary page number past the end of the file (the lock-byte page), and the commit
/// that follows then drops pages "beyond the end" by walking the whole cache. With 16 MiB
/// that walk over some 4,000 cached pages was 12% of the writer's time, more than the
/// `pread`s of pages a 2 MiB cache has to read again from the OS's page cache.
const WRITER_CACHE_KIB: u32 = 2 * 1024;

/// How long the writer sleeps between two attempts at a lock another connection holds,
/// and how many attempts it makes (about five seconds in all).
const WRITER_BUSY_SLEEP: Duration = Duration::from_micros(100);
const WRITER_BUSY_ATTEMPTS: i32 = 50_000;

/// The writer's busy handler. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10 ms... between
/// attempts, so a writer that met the checkpointer's brief RESTART (a millisecond or two)
/// slept up to 8 ms with requests queued behind it; short sleeps keep that wait close to
/// the lock's actual hold time.
fn writer_busy(attempt: i32) -> bool {
    if attempt >= WRITER_BUSY_ATTEMPTS {
        return false;
    }
    std::thread::sleep(WRITER_BUSY_SLEEP);
    true
}

/// Opens the writer connection: WAL, `synchronous=NORMAL`, migrations.
///
/// NORMAL for both [`Synchronous`](crate::Synchronous) levels: COMMIT then only writes the
/// WAL, and with `Synchronous::Full` the writer's syncer thread fsyncs it before any caller
/// is completed (`writer.rs`), which is what FULL does inside COMMIT, off the writer's
/// thread. Checkpoints still fsync the WAL before and the database file after copying.
pub(crate) fn open_writer(path: &Path, max_page_count: Option<u64>) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| StoreError::CreateDir { path: dir.display().to_string(), message: err.to_string() })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_handler(Some(writer_busy))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal(mode));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    // Checkpoints run on the checkpointer thread; SQLite's own (every 1000 pages, inline in
    // the committing batch) would stall every caller of that batch. Durability is
    // unchanged: commits are fsynced in the WAL either way.
    conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"))?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))?;
    // Enough statements for every write path; the writer reuses them for each batch.
    conn.set_prepared_statement_cache_capacity(32);
    migrate(&mut conn)?;
    if let Some(pages) = max_page_count {
        set_max_page_count(&conn, pages)?;
    }
    Ok(conn)
}

/// Opens the checkpointer's connection (checkpoints with the same `synchronous` as
/// the database file's default, FULL: the database file is fsynced after each one).
/// It has no busy handler: a RESTART checkpoint that finds the writer busy must give up at
/// once rather than hold up the writer's next commit (`checkpoint.rs`).
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::ZERO)?;
    Ok(conn)
}

/// Opens a connection for reads only; WAL lets it read while the writer commits.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Sets the connection's page limit and returns the limit SQLite actually applied (never
/// below the current size of the database).
pub(crate) fn set_max_page_count(conn: &Connection, pages: u64) -> Result<u64, StoreError> {
    let applied: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| row.get(0))?;
    Ok(u64::try_from(applied).unwrap_or(0))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {};", version + 1))?;
        tx.commit()?;
        tracing::info!(version = version + 1, "registry schema migrated");
    }
    Ok(())
}

/// Runs `PRAGMA integrity_check` on the database at `path` and returns SQLite's report
/// (`"ok"` when the file is sound, otherwise one line per problem).
pub fn integrity_check(path: &Path) -> Result<String, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let lines = stmt.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

/// The sequence number of the newest journaled write in the tables.
pub(crate) fn folded_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: i64 = conn.query_row("SELECT folded_seq FROM journal_state WHERE id = 1", [], |row| row.get(0))?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{EventQuery, Store, StoreOptions};

    /// A registry as the previous release wrote it (schema version 2, by its own SQL and
    /// with rows as its writer stored them) opens, migrates, and keeps its clients, ePID,
    /// counters, settings and events; the new indexes answer the same queries.
    #[test]
    fn a_version_2_registry_keeps_its_clients_epid_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite");
        let cmid = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(&format!(
                "PRAGMA user_version = 2;
                 INSERT INTO host_identity VALUES (1, '55041-00168-305-123456-03-1033-7600.0000-0012026');
                 INSERT INTO settings VALUES ('activation_interval', '90');
                 UPDATE counters SET total = 3, failed = 1, status_1 = 3 WHERE id = 1;
                 INSERT INTO clients VALUES ('{cmid}', 'LAB-PC7', 'ae2ee509-1b34-41c0-acb7-6d4650168915',
                     '55c92734-d682-4d71-983e-d6ec3f16059f', '7fde5219-fbfa-484a-82c9-34d1ad53e856',
                     1, 43200, 100, 300, 3, '192.0.2.10:50000', 0, 200);
                 INSERT INTO events (event_id, time_ms, fields_json) VALUES (12290, 100, '{{\"n\":1}}'),
                     (12294, 150, '{{\"zone\":\"lab.test\"}}'), (12290, 300, '{{\"n\":3}}');"
            ))
            .unwrap();
        }
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let epid = store.get_or_init_epid(|| panic!("the stored ePID is kept")).unwrap();
        assert_eq!(epid, "55041-00168-305-123456-03-1033-7600.0000-0012026");
        let row = store.client(cmid).unwrap().expect("client kept");
        assert_eq!(
            (row.machine_name.as_str(), row.request_count, row.first_seen_ms, row.last_activation_ms),
            ("LAB-PC7", 3, 100, Some(200))
        );
        assert_eq!(store.counters().unwrap().total, 3);
        assert_eq!(store.get_setting("activation_interval").unwrap().as_deref(), Some("90"));
        let dns = store.events(&EventQuery { event_id: Some(12294), ..EventQuery::default() }).unwrap();
        assert_eq!(dns.iter().map(|e| e.time_ms).collect::<Vec<_>>(), vec![150]);
        let requests = store.events(&EventQuery { event_id: Some(12290), ..EventQuery::default() }).unwrap();
        assert_eq!(requests.iter().map(|e| e.time_ms).collect::<Vec<_>>(), vec![100, 300]);
        assert_eq!(store.latest_event(&[12293, 12294]).unwrap().map(|e| e.time_ms), Some(150));
        let search = store.clients(&crate::ClientQuery { search: Some("pc7".into()), ..crate::ClientQuery::default() }).unwrap();
        assert_eq!(search.rows.iter().map(|r| r.cmid).collect::<Vec<_>>(), vec![cmid]);
        // New writes go on in the migrated file.
        let mut renewal = crate::RequestRecord {
            cmid,
            machine_name: "LAB-PC7".into(),
            activation_id: row.activation_id,
            application_id: row.application_id,
            counted_id: row.counted_id,
            license_status: 1,
            minutes_to_expiry: 43_200,
            time_ms: 400,
            source: None,
            result: 0,
            failed: false,
            activated_at_ms: Some(400),
            event: None,
        };
        renewal.event = Some(crate::EventRecord { event_id: 12290, time_ms: 400, fields_json: "{}".into() });
        store.record_request(renewal).wait().unwrap();
        assert_eq!(store.client(cmid).unwrap().unwrap().request_count, 4);
        store.close();
        assert_eq!(integrity_check(&path).unwrap(), "ok");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let name_index: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'clients_by_name'", [], |r| r.get(0)).unwrap();
        assert_eq!(name_index, 0);
        // Version 4: the events were copied with their seqs into a table without the
        // json_valid CHECK, and the new event went on after them.
        let events_sql: String = conn.query_row("SELECT sql FROM sqlite_master WHERE name = 'events'", [], |r| r.get(0)).unwrap();
        assert!(!events_sql.contains("json_valid"), "{events_sql}");
        let seqs = conn
            .prepare("SELECT seq, event_id FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(seqs, vec![(1, 12290), (2, 12294), (3, 12290), (4, 12290)]);
        // The clients table is a rowid table now, its CMIDs unique by index.
        let (id, count): (i64, i64) = conn
            .query_row("SELECT id, request_count FROM clients WHERE cmid = ?1", [cmid.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((id, count), (1, 4));
        let unique: i64 =
            conn.query_row("SELECT \"unique\" FROM pragma_index_list('clients') WHERE name = 'clients_by_cmid'", [], |r| r.get(0)).unwrap();
        assert_eq!(unique, 1);
    }

    /// Every column of every client and every event of a version 3 registry is the same
    /// after the version 4 copies, and the pages come in the same order.
    #[test]
    fn version_4_copies_keep_every_client_and_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite");
        let dump = |conn: &Connection, sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
            let mut stmt = conn.prepare(sql).unwrap();
            let columns = stmt.column_count();
            stmt.query_map([], |row| (0..columns).map(|i| row.get(i)).collect()).unwrap().map(Result::unwrap).collect()
        };
        let clients = format!("SELECT {} FROM clients ORDER BY cmid", crate::read::CLIENT_COLUMNS);
        let events = "SELECT seq, event_id, time_ms, fields_json FROM events ORDER BY seq";
        let (clients_before, events_before) = {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 3; INSERT INTO host_identity VALUES (1, 'epid');").unwrap();
            for i in 0..500u128 {
                let cmid = Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
                let activated = if i % 3 == 0 { None } else { Some(1_000 + i as i64) };
                let address = if i % 5 == 0 { None } else { Some(format!("192.0.2.{}:{}", i % 250, 49_152 + i)) };
                conn.execute(
                    "INSERT INTO clients VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    rusqlite::params![
                        cmid.to_string(),
                        format!("PC-{i:04}"),
                        Uuid::from_u128(i % 4).to_string(),
                        Uuid::from_u128(0xA).to_string(),
                        Uuid::from_u128(0xC).to_string(),
                        (i % 7) as i64,
                        43_200 - i as i64,
                        (i % 50) as i64,
                        10_000 + (i * 7 % 500) as i64,
                        1 + (i % 9) as i64,
                        address,
                        if i % 11 == 0 { 0xC004_F038_u32 } else { 0 },
                        activated,
                    ],
                )
                .unwrap();
                let event_id = if i % 10 == 0 { 12294 } else { 12290 };
                conn.execute(
                    "INSERT INTO events (event_id, time_ms, fields_json) VALUES (?1, ?2, ?3)",
                    rusqlite::params![event_id, i as i64, format!(r#"{{"n":{i}}}"#)],
                )
                .unwrap();
            }
            (dump(&conn, &clients), dump(&conn, events))
        };
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let page: Vec<Uuid> = store
            .clients(&crate::ClientQuery { limit: 1_000, ..crate::ClientQuery::default() })
            .unwrap()
            .rows
            .iter()
            .map(|r| r.cmid)
            .collect();
        store.close();
        let conn = Connection::open(&path).unwrap();
        assert_eq!(dump(&conn, &clients), clients_before);
        assert_eq!(dump(&conn, events), events_before);
        // Most recently seen first, ties by CMID descending, as before the copy.
        let mut expected: Vec<(i64, String)> = clients_before
            .iter()
            .map(|row| match (&row[8], &row[0]) {
                (rusqlite::types::Value::Integer(seen), rusqlite::types::Value::Text(cmid)) => (*seen, cmid.clone()),
                other => panic!("unexpected columns {other:?}"),
            })
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(page.iter().map(Uuid::to_string).collect::<Vec<_>>(), expected.into_iter().map(|(_, cmid)| cmid).collect::<Vec<_>>());
        assert_eq!(integrity_check(&path).unwrap(), "ok");
    }

    /// A query for a DNS event walks the partial index; one for 12290 walks the time index
    /// (the queries of `read::events` and `report::latest_event`), never a sort.
    #[test]
    fn event_filters_use_the_partial_index_only_for_other_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("host.sqlite"), StoreOptions::default()).unwrap();
        store.close();
        let conn = Connection::open(dir.path().join("host.sqlite")).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map([12294], |row| row.get::<_, String>(3)).unwrap().map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let dns = plan("SELECT seq FROM events WHERE event_id = ?1 AND event_id <> 12290 ORDER BY time_ms DESC, seq DESC LIMIT 1");
        assert!(dns.contains("events_by_id_time"), "{dns}");
        let requests = plan("SELECT seq FROM events INDEXED BY events_by_time WHERE event_id = ?1 ORDER BY time_ms DESC, seq DESC LIMIT 1");
        assert!(!requests.contains("TEMP B-TREE"), "{requests}");
        assert!(requests.contains("events_by_time"), "{requests}");
    }
}

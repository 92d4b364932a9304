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
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits for another connection's lock before failing with
/// [`StoreError::Busy`]. Only a second process on the same file ever waits here.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages at which the writer checkpoints by itself (about 128 MB at 4 KiB pages): only
/// a backstop should the checkpointer thread (`checkpoint.rs`) stop, since that checkpoint
/// runs inside a commit; the checkpointer rewinds the WAL every 1000 pages or so.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 32_000;

/// The writer's page cache (KiB). SQLite's default, 2 MiB, holds a few thousand clients'
/// pages; past that, every request for a client not seen lately read its b-tree pages back
/// with `pread` (7% of the writer's time with 700,000 clients). The cache grows only as
/// pages are used: an idle host stays small.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

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

/// Opens the writer connection: WAL, the requested `synchronous` level, migrations.
pub(crate) fn open_writer(path: &Path, synchronous: &str, max_page_count: Option<u64>) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| StoreError::CreateDir { path: dir.display().to_string(), message: err.to_string() })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_handler(Some(writer_busy))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal(mode));
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
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

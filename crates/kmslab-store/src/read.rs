//! Queries on the read connection.

use std::net::SocketAddr;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use uuid::Uuid;

use crate::StoreError;
use crate::schema::REQUEST_RECEIVED_EVENT;
use crate::types::{ClientPage, ClientQuery, ClientRow, Counters, EventQuery, EventRow, RecentClient};

pub(crate) const CLIENT_COLUMNS: &str = "cmid, machine_name, activation_id, application_id, counted_id,
    license_status, minutes_to_expiry, first_seen_ms, last_seen_ms, request_count,
    last_address, last_result, last_activation_ms";

fn uuid_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|err| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, err.into()))
}

/// Reads a count column; SQLite integers are signed and counts are never negative.
pub(crate) fn u64_column(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

pub(crate) fn client_row(row: &Row<'_>) -> rusqlite::Result<ClientRow> {
    let last_address = match row.get::<_, Option<String>>(10)? {
        None => None,
        Some(text) => Some(
            text.parse::<SocketAddr>()
                .map_err(|err| rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, err.into()))?,
        ),
    };
    Ok(ClientRow {
        cmid: uuid_column(row, 0)?,
        machine_name: row.get(1)?,
        activation_id: uuid_column(row, 2)?,
        application_id: uuid_column(row, 3)?,
        counted_id: uuid_column(row, 4)?,
        license_status: row.get(5)?,
        minutes_to_expiry: row.get(6)?,
        first_seen_ms: row.get(7)?,
        last_seen_ms: row.get(8)?,
        request_count: u64_column(row, 9)?,
        last_address,
        last_result: row.get(11)?,
        last_activation_ms: row.get(12)?,
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn counters(conn: &Connection) -> Result<Counters, StoreError> {
    let counters = conn
        .prepare_cached(
            "SELECT total, failed, status_0, status_1, status_2, status_3, status_4,
                    status_5, status_6 FROM counters WHERE id = 1",
        )?
        .query_row([], |row| {
            let mut by_status = [0u64; 7];
            for (i, slot) in by_status.iter_mut().enumerate() {
                *slot = u64_column(row, i + 2)?;
            }
            Ok(Counters { total: u64_column(row, 0)?, failed: u64_column(row, 1)?, by_status })
        })?;
    Ok(counters)
}

pub(crate) fn client(conn: &Connection, cmid: Uuid) -> Result<Option<ClientRow>, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE cmid = ?1"))?
        .query_row(params![cmid.to_string()], client_row)
        .optional()?;
    Ok(row)
}

pub(crate) fn client_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.prepare_cached("SELECT count(*) FROM clients")?.query_row([], |row| u64_column(row, 0))?)
}

/// Runs in one read transaction so that `total` and `rows` come from the same snapshot.
pub(crate) fn clients(conn: &mut Connection, query: &ClientQuery) -> Result<ClientPage, StoreError> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(status) = query.status {
        conditions.push("license_status = ?");
        args.push(Value::Integer(i64::from(status)));
    }
    if let Some(activation_id) = query.activation_id {
        conditions.push("activation_id = ?");
        args.push(Value::Text(activation_id.to_string()));
    }
    if let Some(since) = query.seen_since {
        conditions.push("last_seen_ms >= ?");
        args.push(Value::Integer(since));
    }
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    if let Some(search) = search {
        // LIKE folds ASCII case (CMIDs are stored lowercase; NetBIOS-style machine names
        // are ASCII); `%`, `_` and `\` in the text are matched literally.
        conditions.push(r"(cmid LIKE ? ESCAPE '\' OR machine_name LIKE ? ESCAPE '\')");
        let escaped = search.replace('\\', r"\\").replace('%', r"\%").replace('_', r"\_");
        args.push(Value::Text(format!("%{escaped}%")));
        args.push(Value::Text(format!("%{escaped}%")));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    // A substring search alone scans the table (there is no index by machine name: it
    // cost an index update on every request); with a status or product filter, that
    // filter's index narrows the rows first.
    let source = "clients";

    let tx = conn.transaction()?;
    let total = tx
        .prepare_cached(&format!("SELECT count(*) FROM {source} {filter}"))?
        .query_row(params_from_iter(args.iter()), |row| u64_column(row, 0))?;
    let mut page_args = args;
    page_args.push(Value::Integer(to_i64(query.limit)));
    page_args.push(Value::Integer(to_i64(query.offset)));
    // Deferred join: the inner query skips `offset` entries of an index (each entry holds the
    // row id), and only the page's rows are read from the table (otherwise a deep page reads
    // every row it skips).
    let rows = tx
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id IN (
                 SELECT id FROM {source} {filter}
                 ORDER BY last_seen_ms DESC, cmid DESC LIMIT ? OFFSET ?)
             ORDER BY last_seen_ms DESC, cmid DESC"
        ))?
        .query_map(params_from_iter(page_args.iter()), client_row)?
        .collect::<Result<Vec<_>, _>>()?;
    tx.finish()?;
    Ok(ClientPage { total, rows })
}

pub(crate) fn events(conn: &Connection, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(event_id) = query.event_id {
        conditions.push("event_id = ?");
        args.push(Value::Integer(i64::from(event_id)));
        if event_id != REQUEST_RECEIVED_EVENT {
            // Lets SQLite use the partial index `events_by_id_time`, which leaves out 12290.
            conditions.push("event_id <> 12290");
        }
    }
    if let Some(since) = query.since_ms {
        conditions.push("time_ms >= ?");
        args.push(Value::Integer(since));
    }
    if let Some(until) = query.until_ms {
        conditions.push("time_ms < ?");
        args.push(Value::Integer(until));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    // 12290 events are nearly the whole log and have no index by id: walking the time
    // index and skipping the few others beats the table scan and sort SQLite would plan.
    let source = if query.event_id == Some(REQUEST_RECEIVED_EVENT) { "events INDEXED BY events_by_time" } else { "events" };
    let order = if query.newest_first { "DESC" } else { "ASC" };
    args.push(Value::Integer(to_i64(query.limit)));
    args.push(Value::Integer(to_i64(query.offset)));
    let rows = conn
        .prepare_cached(&format!(
            "SELECT seq, event_id, time_ms, fields_json FROM {source} {filter}
             ORDER BY time_ms {order}, seq {order} LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(args.iter()), |row| {
            Ok(EventRow { seq: row.get(0)?, event_id: row.get(1)?, time_ms: row.get(2)?, fields_json: row.get(3)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn event_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.prepare_cached("SELECT count(*) FROM events")?.query_row([], |row| u64_column(row, 0))?)
}

pub(crate) fn recent_clients(conn: &Connection, since_ms: i64) -> Result<Vec<RecentClient>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT cmid, counted_id, last_seen_ms FROM clients
             WHERE last_seen_ms >= ?1 ORDER BY last_seen_ms DESC, cmid DESC",
        )?
        .query_map(params![since_ms], |row| {
            Ok(RecentClient { cmid: uuid_column(row, 0)?, counted_id: uuid_column(row, 1)?, last_seen_ms: row.get(2)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?.query_row(params![key], |row| row.get(0)).optional()?)
}

pub(crate) fn settings(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT key, value FROM settings ORDER BY key")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn epid(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn.prepare_cached("SELECT epid FROM host_identity WHERE id = 1")?.query_row([], |row| row.get(0)).optional()?)
}

//! The start-up check of an existing registry, and moving a damaged one aside.
//!
//! A registry that exists is never silently replaced: a zero-length file (with no
//! write-ahead log holding its pages) is a registry that lost its contents, and a file
//! whose pages fail `PRAGMA quick_check` is damaged. Both are refused with
//! [`StoreError::Damaged`] before the writer starts, so nothing is written into them and no
//! new ePID is invented over them. [`set_aside`] renames such a file (and its `-wal` and
//! `-shm` companions) so that the host can start with an empty registry on request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// How long the start-up `quick_check` may run. It reads every page, about a second per
/// few hundred MB; past this budget the check stops and the registry is opened anyway (a
/// registry that large has been serving for long, and its first pages were readable).
pub const QUICK_CHECK_BUDGET: Duration = Duration::from_secs(20);

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// No file yet: a new registry will be created.
    New,
    /// The file passed `PRAGMA quick_check`.
    Sound,
    /// The check ran out of its time budget before finishing; nothing wrong was found.
    Unfinished,
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn damaged(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::Damaged { path: path.display().to_string(), problem: problem.into() }
}

/// Checks the registry at `path` before it is opened for writing (see the module docs).
/// A zero `budget` does only the checks that read no page (the file's length).
pub fn check_existing(path: &Path, budget: Duration) -> Result<CheckOutcome, StoreError> {
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(CheckOutcome::New),
        Err(err) => return Err(StoreError::Io(format!("{}: {err}", path.display()))),
    };
    let wal_len = std::fs::metadata(companion(path, "-wal")).map_or(0, |m| m.len());
    if len == 0 && wal_len == 0 {
        return Err(damaged(path, "the file has zero length"));
    }
    if budget.is_zero() {
        // Only the cheap checks: a caller that reads one setting and closes again.
        return Ok(CheckOutcome::Unfinished);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| damaged(path, sqlite_text(&e)))?;
    // A watchdog interrupts the check at the end of its budget; finishing first stops it.
    let interrupt = conn.get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::Builder::new()
        .name("kmslab-store-check".into())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(budget) {
                interrupt.interrupt();
            }
        })
        .map_err(|e| StoreError::Io(format!("cannot start the registry check: {e}")))?;
    let report: Result<Vec<String>, rusqlite::Error> =
        conn.prepare("PRAGMA quick_check").and_then(|mut stmt| stmt.query_map([], |row| row.get::<_, String>(0))?.collect());
    drop(done);
    let _ = watchdog.join();
    match report {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(CheckOutcome::Sound),
        Ok(lines) => Err(damaged(path, lines.into_iter().take(3).collect::<Vec<_>>().join("; "))),
        Err(rusqlite::Error::SqliteFailure(code, _)) if code.code == rusqlite::ErrorCode::OperationInterrupted => {
            tracing::warn!(path = %path.display(), budget_s = budget.as_secs(), "registry check (PRAGMA quick_check) did not finish in time; opening it anyway");
            Ok(CheckOutcome::Unfinished)
        }
        Err(err @ rusqlite::Error::SqliteFailure(..)) => match StoreError::from(err) {
            StoreError::Corrupt(text) => Err(damaged(path, text)),
            // Locked by another host, I/O errors...: not damage, say what it is.
            other => Err(other),
        },
        Err(err) => Err(damaged(path, err.to_string())),
    }
}

fn sqlite_text(err: &rusqlite::Error) -> String {
    match err {
        rusqlite::Error::SqliteFailure(code, Some(msg)) => format!("{msg} (SQLite code {})", code.extended_code),
        rusqlite::Error::SqliteFailure(code, None) => format!("{code} (SQLite code {})", code.extended_code),
        other => other.to_string(),
    }
}

/// Renames the registry at `path`, its `-wal` / `-shm` files and its journal segments to
/// `<name>.damaged-<stamp>` (the caller gives the stamp, e.g. the wall-clock time: this
/// crate reads no clock) and returns the new path of the database file. A new registry
/// then starts with an empty journal.
pub fn set_aside(path: &Path, stamp: &str) -> Result<PathBuf, StoreError> {
    let target = companion(path, &format!(".damaged-{stamp}"));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| StoreError::Io(format!("cannot move {} to {}: {e}", from.display(), to.display())))
    };
    for suffix in ["-wal", "-shm"] {
        let from = companion(path, suffix);
        if from.exists() {
            rename(&from, &companion(&target, suffix))?;
        }
    }
    for (first, segment) in crate::journal::segments(path)? {
        rename(&segment, &companion(&target, &format!("-kmslab-journal-{first:020}")))?;
    }
    rename(path, &target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sound_empty_and_damaged_files_are_told_apart_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        assert_eq!(check_existing(&path, QUICK_CHECK_BUDGET).unwrap(), CheckOutcome::New);
        std::fs::File::create(&path).unwrap();
        let err = check_existing(&path, QUICK_CHECK_BUDGET).unwrap_err();
        assert!(matches!(&err, StoreError::Damaged { problem, .. } if problem.contains("zero length")), "{err}");
        assert!(matches!(check_existing(&path, Duration::ZERO), Err(StoreError::Damaged { .. })));
        std::fs::write(&path, b"this is not a database, just some text that is long enough").unwrap();
        let err = check_existing(&path, QUICK_CHECK_BUDGET).unwrap_err();
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        let segment = dir.path().join("registry.sqlite-kmslab-journal-00000000000000000007");
        std::fs::write(&segment, b"KJ01").unwrap();
        let aside = set_aside(&path, "20261201T093000Z").unwrap();
        assert!(!path.exists());
        assert_eq!(aside, dir.path().join("registry.sqlite.damaged-20261201T093000Z"));
        // The journal goes with it: a new registry must not fold the old one's writes.
        assert!(!segment.exists());
        assert!(dir.path().join("registry.sqlite.damaged-20261201T093000Z-kmslab-journal-00000000000000000007").exists());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
        drop(conn);
        assert_eq!(check_existing(&path, QUICK_CHECK_BUDGET).unwrap(), CheckOutcome::Sound);
    }
}

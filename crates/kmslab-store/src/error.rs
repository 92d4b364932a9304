//! The registry's error type and the mapping from SQLite errors onto it.

use rusqlite::ErrorCode;

/// Why a registry operation failed.
///
/// The type is `Clone` because one failed group commit has to tell every caller whose
/// write was in the batch; SQLite's own error is therefore carried as text (with SQLite's
/// extended result code in it) rather than as a `source`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk holding the database is full, or the database reached its size limit
    /// (`SQLITE_FULL`, including the [`StoreOptions::max_page_count`] lab limit). The
    /// write was rolled back whole; it may succeed once space is freed.
    ///
    /// [`StoreOptions::max_page_count`]: crate::StoreOptions::max_page_count
    #[error("registry storage is full: {0}")]
    Full(String),
    /// The operating system reported an I/O error reading or writing the database
    /// (`SQLITE_IOERR*`). The write was not committed.
    #[error("registry I/O error: {0}")]
    Io(String),
    /// The file is not a database or is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    #[error("registry database is corrupt: {0}")]
    Corrupt(String),
    /// An existing registry failed the start-up check (`PRAGMA quick_check`, or a
    /// zero-length file): it was not opened for writing and nothing was written to it.
    #[error("registry {path} is damaged: {problem}")]
    Damaged {
        /// The database file.
        path: String,
        /// What the check found.
        problem: String,
    },
    /// Another process holds the database locked for longer than the busy timeout
    /// (`SQLITE_BUSY`, `SQLITE_LOCKED`), e.g. a second host on the same data directory.
    #[error("registry database is locked by another connection: {0}")]
    Busy(String),
    /// A stored value broke a schema rule, e.g. an event whose fields are not valid JSON
    /// (`SQLITE_CONSTRAINT`). Only this write failed; others in its batch were kept.
    #[error("registry rejected the record: {0}")]
    Constraint(String),
    /// Any other SQLite failure.
    #[error("registry SQLite error: {0}")]
    Sqlite(String),
    /// A record given to the store is out of range (e.g. a license status above 6); it
    /// was never queued.
    #[error("invalid registry record: {0}")]
    Invalid(String),
    /// A stored row could not be decoded (e.g. a CMID that is not a UUID): the file was
    /// written by something other than this crate.
    #[error("malformed registry row: {0}")]
    Malformed(String),
    /// The database was written by a newer kmslab whose schema this build does not know.
    #[error("registry schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest schema version this build can migrate to.
        supported: i64,
    },
    /// The directory for the database file could not be created.
    #[error("cannot create registry directory {path}: {message}")]
    CreateDir {
        /// The directory that could not be created.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The database could not be switched to write-ahead logging (e.g. on a file system
    /// without shared memory support); group commit and concurrent reads rely on WAL.
    #[error("registry database could not use WAL journal mode (got {0:?})")]
    NoWal(String),
    /// The writer thread has stopped (the store was closed, or the thread could not be
    /// started), so the write was not performed.
    #[error("registry writer has stopped")]
    Closed,
}

impl StoreError {
    /// True for failures of the storage underneath (full, I/O, corrupt, locked) as
    /// opposed to a bad record; these turn the health flag off.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, StoreError::Full(_) | StoreError::Io(_) | StoreError::Corrupt(_) | StoreError::Busy(_) | StoreError::Sqlite(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::SqliteFailure(code, _) => {
                let text = format!("{err} (SQLite code {})", code.extended_code);
                match code.code {
                    ErrorCode::DiskFull => StoreError::Full(text),
                    ErrorCode::SystemIoFailure => StoreError::Io(text),
                    ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy(text),
                    ErrorCode::ConstraintViolation => StoreError::Constraint(text),
                    _ => StoreError::Sqlite(text),
                }
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => StoreError::Malformed(err.to_string()),
            _ => StoreError::Sqlite(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_codes_map_to_variants() {
        use rusqlite::ffi;
        let check = |code, expected: fn(String) -> StoreError| {
            let mapped = StoreError::from(sqlite_error(code));
            let expected = expected(String::new());
            assert_eq!(std::mem::discriminant(&mapped), std::mem::discriminant(&expected), "code {code}: {mapped:?}");
        };
        check(ffi::SQLITE_FULL, StoreError::Full);
        check(ffi::SQLITE_IOERR_WRITE, StoreError::Io);
        check(ffi::SQLITE_IOERR_FSYNC, StoreError::Io);
        check(ffi::SQLITE_CORRUPT, StoreError::Corrupt);
        check(ffi::SQLITE_NOTADB, StoreError::Corrupt);
        check(ffi::SQLITE_BUSY, StoreError::Busy);
        check(ffi::SQLITE_CONSTRAINT_CHECK, StoreError::Constraint);
        check(ffi::SQLITE_MISUSE, StoreError::Sqlite);
    }

    #[test]
    fn storage_failures_are_told_apart_from_bad_records() {
        assert!(StoreError::Full(String::new()).is_storage_failure());
        assert!(StoreError::Io(String::new()).is_storage_failure());
        assert!(!StoreError::Constraint(String::new()).is_storage_failure());
        assert!(!StoreError::Invalid(String::new()).is_storage_failure());
        assert!(!StoreError::Closed.is_storage_failure());
    }
}

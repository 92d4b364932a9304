//! The simulated activation service's durable state: per MAK, the activations added and
//! used and a blocked override; per (MAK, installation ID), the activation that used a
//! count. One small SQLite file (`activation.sqlite`), one connection behind a mutex: the
//! service answers a handful of requests, each decision is one `IMMEDIATE` transaction,
//! committed (`synchronous = FULL`) before the answer is sent.
//!
//! The limits themselves come from the service's keys file; the store keeps only what
//! changed since: activations added with the admin API, the count used, and blocking.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mak_keys (
    key TEXT PRIMARY KEY NOT NULL,
    added INTEGER NOT NULL DEFAULT 0 CHECK (added >= 0),
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    blocked INTEGER CHECK (blocked IN (0, 1))
) STRICT;
CREATE TABLE IF NOT EXISTS mak_activations (
    key TEXT NOT NULL,
    installation_id TEXT NOT NULL,
    product TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (key, installation_id)
) STRICT;
";

/// What the store remembers about one MAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MakUsage {
    /// Activations added on top of the keys file's count.
    pub added: u32,
    /// Activations used.
    pub used: u32,
    /// Blocked (`Some(true)`) or unblocked (`Some(false)`) through the admin API; `None`
    /// follows the keys file.
    pub blocked: Option<bool>,
}

/// What [`MakStore::activate`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MakActivation {
    /// A new installation: one activation used.
    Counted(MakUsage),
    /// This installation was activated with this key before: nothing used.
    Again(MakUsage),
    /// Every activation of the key is used; nothing was written.
    LimitReached(MakUsage),
}

/// One activation that used a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakActivationRow {
    /// The installation ID.
    pub installation_id: String,
    /// The product name the request named.
    pub product: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// The activation service's state file.
#[derive(Debug)]
pub struct MakStore {
    conn: Mutex<Connection>,
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl MakStore {
    /// Opens (creating if needed) the state file at `path`.
    pub fn open(path: &Path) -> Result<MakStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::CreateDir { path: dir.display().to_string(), message: e.to_string() })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Damaged { path: path.display().to_string(), problem: ok });
        }
        conn.execute_batch(SCHEMA)?;
        Ok(MakStore { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usage_in(conn: &Connection, key: &str) -> Result<MakUsage, StoreError> {
        let row = conn
            .query_row("SELECT added, used, blocked FROM mak_keys WHERE key = ?1", [key], |r| {
                Ok(MakUsage { added: to_u32(r.get(0)?), used: to_u32(r.get(1)?), blocked: r.get::<_, Option<i64>>(2)?.map(|b| b != 0) })
            })
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// What is known about `key` (all zero for a key never used).
    pub fn usage(&self, key: &str) -> Result<MakUsage, StoreError> {
        Self::usage_in(&self.lock(), key)
    }

    /// Activates `installation_id` with `key`, which the keys file grants `granted`
    /// activations: free when this installation was activated with the key before, else
    /// one activation used if one is left. Blocking and product checks are the caller's.
    pub fn activate(&self, key: &str, installation_id: &str, product: &str, granted: u32, at_ms: i64) -> Result<MakActivation, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let usage = Self::usage_in(&tx, key)?;
        let seen: Option<i64> = tx
            .query_row("SELECT 1 FROM mak_activations WHERE key = ?1 AND installation_id = ?2", [key, installation_id], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(MakActivation::Again(usage));
        }
        if usage.used >= granted.saturating_add(usage.added) {
            return Ok(MakActivation::LimitReached(usage));
        }
        tx.execute("INSERT INTO mak_keys (key, used) VALUES (?1, 1) ON CONFLICT (key) DO UPDATE SET used = used + 1", [key])?;
        tx.execute(
            "INSERT INTO mak_activations (key, installation_id, product, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![key, installation_id, product, at_ms],
        )?;
        let usage = Self::usage_in(&tx, key)?;
        tx.commit()?;
        Ok(MakActivation::Counted(usage))
    }

    /// Adds `count` activations to `key`.
    pub fn add_activations(&self, key: &str, count: u32) -> Result<MakUsage, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let usage = Self::usage_in(&tx, key)?;
        if u64::from(usage.added) + u64::from(count) > u64::from(u32::MAX) {
            return Err(StoreError::Invalid(format!("{key}: adding {count} activations overflows the count")));
        }
        tx.execute(
            "INSERT INTO mak_keys (key, added) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET added = added + ?2",
            params![key, i64::from(count)],
        )?;
        let usage = Self::usage_in(&tx, key)?;
        tx.commit()?;
        Ok(usage)
    }

    /// Blocks (`true`) or unblocks `key`, overriding the keys file.
    pub fn set_blocked(&self, key: &str, blocked: bool) -> Result<MakUsage, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO mak_keys (key, blocked) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET blocked = ?2",
            params![key, i64::from(blocked)],
        )?;
        Self::usage_in(&conn, key)
    }

    /// The activations of `key` that used a count, oldest first.
    pub fn activations(&self, key: &str) -> Result<Vec<MakActivationRow>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT installation_id, product, at_ms FROM mak_activations WHERE key = ?1 ORDER BY at_ms, installation_id")?;
        let rows = stmt.query_map([key], |r| Ok(MakActivationRow { installation_id: r.get(0)?, product: r.get(1)?, at_ms: r.get(2)? }))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_reopen_and_a_reactivation_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/activation.sqlite");
        let key = "LABMB-CCCCC-DDDDD-FFFFF-GGGGG";
        {
            let s = MakStore::open(&path).unwrap();
            assert!(matches!(s.activate(key, "iid-1", "win7-enterprise", 2, 1).unwrap(), MakActivation::Counted(u) if u.used == 1));
            assert!(matches!(s.activate(key, "iid-1", "win7-enterprise", 2, 2).unwrap(), MakActivation::Again(u) if u.used == 1));
            assert!(matches!(s.activate(key, "iid-2", "win7-enterprise", 2, 3).unwrap(), MakActivation::Counted(u) if u.used == 2));
            assert!(matches!(s.activate(key, "iid-3", "win7-enterprise", 2, 4).unwrap(), MakActivation::LimitReached(u) if u.used == 2));
        }
        let s = MakStore::open(&path).unwrap();
        assert_eq!(s.usage(key).unwrap(), MakUsage { added: 0, used: 2, blocked: None });
        assert!(matches!(s.activate(key, "iid-3", "win7-enterprise", 2, 5).unwrap(), MakActivation::LimitReached(_)));
        assert_eq!(s.add_activations(key, 5).unwrap().added, 5);
        assert!(matches!(s.activate(key, "iid-3", "win7-enterprise", 2, 6).unwrap(), MakActivation::Counted(u) if u.used == 3));
        assert_eq!(s.set_blocked(key, true).unwrap().blocked, Some(true));
        let ids: Vec<String> = s.activations(key).unwrap().into_iter().map(|r| r.installation_id).collect();
        assert_eq!(ids, ["iid-1", "iid-2", "iid-3"]);
        assert_eq!(s.usage("LABMB-NEVER-USED0-00000-00000").unwrap(), MakUsage::default());
    }
}

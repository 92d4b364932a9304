//! The client's state file: a serde twin of the core's `ActivatorState`, written atomically.
//!
//! `state.json` is replaced by writing `state.json.tmp`, syncing it, renaming it over the
//! old file and syncing the directory. A crash at any instant therefore leaves either the
//! old or the new complete file; a leftover temporary file is ignored and removed on load.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use kmslab_core::activator::{ActivatorState, HostSource, LastActivation};
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use serde::{Deserialize, Serialize};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// Name of the temporary file a save writes first.
pub const TEMP_FILE: &str = "state.json.tmp";
const FORMAT: u32 = 1;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    // `error` is shown in the message and deliberately not a `source`: a report printing
    // the chain names the cause once.
    #[error("state file {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a valid state file.
    #[error("state file {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    product: Option<String>,
    cmid: Uuid,
    previous_cmid: Uuid,
    status: String,
    grace_end: Option<String>,
    valid_until: Option<String>,
    notification_reason: Option<String>,
    activation_interval: u32,
    renewal_interval: u32,
    next_attempt: Option<String>,
    rearm_count: u32,
    manual_host: Option<String>,
    cached_host: Option<String>,
    host_caching: bool,
    domain: Option<String>,
    machine_name: String,
    vm: bool,
    clock_offset_ms: i64,
    last: LastFile,
    /// The installed MAK (absent in files written before MAK support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mak: Option<String>,
    /// Activated for good by a MAK.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    permanent: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastFile {
    at: Option<String>,
    result: Option<String>,
    host: Option<String>,
    source: Option<String>,
    epid: Option<String>,
    current_count: Option<u32>,
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

fn source_key(s: HostSource) -> &'static str {
    match s {
        HostSource::Manual => "manual",
        HostSource::Cached => "cached",
        HostSource::Dns => "dns",
    }
}

/// `manual`, `cached` or `dns`, for files and the API.
pub fn host_source_key(s: HostSource) -> &'static str {
    source_key(s)
}

impl From<&ActivatorState> for StateFile {
    fn from(s: &ActivatorState) -> Self {
        StateFile {
            format: FORMAT,
            product: s.product.clone(),
            cmid: s.cmid,
            previous_cmid: s.previous_cmid,
            status: s.status.key().to_owned(),
            grace_end: ts(s.grace_end),
            valid_until: ts(s.valid_until),
            notification_reason: s.notification_reason.map(|h| h.to_string()),
            activation_interval: s.activation_interval,
            renewal_interval: s.renewal_interval,
            next_attempt: ts(s.next_attempt),
            rearm_count: s.rearm_count,
            manual_host: s.manual_host.as_ref().map(ToString::to_string),
            cached_host: s.cached_host.as_ref().map(ToString::to_string),
            host_caching: s.host_caching,
            domain: s.domain.clone(),
            machine_name: s.machine_name.clone(),
            vm: s.vm,
            clock_offset_ms: s.clock_offset_ms,
            last: LastFile {
                at: ts(s.last.at),
                result: s.last.result.map(|h| h.to_string()),
                host: s.last.host.as_ref().map(ToString::to_string),
                source: s.last.source.map(|s| source_key(s).to_owned()),
                epid: s.last.epid.clone(),
                current_count: s.last.current_count,
            },
            mak: s.mak.clone(),
            permanent: s.permanent,
        }
    }
}

impl StateFile {
    fn into_state(self, catalog: &Catalog) -> Result<ActivatorState, String> {
        if self.format != FORMAT {
            return Err(format!("unknown format {}", self.format));
        }
        if self.cmid.is_nil() {
            // A host refuses a nil CMID (0x8007000D) on every attempt: say so now, once.
            return Err("cmid is the nil UUID, which no KMS host accepts; delete the file to start as a new machine with a new CMID".into());
        }
        let time = |field: &str, v: Option<String>| -> Result<Option<Timestamp>, String> {
            v.map(|t| Timestamp::parse_rfc3339(&t).map_err(|e| format!("{field}: {e}"))).transpose()
        };
        let code = |field: &str, v: Option<String>| -> Result<Option<HResult>, String> {
            v.map(|t| HResult::parse(&t).ok_or_else(|| format!("{field}: {t:?} is not an HRESULT"))).transpose()
        };
        let host = |field: &str, v: Option<String>| -> Result<Option<HostAddr>, String> {
            v.map(|t| t.parse::<HostAddr>().map_err(|e| format!("{field}: {e}"))).transpose()
        };
        if let Some(p) = &self.product
            && catalog.product_by_name(p).is_none()
        {
            return Err(format!("product {p:?} is not in the catalog"));
        }
        let status = LicenseStatus::from_key(&self.status).ok_or_else(|| format!("status: unknown {:?}", self.status))?;
        let source = match self.last.source.as_deref() {
            None => None,
            Some("manual") => Some(HostSource::Manual),
            Some("cached") => Some(HostSource::Cached),
            Some("dns") => Some(HostSource::Dns),
            Some(other) => return Err(format!("last.source: unknown {other:?}")),
        };
        Ok(ActivatorState {
            product: self.product,
            cmid: self.cmid,
            previous_cmid: self.previous_cmid,
            status,
            grace_end: time("grace_end", self.grace_end)?,
            valid_until: time("valid_until", self.valid_until)?,
            notification_reason: code("notification_reason", self.notification_reason)?,
            activation_interval: self.activation_interval,
            renewal_interval: self.renewal_interval,
            next_attempt: time("next_attempt", self.next_attempt)?,
            rearm_count: self.rearm_count,
            manual_host: host("manual_host", self.manual_host)?,
            cached_host: host("cached_host", self.cached_host)?,
            host_caching: self.host_caching,
            domain: self.domain,
            machine_name: self.machine_name,
            vm: self.vm,
            clock_offset_ms: self.clock_offset_ms,
            last: LastActivation {
                at: time("last.at", self.last.at)?,
                result: code("last.result", self.last.result)?,
                host: host("last.host", self.last.host)?,
                source,
                epid: self.last.epid,
                current_count: self.last.current_count,
            },
            mak: self
                .mak
                .map(|k| match kmslab_core::labkey::parse(&k) {
                    Ok((kmslab_core::labkey::LabKeyKind::Mak, k)) => Ok(k),
                    Ok(_) => Err(format!("mak: {k:?} is a host key, not a MAK")),
                    Err(why) => Err(format!("mak: {k:?} {why}")),
                })
                .transpose()?,
            permanent: self.permanent,
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io { path: path.to_owned(), error }
}

/// Loads the state from `dir`: `Ok(None)` on first start (no state file yet).
pub fn load(dir: &Path, catalog: &Catalog) -> Result<Option<ActivatorState>, StateError> {
    let temp = dir.join(TEMP_FILE);
    if temp.exists() {
        // A save that never reached its rename: the real file is still the last good one.
        tracing::warn!(path = %temp.display(), "removing an unfinished state write");
        fs::remove_file(&temp).map_err(io(&temp))?;
    }
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StateError::Io { path, error }),
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Invalid { path: path.clone(), reason: e.to_string() })?;
    file.into_state(catalog).map(Some).map_err(|reason| StateError::Invalid { path, reason })
}

/// Saves `state` into `dir` atomically (temp file, fsync, rename, fsync of the directory).
pub fn save(dir: &Path, state: &ActivatorState) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(STATE_FILE);
    let mut text = serde_json::to_vec_pretty(&StateFile::from(state)).expect("state serializes");
    text.push(b'\n');
    let mut f = File::create(&temp).map_err(io(&temp))?;
    f.write_all(&text).map_err(io(&temp))?;
    f.sync_all().map_err(io(&temp))?;
    drop(f);
    fs::rename(&temp, &path).map_err(io(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmslab_core::activator::Activator;
    use kmslab_core::rng::{KmsRng, SplitMix64};

    #[test]
    fn round_trips_and_ignores_a_torn_temp_file() {
        let catalog = Catalog::builtin();
        let product = catalog.product_by_name("win7-enterprise").unwrap().clone();
        let now = Timestamp::parse_rfc3339("2026-11-26T00:00:00Z").unwrap();
        let mut a = Activator::new(product, SplitMix64::new(1).uuid_v4(), "pc1", now);
        a.set_manual_host(Some("[::1]:1700".parse().unwrap()));
        a.set_domain(Some("lab.test".into()));
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), &catalog).unwrap().is_none());
        save(dir.path(), a.state()).unwrap();
        std::fs::write(dir.path().join(TEMP_FILE), b"{\"format\": 1, \"prod").unwrap();
        let back = load(dir.path(), &catalog).unwrap().unwrap();
        assert_eq!(&back, a.state());
        assert!(!dir.path().join(TEMP_FILE).exists());
        std::fs::write(dir.path().join(STATE_FILE), b"garbage").unwrap();
        assert!(matches!(load(dir.path(), &catalog), Err(StateError::Invalid { .. })));
    }

    #[test]
    fn a_nil_cmid_is_refused_at_load() {
        let catalog = Catalog::builtin();
        let product = catalog.product_by_name("win7-enterprise").unwrap().clone();
        let now = Timestamp::parse_rfc3339("2026-11-26T00:00:00Z").unwrap();
        let mut state = Activator::new(product, SplitMix64::new(1).uuid_v4(), "pc1", now).state().clone();
        state.cmid = Uuid::nil();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state).unwrap();
        let err = load(dir.path(), &catalog).unwrap_err().to_string();
        assert!(err.contains("cmid is the nil UUID") && err.contains("state.json"), "{err}");
    }
}

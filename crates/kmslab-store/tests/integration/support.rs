//! Helpers shared by the registry tests: record builders and store openers.

use std::path::{Path, PathBuf};

use kmslab_store::{EventRecord, RequestRecord, Store, StoreOptions};
use uuid::Uuid;

/// Application ID of Windows.
pub const WINDOWS_APP: Uuid = Uuid::from_u128(0x55c92734_d682_4d71_983e_d6ec3f16059f);
/// KMS counted ID of Windows 7 client editions.
pub const WIN7_COUNTED: Uuid = Uuid::from_u128(0x7fde5219_fbfa_484a_82c9_34d1ad53e856);
/// Windows 7 Enterprise activation ID.
pub const WIN7_ENTERPRISE: Uuid = Uuid::from_u128(0xae2ee509_1b34_41c0_acb7_6d4650168915);

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("registry").join("host.sqlite")
}

pub fn open(dir: &Path) -> Store {
    Store::open(&db_path(dir), StoreOptions::default()).expect("open store")
}

/// A successful request from `cmid` at `time_ms` reporting `status`.
pub fn request(cmid: Uuid, time_ms: i64, status: u8) -> RequestRecord {
    RequestRecord {
        cmid,
        machine_name: format!("PC-{}", &cmid.simple().to_string()[24..]),
        activation_id: WIN7_ENTERPRISE,
        application_id: WINDOWS_APP,
        counted_id: WIN7_COUNTED,
        license_status: status,
        minutes_to_expiry: 43_200,
        time_ms,
        source: Some("192.0.2.10:50000".parse().unwrap()),
        result: 0,
        failed: false,
        activated_at_ms: None,
        event: None,
    }
}

pub fn event(event_id: u32, time_ms: i64) -> EventRecord {
    EventRecord { event_id, time_ms, fields_json: format!(r#"{{"n":{time_ms}}}"#) }
}

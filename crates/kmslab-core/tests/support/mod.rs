//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::{HostSettings, Ledger};
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::wire::{KMS_PROTOCOL_V4, Request};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};

pub fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-01-05T08:00:00Z").unwrap()
}

pub fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::builtin())
}

pub fn settings(groups: &[&str]) -> HostSettings {
    kmslab_core::sim::host_settings(groups, 42, t0())
}

pub fn ledger(groups: &[&str]) -> Ledger {
    Ledger::new(settings(groups), catalog())
}

/// A request from `product` with CMID `cmid` at client time `at`.
pub fn request(product: &str, cmid: Uuid, at: Timestamp) -> Request {
    let c = Catalog::builtin();
    let p = c.product_by_name(product).unwrap();
    Request {
        protocol: KMS_PROTOCOL_V4,
        vm: false,
        license_status: LicenseStatus::InitialGrace,
        minutes_to_expiry: 43_200,
        application_id: p.application_id,
        activation_id: p.activation_id,
        kms_counted_id: p.kms_counted_id,
        cmid,
        previous_cmid: Uuid::nil(),
        n_policy: p.required_count,
        client_time: at,
        machine_name: "WS".into(),
    }
}

/// `n` distinct CMIDs from a fixed seed.
pub fn cmids(n: usize, seed: u64) -> Vec<Uuid> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| r.uuid_v4()).collect()
}

//! Pushes N host-shaped requests through the registry in waves of 64 (like 64 keep-alive
//! host connections), for counting the instructions one request costs under callgrind.
//!
//! `request_cost N [POOL] [normal]`: N requests; with POOL, CMIDs come from a pool of POOL
//! machines (after the first POOL requests, every request is a renewal of a known CMID);
//! `normal` uses `synchronous=NORMAL`. Run it twice with two values of N and divide the
//! difference of the instruction counts by the difference of N: that removes the cost of
//! opening the registry.
//!
//! With `KMSLAB_COST_DB=PATH` the registry is written at PATH and kept (to give a host a
//! registry of a million clients, say).
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/request_cost 2000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/request_cost 12000
//! ```

use kmslab_store::{EventRecord, RequestRecord, Store, StoreOptions, Synchronous};
use uuid::Uuid;

const WAVE: u64 = 64;

/// A request as `kms-host` records it, with a 12290 event of the host's size.
fn record(cmid: Uuid, time_ms: i64) -> RequestRecord {
    let fields_json = format!(
        r#"{{"activation_id":"ae2ee509-1b34-41c0-acb7-6d4650168915","client_time":"2026-12-01T09:30:00Z","cmid":"{cmid}","license_status":"initial_grace","machine_name":"bench-client","minutes_to_expiry":43200,"n_policy":25,"result":"0x00000000","vm":false}}"#
    );
    RequestRecord {
        cmid,
        machine_name: "bench-client".into(),
        activation_id: Uuid::from_u128(0xae2ee509_1b34_41c0_acb7_6d4650168915),
        application_id: Uuid::from_u128(0x55c92734_d682_4d71_983e_d6ec3f16059f),
        counted_id: Uuid::from_u128(0x7fde5219_fbfa_484a_82c9_34d1ad53e856),
        license_status: 1,
        minutes_to_expiry: 43_200,
        time_ms,
        source: Some("127.0.0.1:49152".parse().unwrap()),
        result: 0,
        failed: false,
        activated_at_ms: Some(time_ms),
        event: Some(EventRecord { event_id: 12290, time_ms, fields_json }),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let pool: Option<u64> = args.next().and_then(|a| a.parse().ok()).filter(|&p| p > 0);
    let synchronous = if std::env::args().any(|a| a == "normal") { Synchronous::Normal } else { Synchronous::Full };
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let path = std::env::var_os("KMSLAB_COST_DB").map_or_else(|| dir.path().join("cost.sqlite"), std::path::PathBuf::from);
    let store = Store::open(&path, StoreOptions { synchronous, ..StoreOptions::default() }).unwrap();
    let mut sent = 0u64;
    while sent < n {
        let wave: Vec<_> = (sent..(sent + WAVE).min(n))
            .map(|k| {
                let cmid = match pool {
                    Some(pool) => Uuid::from_u128(u128::from(k % pool).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1),
                    None => Uuid::new_v4(),
                };
                store.record_request(record(cmid, 1_800_000_000_000 + k as i64))
            })
            .collect();
        for pending in wave {
            pending.wait().unwrap();
        }
        sent = (sent + WAVE).min(n);
    }
    let stats = store.stats();
    store.close();
    println!("{n} requests, {} commits, mean batch {:.1}", stats.commits, stats.average_batch_size());
}

//! Benchmarks of the core: the host ledger with 10,000 distinct CMIDs, and wire
//! encode+decode. Targets (2-core machine): ledger >= 2M requests/s on one core,
//! decode+encode >= 5M frames/s. Run: `cargo bench -p kmslab-core --bench core`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::Ledger;
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::sim::host_settings;
use kmslab_core::wire::{self, KMS_PROTOCOL_V4, Message, Request};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};

fn requests(n: usize) -> Vec<Request> {
    let catalog = Catalog::builtin();
    let p = catalog.product_by_name("win7-enterprise").unwrap();
    let mut rng = SplitMix64::new(1);
    (0..n)
        .map(|i| Request {
            protocol: KMS_PROTOCOL_V4,
            vm: false,
            license_status: LicenseStatus::Licensed,
            minutes_to_expiry: 250_000,
            application_id: p.application_id,
            activation_id: p.activation_id,
            kms_counted_id: p.kms_counted_id,
            cmid: rng.uuid_v4(),
            previous_cmid: Uuid::nil(),
            n_policy: 25,
            client_time: Timestamp::from_unix_ms(1_767_225_600_000),
            machine_name: format!("WS-{i:05}"),
        })
        .collect()
}

fn ledger(c: &mut Criterion) {
    let reqs = requests(10_000);
    let now = Timestamp::from_unix_ms(1_767_225_600_000);
    let mut ledger = Ledger::new(host_settings(&["kms-b"], 1, now), Arc::new(Catalog::builtin()));
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(reqs.len() as u64));
    g.bench_function("handle_request x10000 distinct CMIDs", |b| {
        b.iter(|| {
            for r in &reqs {
                black_box(ledger.handle_request(black_box(r), now).is_ok());
            }
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let reqs = requests(1_000);
    let frames: Vec<Vec<u8>> = reqs.iter().map(|r| wire::encode_to_vec(&Message::Request(r.clone())).unwrap()).collect();
    let mut out = Vec::with_capacity(256);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("decode+encode request x1000", |b| {
        b.iter(|| {
            for f in &frames {
                let (msg, _) = wire::decode(black_box(f)).unwrap();
                out.clear();
                wire::encode(&msg, &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, ledger, codec);
criterion_main!(benches);

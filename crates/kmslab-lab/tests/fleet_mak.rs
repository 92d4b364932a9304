//! Fleet machines given a MAK activate through a real activation service (`kmslab fleet
//! --activation-service`): the service on a real socket with its SQLite state on disk,
//! counting each first activation; without a service the attempt fails as unreachable.

use std::sync::Arc;
use std::time::Duration;

use kmslab_activation::MakSpec;
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_lab::engine::{Fleet, FleetConfig, ProductMix, Target};
use kmslab_runtime::SimClock;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// `slmgr /ipk KEY` then `/ato` on machine `index`: the attempt's result.
async fn ipk_and_ato(fleet: &Fleet, index: usize, key: &str) -> (HResult, bool) {
    let key = key.to_owned();
    let installed = fleet
        .machine_op(index, Box::new(move |a, ctx| json!(a.install_mak(&key, ctx.now).map_err(|e| e.to_string()).err())))
        .await
        .expect("the machine exists");
    assert!(installed.is_null(), "/ipk refused: {installed}");
    let report = tokio::time::timeout(Duration::from_secs(60), fleet.activate_machine(index).await.expect("the machine exists"))
        .await
        .expect("/ato ends within a minute")
        .expect("the attempt is not abandoned");
    (report.result, report.state.permanent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_machines_with_a_mak_activate_through_the_activation_service_which_counts_them() {
    let catalog = Catalog::builtin();
    let dir = tempfile::tempdir().unwrap();
    let keys = kmslab_activation::keys::generate(&[MakSpec { product: "win7-enterprise".into(), activations: 1 }]);
    let key = keys.maks[0].key.clone();
    let keys_file = dir.path().join("keys.toml");
    std::fs::write(&keys_file, keys.to_toml()).unwrap();
    let service = kmslab_activation::start(&keys_file, dir.path(), &catalog).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let served = tokio::spawn(kmslab_activation::run(service, listener, None, stop.clone()));

    let win7 = Arc::clone(catalog.product_by_name("win7-enterprise").unwrap());
    // No KMS host answers on the discard port: these machines can only activate with a MAK.
    let target = Target::Manual(HostAddr::new("127.0.0.1", 9));
    let mut config = FleetConfig::new(3, ProductMix::single(Arc::clone(&win7)), target.clone(), SimClock::real());
    config.activation_service = Some(HostAddr::new("127.0.0.1", service_addr.port()));
    let fleet = Fleet::start(config, None, CancellationToken::new());

    // The first machine uses the key's only activation and is Licensed for good.
    assert_eq!(ipk_and_ato(&fleet, 0, &key).await, (HResult::SUCCESS, true));
    // Activating it again uses no count.
    let again = tokio::time::timeout(Duration::from_secs(60), fleet.activate_machine(0).await.unwrap()).await.unwrap().unwrap();
    assert_eq!(again.result, HResult::SUCCESS);
    // The second finds the key used up.
    assert_eq!(ipk_and_ato(&fleet, 1, &key).await, (HResult::MAK_LIMIT_EXCEEDED, false));
    // A key the service does not have is refused by the service.
    let other = kmslab_activation::keys::generate(&[MakSpec { product: "win7-enterprise".into(), activations: 1 }]).maks[0].key.clone();
    assert_eq!(ipk_and_ato(&fleet, 2, &other).await, (HResult::INVALID_PRODUCT_KEY, false));
    fleet.stop().await;
    stop.cancel();
    served.await.unwrap().unwrap();

    // What the service stored on disk: one activation of one installation.
    let service = kmslab_activation::start(&keys_file, dir.path(), &catalog).unwrap();
    let status = service.status(&key).unwrap();
    assert_eq!((status.used, status.remaining), (1, 0), "{status:?}");

    // A fleet without --activation-service cannot reach any service.
    let mut config = FleetConfig::new(1, ProductMix::single(win7), target, SimClock::real());
    config.activation_service = None;
    let fleet = Fleet::start(config, None, CancellationToken::new());
    assert_eq!(ipk_and_ato(&fleet, 0, &key).await, (HResult::HOST_UNREACHABLE, false));
    fleet.stop().await;
}

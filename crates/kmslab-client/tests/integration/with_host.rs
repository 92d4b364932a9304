//! End to end with the real `kmslab-host` (run in-process): five server machines reach the
//! server threshold together.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_activate_against_the_real_host() {
    let data = tempfile::tempdir().unwrap();
    let mut host_config = kmslab_host::HostConfig::with_data_dir(data.path());
    host_config.idle_timeout = Duration::from_secs(5);
    let kms_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kms = kms_listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let token = shutdown.clone();
    let host = tokio::spawn(async move { kmslab_host::run(vec![kms_listener], admin_listener, host_config, token).await.unwrap() });

    let mut clients = Vec::new();
    for i in 0..5 {
        let mut cfg = config(1.0);
        cfg.product = product("server2008r2-standard");
        cfg.kms = Some(kms.to_string().parse().unwrap());
        cfg.machine_name = Some(format!("srv{i}"));
        let client = TestClient::start(cfg).await;
        let r = client.ato().await;
        let expected = if i < 4 { "0xC004F038" } else { "0x00000000" };
        assert_eq!(r["hresult"], expected, "machine {i}: {r}");
        assert_eq!(r["current_count"], i + 1);
        clients.push(client);
    }
    for client in &clients {
        let r = client.ato().await;
        assert_eq!((r["hresult"].as_str(), r["status"].as_str()), (Some("0x00000000"), Some("licensed")), "{r}");
        let s = client.status().await;
        let epid = s["epid"].as_str().unwrap();
        assert!(epid.starts_with("55041-"), "{epid}");
    }
    for client in clients {
        client.stop().await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), host).await.unwrap().unwrap();
}

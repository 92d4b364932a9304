//! `--psk` end to end: the client's network edge against the real host (in-process), each
//! with or without the pre-shared key.

use std::net::SocketAddr;
use std::time::Duration;

use kmslab_client::config::Timeouts;
use kmslab_client::net::Net;
use kmslab_core::activator::HostOutcome;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::wire::FrameKey;
use kmslab_core::{HResult, Uuid};
use kmslab_dns::DnsServerChoice;
use tokio_util::sync::CancellationToken;

use crate::support::win7_request;

async fn start_host(dir: &std::path::Path, psk: Option<FrameKey>) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = kmslab_host::HostConfig::with_data_dir(dir);
    config.idle_timeout = Duration::from_secs(5);
    config.psk = psk;
    let kms_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kms = kms_listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { kmslab_host::run(vec![kms_listener], admin_listener, config, token).await.unwrap() });
    (kms, shutdown, task)
}

async fn send(kms: SocketAddr, psk: Option<FrameKey>) -> HostOutcome {
    let timeouts = Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(5), dns: Duration::from_secs(1) };
    let net = Net::new(DnsServerChoice::System, timeouts).with_psk(psk);
    let host = HostAddr::new(kms.ip().to_string(), kms.port());
    // The host may still be opening its registry: retry a refused connect for a while.
    for _ in 0..100 {
        match net.send(&host, win7_request(Uuid::new_v4(), "psk-test")).await {
            HostOutcome::Unreachable(HResult::HOST_UNREACHABLE) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    panic!("host did not come up");
}

#[tokio::test]
async fn clients_and_hosts_accept_only_frames_made_with_their_key() {
    let key = FrameKey::new(b"the-lab-key-0123456789").unwrap();
    let other = FrameKey::new(b"some-other-key-0123456789").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (kms, shutdown, task) = start_host(dir.path(), Some(key.clone())).await;
    // Same key: served.
    assert!(matches!(send(kms, Some(key.clone())).await, HostOutcome::Response(_)));
    // No key: the host's refusal is readable (sent without a MAC) and says why.
    match send(kms, None).await {
        HostOutcome::Refused(e) => assert_eq!(e.hresult, HResult::FRAME_AUTH_FAILED, "{e:?}"),
        other => panic!("{other:?}"),
    }
    // Another key: the host refuses, and the client does not believe the unauthenticated refusal.
    assert_eq!(send(kms, Some(other)).await, HostOutcome::Unreachable(HResult::FRAME_AUTH_FAILED));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task).await.unwrap().unwrap();

    // A client with a key never accepts answers from a host without one.
    let dir = tempfile::tempdir().unwrap();
    let (kms, shutdown, task) = start_host(dir.path(), None).await;
    assert!(matches!(send(kms, None).await, HostOutcome::Response(_)));
    assert_eq!(send(kms, Some(key)).await, HostOutcome::Unreachable(HResult::FRAME_AUTH_FAILED));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task).await.unwrap().unwrap();
}

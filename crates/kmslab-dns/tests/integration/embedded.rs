//! The embedded lab DNS server: serving, signed updates only, records kept across restarts.

use std::net::SocketAddr;
use std::path::Path;

use kmslab_dns::{DnsServerChoice, LabDnsConfig, LabDnsServer, LookupError, PublishError, SrvTarget, TsigKey, lookup_vlmcs};

use crate::support::{self, TIMEOUT, publisher_for, srv, zone};

const LAB_ZONE: &str = "lab.test";

async fn start(data_dir: &Path, key: &TsigKey) -> LabDnsServer {
    LabDnsServer::start(LabDnsConfig {
        zone: LAB_ZONE.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        tsig: key.clone(),
    })
    .await
    .unwrap()
}

// The embedded server runs on the test's own runtime, so dig (a blocking child process)
// runs on tokio's blocking pool, never on the thread that must answer it.

async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::dig(addr, &args)
    })
    .await
    .unwrap()
}

async fn dig_srv(addr: SocketAddr, zone: &str) -> Vec<(u16, u16, u16, String)> {
    dig_srv_with(addr, zone, &[]).await
}

async fn dig_srv_with(addr: SocketAddr, zone: &str, options: &[&str]) -> Vec<(u16, u16, u16, String)> {
    let zone = zone.to_owned();
    let options: Vec<String> = options.iter().map(|option| (*option).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        support::dig_srv_with(addr, &zone, &options)
    })
    .await
    .unwrap()
}

fn kms1() -> SrvTarget {
    SrvTarget { priority: 0, weight: 50, port: 1688, target: "kms1.lab.test".to_owned() }
}

#[tokio::test]
async fn serves_soa_and_ns_over_udp_and_tcp_on_one_port() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(server.zone(), LAB_ZONE);

    let udp = dig(addr, &["+short", "SOA", LAB_ZONE]).await;
    assert!(udp.starts_with("ns.lab.test. hostmaster.lab.test. 1 "), "{udp:?}");
    let tcp = dig(addr, &["+short", "+tcp", "NS", LAB_ZONE]).await;
    assert_eq!(tcp.trim(), "ns.lab.test.");
    let ns = dig(addr, &["+short", "A", "ns.lab.test"]).await;
    assert_eq!(ns.trim(), "127.0.0.1");

    // Nothing is published yet: the SRV name does not exist.
    let error = lookup_vlmcs(&DnsServerChoice::Server(addr), LAB_ZONE, TIMEOUT).await.unwrap_err();
    assert!(matches!(error, LookupError::NameNotFound { .. }), "{error:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn signed_update_is_published_and_discovered() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let addr = server.local_addr();

    publisher_for(addr, "kms1.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 0, 50)).await.unwrap();
    publisher_for(addr, "kms2.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 10, 0)).await.unwrap();

    let mut targets = lookup_vlmcs(&DnsServerChoice::Server(addr), LAB_ZONE, TIMEOUT).await.unwrap();
    targets.sort_by_key(|target| target.priority);
    assert_eq!(targets, vec![kms1(), SrvTarget { priority: 10, weight: 0, port: 1688, target: "kms2.lab.test".to_owned() },]);
    assert_eq!(dig_srv_with(addr, LAB_ZONE, &["+tcp"]).await, vec![srv(0, 50, 1688, "kms1.lab.test"), srv(10, 0, 1688, "kms2.lab.test")]);

    publisher_for(addr, "kms2.lab.test", 1688, Some(key.clone())).unpublish(&zone(LAB_ZONE, 10, 0)).await.unwrap();
    assert_eq!(dig_srv(addr, LAB_ZONE).await, vec![srv(0, 50, 1688, "kms1.lab.test")]);
    server.shutdown().await.unwrap();
}

/// The `+short` SRV lines of one dig query, in the order the server sent them.
async fn srv_order(addr: SocketAddr) -> Vec<String> {
    dig(addr, &["+short", "SRV", "_vlmcs._tcp.lab.test"]).await.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn equal_srv_records_come_back_in_both_orders() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let addr = server.local_addr();
    // Two `0 0` records, as two default hosts publish them.
    publisher_for(addr, "kms1.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap();
    publisher_for(addr, "kms2.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap();

    let mut first = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let order = srv_order(addr).await;
        assert_eq!(order.len(), 2, "{order:?}");
        *first.entry(order[0].clone()).or_default() += 1;
    }
    // Cyclic order: each record leads every other answer, whoever published first.
    assert_eq!(first.len(), 2, "both orders seen: {first:?}");
    assert!(first.values().all(|n| *n == 10), "each record first in half the answers: {first:?}");
    // TCP answers rotate too, and a single record is unaffected.
    let tcp: std::collections::BTreeSet<String> = {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let out = dig(addr, &["+short", "+tcp", "SRV", "_vlmcs._tcp.lab.test"]).await;
            seen.insert(out.lines().next().unwrap_or_default().to_owned());
        }
        seen
    };
    assert_eq!(tcp.len(), 2, "{tcp:?}");
    assert_eq!(dig(addr, &["+short", "A", "ns.lab.test"]).await.trim(), "127.0.0.1");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_updates_are_rejected() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let addr = server.local_addr();

    let unsigned = publisher_for(addr, "kms1.lab.test", 1688, None).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&unsigned, PublishError::Refused { zone } if zone == LAB_ZONE), "{unsigned:?}");
    assert_eq!(unsigned.hresult(), 0x8007_232D, "DNS_ERROR_RCODE_REFUSED");

    let same_name_other_secret = TsigKey::generate("lab-key").unwrap();
    let bad_signature =
        publisher_for(addr, "kms1.lab.test", 1688, Some(same_name_other_secret)).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&bad_signature, PublishError::BadSignature { .. }), "{bad_signature:?}");
    assert!(bad_signature.to_string().contains("TSIG authentication failed"), "{bad_signature}");
    assert_eq!(bad_signature.hresult(), 0x8007_2338, "DNS_ERROR_RCODE_BADSIG");

    let unknown = TsigKey::generate("other-key").unwrap();
    let unknown_key = publisher_for(addr, "kms1.lab.test", 1688, Some(unknown)).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&unknown_key, PublishError::BadSignature { detail, .. } if detail.contains("unknown key")), "{unknown_key:?}");
    assert_eq!(unknown_key.hresult(), 0x8007_2339, "DNS_ERROR_RCODE_BADKEY");

    assert!(dig_srv(addr, LAB_ZONE).await.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn records_survive_a_restart_on_the_same_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let first_addr = server.local_addr();
    publisher_for(first_addr, "kms1.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 0, 50)).await.unwrap();
    let serial_before = soa_serial(first_addr).await;
    assert!(serial_before > 1, "an update bumps the SOA serial");
    server.shutdown().await.unwrap();

    let restarted = start(data.path(), &key).await;
    let addr = restarted.local_addr();
    let targets = lookup_vlmcs(&DnsServerChoice::Server(addr), LAB_ZONE, TIMEOUT).await.unwrap();
    assert_eq!(targets, vec![kms1()]);
    assert_eq!(soa_serial(addr).await, serial_before);

    // The restarted server still takes updates, and they land next to the old record.
    publisher_for(addr, "kms2.lab.test", 1688, Some(key.clone())).publish(&zone(LAB_ZONE, 0, 50)).await.unwrap();
    assert_eq!(dig_srv(addr, LAB_ZONE).await, vec![srv(0, 50, 1688, "kms1.lab.test"), srv(0, 50, 1688, "kms2.lab.test")]);
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_frees_the_port() {
    let data = tempfile::tempdir().unwrap();
    let key = TsigKey::generate("lab-key").unwrap();
    let server = start(data.path(), &key).await;
    let addr = server.local_addr();
    server.shutdown().await.unwrap();

    // Started again on the very same address once the first is gone.
    let again =
        LabDnsServer::start(LabDnsConfig { zone: LAB_ZONE.to_owned(), listen: addr, data_dir: data.path().to_owned(), tsig: key.clone() })
            .await
            .unwrap();
    assert_eq!(again.local_addr(), addr);
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_server_is_reported_as_such() {
    // A port nobody listens on: bind it, note it, let it go.
    let closed: SocketAddr = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let error = publisher_for(closed, "kms1.lab.test", 1688, None).publish(&zone(LAB_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(error, PublishError::Unreachable { .. }), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_06BA);

    let error = lookup_vlmcs(&DnsServerChoice::Server(closed), LAB_ZONE, TIMEOUT).await.unwrap_err();
    assert!(matches!(error, LookupError::ServerFailure { .. }), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_232A);
}

async fn soa_serial(addr: SocketAddr) -> u32 {
    let soa = dig(addr, &["+short", "SOA", LAB_ZONE]).await;
    soa.split_whitespace().nth(2).and_then(|serial| serial.parse().ok()).unwrap_or_else(|| panic!("no SOA serial in {soa:?}"))
}

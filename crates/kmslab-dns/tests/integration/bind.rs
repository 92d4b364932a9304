//! Publishing and discovery against a real BIND9 `named`.

use std::net::IpAddr;

use kmslab_dns::{DnsServerChoice, LookupError, PublishError, Publisher, PublisherConfig, SrvTarget, TsigKey, lookup_vlmcs, resolve_host};

use crate::support::{Bind, IP_ZONE, LOCKED_ZONE, STATIC_ZONE, TIMEOUT, TSIG_ZONE, dig, dig_srv, dig_srv_with, dig_status, srv, zone};

#[tokio::test]
async fn publish_in_ip_authorised_zone_is_seen_by_dig() {
    let bind = Bind::start();
    assert!(dig_srv(bind.addr, IP_ZONE).is_empty());

    bind.publisher("kms1.ipauth.test", 1688, None).publish(&zone(IP_ZONE, 5, 40)).await.unwrap();

    assert_eq!(dig_srv(bind.addr, IP_ZONE), vec![srv(5, 40, 1688, "kms1.ipauth.test")]);
    // The same record over TCP: BIND serves one zone, not a per-transport copy.
    assert_eq!(dig_srv_with(bind.addr, IP_ZONE, &["+tcp"]), vec![srv(5, 40, 1688, "kms1.ipauth.test")]);
}

#[tokio::test]
async fn publish_in_tsig_zone_with_the_key() {
    let bind = Bind::start();
    bind.publisher("kms1.tsig.test", 1700, Some(bind.tsig.clone())).publish(&zone(TSIG_ZONE, 0, 100)).await.unwrap();
    assert_eq!(dig_srv(bind.addr, TSIG_ZONE), vec![srv(0, 100, 1700, "kms1.tsig.test")]);
}

#[tokio::test]
async fn unsigned_update_to_tsig_zone_is_refused() {
    let bind = Bind::start();
    let error = bind.publisher("kms1.tsig.test", 1688, None).publish(&zone(TSIG_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&error, PublishError::Refused { zone } if zone == TSIG_ZONE), "{error:?}");
    assert!(dig_srv(bind.addr, TSIG_ZONE).is_empty());
}

#[tokio::test]
async fn second_publisher_joins_the_first_and_republish_replaces_only_its_own() {
    let bind = Bind::start();
    let first = bind.publisher("kms1.ipauth.test", 1688, None);
    let second = bind.publisher("kms2.ipauth.test", 1688, None);
    first.publish(&zone(IP_ZONE, 0, 75)).await.unwrap();
    second.publish(&zone(IP_ZONE, 0, 25)).await.unwrap();
    assert_eq!(dig_srv(bind.addr, IP_ZONE), vec![srv(0, 25, 1688, "kms2.ipauth.test"), srv(0, 75, 1688, "kms1.ipauth.test"),]);

    // Publishing again with other values replaces kms1's record instead of adding a second.
    first.publish(&zone(IP_ZONE, 10, 50)).await.unwrap();
    // And publishing the same values again changes nothing.
    first.publish(&zone(IP_ZONE, 10, 50)).await.unwrap();
    assert_eq!(dig_srv(bind.addr, IP_ZONE), vec![srv(0, 25, 1688, "kms2.ipauth.test"), srv(10, 50, 1688, "kms1.ipauth.test"),]);
}

#[tokio::test]
async fn unpublish_removes_only_its_own_record() {
    let bind = Bind::start();
    let first = bind.publisher("kms1.ipauth.test", 1688, None);
    let second = bind.publisher("kms2.ipauth.test", 1689, None);
    first.publish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    second.publish(&zone(IP_ZONE, 0, 0)).await.unwrap();

    first.unpublish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    assert_eq!(dig_srv(bind.addr, IP_ZONE), vec![srv(0, 0, 1689, "kms2.ipauth.test")]);
    // Unpublishing what is already gone is not an error and touches nothing else.
    first.unpublish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    assert_eq!(dig_srv(bind.addr, IP_ZONE), vec![srv(0, 0, 1689, "kms2.ipauth.test")]);
    second.unpublish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    assert!(dig_srv(bind.addr, IP_ZONE).is_empty());
}

#[tokio::test]
async fn address_record_is_published_with_the_srv_record() {
    let bind = Bind::start();
    let publisher = Publisher::new(PublisherConfig {
        server: bind.addr,
        hostname: "kms7.ipauth.test.".to_owned(),
        port: 1688,
        ttl: 60,
        tsig: None,
        address: Some("192.0.2.77".parse().unwrap()),
        timeout: TIMEOUT,
    })
    .unwrap();
    publisher.publish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    assert_eq!(dig(bind.addr, &["+short", "A", "kms7.ipauth.test"]).trim(), "192.0.2.77");
    let resolved = resolve_host(&DnsServerChoice::Server(bind.addr), "kms7.ipauth.test", TIMEOUT).await.unwrap();
    assert_eq!(resolved, vec!["192.0.2.77".parse::<IpAddr>().unwrap()]);

    publisher.unpublish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    assert_eq!(dig_status(bind.addr, "A", "kms7.ipauth.test"), "NXDOMAIN");
}

#[tokio::test]
async fn zone_that_allows_no_updates_refuses() {
    let bind = Bind::start();
    let error = bind.publisher("kms1.locked.test", 1688, None).publish(&zone(LOCKED_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&error, PublishError::Refused { zone } if zone == LOCKED_ZONE), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_232D, "DNS_ERROR_RCODE_REFUSED");
    assert_eq!(error.to_string(), "DNS server refused the update for zone locked.test (REFUSED)");
}

#[tokio::test]
async fn wrong_tsig_secret_is_an_authentication_failure() {
    let bind = Bind::start();
    // Same key name as BIND's, another secret: BIND answers BADSIG.
    let wrong = TsigKey::generate("ddns-key").unwrap();
    let error = bind.publisher("kms1.tsig.test", 1688, Some(wrong)).publish(&zone(TSIG_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&error, PublishError::BadSignature { zone, .. } if zone == TSIG_ZONE), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_2338, "DNS_ERROR_RCODE_BADSIG");
    let message = error.to_string();
    assert!(message.contains("TSIG authentication failed"), "{message}");
    assert!(message.contains("bad signature"), "{message}");
    assert!(dig_srv(bind.addr, TSIG_ZONE).is_empty());
}

#[tokio::test]
async fn unknown_tsig_key_name_is_an_authentication_failure() {
    let bind = Bind::start();
    let unknown = TsigKey::generate("no-such-key").unwrap();
    let error = bind.publisher("kms1.tsig.test", 1688, Some(unknown)).publish(&zone(TSIG_ZONE, 0, 0)).await.unwrap_err();
    assert!(matches!(&error, PublishError::BadSignature { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("TSIG authentication failed"), "{message}");
    assert!(message.contains("unknown key"), "{message}");
    assert_eq!(error.hresult(), 0x8007_2339, "DNS_ERROR_RCODE_BADKEY");
}

#[tokio::test]
async fn lookup_returns_the_static_srv_records() {
    let bind = Bind::start();
    let server = DnsServerChoice::Server(bind.addr);
    let mut targets = lookup_vlmcs(&server, STATIC_ZONE, TIMEOUT).await.unwrap();
    targets.sort_by_key(|target| (target.priority, std::cmp::Reverse(target.weight)));
    let target = |priority, weight, port, name: &str| SrvTarget { priority, weight, port, target: name.to_owned() };
    assert_eq!(
        targets,
        vec![target(0, 75, 1688, "kms1.static.test"), target(0, 25, 1688, "kms2.static.test"), target(10, 0, 1689, "kms3.static.test"),]
    );
    // A trailing dot on the domain is the same domain.
    let again = lookup_vlmcs(&server, "static.test.", TIMEOUT).await.unwrap();
    assert_eq!(again.len(), 3);
}

#[tokio::test]
async fn lookup_sees_records_published_between_calls() {
    let bind = Bind::start();
    let server = DnsServerChoice::Server(bind.addr);
    let error = lookup_vlmcs(&server, IP_ZONE, TIMEOUT).await.unwrap_err();
    assert!(matches!(error, LookupError::NameNotFound { .. }), "{error:?}");

    bind.publisher("kms1.ipauth.test", 1688, None).publish(&zone(IP_ZONE, 0, 0)).await.unwrap();
    // No cache between calls: the new record shows up at once.
    let targets = lookup_vlmcs(&server, IP_ZONE, TIMEOUT).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].target, "kms1.ipauth.test");
}

#[tokio::test]
async fn absent_name_is_name_not_found() {
    let bind = Bind::start();
    let error = lookup_vlmcs(&DnsServerChoice::Server(bind.addr), "absent.static.test", TIMEOUT).await.unwrap_err();
    assert!(matches!(&error, LookupError::NameNotFound { name } if name == "_vlmcs._tcp.absent.static.test"), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_232B);
}

#[tokio::test]
async fn name_without_srv_is_no_records() {
    let bind = Bind::start();
    let error = lookup_vlmcs(&DnsServerChoice::Server(bind.addr), "nosrv.static.test", TIMEOUT).await.unwrap_err();
    assert!(matches!(&error, LookupError::NoRecords { .. }), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_251D);
}

#[tokio::test]
async fn zone_the_server_does_not_serve_is_refused_with_its_own_code() {
    let bind = Bind::start();
    // recursion is off, so BIND answers REFUSED for a zone it is not authoritative for.
    let error = lookup_vlmcs(&DnsServerChoice::Server(bind.addr), "elsewhere.example", TIMEOUT).await.unwrap_err();
    assert!(matches!(&error, LookupError::ErrorResponse { rcode: 5, .. }), "{error:?}");
    assert_eq!(error.hresult(), 0x8007_232D, "DNS_ERROR_RCODE_REFUSED, not SERVER_FAILURE");
    assert!(error.to_string().contains("REFUSED"), "{error}");
}

#[tokio::test]
async fn resolve_host_returns_ipv4_and_ipv6() {
    let bind = Bind::start();
    let server = DnsServerChoice::Server(bind.addr);
    let addresses = resolve_host(&server, "kms1.static.test", TIMEOUT).await.unwrap();
    let expected: Vec<IpAddr> = vec!["192.0.2.11".parse().unwrap(), "2001:db8::11".parse().unwrap()];
    assert_eq!(addresses, expected);

    let error = resolve_host(&server, "kms9.static.test", TIMEOUT).await.unwrap_err();
    assert!(matches!(error, LookupError::NameNotFound { .. }), "{error:?}");
}

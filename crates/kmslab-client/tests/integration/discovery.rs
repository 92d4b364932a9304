//! Discovery through a real BIND9: priorities and weights, failover, host caching, and the
//! DNS error for a missing record.

use serde_json::json;

use crate::support::*;

fn srv_zone(records: &[(&str, u16, u16, u16, &str)]) -> String {
    let mut z = String::new();
    for (owner, prio, weight, port, target) in records {
        z.push_str(&format!("{owner} IN SRV {prio} {weight} {port} {target}.lab.test.\n"));
    }
    for name in ["kms1", "kms2", "kms3", "kms4", "kms5"] {
        z.push_str(&format!("{name} IN A 127.0.0.1\n"));
    }
    z
}

fn request_sent_hosts(events: &[serde_json::Value], since: u64) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > since && e["event_id"] == 12288)
        .map(|e| (e["fields"]["host"].as_str().unwrap().to_owned(), e["fields"]["result"].as_str().unwrap().to_owned()))
        .collect()
}

fn last_seq(events: &[serde_json::Value]) -> u64 {
    events.last().map_or(0, |e| e["seq"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_and_without_host_caching_and_a_missing_record() {
    let mut h1 = TestHost::start(120, 10080).await;
    let h2 = TestHost::start(120, 10080).await;
    let (p1, p2) = (h1.addr.port(), h2.addr.port());
    let bind = Bind::start("lab.test", &srv_zone(&[("_vlmcs._tcp", 0, 0, p1, "kms1"), ("_vlmcs._tcp", 10, 0, p2, "kms2")]));
    let kms1 = format!("kms1.lab.test:{p1}");
    let kms2 = format!("kms2.lab.test:{p2}");

    // Caching on (the default). Scale 1: no retry fires by itself during the test.
    let mut cfg = config(1.0);
    cfg.product = product("server2008r2-standard");
    cfg.domain = Some("lab.test".into());
    cfg.dns_server = Some(bind.addr.into());
    let client = TestClient::start(cfg.clone()).await;
    let r = client.ato().await;
    assert_eq!(r["host"], kms1.as_str(), "priority 0 first: {r}");
    let s = client.status().await;
    assert_eq!(s["host"]["cached"], kms1.as_str());
    let r = client.ato().await;
    assert_eq!(r["host"], kms1.as_str());
    assert_eq!(client.status().await["host"]["last_source"], "cached");

    // The first host stops: the cached host fails, discovery runs, the second answers and
    // is cached.
    h1.stop().await;
    let before = last_seq(&client.events().await);
    let r = client.ato().await;
    assert_eq!(r["host"], kms2.as_str(), "{r}");
    let sent = request_sent_hosts(&client.events().await, before);
    assert_eq!(sent, vec![(kms1.clone(), "0x800706BA".to_owned()), (kms2.clone(), "0x00000000".to_owned())]);
    let s = client.status().await;
    assert_eq!(s["host"]["cached"], kms2.as_str());
    assert_eq!(s["host"]["last_source"], "dns");
    let before = last_seq(&client.events().await);
    client.ato().await;
    assert_eq!(request_sent_hosts(&client.events().await, before), vec![(kms2.clone(), "0x00000000".to_owned())]);
    assert_eq!(client.status().await["host"]["last_source"], "cached");

    // Caching off: every attempt runs discovery (and so tries the dead kms1 first again).
    let (code, _) = client.post("/api/v1/ckhc", json!({})).await;
    assert_eq!(code, 200);
    for _ in 0..2 {
        let before = last_seq(&client.events().await);
        let r = client.ato().await;
        assert_eq!(r["host"], kms2.as_str());
        let sent = request_sent_hosts(&client.events().await, before);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0].0, kms1);
        let s = client.status().await;
        assert_eq!(s["host"]["last_source"], "dns");
        assert!(s["host"]["cached"].is_null());
    }

    // Every host gone: 0xC004F074.
    drop(h2);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = client.ato().await;
    assert_eq!(r["hresult"], "0xC004F074", "{r}");

    // A domain without the record: 0x8007232B.
    let (code, _) = client.post("/api/v1/skms-domain", json!({"domain": "nothing.lab.test"})).await;
    assert_eq!(code, 200);
    let r = client.ato().await;
    assert_eq!(r["hresult"], "0x8007232B", "{r}");
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_host_at_priority_0_is_dropped_and_the_one_at_10_activates() {
    let h1 = TestHost::start(120, 10080).await;
    h1.ledger.lock().unwrap().settings_mut().activated = false;
    let h2 = TestHost::start(120, 10080).await;
    let (p1, p2) = (h1.addr.port(), h2.addr.port());
    let bind = Bind::start("lab.test", &srv_zone(&[("_vlmcs._tcp", 0, 0, p1, "kms1"), ("_vlmcs._tcp", 10, 0, p2, "kms2")]));
    let (kms1, kms2) = (format!("kms1.lab.test:{p1}"), format!("kms2.lab.test:{p2}"));
    let mut cfg = config(1.0);
    cfg.product = product("server2008r2-standard");
    cfg.domain = Some("lab.test".into());
    cfg.dns_server = Some(bind.addr.into());
    let client = TestClient::start(cfg).await;
    // The machine's first attempt (at start) runs discovery; wait for it to end, so that
    // exactly that one attempt is looked at, however the start-up races with this test.
    let s = client.wait_status(30, "the start-up attempt", |s| !s["last_result"].is_null() && s["attempt_in_progress"] == false).await;
    let before = 0;
    // kms2 counts this one machine: too few (0xC004F038), but a proper host to stay with.
    assert_eq!(s["last_result"]["hresult"], "0xC004F038", "{s}");
    assert_eq!(s["host"]["last"], kms2.as_str(), "{s}");
    let events = client.events().await;
    assert_eq!(
        request_sent_hosts(&events, before),
        vec![(kms1, "0xC004F041".to_owned()), (kms2.clone(), "0x00000000".to_owned())],
        "one 12288 per host, the refusing host's carrying its code"
    );
    let refused = events.iter().find(|e| e["event_id"] == 12288 && e["fields"]["result"] == "0xC004F041").unwrap();
    assert_eq!(refused["fields"]["name"], "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED");
    let processed: Vec<_> = events.iter().filter(|e| e["seq"].as_u64().unwrap() > before && e["event_id"] == 12289).collect();
    assert_eq!(processed.len(), 1, "a refusal has no 12289: {processed:?}");
    assert_eq!(client.status().await["host"]["cached"], kms2.as_str());
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priority_and_75_25_weights_are_honoured() {
    let h3 = TestHost::start(120, 10080).await;
    let h4 = TestHost::start(120, 10080).await;
    let h5 = TestHost::start(120, 10080).await;
    let bind = Bind::start(
        "lab.test",
        &srv_zone(&[
            ("_vlmcs._tcp", 0, 75, h3.addr.port(), "kms3"),
            ("_vlmcs._tcp", 0, 25, h4.addr.port(), "kms4"),
            ("_vlmcs._tcp", 10, 0, h5.addr.port(), "kms5"),
        ]),
    );
    let mut cfg = config(1.0);
    cfg.product = product("server2008r2-standard");
    cfg.domain = Some("lab.test".into());
    cfg.dns_server = Some(bind.addr.into());
    cfg.host_caching = Some(false);
    let client = TestClient::start(cfg).await;
    const N: usize = 200;
    // The start-up attempt counts too; wait for it, then N more.
    client.wait_status(10, "the first attempt", |s| !s["last_result"].is_null()).await;
    for _ in 0..N {
        client.ato().await;
    }
    let (n3, n4, n5) = (h3.request_count(), h4.request_count(), h5.request_count());
    assert_eq!(n3 + n4, N + 1);
    assert_eq!(n5, 0, "priority 10 is only a fallback");
    // Expected 75% (150.75 of 201); 5 standard deviations either side.
    assert!((120..=181).contains(&n3), "weight 75 got {n3}, weight 25 got {n4}");
    eprintln!("weights 75/25: {n3}/{n4} of {}", N + 1);
    client.stop().await;
}

//! The drills themselves: each sets up a broken lab, shows the symptom, applies the fix
//! and shows the outcome, checking both.

use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use kmslab_core::events::{DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::{HResult, LicenseStatus};
use kmslab_dns::{DnsServerChoice, TsigKey};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::lab::{LabDns, LabHost, LabTime, ZONE};
use super::{Transcript, WAIT, wait_for};
use crate::engine::{Fleet, FleetConfig, MachineView, ProductMix, Target};

const WIN7: &str = "win7-enterprise";
const SERVER: &str = "server2008r2-standard";

pub(super) fn fleet(time: LabTime, n: usize, product: &str, target: Target, prefix: &str, edit: impl FnOnce(&mut FleetConfig)) -> Fleet {
    let catalog = Catalog::builtin();
    let product = Arc::clone(catalog.product_by_name(product).expect("built-in product"));
    let mut c = FleetConfig::new(n, ProductMix::single(product), target, time.clock());
    c.request_events = true;
    // Drills change DNS records between attempts: no reuse of SRV answers.
    c.srv_cache = std::time::Duration::ZERO;
    c.name_prefix = prefix.into();
    c.seed = prefix.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    edit(&mut c);
    Fleet::start(c, None, CancellationToken::new())
}

pub(super) fn all_result(ms: &[MachineView], code: HResult) -> bool {
    !ms.is_empty() && ms.iter().all(|m| m.last_result == Some(code))
}

pub(super) fn all_licensed_by(ms: &[MachineView], host: Option<&HostAddr>) -> bool {
    !ms.is_empty()
        && ms.iter().all(|m| {
            m.status == LicenseStatus::Licensed
                && m.last_result == Some(HResult::SUCCESS)
                && host.is_none_or(|h| m.last_host.as_ref().is_some_and(|l| l.port == h.port))
        })
}

/// The drill's "Outcome" section: waits until every machine of `fleet` is Licensed (by
/// `host`, when given) and shows the first one; returns whether they all were in time.
async fn outcome_licensed(t: &mut Transcript, fleet: &Fleet, host: Option<&HostAddr>) -> (bool, Vec<MachineView>) {
    t.section("Outcome");
    let (ok, ms) = wait_for(fleet, |ms| all_licensed_by(ms, host)).await;
    t.machine(&ms[0]);
    (ok, ms)
}

fn dns_target(dns: &LabDns, c: &mut FleetConfig) {
    c.dns = DnsServerChoice::Server(dns.addr());
}

/// Waits until the host's own last publishing attempt in [`ZONE`] has `result` ("success"
/// or "failure") on its `/api/v1/status` (or [`WAIT`] passed); returns whether it did and
/// the zone's state. The host commits the event 12293/12294 before its status shows it.
async fn wait_dns(host: &LabHost, result: &str) -> (bool, Option<kmslab_api::ZoneStatus>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let zone = host.dns_zone().await;
        if zone.as_ref().and_then(|z| z.result.as_deref()) == Some(result) {
            return (true, zone);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, zone);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// True when `events` (from [`LabHost::dns_events`]) hold event `id`, with HRESULT `result`
/// when given.
fn has_event(events: &[Value], id: u32, result: Option<&str>) -> bool {
    events.iter().any(|e| e["event_id"] == id && result.is_none_or(|r| e["fields"]["result"] == r))
}

/// Count below the threshold: too few distinct machines.
pub(crate) async fn below_threshold(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |_| {}).await?;
    let first = fleet(time, 20, WIN7, Target::Manual(host.ip_addr()), "WIN7-A", |_| {});
    t.section("Symptom");
    let (ok, ms) = wait_for(&first, |ms| all_result(ms, HResult::NOT_ENOUGH_COUNT)).await;
    t.machine(&ms[0]);
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(ok, "all 20 machines report 0xC004F038 SL_E_VL_NOT_ENOUGH_COUNT");
    t.check(host.current_count().await == 20, "the host counts 20 machines (Windows 7 needs 25)");
    t.section("Fix: bring 5 more Windows 7 machines online (the count needs 25 distinct CMIDs in 30 days), slmgr /ato");
    let second = fleet(time, 5, WIN7, Target::Manual(host.ip_addr()), "WIN7-B", |_| {});
    let _ = wait_for(&second, |ms| ms.iter().all(|m| m.last_result.is_some())).await;
    first.activate_now(0..20);
    t.section("Outcome");
    let (a, ma) = wait_for(&first, |ms| all_licensed_by(ms, None)).await;
    let (b, _) = wait_for(&second, |ms| all_licensed_by(ms, None)).await;
    t.machine(&ma[0]);
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(a && b, "all 25 machines Licensed");
    t.check(host.current_count().await >= 25, "the host's count reached 25");
    t.stop(first).await;
    t.stop(second).await;
    host.stop().await;
    Ok(())
}

/// Cloned machines share one CMID and are counted once.
pub(crate) async fn cloned_cmid(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |_| {}).await?;
    let f = fleet(time, 30, WIN7, Target::Manual(host.ip_addr()), "CLONE", |c| c.clones = 10);
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::NOT_ENOUGH_COUNT)).await;
    t.machine(&ms[0]);
    t.say(format!("  {} and {} show the same CMID {}", ms[0].machine_name, ms[1].machine_name, ms[1].cmid));
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(ok, "30 machines, all 0xC004F038 SL_E_VL_NOT_ENOUGH_COUNT");
    t.check(host.current_count().await == 21, "the host counts 21: the 10 clones count once");
    t.check(ms[0].cmid == ms[9].cmid && ms[0].cmid != ms[10].cmid, "machines 0..9 share one CMID");
    t.section("Fix: slmgr /rearm on the 10 cloned machines (each gets a new CMID), slmgr /ato on the others");
    f.rearm(0..10);
    f.activate_now(10..30);
    let (ok, ms) = outcome_licensed(t, &f, None).await;
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    let distinct: std::collections::HashSet<_> = ms.iter().map(|m| m.cmid).collect();
    t.check(distinct.len() == 30, "30 distinct CMIDs after the rearm");
    t.check(ok, "all 30 machines Licensed");
    t.check(host.current_count().await >= 25, "the host's count is at least 25");
    t.stop(f).await;
    host.stop().await;
    Ok(())
}

/// The host dies; discovering clients move on, pinned ones do not.
pub(crate) async fn host_failover(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let dns = LabDns::start().await?;
    // Without --unpublish-on-exit (the default): a host that dies leaves its record behind.
    let kms1 = LabHost::start("kms1", time, |c| dns.host_publishing(c, "kms1", 0, Some(dns.key.clone()))).await?;
    let (published, _) = wait_dns(&kms1, "success").await;
    t.block(&kms1.dns_lines(1).await);
    t.check(published, "kms1 publishes its own SRV record: 12294");
    let kms1_addr = kms1.dns_addr();
    let auto = fleet(time, 25, WIN7, Target::Discover(ZONE.into()), "AUTO", |c| dns_target(&dns, c));
    let pinned = fleet(time, 5, WIN7, Target::Manual(kms1_addr.clone()), "PINNED", |c| dns_target(&dns, c));
    let (a, _) = wait_for(&auto, |ms| all_licensed_by(ms, None)).await;
    let (p, _) = wait_for(&pinned, |ms| all_licensed_by(ms, None)).await;
    t.check(a && p, format!("30 machines Licensed by {kms1_addr} (25 discover it through DNS, 5 pinned with /skms)"));
    t.section("Failure: kms1 dies; replacement kms2 (new name, new port) publishes itself; kms1's stale record stays");
    kms1.stop().await;
    let kms2 = LabHost::start("kms2", time, |c| dns.host_publishing(c, "kms2", 0, Some(dns.key.clone()))).await?;
    let (published, _) = wait_dns(&kms2, "success").await;
    t.block(&kms2.dns_lines(1).await);
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    let srv = dns.srv_lines().await;
    t.block(&srv);
    t.check(published, "kms2 publishes its own SRV record: 12294");
    t.check(
        srv.iter().any(|l| l.contains("kms1.")) && srv.iter().any(|l| l.contains("kms2.")),
        "DNS lists kms2 and the stale record of kms1 (which had no --unpublish-on-exit)",
    );
    let kms2_addr = kms2.dns_addr();
    t.say("  (every machine runs slmgr /ato instead of waiting 7 days for its renewal)");
    auto.activate_now(0..25);
    pinned.activate_now(0..5);
    t.section("Symptom");
    let (a, ma) = wait_for(&auto, |ms| all_licensed_by(ms, Some(&kms2_addr))).await;
    let (p, mp) = wait_for(&pinned, |ms| all_result(ms, HResult::NO_HOST_AVAILABLE)).await;
    t.say("  A machine with auto-discovery:");
    t.machine(&ma[0]);
    t.say("  A machine pinned with slmgr /skms:");
    t.machine(&mp[0]);
    t.check(a, format!("the 25 auto-discovery machines moved on to {kms2_addr} by themselves"));
    t.check(
        p && mp.iter().all(|m| m.last_request_result == Some(HResult::HOST_UNREACHABLE)),
        format!("the 5 pinned machines fail: 0xC004F074 (12288: 0x800706BA from {kms1_addr})"),
    );
    t.section(format!("Fix: slmgr /skms {kms2_addr} on the pinned machines (or /ckms to use discovery), slmgr /ato"));
    pinned.set_manual_host(0..5, Some(kms2_addr.clone()));
    pinned.activate_now(0..5);
    let (p, _) = outcome_licensed(t, &pinned, Some(&kms2_addr)).await;
    t.say("  slmgr /dli on kms2:");
    t.block(&kms2.dli_lines().await);
    t.check(p, format!("the 5 pinned machines are activated by {kms2_addr}"));
    t.check(kms2.current_count().await >= 30, "kms2 counts all 30 machines");
    t.stop(auto).await;
    t.stop(pinned).await;
    kms2.stop().await;
    let _ = dns.server.shutdown().await;
    Ok(())
}

/// The host's SRV registration is refused; clients find no record.
pub(crate) async fn dns_refused(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let dns = LabDns::start().await?;
    t.say(format!(
        "  kms1 runs with --dns-server {} --dns-zone {ZONE} --dns-hostname kms1.{ZONE} and no TSIG key: its dynamic updates are unsigned, the zone accepts only updates signed with {}",
        dns.addr(),
        dns.key.name
    ));
    let kms1 = LabHost::start("kms1", time, |c| dns.host_publishing(c, "kms1", 0, None)).await?;
    t.section("Symptom");
    let (refused, zone) = wait_dns(&kms1, "failure").await;
    t.say("  kms1's own report (status and Event Viewer):");
    t.block(&kms1.dns_lines(2).await);
    let events = kms1.dns_events().await;
    let f = fleet(time, 5, SERVER, Target::Discover(ZONE.into()), "SRV", |c| dns_target(&dns, c));
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::DNS_NAME_ERROR)).await;
    t.machine(&ms[0]);
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    t.block(&dns.srv_lines().await);
    t.check(
        refused && zone.and_then(|z| z.hresult).as_deref() == Some("0x8007232D"),
        "kms1's status shows its update refused: result failure, hresult 0x8007232D DNS_ERROR_RCODE_REFUSED",
    );
    t.check(
        has_event(&events, DNS_PUBLISH_FAILED, Some("0x8007232D")) && !has_event(&events, DNS_PUBLISH_SUCCEEDED, None),
        "kms1 logged 12293 (0x8007232D) and no 12294",
    );
    t.check(ok, "every client reports 0x8007232B DNS_ERROR_RCODE_NAME_ERROR");
    t.section(format!("Fix: give kms1 the zone's update key (--tsig-key-file with {}), restart kms-host, slmgr /ato", dns.key.name));
    let key = dns.key.clone();
    let kms1 = kms1.stop().await.restart(|c| c.dns.tsig = Some(key)).await?;
    let (published, _) = wait_dns(&kms1, "success").await;
    t.block(&kms1.dns_lines(2).await);
    let events = kms1.dns_events().await;
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    t.block(&dns.srv_lines().await);
    f.activate_now(0..5);
    let (ok, _) = outcome_licensed(t, &f, Some(&kms1.dns_addr())).await;
    t.check(published && has_event(&events, DNS_PUBLISH_SUCCEEDED, None), "kms1's status shows success and it logged 12294");
    t.check(ok, "all 5 machines Licensed by kms1 found through discovery");
    t.stop(f).await;
    kms1.stop().await;
    let _ = dns.server.shutdown().await;
    Ok(())
}

/// Only the first host can write the SRV record.
pub(crate) async fn second_host_srv(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let dns = LabDns::start().await?;
    t.say("  kms1 publishes with the zone's update key (SRV priority 0); kms2, the standby (priority 10), holds kms2-key, which the zone does not accept");
    let kms1 = LabHost::start("kms1", time, |c| dns.host_publishing(c, "kms1", 0, Some(dns.key.clone()))).await?;
    let kms2_key = TsigKey::generate("kms2-key").map_err(|e| anyhow::anyhow!("{e}"))?;
    let kms2 = LabHost::start("kms2", time, |c| dns.host_publishing(c, "kms2", 10, Some(kms2_key))).await?;
    let (first, _) = wait_dns(&kms1, "success").await;
    let (refused, zone2) = wait_dns(&kms2, "failure").await;
    t.block(&kms1.dns_lines(1).await);
    t.block(&kms2.dns_lines(1).await);
    let events2 = kms2.dns_events().await;
    t.check(first, "kms1 publishes itself: 12294");
    let f = fleet(time, 6, SERVER, Target::Discover(ZONE.into()), "SRV2", |c| dns_target(&dns, c));
    let (ok, _) = wait_for(&f, |ms| all_licensed_by(ms, Some(&kms1.dns_addr()))).await;
    t.check(ok, "6 servers Licensed by kms1, the only host in DNS");
    t.section("Failure: kms1 stops");
    let kms2_addr = kms2.dns_addr();
    kms1.stop().await;
    f.activate_now(0..6);
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::NO_HOST_AVAILABLE)).await;
    t.machine(&ms[0]);
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    let srv = dns.srv_lines().await;
    t.block(&srv);
    t.check(
        refused && zone2.and_then(|z| z.hresult).as_deref() == Some("0x80072339") && has_event(&events2, DNS_PUBLISH_FAILED, Some("0x80072339")),
        "kms2 reports its update refused (status failure 0x80072339 DNS_ERROR_RCODE_BADKEY: the zone does not know its key) and logged 12293: no permission on the record",
    );
    t.check(srv.iter().any(|l| l.contains("kms1.")) && !srv.iter().any(|l| l.contains("kms2")), "DNS lists kms1 only");
    t.check(ok, "the clients fail with 0xC004F074 although kms2 is running");
    t.section(format!(
        "Fix: give kms2 permission on the record (--tsig-key-file with the zone's key {}), restart kms-host on kms2, slmgr /ato",
        dns.key.name
    ));
    let key = dns.key.clone();
    let kms2 = kms2.stop().await.restart(|c| c.dns.tsig = Some(key)).await?;
    let (second, _) = wait_dns(&kms2, "success").await;
    t.block(&kms2.dns_lines(2).await);
    let events2 = kms2.dns_events().await;
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    let srv = dns.srv_lines().await;
    t.block(&srv);
    f.activate_now(0..6);
    let (ok, _) = outcome_licensed(t, &f, Some(&kms2_addr)).await;
    t.check(
        second && has_event(&events2, DNS_PUBLISH_SUCCEEDED, None) && srv.iter().any(|l| l.contains("kms2.")),
        "kms2 publishes itself: 12294, its record is in DNS",
    );
    t.check(ok, format!("all 6 servers are activated by {kms2_addr}"));
    t.stop(f).await;
    kms2.stop().await;
    let _ = dns.server.shutdown().await;
    Ok(())
}

/// The host's port is blocked.
pub(crate) async fn port_blocked(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |_| {}).await?;
    // The same switch as `kmslab lab block kms1`: the port refuses connections while the
    // host keeps running.
    host.faults().set_blocked(true);
    t.say(format!("  kms1 runs, but a firewall closes TCP {} (kmslab lab block kms1)", host.kms.port()));
    let f = fleet(time, 5, SERVER, Target::Manual(host.ip_addr()), "FW", |_| {});
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| {
        all_result(ms, HResult::NO_HOST_AVAILABLE) && ms.iter().all(|m| m.last_request_result == Some(HResult::HOST_UNREACHABLE))
    })
    .await;
    t.machine(&ms[0]);
    t.check(ok, "12288 shows 0x800706BA RPC_S_SERVER_UNAVAILABLE, the attempt 0xC004F074 SL_E_VL_BINDING_SERVICE_UNAVAILABLE");
    t.section(format!("Fix: open TCP {} on the firewall (kmslab lab unblock kms1), slmgr /ato", host.kms.port()));
    host.faults().set_blocked(false);
    f.activate_now(0..5);
    let (ok, _) = outcome_licensed(t, &f, None).await;
    t.check(ok, "all 5 machines Licensed");
    t.stop(f).await;
    host.stop().await;
    Ok(())
}

/// The client's clock is 5 hours ahead.
pub(crate) async fn time_skew(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |_| {}).await?;
    let f = fleet(time, 5, SERVER, Target::Manual(host.ip_addr()), "SKEW", |c| c.clock_offset_ms = 5 * 3_600_000);
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::INVALID_TIMESTAMP)).await;
    t.say("  the machines' clocks run 5 hours ahead of the host's");
    t.machine(&ms[0]);
    t.check(ok, "every machine reports 0xC004F06C SL_E_VL_INVALID_TIMESTAMP");
    t.section("Fix: correct the clients' clocks (w32tm /resync), slmgr /ato");
    f.set_clock_offset(0..5, 0);
    f.activate_now(0..5);
    let (ok, _) = outcome_licensed(t, &f, None).await;
    t.check(ok, "all 5 machines Licensed");
    t.stop(f).await;
    host.stop().await;
    Ok(())
}

/// The KMS host is not activated.
pub(crate) async fn unactivated_host(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |c| c.activated = false).await?;
    let f = fleet(time, 5, SERVER, Target::Manual(host.ip_addr()), "UNACT", |_| {});
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::HOST_NOT_ACTIVATED)).await;
    t.machine(&ms[0]);
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(ok, "every machine reports 0xC004F041 SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED");
    t.section("Fix: activate the KMS host (restart kms-host without --unactivated), slmgr /ato");
    let host = host.stop().await.restart(|c| c.activated = true).await?;
    f.activate_now(0..5);
    let (ok, _) = outcome_licensed(t, &f, None).await;
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(ok, "all 5 machines Licensed");
    t.stop(f).await;
    host.stop().await;
    Ok(())
}

/// The host's key group does not cover the product.
pub(crate) async fn wrong_key_group(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let host = LabHost::start("kms1", time, |c| c.host_key_groups = vec!["client-vl".into()]).await?;
    let f = fleet(time, 5, SERVER, Target::Manual(host.ip_addr()), "KEYGRP", |_| {});
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_result(ms, HResult::KEY_GROUP_MISMATCH)).await;
    t.machine(&ms[0]);
    t.say("  slmgr /dli on the KMS host (a Windows 7 client-VL host key):");
    t.block(&host.dli_lines().await);
    t.check(ok, "every server reports 0xC004F042 SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH");
    t.section("Fix: install a KMS host key of group kms-b (Server 2008 R2 channel B) on the host, slmgr /ato");
    let host = host.stop().await.restart(|c| c.host_key_groups = vec!["kms-b".into()]).await?;
    f.activate_now(0..5);
    let (ok, _) = outcome_licensed(t, &f, None).await;
    t.say("  slmgr /dli on the KMS host:");
    t.block(&host.dli_lines().await);
    t.check(ok, "all 5 servers Licensed");
    t.stop(f).await;
    host.stop().await;
    Ok(())
}

/// The host published at the best priority refuses (its own activation is missing); the
/// clients drop it and activate through the good host behind it in the same attempt.
pub(crate) async fn refusing_host(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let dns = LabDns::start().await?;
    t.say("  kms1 (SRV priority 0) runs with --unactivated: its own KMS host key is not activated; kms2 (priority 10) is a good host");
    let kms1 = LabHost::start("kms1", time, |c| {
        dns.host_publishing(c, "kms1", 0, Some(dns.key.clone()));
        c.activated = false;
    })
    .await?;
    let kms2 = LabHost::start("kms2", time, |c| dns.host_publishing(c, "kms2", 10, Some(dns.key.clone()))).await?;
    let (first, _) = wait_dns(&kms1, "success").await;
    let (second, _) = wait_dns(&kms2, "success").await;
    t.block(&kms1.dns_lines(1).await);
    t.block(&kms2.dns_lines(1).await);
    t.say("  nslookup -type=srv _vlmcs._tcp.lab.test:");
    t.block(&dns.srv_lines().await);
    t.check(first && second, "both hosts publish themselves: 12294 (kms1 at priority 0, kms2 at priority 10)");
    let (kms1_addr, kms2_addr) = (kms1.dns_addr(), kms2.dns_addr());
    let f = fleet(time, 6, SERVER, Target::Discover(ZONE.into()), "REFUSE", |c| dns_target(&dns, c));
    t.section("Symptom");
    let (ok, ms) = wait_for(&f, |ms| all_licensed_by(ms, Some(&kms2_addr))).await;
    // The machine whose last attempt tried both hosts shows the failover; the first few
    // machines needed a second attempt (kms2's count below 5), which went straight to the
    // cached kms2.
    let shown = ms.iter().find(|m| m.attempt_requests.len() > 1).unwrap_or(&ms[0]);
    t.machine(shown);
    t.say("  slmgr /dli on kms1:");
    t.block(&kms1.dli_lines().await);
    let failed_over = ms.iter().filter(|m| m.attempt_requests.len() > 1).all(|m| {
        m.attempt_requests.first().is_some_and(|(h, r)| h.port == kms1_addr.port && *r == HResult::HOST_NOT_ACTIVATED)
            && m.attempt_requests.last().is_some_and(|(h, r)| h.port == kms2_addr.port && *r == HResult::SUCCESS)
    });
    t.check(
        shown.attempt_requests.len() == 2 && failed_over,
        format!("12288 from {kms1_addr}: 0xC004F041 SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED; the next 12288, in the same attempt, to {kms2_addr}"),
    );
    t.check(ok, format!("all 6 servers are Licensed by {kms2_addr}: a refusing host does not end discovery"));
    let failed = kms1.status().await.map(|s| s["counters"]["failed"].as_u64().unwrap_or(0)).unwrap_or(0);
    t.check(failed >= 6 && kms1.current_count().await == 0, "kms1 counted every request as failed and no machine");
    t.section("Fix: activate kms1 (restart kms-host without --unactivated); the machines keep their cached kms2, new machines discover kms1 first");
    let kms1 = kms1.stop().await.restart(|c| c.activated = true).await?;
    let newcomers = fleet(time, 6, SERVER, Target::Discover(ZONE.into()), "NEW", |c| dns_target(&dns, c));
    let (ok, _) = outcome_licensed(t, &newcomers, Some(&kms1_addr)).await;
    t.say("  slmgr /dli on kms1:");
    t.block(&kms1.dli_lines().await);
    t.check(ok, format!("6 new servers are Licensed by {kms1_addr}, priority 0 again"));
    f.activate_now(0..6);
    let (ok, _) = wait_for(&f, |ms| all_licensed_by(ms, Some(&kms2_addr))).await;
    t.check(ok, format!("the first 6 renew with their cached host {kms2_addr} (host caching, as on Windows)"));
    t.stop(f).await;
    t.stop(newcomers).await;
    kms1.stop().await;
    kms2.stop().await;
    let _ = dns.server.shutdown().await;
    Ok(())
}

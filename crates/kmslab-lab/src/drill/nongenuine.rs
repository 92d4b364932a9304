//! The non-genuine drill (docs/operations.md "Non-genuine: a leaked KMS host key"): two
//! in-process KMS hosts share one KMS host key, validated with the lab's activation service
//! (`kmslab_host::genuine`); the key leaks and is blocked; the hosts enter the non-genuine
//! grace (events 8208 and 8209), then Notification, where their clients get 0xC004F041; a
//! new host key on every host brings them and their clients back.

use kmslab_core::HResult;
use kmslab_core::events::{GENUINE_STATE_NON_GENUINE, GENUINE_TICKET_FAILED};
use kmslab_core::genuine::ATO_NON_GENUINE_TEXT;
use kmslab_core::hostaddr::HostAddr;
use serde_json::Value;

use super::Transcript;
use super::lab::{LabHost, LabTime};
use super::mak::{LabService, ipk_line, is};
use super::scenarios::{all_licensed_by, all_result, fleet};
use super::wait_for;
use crate::engine::Target;

const SERVER: &str = "server2008r2-standard";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Servers per host.
const MACHINES: usize = 5;

/// What slmgr prints for a host's `/ato` answer.
fn host_ato_line(host: &str, r: &Value) -> String {
    let code = r["hresult"].as_str().unwrap_or("?");
    let meaning = r["meaning"].as_str().unwrap_or("Product activation failed.");
    match code {
        "0x00000000" => format!("  slmgr /ato on {host}: Product activated successfully."),
        "0x4004F065" => format!("  slmgr /ato on {host}: {meaning}"),
        _ => format!("  slmgr /ato on {host}: Error: {code} {}: {meaning}", r["name"].as_str().unwrap_or("")),
    }
}

/// Event lines (`Event 8208: ...`) of `host`'s events `id`.
async fn event_lines(host: &LabHost, id: u32) -> Vec<String> {
    host.events(id).await.iter().map(|e| format!("{}: Event {id}: {}", host.name, e["fields"]["message"].as_str().unwrap_or(""))).collect()
}

/// The host's request counters (total, failed).
async fn counters(host: &LabHost) -> (u64, u64) {
    host.status().await.map_or((0, 0), |s| (s["counters"]["total"].as_u64().unwrap_or(0), s["counters"]["failed"].as_u64().unwrap_or(0)))
}

/// Waits until `host` received `more` requests after `from` (its counters); returns the
/// counters then, or the last ones read when [`super::WAIT`] passed.
async fn wait_requests(host: &LabHost, from: (u64, u64), more: u64) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        let now = counters(host).await;
        if now.0 >= from.0 + more || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The license part of a host's `/dli` (up to the first empty line).
fn license_block(dli: &[String]) -> &[String] {
    &dli[..dli.iter().position(String::is_empty).unwrap_or(dli.len())]
}

/// `slmgr /ato` on every machine of `fleet` until `pred` holds (or [`super::WAIT`] passed):
/// an `/ato` while a machine's attempt is still in flight joins that attempt, so one round
/// may end with the answer from before a change; returns whether it held and the machines.
async fn ato_until(
    fleet: &crate::engine::Fleet,
    pred: impl Fn(&[crate::engine::MachineView]) -> bool,
) -> (bool, Vec<crate::engine::MachineView>) {
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        fleet.activate_now(0..MACHINES);
        let round = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let machines = fleet.machines().await;
            if pred(&machines) {
                return (true, machines);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return (false, machines);
            }
            if now >= round {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

async fn genuine_state(host: &LabHost) -> String {
    host.status().await.map(|s| s["genuine"]["state"].as_str().unwrap_or("").to_owned()).unwrap_or_default()
}

/// A leaked KMS host key: blocked at the service; both hosts non-genuine, then in
/// Notification (clients refused); a new host key on every host; clients recover.
pub(crate) async fn leaked_host_key(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let svc = LabService::start_with(&[], &["kms-b", "kms-b"]).await?;
    let (old, new) = (svc.host_keys[0].clone(), svc.host_keys[1].clone());
    let service = HostAddr::new(svc.activation.ip().to_string(), svc.activation.port());
    let with_key = |key: &str| {
        let (key, service) = (key.to_owned(), service.clone());
        move |c: &mut kmslab_host::HostConfig| {
            c.host_key = Some(key);
            c.activation_service = Some(service);
        }
    };
    let hosts = [LabHost::start("kms1", time, with_key(&old)).await?, LabHost::start("kms2", time, with_key(&old)).await?];
    t.say(format!("  kms1, kms2: KMS hosts (kms-b) with the same KMS host key {old}, validated with the activation service"));
    let fleets = [
        fleet(time, 5, SERVER, Target::Manual(hosts[0].ip_addr()), "SRV1-", |_| {}),
        fleet(time, 5, SERVER, Target::Manual(hosts[1].ip_addr()), "SRV2-", |_| {}),
    ];
    t.say("  SRV1-*: 5 servers of kms1; SRV2-*: 5 servers of kms2");
    let mut before = true;
    for f in &fleets {
        before &= wait_for(f, |ms| all_licensed_by(ms, None)).await.0;
    }
    t.check(before, "all 10 servers are activated by their host");

    t.section(format!("The key leaks: the activation service blocks it: kmslab activation-service block {old}"));
    svc.block(&old).await?;
    t.section("Symptom: the hosts' next genuine validation finds the key blocked (here: slmgr /ato on each host)");
    let mut grace = true;
    for h in &hosts {
        let r = h.ato().await?;
        t.say(host_ato_line(&h.name, &r));
        grace &= is(&r, HResult::NONGENUINE_GRACE_PERIOD) && r["meaning"].as_str() == Some(ATO_NON_GENUINE_TEXT);
    }
    let mut events = true;
    for h in &hosts {
        let (e8208, e8209) = (event_lines(h, GENUINE_TICKET_FAILED).await, event_lines(h, GENUINE_STATE_NON_GENUINE).await);
        t.block(&e8208);
        t.block(&e8209);
        events &= e8208.len() == 1
            && e8208[0].contains("hr=0xC004C4A2")
            && e8209.len() == 1
            && e8209[0].contains("Genuine state set to non-genuine")
            && e8209[0].contains("SL_E_VALIDATION_BLOCKED_PRODUCT_KEY");
    }
    t.say("  slmgr /dli on kms1:");
    let dli = hosts[0].dli_lines().await;
    t.block(license_block(&dli));
    t.check(grace, format!("/ato on both hosts: 0x4004F065 \"{ATO_NON_GENUINE_TEXT}\""));
    t.check(events, "each host logged event 8208 (hr=0xC004C4A2) and event 8209 (non-genuine, the reason)");
    let mut status4 = dli.iter().any(|l| l == "License Status: Non-genuine grace period");
    for h in &hosts {
        status4 &= genuine_state(h).await == "non_genuine_grace";
    }
    t.check(status4, "both hosts are in the 30-day non-genuine grace (license status 4)");
    let mut from = Vec::new();
    for h in &hosts {
        from.push(counters(h).await);
    }
    for f in &fleets {
        f.activate_now(0..5);
    }
    let mut served = true;
    for (h, from) in hosts.iter().zip(&from) {
        let after = wait_requests(h, *from, 5).await;
        served &= after.0 >= from.0 + 5 && after.1 == from.1;
    }
    for f in &fleets {
        served &= wait_for(f, |ms| all_licensed_by(ms, None)).await.0;
    }
    t.say("  slmgr /ato on the servers: Product activated successfully. (10 renewals, none refused)");
    t.check(served, "during their non-genuine grace the hosts still activate their clients (kmslab's choice)");

    t.section("31 days later (the lab moves the start of the hosts' non-genuine grace 31 days back): Notification");
    for h in &hosts {
        h.faults().age_non_genuine(31 * DAY_MS);
    }
    t.say("  slmgr /dli on kms1:");
    let dli = hosts[0].dli_lines().await;
    t.block(license_block(&dli));
    let r = hosts[0].ato().await?;
    t.say(host_ato_line(&hosts[0].name, &r));
    let (refused, ms) = ato_until(&fleets[0], |ms| all_result(ms, HResult::HOST_NOT_ACTIVATED)).await;
    t.machine(&ms[0]);
    let refused = refused && ato_until(&fleets[1], |ms| all_result(ms, HResult::HOST_NOT_ACTIVATED)).await.0;
    t.check(
        is(&r, HResult::NONGENUINE_GRACE_EXPIRED) && dli.iter().any(|l| l == "Notification Reason: 0xC004F200 (non-genuine)."),
        "the grace expired: /ato 0xC004F064, /dli Notification (0xC004F200 non-genuine)",
    );
    t.check(refused, "both hosts answer every client 0xC004F041 (KMS not activated)");

    t.section(format!("Fix, first host only: slmgr /ipk {new}, slmgr /ato on kms1"));
    let (code, body) = hosts[0].ipk(&new).await?;
    t.say(ipk_line(&hosts[0].name, &new, code, &body));
    let r = hosts[0].ato().await?;
    t.say(host_ato_line(&hosts[0].name, &r));
    let from2 = counters(&hosts[1]).await;
    for f in &fleets {
        f.activate_now(0..5);
    }
    let after2 = wait_requests(&hosts[1], from2, 5).await;
    let fixed_one = wait_for(&fleets[0], |ms| all_licensed_by(ms, None) && all_result(ms, HResult::SUCCESS)).await.0;
    let (still, ms) = wait_for(&fleets[1], |ms| all_result(ms, HResult::HOST_NOT_ACTIVATED)).await;
    t.machine(&ms[0]);
    t.check(code == 200 && is(&r, HResult::SUCCESS) && fixed_one, "kms1 is genuine again and activates SRV1-*");
    let still = still && after2.1 >= from2.1 + 5;
    t.check(still, "kms2 still has the blocked key: SRV2-* still get 0xC004F041 (the key must be replaced on every host)");

    t.section(format!("Fix, every host: slmgr /ipk {new}, slmgr /ato on kms2"));
    let (code, body) = hosts[1].ipk(&new).await?;
    t.say(ipk_line(&hosts[1].name, &new, code, &body));
    let r = hosts[1].ato().await?;
    t.say(host_ato_line(&hosts[1].name, &r));
    fleets[1].activate_now(0..5);
    t.section("Outcome");
    let (ok, ms) = wait_for(&fleets[1], |ms| all_licensed_by(ms, None) && all_result(ms, HResult::SUCCESS)).await;
    t.machine(&ms[0]);
    t.say("  slmgr /dli on kms2:");
    let dli = hosts[1].dli_lines().await;
    t.block(license_block(&dli));
    let mut genuine = true;
    for h in &hosts {
        genuine &= genuine_state(h).await == "genuine";
    }
    t.check(code == 200 && is(&r, HResult::SUCCESS) && ok, "kms2 is genuine again; every client activates on its next attempt");
    t.check(genuine && dli.iter().any(|l| l == "License Status: Licensed"), "both hosts Licensed with the new key");
    let [f1, f2] = fleets;
    t.stop(f1).await;
    t.stop(f2).await;
    let [h1, h2] = hosts;
    h1.stop().await;
    h2.stop().await;
    svc.stop().await;
    Ok(())
}

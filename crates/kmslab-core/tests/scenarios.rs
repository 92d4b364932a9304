//! Scenario harness: a host ledger and many client activators on one simulated clock, no
//! sockets (kmslab_core::sim::World). These are the documented behaviours in executable form.

mod support;

use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::sim::{World, host_settings};
use kmslab_core::srv::{self, SrvCandidate};
use kmslab_core::time::MINUTE_MS;
use kmslab_core::{LicenseStatus, Timestamp};
use support::*;

fn world_with_one_host() -> World {
    let mut w = World::new(catalog(), t0(), 7);
    w.add_host(HostAddr::new("kms1.lab.test", 1688), host_settings(&["kms-b"], 1, t0()));
    w.publish("lab.test", 0, 0, 0);
    w.default_domain = Some("lab.test".into());
    w
}

fn add_machines(w: &mut World, product: &str, n: usize) {
    for i in 0..n {
        w.add_client(product, format!("{product}-{i}"));
    }
}

#[test]
fn twenty_four_windows_7_machines_never_activate_until_the_25th_arrives() {
    let mut w = world_with_one_host();
    add_machines(&mut w, "win7-enterprise", 24);
    w.run_days(10);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 0);
    assert_eq!(w.count_in(LicenseStatus::InitialGrace), 24);
    assert!(w.results[&HResult::NOT_ENOUGH_COUNT] >= 24 * 100, "they retried every 2 hours: {:?}", w.results);

    w.add_client("win7-enterprise", "the-25th");
    let arrival = w.now;
    w.run_until(arrival.plus_minutes(120));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 25, "all Licensed within one activation interval");
    // Every machine activated no later than one interval after the 25th arrived.
    for c in &w.clients {
        let licensed_at = c.state().valid_until.unwrap().plus_days(-180);
        assert!(licensed_at <= arrival.plus_minutes(120));
    }
}

#[test]
fn five_servers_activate_on_their_own() {
    let mut w = world_with_one_host();
    add_machines(&mut w, "server2008r2-standard", 4);
    w.run_days(1);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 0);
    w.add_client("server2008r2-standard", "srv-5");
    w.run_until(w.now.plus_minutes(120));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 5);
}

#[test]
fn thirty_clones_sharing_a_cmid_count_once_until_they_rearm() {
    let mut w = world_with_one_host();
    let shared = w.rng().uuid_v4();
    for i in 0..30 {
        w.add_client_with_cmid("win7-enterprise", format!("clone-{i}"), shared);
    }
    w.run_days(3);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 0);
    let windows = w.catalog.counted_group_by_name("windows").unwrap().kms_counted_id;
    assert_eq!(w.hosts[0].ledger.count(&windows, w.now), 1, "30 clones are one machine to the host");

    // The fix: rearm every clone (new CMIDs).
    let now = w.now;
    for i in 0..30 {
        let mut rng = SplitMix64::new(1000 + i as u64);
        w.clients[i].rearm(now, &mut rng).unwrap();
        w.schedule(i);
    }
    w.run_until(now.plus_minutes(120));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 30);
    assert_eq!(w.hosts[0].ledger.count(&windows, w.now), 31, "30 new CMIDs plus the old shared one");
}

#[test]
fn a_host_restart_empties_the_count_but_licensed_clients_stay_licensed() {
    let mut w = world_with_one_host();
    add_machines(&mut w, "win7-enterprise", 30);
    w.run_days(1);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 30);
    let total_before = w.hosts[0].ledger.counters().total;

    w.restart_host(0);
    let windows = w.catalog.counted_group_by_name("windows").unwrap().kms_counted_id;
    assert_eq!(w.hosts[0].ledger.count(&windows, w.now), 0, "the count starts again");
    assert_eq!(w.hosts[0].ledger.counters().total, total_before, "counters are kept");

    let insufficient_before = w.results.get(&HResult::NOT_ENOUGH_COUNT).copied().unwrap_or(0);
    let restart = w.now;
    // Step through the renewal period: nobody leaves Licensed while the count is rebuilt.
    for _ in 0..14 {
        w.run_days(1);
        assert_eq!(w.count_in(LicenseStatus::Licensed), 30);
    }
    let insufficient = w.results.get(&HResult::NOT_ENOUGH_COUNT).copied().unwrap_or(0) - insufficient_before;
    assert!(insufficient >= 24, "the first renewals after the restart fell back: {insufficient}");
    // Once 25 had renewed, everyone's renewal succeeded: all validity restarted after the restart.
    for c in &w.clients {
        assert!(c.state().valid_until.unwrap() > restart.plus_days(180), "{:?}", c.state().valid_until);
    }
}

#[test]
fn a_client_that_loses_every_host_reaches_additional_grace_on_day_180_and_notification_on_day_210() {
    let mut w = world_with_one_host();
    add_machines(&mut w, "server2008r2-standard", 5);
    // All five ask at once: only the fifth sees a count of 5; the rest succeed on retry.
    w.run_until(t0().plus_minutes(121));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 5);
    let ends: Vec<Timestamp> = w.clients.iter().map(|c| c.state().valid_until.unwrap()).collect();
    let (first, last) = (*ends.iter().min().unwrap(), *ends.iter().max().unwrap());
    w.hosts[0].up = false;
    w.run_until(first.plus_ms(-MINUTE_MS));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 5, "day 179: still Licensed");
    w.run_until(last);
    assert_eq!(w.count_in(LicenseStatus::AdditionalGrace), 5, "day 180");
    w.run_until(first.plus_days(30).plus_ms(-MINUTE_MS));
    assert_eq!(w.count_in(LicenseStatus::AdditionalGrace), 5, "day 209");
    w.run_until(last.plus_days(30));
    assert_eq!(w.count_in(LicenseStatus::Notification), 5, "day 210");
    for c in &w.clients {
        // Each machine's additional grace ran exactly 30 days from the end of its validity.
        assert_eq!(c.state().grace_end, Some(c.state().valid_until.unwrap().plus_days(30)));
    }
    assert!(w.results[&HResult::NO_HOST_AVAILABLE] > 0);
    // The host comes back with a count aged to zero: the first round of retries rebuilds
    // it (counts 1..5, only the fifth activates), the second round activates the rest.
    w.hosts[0].up = true;
    w.run_until(w.now.plus_minutes(120));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 1);
    w.run_until(w.now.plus_minutes(120));
    assert_eq!(w.count_in(LicenseStatus::Licensed), 5);
}

#[test]
fn with_priorities_0_and_10_every_request_goes_to_priority_0_while_it_answers() {
    let mut w = World::new(catalog(), t0(), 11);
    w.add_host(HostAddr::new("kms1.lab.test", 1688), host_settings(&["kms-b"], 1, t0()));
    w.add_host(HostAddr::new("kms2.lab.test", 1688), host_settings(&["kms-b"], 2, t0()));
    w.publish("lab.test", 0, 0, 0);
    w.publish("lab.test", 1, 10, 0);
    w.default_domain = Some("lab.test".into());
    add_machines(&mut w, "win7-enterprise", 30);
    for c in &mut w.clients {
        c.set_host_caching(false); // discovery on every attempt: priority is honoured each time
    }
    w.run_days(60);
    assert!(w.answered_by[0] > 30 * 8, "{:?}", w.answered_by);
    assert_eq!(w.answered_by[1], 0);
    // Priority 0 goes away: clients move to priority 10 by themselves.
    w.hosts[0].up = false;
    w.run_days(8);
    assert!(w.answered_by[1] >= 30, "{:?}", w.answered_by);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 30);
}

#[test]
fn vista_and_server_2008_machines_ignore_priority_and_use_both_hosts() {
    // The lab of the test above, with Windows Server 2008 machines: Vista-family clients
    // pick at random among all the records, so priority 10 gets about half the requests.
    let mut w = World::new(catalog(), t0(), 12);
    w.add_host(HostAddr::new("kms1.lab.test", 1688), host_settings(&["kms-b"], 1, t0()));
    w.add_host(HostAddr::new("kms2.lab.test", 1688), host_settings(&["kms-b"], 2, t0()));
    w.publish("lab.test", 0, 0, 0);
    w.publish("lab.test", 1, 10, 0);
    w.default_domain = Some("lab.test".into());
    add_machines(&mut w, "server2008-standard", 20);
    for c in &mut w.clients {
        c.set_host_caching(false);
    }
    w.run_days(60);
    let (first, second) = (w.answered_by[0], w.answered_by[1]);
    let share = second as f64 / (first + second) as f64;
    assert!((0.4..=0.6).contains(&share), "priority 10 answered {second} of {}", first + second);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 20, "both hosts count them and activate them");
}

#[test]
fn vista_machines_split_across_two_hosts_stay_below_threshold_until_caching_is_off() {
    // 30 Vista machines, two published hosts: each machine caches whichever host answered
    // first, so neither host sees 25 of them. Windows 7 machines would all use priority 0.
    let mut w = World::new(catalog(), t0(), 13);
    w.add_host(HostAddr::new("kms1.lab.test", 1688), host_settings(&["kms-b"], 1, t0()));
    w.add_host(HostAddr::new("kms2.lab.test", 1688), host_settings(&["kms-b"], 2, t0()));
    w.publish("lab.test", 0, 0, 0);
    w.publish("lab.test", 1, 10, 0);
    w.default_domain = Some("lab.test".into());
    add_machines(&mut w, "vista-enterprise", 30);
    w.run_days(10);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 0);
    assert!(w.answered_by.iter().all(|n| *n > 0), "both hosts answered: {:?}", w.answered_by);
    // `slmgr /ckhc`: every attempt chooses again, both hosts come to count all 30.
    for c in &mut w.clients {
        c.set_host_caching(false);
    }
    w.run_days(3);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 30);
}

#[test]
fn weights_75_25_split_within_3_points_over_10000_choices() {
    let mut rng = SplitMix64::new(2026);
    let records = vec![
        SrvCandidate { priority: 0, weight: 75, target: HostAddr::new("kms1", 1688) },
        SrvCandidate { priority: 0, weight: 25, target: HostAddr::new("kms2", 1688) },
    ];
    let first_is_kms1 = (0..10_000).filter(|_| srv::order(records.clone(), &mut rng)[0].target.host == "kms1").count();
    let share = first_is_kms1 as f64 / 100.0;
    assert!((72.0..=78.0).contains(&share), "kms1 got {share}%");
}

#[test]
fn fifty_machines_through_400_days_with_a_mid_life_outage() {
    let mut w = world_with_one_host();
    w.record_events = true;
    add_machines(&mut w, "win7-enterprise", 40);
    add_machines(&mut w, "server2008r2-enterprise", 10);
    w.run_days(100);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 50);
    w.hosts[0].up = false;
    // Last renewals were within the 7 days before the outage: Notification comes 210
    // days after them at the latest.
    w.run_days(217);
    assert_eq!(w.count_in(LicenseStatus::Notification), 50);
    w.hosts[0].up = true;
    w.run_days(100);
    assert_eq!(w.count_in(LicenseStatus::Licensed), 50);
    assert!(w.event_log.len() > 10_000);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut w = World::new(catalog(), t0(), seed);
        w.add_host(HostAddr::new("kms1", 1688), host_settings(&["kms-b"], 1, t0()));
        w.add_host(HostAddr::new("kms2", 1688), host_settings(&["kms-b"], 2, t0()));
        w.publish("lab.test", 0, 0, 50);
        w.publish("lab.test", 1, 0, 50);
        w.default_domain = Some("lab.test".into());
        add_machines(&mut w, "win7-enterprise", 30);
        for c in &mut w.clients {
            c.set_host_caching(false);
        }
        w.run_days(30);
        (w.answered_by.clone(), w.clients.iter().map(|c| c.cmid()).collect::<Vec<_>>())
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn a_refusing_host_at_priority_0_does_not_keep_the_fleet_from_the_good_one_at_10() {
    for refusing in [host_settings(&["kms-b"], 1, t0()), host_settings(&["client-vl"], 1, t0())] {
        let mut w = World::new(catalog(), t0(), 12);
        let mut unactivated = refusing.clone();
        // The first round is an unactivated host (0xC004F041), the second one whose
        // client-VL key cannot serve Server 2008 R2 (0xC004F042).
        unactivated.activated = refusing.key_groups != ["kms-b"];
        w.add_host(HostAddr::new("kms1.lab.test", 1688), unactivated);
        w.add_host(HostAddr::new("kms2.lab.test", 1688), host_settings(&["kms-b"], 2, t0()));
        w.publish("lab.test", 0, 0, 0);
        w.publish("lab.test", 1, 10, 0);
        w.default_domain = Some("lab.test".into());
        w.record_events = true;
        add_machines(&mut w, "server2008r2-standard", 10);
        w.run_until(t0().plus_minutes(1));
        // First attempts end at kms2: the 5th machine onwards activates, the first four
        // get kms2's count below 5 (0xC004F038) and stay with kms2, a proper host.
        assert_eq!(w.count_in(LicenseStatus::Licensed), 6, "the fleet activates through kms2 in its first attempt");
        assert_eq!(w.results.get(&HResult::NOT_ENOUGH_COUNT), Some(&4));
        assert_eq!(w.results.get(&HResult::NO_HOST_AVAILABLE), None);
        w.run_until(t0().plus_minutes(121));
        assert_eq!(w.count_in(LicenseStatus::Licensed), 10, "the first four retry with the cached kms2");
        assert!(w.clients.iter().all(|c| c.state().last.host.as_ref().unwrap().host == "kms2.lab.test"));
        assert!(w.clients.iter().all(|c| c.state().cached_host.as_ref().unwrap().host == "kms2.lab.test"));
        let expected = if refusing.key_groups == ["kms-b"] { HResult::HOST_NOT_ACTIVATED } else { HResult::KEY_GROUP_MISMATCH };
        let refusals = w
            .event_log
            .iter()
            .filter(|(_, _, e)| matches!(e, kmslab_core::activator::ClientEvent::RequestSent(s) if s.host.host == "kms1.lab.test" && s.result == expected))
            .count();
        assert_eq!(refusals, 10, "each machine's 12288 for kms1 carries {expected}");
        // Renewals go straight to the cached good host.
        w.run_days(30);
        assert_eq!(w.count_in(LicenseStatus::Licensed), 10);
        assert_eq!(w.answered_by[0], 10, "kms1 was asked once per machine, never again");
    }
}

#[test]
fn clock_skew_is_refused_and_a_missing_srv_record_gives_the_dns_code() {
    let mut w = world_with_one_host();
    w.record_events = true;
    let i = w.add_client("win7-enterprise", "skewed");
    w.clients[i].set_clock_offset(5 * 60 * MINUTE_MS);
    let j = w.add_client("win7-enterprise", "elsewhere");
    w.clients[j].set_domain(Some("other.test".into()));
    w.schedule(i);
    w.schedule(j);
    w.run_until(t0().plus_minutes(1));
    // Found through DNS, the only host refused: 0xC004F074, and its 12288 carries the
    // host's 0xC004F06C (KB974998).
    assert_eq!(w.clients[i].state().last.result, Some(HResult::NO_HOST_AVAILABLE));
    assert!(
        w.event_log.iter().any(|(_, c, e)| *c == i
            && matches!(e, kmslab_core::activator::ClientEvent::RequestSent(s) if s.result == HResult::INVALID_TIMESTAMP))
    );
    assert_eq!(w.clients[j].state().last.result, Some(HResult::DNS_NAME_ERROR));
    let _ = Timestamp::EPOCH;
}

//! The client state machine, one rule at a time, driven by hand (no sockets).

mod support;

use kmslab_core::activator::{Action, Activator, ClientEvent, HostOutcome, HostSource};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::rng::SplitMix64;
use kmslab_core::srv::SrvCandidate;
use kmslab_core::time::{DAY_MS, MINUTE_MS};
use kmslab_core::wire::{ErrorFrame, Response};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use support::*;

fn machine(product: &str) -> Activator {
    let c = catalog();
    Activator::new(c.product_by_name(product).unwrap().clone(), cmids(1, 77)[0], "WS-1", t0())
}

fn response_to(a: &Activator, count: u32, activation: u32, renewal: u32) -> HostOutcome {
    HostOutcome::Response(Response {
        protocol: kmslab_core::wire::KMS_PROTOCOL_V4,
        epid: "55041-00168-305-123456-03-1033-7600.0000-0012026".into(),
        cmid: a.cmid(),
        client_time: t0(),
        current_count: count,
        activation_interval: activation,
        renewal_interval: renewal,
    })
}

/// Runs the attempt that is due at `now` against one manual host answering `count`.
fn attempt_with_count(a: &mut Activator, now: Timestamp, count: u32) -> HResult {
    a.handle_timeout(now);
    let Some(Action::Send { attempt, .. }) = a.poll_action() else { panic!("expected a send at {now}") };
    let outcome = response_to(a, count, 120, 10_080);
    a.handle_host_outcome(now, attempt, outcome);
    last_result(a)
}

fn last_result(a: &mut Activator) -> HResult {
    let mut result = None;
    while let Some(e) = a.poll_event() {
        if let ClientEvent::AttemptFinished { result: r, .. } = e {
            result = Some(r);
        }
    }
    result.expect("an attempt finished")
}

#[test]
fn installing_a_key_starts_30_days_of_initial_grace_and_an_attempt_now() {
    let a = machine("win7-enterprise");
    assert_eq!(a.status(), LicenseStatus::InitialGrace);
    assert_eq!(a.minutes_remaining(t0()), 30 * 24 * 60);
    assert_eq!(a.poll_timeout(), Some(t0()));
}

#[test]
fn below_threshold_retries_every_activation_interval_then_activates_for_180_days() {
    let mut a = machine("win7-enterprise");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    assert_eq!(attempt_with_count(&mut a, t0(), 24), HResult::NOT_ENOUGH_COUNT);
    assert_eq!(a.status(), LicenseStatus::InitialGrace);
    assert_eq!(a.poll_timeout(), Some(t0().plus_minutes(120)));
    let t1 = t0().plus_minutes(120);
    assert_eq!(attempt_with_count(&mut a, t1, 25), HResult::SUCCESS);
    assert_eq!(a.status(), LicenseStatus::Licensed);
    assert_eq!(a.minutes_remaining(t1), 180 * 24 * 60);
    assert_eq!(a.poll_timeout(), Some(t1.plus_minutes(10_080)), "renewal after 7 days");
    // A renewal restarts the 180 days.
    let t2 = t1.plus_minutes(10_080);
    assert_eq!(attempt_with_count(&mut a, t2, 25), HResult::SUCCESS);
    assert_eq!(a.state().valid_until, Some(t2.plus_days(180)));
}

#[test]
fn servers_need_five_not_twenty_five() {
    let mut a = machine("server2008r2-standard");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    assert_eq!(attempt_with_count(&mut a, t0(), 4), HResult::NOT_ENOUGH_COUNT);
    assert_eq!(attempt_with_count(&mut a, t0().plus_minutes(120), 5), HResult::SUCCESS);
}

#[test]
fn the_hosts_intervals_replace_the_clients_after_any_response() {
    let mut a = machine("win7-enterprise");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    a.handle_timeout(t0());
    let Some(Action::Send { attempt, .. }) = a.poll_action() else { panic!() };
    let outcome = response_to(&a, 3, 15, 60);
    a.handle_host_outcome(t0(), attempt, outcome);
    assert_eq!((a.state().activation_interval, a.state().renewal_interval), (15, 60));
    assert_eq!(a.poll_timeout(), Some(t0().plus_minutes(15)));
}

#[test]
fn expiry_leads_to_additional_grace_then_notification_with_hourly_reminders() {
    let mut a = machine("win7-enterprise");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    assert_eq!(attempt_with_count(&mut a, t0(), 30), HResult::SUCCESS);
    // Every later attempt fails: the host is gone.
    let mut now = t0();
    let mut reminders = Vec::new();
    let mut changes = Vec::new();
    while now < t0().plus_days(212) {
        now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        while let Some(action) = a.poll_action() {
            if let Action::Send { attempt, .. } = action {
                a.handle_host_outcome(now, attempt, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
            }
        }
        while let Some(e) = a.poll_event() {
            match e {
                ClientEvent::NotificationReminder { at, reason } => reminders.push((at, reason)),
                ClientEvent::LicenseChanged { to, at, .. } => changes.push((to, at)),
                _ => {}
            }
        }
    }
    assert_eq!(changes, vec![(LicenseStatus::AdditionalGrace, t0().plus_days(180)), (LicenseStatus::Notification, t0().plus_days(210))]);
    assert_eq!(a.state().notification_reason, Some(HResult::GRACE_EXPIRED));
    assert!(reminders.len() >= 24, "hourly reminders for two days: {}", reminders.len());
    for pair in reminders.windows(2) {
        assert_eq!(pair[1].0.ms_since(pair[0].0), 60 * MINUTE_MS);
    }
    // A successful activation returns the machine to Licensed from Notification.
    let attempt = a.activate_now(now);
    let Some(Action::Send { .. }) = a.poll_action() else { panic!("expected a send") };
    let outcome = response_to(&a, 25, 120, 10_080);
    a.handle_host_outcome(now, attempt, outcome);
    let result = last_result(&mut a);
    assert_eq!(result, HResult::SUCCESS);
    assert_eq!(a.status(), LicenseStatus::Licensed);
    assert_eq!(a.state().notification_reason, None);
}

#[test]
fn initial_grace_running_out_leads_to_notification() {
    let mut a = machine("win7-enterprise");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    a.handle_timeout(t0().plus_ms(30 * DAY_MS - 1));
    assert_eq!(a.status(), LicenseStatus::InitialGrace);
    a.handle_timeout(t0().plus_days(30));
    assert_eq!(a.status(), LicenseStatus::Notification);
}

#[test]
fn rearm_gives_a_new_cmid_three_times_then_fails() {
    let mut a = machine("win7-enterprise");
    let mut rng = SplitMix64::new(1);
    let mut seen = vec![a.cmid()];
    for left in [2, 1, 0] {
        let old = a.cmid();
        let new = a.rearm(t0().plus_days(1), &mut rng).unwrap();
        assert!(!seen.contains(&new));
        seen.push(new);
        assert_eq!(a.state().previous_cmid, old);
        assert_eq!(a.state().rearm_count, left);
        assert_eq!(a.status(), LicenseStatus::InitialGrace);
        assert_eq!(a.state().grace_end, Some(t0().plus_days(31)));
    }
    assert_eq!(a.rearm(t0(), &mut rng), Err(HResult::REARM_LIMIT));
}

#[test]
fn each_client_family_rearms_as_documented_then_fails() {
    // (product, rearms): Vista Business and Server 2008 three, Vista SP1 Enterprise five
    // (Volume Activation 2.0 Operations Guide), Office 2010 five, Windows 7 three (ours).
    let cases = [
        ("win7-enterprise", 3),
        ("vista-business", 3),
        ("vista-business-n", 3),
        ("vista-enterprise", 5),
        ("vista-enterprise-n", 5),
        ("server2008-enterprise", 3),
        ("office2010-proplus", 5),
        ("office2010-visio-standard", 5),
    ];
    for (product, rearms) in cases {
        let mut a = machine(product);
        let mut rng = SplitMix64::new(2);
        for _ in 0..rearms {
            a.rearm(t0(), &mut rng).unwrap_or_else(|e| panic!("{product}: {e}"));
            assert_eq!(a.status(), LicenseStatus::InitialGrace, "{product}");
            assert_eq!(a.state().grace_end, Some(t0().plus_days(30)), "{product}: 30-day initial grace");
        }
        assert_eq!(a.rearm(t0(), &mut rng), Err(HResult::REARM_LIMIT), "{product} after {rearms} rearms");
    }
}

#[test]
fn ipk_and_upk() {
    let c = catalog();
    let mut a = machine("win7-enterprise");
    assert_eq!(a.install_key(&c, "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", t0()), Err(HResult::INVALID_PRODUCT_KEY));
    assert_eq!(a.product().unwrap().name, "win7-enterprise", "a bad key changes nothing");
    a.install_key(&c, "yc6kt-gkw9t-ytkyr-t4x34-r7vhc", t0()).unwrap();
    assert_eq!(a.product().unwrap().name, "server2008r2-standard");
    a.uninstall_product(t0());
    assert_eq!(a.status(), LicenseStatus::Unlicensed);
    assert_eq!(a.poll_timeout(), None, "no key, no attempts");
    let id = a.activate_now(t0());
    let events: Vec<_> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(events.contains(&ClientEvent::AttemptFinished { attempt: id, result: HResult::NO_PRODUCT_KEY, host: None }));
}

fn srv(priority: u16, weight: u16, host: &str) -> SrvCandidate {
    SrvCandidate { priority, weight, target: HostAddr::new(host, 1688) }
}

#[test]
fn host_choice_manual_then_cached_then_dns_with_failover() {
    let mut rng = SplitMix64::new(3);
    let mut a = machine("win7-enterprise");
    a.set_domain(Some("lab.test".into()));
    // No manual host, nothing cached: discovery first.
    let id = a.activate_now(t0());
    assert_eq!(a.poll_action(), Some(Action::Discover { attempt: id, domain: Some("lab.test".into()) }));
    a.handle_discovery(t0(), id, Ok(vec![srv(10, 0, "kms2"), srv(0, 0, "kms1")]), &mut rng);
    // Priority 0 first; it is down, so the client moves on to kms2, which answers.
    let Some(Action::Send { host, .. }) = a.poll_action() else { panic!() };
    assert_eq!(host.host, "kms1");
    a.handle_host_outcome(t0(), id, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
    let Some(Action::Send { host, .. }) = a.poll_action() else { panic!() };
    assert_eq!(host.host, "kms2");
    let r = response_to(&a, 25, 120, 10_080);
    a.handle_host_outcome(t0(), id, r);
    let sent: Vec<_> = std::iter::from_fn(|| a.poll_event())
        .filter_map(|e| match e {
            ClientEvent::RequestSent(s) => Some((s.host.host, s.result)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![("kms1".to_string(), HResult::HOST_UNREACHABLE), ("kms2".to_string(), HResult::SUCCESS)],
        "one 12288 per host tried"
    );
    assert_eq!(a.state().cached_host.as_ref().unwrap().host, "kms2");
    assert_eq!(a.state().last.source, Some(HostSource::Dns));

    // Next attempt goes straight to the cached host, no discovery.
    let id = a.activate_now(t0().plus_days(7));
    let Some(Action::Send { host, .. }) = a.poll_action() else { panic!() };
    assert_eq!(host.host, "kms2");
    // The cached host fails: discovery runs again, and the cached host is not retried.
    a.handle_host_outcome(t0().plus_days(7), id, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
    assert!(matches!(a.poll_action(), Some(Action::Discover { .. })));
    a.handle_discovery(t0().plus_days(7), id, Ok(vec![srv(0, 0, "kms1"), srv(10, 0, "kms2")]), &mut rng);
    let Some(Action::Send { host, .. }) = a.poll_action() else { panic!() };
    assert_eq!(host.host, "kms1");
    a.handle_host_outcome(t0().plus_days(7), id, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
    assert_eq!(a.poll_action(), None);
    assert_eq!(last_result(&mut a), HResult::NO_HOST_AVAILABLE, "every host failed");

    // A manual host wins over everything, and never falls back to discovery.
    a.set_manual_host(Some(HostAddr::new("pinned", 1700)));
    let id = a.activate_now(t0().plus_days(8));
    let Some(Action::Send { host, .. }) = a.poll_action() else { panic!() };
    assert_eq!(host, HostAddr::new("pinned", 1700));
    a.handle_host_outcome(t0().plus_days(8), id, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
    assert_eq!(a.poll_action(), None);
    assert_eq!(last_result(&mut a), HResult::NO_HOST_AVAILABLE);
}

#[test]
fn dns_failures_end_the_attempt_with_the_dns_code() {
    let mut rng = SplitMix64::new(4);
    for code in [HResult::DNS_NAME_ERROR, HResult::DNS_NO_RECORDS, HResult::DNS_NO_SERVERS, HResult::DNS_SERVER_FAILURE] {
        let mut a = machine("win7-enterprise");
        let id = a.activate_now(t0());
        assert!(matches!(a.poll_action(), Some(Action::Discover { .. })));
        a.handle_discovery(t0(), id, Err(code), &mut rng);
        assert_eq!(last_result(&mut a), code);
        assert_eq!(a.poll_timeout(), Some(t0().plus_minutes(120)));
    }
}

#[test]
fn caching_off_runs_discovery_every_time_and_a_refusing_host_is_not_cached() {
    let mut rng = SplitMix64::new(5);
    let mut a = machine("win7-enterprise");
    a.set_host_caching(false);
    for day in 0..3 {
        let now = t0().plus_days(day);
        let id = a.activate_now(now);
        assert!(matches!(a.poll_action(), Some(Action::Discover { .. })), "day {day}");
        a.handle_discovery(now, id, Ok(vec![srv(0, 0, "kms1")]), &mut rng);
        let Some(Action::Send { .. }) = a.poll_action() else { panic!() };
        let r = response_to(&a, 30, 120, 10_080);
        a.handle_host_outcome(now, id, r);
        assert_eq!(last_result(&mut a), HResult::SUCCESS);
        assert_eq!(a.state().cached_host, None);
    }
    a.set_host_caching(true);
    let id = a.activate_now(t0().plus_days(4));
    assert!(matches!(a.poll_action(), Some(Action::Discover { .. })));
    a.handle_discovery(t0().plus_days(4), id, Ok(vec![srv(0, 0, "kms1")]), &mut rng);
    let Some(Action::Send { .. }) = a.poll_action() else { panic!() };
    a.handle_host_outcome(t0().plus_days(4), id, refusal(&a, HResult::KEY_GROUP_MISMATCH));
    // The only candidate refused: every candidate failed.
    assert_eq!(a.poll_action(), None);
    assert_eq!(last_result(&mut a), HResult::NO_HOST_AVAILABLE);
    assert_eq!(a.state().cached_host, None);
}

fn refusal(a: &Activator, code: HResult) -> HostOutcome {
    HostOutcome::Refused(ErrorFrame { hresult: code, cmid: a.cmid(), message: String::new() })
}

/// Drains the events: the (host, result) of each 12288, the results of each 12289, and the
/// attempt's result.
fn drained(a: &mut Activator) -> (Vec<(String, HResult)>, Vec<HResult>, Option<HResult>) {
    let (mut sent, mut processed, mut finished) = (Vec::new(), Vec::new(), None);
    while let Some(e) = a.poll_event() {
        match e {
            ClientEvent::RequestSent(s) => sent.push((s.host.host, s.result)),
            ClientEvent::ResponseProcessed(p) => processed.push(p.result),
            ClientEvent::AttemptFinished { result, .. } => finished = Some(result),
            _ => {}
        }
    }
    (sent, processed, finished)
}

/// The host the pending action sends to.
fn send_target(a: &mut Activator) -> String {
    match a.poll_action() {
        Some(Action::Send { host, .. }) => host.host,
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn a_refusing_host_at_priority_0_is_dropped_and_the_good_one_at_10_activates() {
    for code in [HResult::HOST_NOT_ACTIVATED, HResult::KEY_GROUP_MISMATCH, HResult::INVALID_TIMESTAMP, HResult::RATE_LIMITED] {
        let mut rng = SplitMix64::new(6);
        let mut a = machine("win7-enterprise");
        a.set_domain(Some("lab.test".into()));
        let id = a.activate_now(t0());
        let _ = a.poll_action();
        a.handle_discovery(t0(), id, Ok(vec![srv(10, 0, "good"), srv(0, 0, "refusing")]), &mut rng);
        assert_eq!(send_target(&mut a), "refusing");
        a.handle_host_outcome(t0(), id, refusal(&a, code));
        assert_eq!(send_target(&mut a), "good", "{code}: the next candidate is tried in the same attempt");
        let r = response_to(&a, 25, 120, 10_080);
        a.handle_host_outcome(t0(), id, r);
        let (sent, processed, finished) = drained(&mut a);
        assert_eq!(
            sent,
            vec![("refusing".to_string(), code), ("good".to_string(), HResult::SUCCESS)],
            "one 12288 per host tried, carrying the host's answer"
        );
        assert_eq!(processed, vec![HResult::SUCCESS], "{code}: a refusal has no 12289");
        assert_eq!(finished, Some(HResult::SUCCESS));
        assert_eq!(a.status(), LicenseStatus::Licensed);
        assert_eq!(a.state().cached_host.as_ref().unwrap().host, "good");
        assert_eq!(a.state().last.host.as_ref().unwrap().host, "good");
    }
}

#[test]
fn a_host_whose_count_is_too_low_is_a_proper_host_and_the_client_stays_with_it() {
    let mut rng = SplitMix64::new(7);
    let mut a = machine("win7-enterprise");
    a.set_domain(Some("lab.test".into()));
    let id = a.activate_now(t0());
    let _ = a.poll_action();
    a.handle_discovery(t0(), id, Ok(vec![srv(0, 0, "low"), srv(10, 0, "other")]), &mut rng);
    assert_eq!(send_target(&mut a), "low");
    let r = response_to(&a, 3, 120, 10_080);
    a.handle_host_outcome(t0(), id, r);
    assert_eq!(a.poll_action(), None, "no other host is tried after a count");
    let (sent, processed, finished) = drained(&mut a);
    assert_eq!(sent, vec![("low".to_string(), HResult::SUCCESS)]);
    assert_eq!(processed, vec![HResult::NOT_ENOUGH_COUNT]);
    assert_eq!(finished, Some(HResult::NOT_ENOUGH_COUNT));
    assert_eq!(a.state().cached_host.as_ref().unwrap().host, "low", "a host that answered with a count is cached");
}

#[test]
fn every_candidate_refusing_or_failing_gives_0xc004f074_with_each_answer_in_12288() {
    let mut rng = SplitMix64::new(8);
    let mut a = machine("server2008r2-standard");
    a.set_domain(Some("lab.test".into()));
    let id = a.activate_now(t0());
    let _ = a.poll_action();
    a.handle_discovery(t0(), id, Ok(vec![srv(0, 0, "kms1"), srv(10, 0, "kms2"), srv(20, 0, "kms3")]), &mut rng);
    assert_eq!(send_target(&mut a), "kms1");
    a.handle_host_outcome(t0(), id, refusal(&a, HResult::HOST_NOT_ACTIVATED));
    assert_eq!(send_target(&mut a), "kms2");
    a.handle_host_outcome(t0(), id, HostOutcome::Unreachable(HResult::HOST_UNREACHABLE));
    assert_eq!(send_target(&mut a), "kms3");
    a.handle_host_outcome(t0(), id, refusal(&a, HResult::INVALID_TIMESTAMP));
    assert_eq!(a.poll_action(), None);
    let (sent, processed, finished) = drained(&mut a);
    assert_eq!(
        sent,
        vec![
            ("kms1".to_string(), HResult::HOST_NOT_ACTIVATED),
            ("kms2".to_string(), HResult::HOST_UNREACHABLE),
            ("kms3".to_string(), HResult::INVALID_TIMESTAMP),
        ]
    );
    assert!(processed.is_empty());
    assert_eq!(finished, Some(HResult::NO_HOST_AVAILABLE), "KB974998: 0xC004F074, the host's 0xC004F06C in 12288");
    assert_eq!(a.poll_timeout(), Some(t0().plus_minutes(120)));
}

#[test]
fn a_refusing_cached_host_is_forgotten_and_discovery_runs_in_the_same_attempt() {
    let mut rng = SplitMix64::new(9);
    let mut a = machine("win7-enterprise");
    a.set_domain(Some("lab.test".into()));
    let id = a.activate_now(t0());
    let _ = a.poll_action();
    a.handle_discovery(t0(), id, Ok(vec![srv(0, 0, "kms1")]), &mut rng);
    let _ = a.poll_action();
    let r = response_to(&a, 30, 120, 10_080);
    a.handle_host_outcome(t0(), id, r);
    let _ = drained(&mut a);
    assert_eq!(a.state().cached_host.as_ref().unwrap().host, "kms1");
    // kms1 lost its activation; kms2 has been published since.
    let now = t0().plus_days(7);
    let id = a.activate_now(now);
    assert_eq!(send_target(&mut a), "kms1");
    a.handle_host_outcome(now, id, refusal(&a, HResult::HOST_NOT_ACTIVATED));
    assert_eq!(a.state().cached_host, None, "a refusing cached host is forgotten");
    assert!(matches!(a.poll_action(), Some(Action::Discover { .. })), "discovery in the same attempt");
    a.handle_discovery(now, id, Ok(vec![srv(0, 0, "kms1"), srv(10, 0, "kms2")]), &mut rng);
    assert_eq!(send_target(&mut a), "kms2", "the cached host is not tried twice");
    let r = response_to(&a, 30, 120, 10_080);
    a.handle_host_outcome(now, id, r);
    let (sent, _, finished) = drained(&mut a);
    assert_eq!(sent, vec![("kms1".to_string(), HResult::HOST_NOT_ACTIVATED), ("kms2".to_string(), HResult::SUCCESS)]);
    assert_eq!(finished, Some(HResult::SUCCESS));
    assert_eq!(a.state().cached_host.as_ref().unwrap().host, "kms2");
}

#[test]
fn a_refusing_manual_host_ends_the_attempt_with_its_own_answer() {
    for code in [HResult::HOST_NOT_ACTIVATED, HResult::KEY_GROUP_MISMATCH, HResult::INVALID_TIMESTAMP] {
        let mut a = machine("server2008r2-standard");
        a.set_manual_host(Some(HostAddr::new("pinned", 1688)));
        let id = a.activate_now(t0());
        assert_eq!(send_target(&mut a), "pinned");
        a.handle_host_outcome(t0(), id, refusal(&a, code));
        assert_eq!(a.poll_action(), None, "{code}: a manual host never leads to discovery");
        let (sent, processed, finished) = drained(&mut a);
        assert_eq!(sent, vec![("pinned".to_string(), code)]);
        assert!(processed.is_empty());
        assert_eq!(finished, Some(code), "the specified KMS host's answer is the attempt's");
        assert_eq!(a.state().last.host.as_ref().unwrap().host, "pinned");
        assert_eq!(a.state().last.source, Some(HostSource::Manual));
    }
}

#[test]
fn stale_answers_are_ignored_and_state_round_trips() {
    let mut a = machine("win7-enterprise");
    a.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    let id = a.activate_now(t0());
    let _ = a.poll_action();
    let r = response_to(&a, 30, 120, 10_080);
    a.handle_host_outcome(t0(), id + 1, r);
    assert!(a.attempt_in_progress(), "an answer for another attempt is ignored");
    let copy = Activator::from_state_in(a.state().clone(), &catalog());
    assert_eq!(copy.state(), a.state());
    assert_eq!(copy.product().unwrap().name, "win7-enterprise");
    assert_ne!(a.cmid(), Uuid::nil());
}

const MAK: &str = "LABMB-CDFGH-JKMPQ-RTVWX-Y234C";

fn answer() -> kmslab_core::wire::ServiceAnswer {
    kmslab_core::wire::ServiceAnswer { confirmation_id: String::new(), remaining: 0, used: 1, blocked: false, counted: true }
}

#[test]
fn a_mak_asks_the_activation_service_once_and_is_then_licensed_for_good() {
    let mut a = machine("win7-enterprise");
    assert_eq!(a.install_mak("LABMB-CDFGH-JKMPQ-RTVWX-Y234D", t0()), Err(HResult::INVALID_PRODUCT_KEY), "a wrong check character");
    a.install_mak(MAK, t0()).unwrap();
    while a.poll_event().is_some() {}
    assert_eq!((a.status(), a.mak()), (LicenseStatus::InitialGrace, Some(MAK)));
    assert!(a.description().unwrap().ends_with(", VOLUME_MAK channel"));
    assert_eq!(a.partial_key(), Some("Y234C"));
    // No KMS attempt on its own: only the grace end is ahead.
    assert_eq!(a.poll_timeout(), Some(t0().plus_ms(30 * DAY_MS)));
    a.handle_timeout(t0().plus_ms(DAY_MS));
    assert_eq!(a.poll_action(), None);

    // A refusal ends the attempt and changes nothing.
    let id = a.activate_now(t0());
    let Some(Action::ActivateOnline { attempt, request }) = a.poll_action() else { panic!("an online activation") };
    assert_eq!(attempt, id);
    let iid = a.installation_id().unwrap().to_string();
    assert_eq!(
        request,
        kmslab_core::wire::ServiceRequest::Activate { key: MAK.into(), product: "win7-enterprise".into(), installation_id: iid }
    );
    a.handle_service_outcome(t0(), attempt, Err(HResult::MAK_LIMIT_EXCEEDED));
    assert_eq!(last_result(&mut a), HResult::MAK_LIMIT_EXCEEDED);
    assert_eq!(a.status(), LicenseStatus::InitialGrace);
    assert_eq!(a.state().next_attempt, None, "a MAK machine does not retry by itself");

    // Success: Licensed, no expiry, nothing scheduled, 180 days later still Licensed.
    let id = a.activate_now(t0());
    assert!(matches!(a.poll_action(), Some(Action::ActivateOnline { .. })));
    a.handle_service_outcome(t0(), id, Ok(answer()));
    assert_eq!(last_result(&mut a), HResult::SUCCESS);
    assert!(a.permanently_activated());
    assert_eq!(a.poll_timeout(), None);
    a.handle_timeout(t0().plus_ms(400 * DAY_MS));
    assert_eq!(a.status(), LicenseStatus::Licensed);
    // A late answer to an old attempt is ignored.
    a.handle_service_outcome(t0(), id, Err(HResult::MAK_BLOCKED));
    assert!(a.permanently_activated());

    // Back to a KMS client with a GVLK.
    a.install_key(&catalog(), "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH", t0()).unwrap();
    assert_eq!((a.mak(), a.permanently_activated(), a.status()), (None, false, LicenseStatus::InitialGrace));
    assert!(a.description().unwrap().ends_with("VOLUME_KMSCLIENT channel"));
}

#[test]
fn a_blocked_mak_makes_an_activated_machine_non_genuine_until_a_new_mak() {
    let mut a = machine("win7-enterprise");
    a.install_mak(MAK, t0()).unwrap();
    let id = a.activate_now(t0());
    assert!(matches!(a.poll_action(), Some(Action::ActivateOnline { .. })));
    a.handle_service_outcome(t0(), id, Ok(answer()));
    assert!(a.permanently_activated());
    let blocked = kmslab_core::wire::ServiceAnswer { blocked: true, counted: false, ..answer() };

    // /ato again validates the key; no answer changes nothing.
    let id = a.activate_now(t0());
    let Some(Action::ActivateOnline { request, .. }) = a.poll_action() else { panic!("a validation") };
    assert_eq!(request, kmslab_core::wire::ServiceRequest::KeyInfo { key: MAK.into() });
    a.handle_service_outcome(t0(), id, Err(HResult::HOST_UNREACHABLE));
    assert_eq!(last_result(&mut a), HResult::SUCCESS);
    assert!(a.permanently_activated());

    // Blocked: 30 days of non-genuine grace, then Notification (non-genuine).
    let day1 = t0().plus_ms(DAY_MS);
    let id = a.activate_now(day1);
    a.poll_action();
    a.handle_service_outcome(day1, id, Ok(blocked.clone()));
    let mut genuine = Vec::new();
    let mut result = None;
    while let Some(e) = a.poll_event() {
        match e {
            ClientEvent::Genuine { event_id, result, message, .. } => genuine.push((event_id, result, message)),
            ClientEvent::AttemptFinished { result: r, .. } => result = Some(r),
            _ => {}
        }
    }
    assert_eq!(result, Some(HResult::NONGENUINE_GRACE_PERIOD));
    assert_eq!(
        genuine.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
        [(8208, HResult::VALIDATION_BLOCKED_PRODUCT_KEY), (8209, HResult::VALIDATION_BLOCKED_PRODUCT_KEY)]
    );
    assert!(genuine[0].2.starts_with("Acquisition of genuine ticket failed (hr=0xC004C4A2)"), "{}", genuine[0].2);
    assert!(
        genuine[1].2.starts_with("Genuine state set to non-genuine (0x00000000)") && genuine[1].2.contains("Y234C"),
        "{}",
        genuine[1].2
    );
    assert_eq!(a.status(), LicenseStatus::NonGenuineGrace);
    assert!(!a.permanently_activated());
    assert_eq!(a.minutes_remaining(day1), 30 * 24 * 60);
    assert_eq!(a.poll_timeout(), Some(day1.plus_ms(30 * DAY_MS)));
    a.handle_timeout(day1.plus_ms(30 * DAY_MS));
    assert_eq!((a.status(), a.state().notification_reason), (LicenseStatus::Notification, Some(HResult::NOT_GENUINE)));
    let later = day1.plus_ms(31 * DAY_MS);
    let id = a.activate_now(later);
    a.poll_action();
    a.handle_service_outcome(later, id, Ok(blocked));
    assert_eq!(last_result(&mut a), HResult::NONGENUINE_GRACE_EXPIRED);

    // A new MAK, /ato: activated for good again.
    const NEW: &str = "LABM6-Y6JKP-FPP9X-MYG8Q-CKMM2";
    a.install_mak(NEW, later).unwrap();
    let id = a.activate_now(later);
    let Some(Action::ActivateOnline { request, .. }) = a.poll_action() else { panic!("an activation") };
    assert!(matches!(request, kmslab_core::wire::ServiceRequest::Activate { ref key, .. } if key == NEW));
    a.handle_service_outcome(later, id, Ok(answer()));
    assert_eq!(last_result(&mut a), HResult::SUCCESS);
    assert!(a.permanently_activated());
}

#[test]
fn phone_activation_checks_the_cid_offline() {
    let mut a = machine("win7-enterprise");
    assert_eq!(a.deposit_cid("0", t0()).unwrap_err().0, HResult::INVALID_PRODUCT_KEY, "a GVLK does not phone-activate");
    a.install_mak(MAK, t0()).unwrap();
    let iid = a.installation_id().unwrap();
    assert_eq!(iid, kmslab_core::install_id::installation_id(MAK, a.cmid()));
    let other = kmslab_core::install_id::installation_id(MAK, Uuid::from_u128(5)).confirmation_id().to_string();
    assert_eq!(a.deposit_cid(&other, t0()).unwrap_err().0, HResult::CID_MISMATCHED);
    assert_eq!(a.status(), LicenseStatus::InitialGrace);
    a.deposit_cid(&iid.confirmation_id().to_string(), t0()).unwrap();
    assert!(a.permanently_activated());
}

#[test]
fn an_oem_machine_without_a_marker_fails_kms_with_f035_but_office_is_not_checked() {
    let mut a = machine("win7-enterprise");
    a.set_slic_without_marker(true);
    a.handle_timeout(t0());
    assert_eq!(a.poll_action(), None, "no host is asked");
    assert_eq!(last_result(&mut a), HResult::VL_NOT_WINDOWS_SLP);
    let office = catalog().products().iter().find(|p| p.client_family == kmslab_core::catalog::ClientFamily::Office2010).unwrap().clone();
    let mut o = Activator::new(office, cmids(1, 78)[0], "WS-2", t0());
    o.set_slic_without_marker(true);
    o.set_manual_host(Some(HostAddr::new("kms1", 1688)));
    o.handle_timeout(t0());
    assert!(matches!(o.poll_action(), Some(Action::Send { .. })));
    // A MAK activates the OEM machine.
    a.install_mak(MAK, t0()).unwrap();
    let id = a.activate_now(t0());
    assert!(matches!(a.poll_action(), Some(Action::ActivateOnline { .. })));
    a.handle_service_outcome(t0(), id, Ok(answer()));
    assert!(a.permanently_activated());
}

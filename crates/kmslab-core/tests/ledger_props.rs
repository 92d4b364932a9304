//! Property tests of the host ledger: peer-supplied times at the edges of `i64`, and the
//! two-step admission (a rolled-back request leaves the ledger as if it never arrived).

mod support;

use kmslab_core::Timestamp;
use kmslab_core::hresult::HResult;
use kmslab_core::ledger::{Ledger, MAX_CLOCK_SKEW_MS};
use kmslab_core::wire::Request;
use proptest::prelude::*;
use support::*;

/// Client times a hostile peer may send: the ends of `i64`, around them, and around the
/// 4-hour window of the host's clock.
fn client_time() -> impl Strategy<Value = i64> {
    let now = t0().as_unix_ms();
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(i64::MAX - 1),
        Just(0),
        Just(now - MAX_CLOCK_SKEW_MS - 1),
        Just(now + MAX_CLOCK_SKEW_MS + 1),
        Just(now - MAX_CLOCK_SKEW_MS),
        Just(now + MAX_CLOCK_SKEW_MS),
        (i64::MIN..i64::MIN + 1_000_000_000),
        (i64::MAX - 1_000_000_000..=i64::MAX),
        any::<i64>(),
        (now - 2 * MAX_CLOCK_SKEW_MS..now + 2 * MAX_CLOCK_SKEW_MS),
    ]
}

/// What a caller can see of a ledger: counters and every group's count, cap and N-policy.
fn observable(l: &Ledger, now: Timestamp) -> String {
    format!("{:?} {:?}", l.counters(), l.group_counts(now))
}

/// A request of `product` from `cmid` at `at`, without parsing the catalog again for each.
fn request_at(template: &Request, at: Timestamp) -> Request {
    Request { client_time: at, ..template.clone() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any client time: accepted exactly when within 4 hours of the host's clock, refused
    /// with 0xC004F06C otherwise, never a panic; a refused one does not enter the count.
    #[test]
    fn client_time_is_accepted_exactly_within_four_hours(ms in client_time()) {
        let mut l = ledger(&["kms-c"]);
        let now = t0();
        let cmid = cmids(1, 7)[0];
        let req = request("win7-enterprise", cmid, Timestamp::from_unix_ms(ms));
        let within = (i128::from(ms) - i128::from(now.as_unix_ms())).abs() <= i128::from(MAX_CLOCK_SKEW_MS);
        match l.handle_request(&req, now) {
            Ok(resp) => {
                prop_assert!(within, "client time {ms} accepted at {}", now.as_unix_ms());
                prop_assert_eq!(resp.current_count, 1);
            }
            Err(refusal) => {
                prop_assert!(!within, "client time {ms} refused: {refusal:?}");
                prop_assert_eq!(refusal.hresult, HResult::INVALID_TIMESTAMP);
                prop_assert_eq!(l.count(&req.kms_counted_id, now), 0);
            }
        }
    }

    /// Host clocks at the edges too (a simulated origin far away): never a panic.
    #[test]
    fn extreme_host_and_client_times_never_panic(client in client_time(), host in client_time()) {
        let mut l = ledger(&["kms-c"]);
        let host = Timestamp::from_unix_ms(host);
        let req = request("win7-enterprise", cmids(1, 8)[0], Timestamp::from_unix_ms(client));
        let _ = l.handle_request(&req, host);
        let _ = l.group_counts(host);
        l.restore_cmid(req.kms_counted_id, req.cmid, 25, Timestamp::from_unix_ms(client), host);
        let _ = l.count(&req.kms_counted_id, host);
    }

    /// Some requests committed, the rest rolled back, in any interleaving: the ledger ends
    /// exactly where the committed requests alone would have taken it. Ten CMIDs stay
    /// within every cap (at least 10); at the cap, which CMID is least recently seen can
    /// depend on what was in flight, as on any host answering concurrent requests.
    #[test]
    fn rolled_back_admissions_leave_no_trace(
        plan in proptest::collection::vec((0usize..10, any::<bool>(), 0usize..3, 0u8..3), 1..60),
    ) {
        let products = ["win7-enterprise", "server2008r2-standard", "office2010-proplus"];
        let ids = cmids(10, 11);
        let templates: Vec<Vec<Request>> =
            products.iter().map(|p| ids.iter().map(|c| request(p, *c, t0())).collect()).collect();
        let mut tried = ledger(&["kms-c", "office-2010"]);
        let mut committed_only = ledger(&["kms-c", "office-2010"]);
        let mut in_flight = Vec::new();
        for (step, &(who, stored, product, settle_after)) in plan.iter().enumerate() {
            let now = t0().plus_minutes(step as i64);
            let req = request_at(&templates[product][who], now);
            in_flight.push((tried.admit(&req, now), stored, req, now));
            // Settle a few of the oldest in flight: commits and rollbacks interleave with
            // later admissions as registry answers do.
            for _ in 0..settle_after.min(in_flight.len() as u8) {
                let (admission, stored, req, now) = in_flight.remove(0);
                if stored {
                    let answered = tried.commit(admission);
                    let expected = committed_only.handle_request(&req, now);
                    prop_assert_eq!(answered.is_ok(), expected.is_ok());
                } else {
                    tried.roll_back(admission);
                }
            }
        }
        for (admission, stored, req, now) in in_flight {
            if stored {
                tried.commit(admission).ok();
                committed_only.handle_request(&req, now).ok();
            } else {
                tried.roll_back(admission);
            }
        }
        let end = t0().plus_minutes(plan.len() as i64);
        // Counts, caps and counters agree with the committed requests alone. (The count a
        // committed request was *answered* with may include requests still in flight then,
        // as on any host that answers concurrent requests.)
        prop_assert_eq!(tried.counters(), committed_only.counters());
        prop_assert_eq!(observable(&tried, end), observable(&committed_only, end));
    }
}

#[test]
fn a_rolled_back_admission_does_not_raise_the_count_the_next_client_gets() {
    let mut l = ledger(&["kms-c"]);
    let ids = cmids(3, 12);
    let now = t0();
    let first = l.admit(&request("win7-enterprise", ids[0], now), now);
    assert_eq!(l.commit(first).unwrap().current_count, 1);
    // The registry refuses the second: it is taken back.
    let second = l.admit(&request("win7-enterprise", ids[1], now), now);
    assert_eq!(second.outcome().as_ref().unwrap().current_count, 2);
    l.roll_back(second);
    // The next client is told 2, not 3.
    assert_eq!(l.handle_request(&request("win7-enterprise", ids[2], now), now).unwrap().current_count, 2);
    assert_eq!(l.counters().total, 2);
    assert_eq!(l.counters().failed, 0);
}

#[test]
fn a_rolled_back_client_request_does_not_raise_the_cap() {
    // Servers (N=5): cap 10. A Windows client (N=25) whose write failed must not lift it.
    let mut l = ledger(&["kms-c"]);
    let ids = cmids(13, 13);
    let now = t0();
    for c in &ids[..12] {
        l.handle_request(&request("server2008r2-standard", *c, now), now).unwrap();
    }
    let group = request("server2008r2-standard", ids[0], now).kms_counted_id;
    assert_eq!(l.count(&group, now), 10);
    let client = l.admit(&request("win7-enterprise", ids[12], now), now);
    assert_eq!(client.outcome().as_ref().unwrap().current_count, 11);
    l.roll_back(client);
    assert_eq!(l.count(&group, now), 10);
    let caps: Vec<_> = l.group_counts(now).into_iter().filter(|g| g.kms_counted_id == group).map(|g| (g.cap, g.max_n_policy)).collect();
    assert_eq!(caps, vec![(10, 5)]);
}

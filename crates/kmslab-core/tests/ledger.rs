//! Table-driven checks of the host ledger against every number in docs/kms-behaviour.md.

mod support;

use kmslab_core::hresult::HResult;
use kmslab_core::ledger::{Counters, MAX_N_POLICY};
use kmslab_core::time::{HOUR_MS, MINUTE_MS};
use kmslab_core::{LicenseStatus, Uuid};
use support::*;

/// Sends one request per CMID at `t0()` and returns the count the last one got.
fn count_after(product: &str, n: usize) -> u32 {
    let mut l = ledger(&["kms-c", "office-2010"]);
    let mut last = 0;
    for cmid in cmids(n, 1) {
        last = l.handle_request(&request(product, cmid, t0()), t0()).unwrap().current_count;
    }
    last
}

#[test]
fn count_is_the_number_of_distinct_cmids_including_the_requester() {
    // (product, distinct machines, expected count, meets threshold?)
    let cases = [
        ("win7-enterprise", 24, 24, false),
        ("win7-enterprise", 25, 25, true),
        ("server2008r2-standard", 4, 4, false),
        ("server2008r2-standard", 5, 5, true),
        ("office2010-proplus", 5, 5, true),
        ("vista-enterprise", 24, 24, false),
        ("vista-business", 25, 25, true),
        ("server2008-standard", 4, 4, false),
        ("server2008-datacenter-no-hyperv", 5, 5, true),
        ("office2010-visio-premium", 4, 4, false),
        ("office2010-word", 5, 5, true),
    ];
    let catalog = catalog();
    for (product, n, expected, meets) in cases {
        let count = count_after(product, n);
        assert_eq!(count, expected, "{product} x{n}");
        let required = catalog.product_by_name(product).unwrap().required_count;
        assert_eq!(count >= required, meets, "{product} x{n} against {required}");
    }
}

#[test]
fn vista_windows_7_and_both_servers_share_one_count_and_office_has_its_own() {
    let mut l = ledger(&["kms-c", "office-2010"]);
    let ids = cmids(6, 13);
    let products = ["vista-business", "win7-enterprise", "server2008-enterprise", "server2008r2-web", "vista-enterprise-n"];
    for (i, (p, c)) in products.iter().zip(&ids).enumerate() {
        assert_eq!(l.handle_request(&request(p, *c, t0()), t0()).unwrap().current_count, i as u32 + 1, "{p}");
    }
    let got = l.handle_request(&request("office2010-project-standard", ids[5], t0()), t0()).unwrap().current_count;
    assert_eq!(got, 1, "Office 2010 products are counted apart from Windows");
}

#[test]
fn duplicates_count_once() {
    let mut l = ledger(&["kms-b"]);
    let cmid = cmids(1, 2)[0];
    for i in 0..30 {
        let now = t0().plus_minutes(i);
        assert_eq!(l.handle_request(&request("win7-enterprise", cmid, now), now).unwrap().current_count, 1);
    }
}

#[test]
fn the_cap_is_twice_the_highest_n_policy_seen() {
    // 60 distinct Windows 7 clients (N=25): the count stops at 50.
    assert_eq!(count_after("win7-enterprise", 60), 50);
    // Only servers (N=5): the cap is 10.
    assert_eq!(count_after("server2008r2-standard", 60), 10);
    // Servers first, then one client raises the cap to 50 from then on.
    let mut l = ledger(&["kms-b"]);
    let ids = cmids(40, 3);
    for c in &ids[..20] {
        l.handle_request(&request("server2008r2-standard", *c, t0()), t0()).unwrap();
    }
    assert_eq!(l.count(&catalog().counted_groups()[0].kms_counted_id, t0()), 10);
    let mut last = 0;
    for c in &ids[20..] {
        last = l.handle_request(&request("win7-enterprise", *c, t0()), t0()).unwrap().current_count;
    }
    assert_eq!(last, 30, "10 servers kept + 20 clients, under the new cap of 50");
}

#[test]
fn the_least_recently_seen_drop_out_first() {
    let mut l = ledger(&["kms-b"]);
    let ids = cmids(11, 4);
    for (i, c) in ids.iter().enumerate() {
        let now = t0().plus_minutes(i as i64);
        l.handle_request(&request("server2008r2-standard", *c, now), now).unwrap();
    }
    // Cap 10: the first CMID was dropped. It comes back as new and evicts the second.
    let now = t0().plus_minutes(20);
    assert_eq!(l.handle_request(&request("server2008r2-standard", ids[0], now), now).unwrap().current_count, 10);
    // The most recent ones are still there: repeating them does not change the count.
    for c in &ids[2..] {
        assert_eq!(l.handle_request(&request("server2008r2-standard", *c, now), now).unwrap().current_count, 10);
    }
}

#[test]
fn cmids_age_out_after_30_days() {
    // (day of the second request, expected count): day 29 still counts the first, day 31 not.
    for (day, expected) in [(29, 2), (30, 1), (31, 1)] {
        let mut l = ledger(&["kms-b"]);
        let ids = cmids(2, 5);
        l.handle_request(&request("win7-enterprise", ids[0], t0()), t0()).unwrap();
        let later = t0().plus_days(day);
        let got = l.handle_request(&request("win7-enterprise", ids[1], later), later).unwrap().current_count;
        assert_eq!(got, expected, "day {day}");
    }
}

#[test]
fn office_is_counted_separately() {
    let mut l = ledger(&["kms-b", "office-2010"]);
    for c in cmids(7, 6) {
        l.handle_request(&request("win7-enterprise", c, t0()), t0()).unwrap();
    }
    let got = l.handle_request(&request("office2010-proplus", cmids(1, 7)[0], t0()), t0()).unwrap().current_count;
    assert_eq!(got, 1);
}

#[test]
fn refusals_carry_the_reference_codes() {
    let cmid = cmids(1, 8)[0];
    let check = |groups: &[&str], activated: bool, mutate: &dyn Fn(&mut kmslab_core::wire::Request), expected: Option<HResult>| {
        let mut s = settings(groups);
        s.activated = activated;
        let mut l = kmslab_core::ledger::Ledger::new(s, catalog());
        let mut req = request("win7-enterprise", cmid, t0());
        mutate(&mut req);
        let got = l.handle_request(&req, t0()).err().map(|r| r.hresult);
        assert_eq!(got, expected, "{req:?}");
        let c = l.counters();
        assert_eq!((c.total, c.failed), (1, u64::from(expected.is_some())));
    };
    check(&["kms-b"], true, &|_| {}, None);
    check(&["kms-b"], false, &|_| {}, Some(HResult::HOST_NOT_ACTIVATED));
    check(&["kms-b"], true, &|r| r.n_policy = MAX_N_POLICY, None);
    check(&["kms-b"], true, &|r| r.n_policy = MAX_N_POLICY + 1, Some(HResult::INVALID_DATA));
    check(&["kms-b"], true, &|r| r.n_policy = 0, Some(HResult::INVALID_DATA));
    check(&["kms-b"], true, &|r| r.cmid = Uuid::nil(), Some(HResult::INVALID_DATA));
    check(&["kms-b"], true, &|r| r.activation_id = Uuid::from_u128(1), Some(HResult::KEY_GROUP_MISMATCH));
    check(&["kms-b"], true, &|r| r.kms_counted_id = Uuid::from_u128(1), Some(HResult::KEY_GROUP_MISMATCH));
    // Clock skew: 3h59 either way is fine, 4h01 is not.
    for (offset, expected) in [(3 * HOUR_MS + 59 * MINUTE_MS, None), (4 * HOUR_MS + MINUTE_MS, Some(HResult::INVALID_TIMESTAMP))] {
        check(&["kms-b"], true, &|r| r.client_time = t0().plus_ms(offset), expected);
        check(&["kms-b"], true, &|r| r.client_time = t0().plus_ms(-offset), expected);
    }
}

#[test]
fn each_key_group_against_each_product() {
    // (host key group, products it serves), from docs/kms-behaviour.md "Host key groups" and
    // Microsoft's product key groups: Vista and Windows 7 clients everywhere; Server 2008
    // editions in the same Groups A, B and C as their 2008 R2 counterparts.
    let clients = [
        "win7-professional",
        "win7-professional-n",
        "win7-professional-e",
        "win7-enterprise",
        "win7-enterprise-n",
        "win7-enterprise-e",
        "vista-business",
        "vista-business-n",
        "vista-enterprise",
        "vista-enterprise-n",
    ];
    let group_a = ["server2008r2-web", "server2008r2-hpc", "server2008-web", "server2008-hpc"];
    let group_b = [
        "server2008r2-standard",
        "server2008r2-enterprise",
        "server2008-standard",
        "server2008-standard-no-hyperv",
        "server2008-enterprise",
        "server2008-enterprise-no-hyperv",
    ];
    let group_c = [
        "server2008r2-datacenter",
        "server2008r2-itanium",
        "server2008-datacenter",
        "server2008-datacenter-no-hyperv",
        "server2008-itanium",
    ];
    let office = [
        "office2010-proplus",
        "office2010-standard",
        "office2010-project-professional",
        "office2010-project-standard",
        "office2010-visio-premium",
        "office2010-visio-professional",
        "office2010-visio-standard",
        "office2010-access",
        "office2010-excel",
        "office2010-sharepoint-workspace",
        "office2010-infopath",
        "office2010-onenote",
        "office2010-outlook",
        "office2010-powerpoint",
        "office2010-publisher",
        "office2010-word",
    ];
    let serves = |g: &str| -> Vec<&str> {
        match g {
            "client-vl" => clients.to_vec(),
            "kms-a" => [&clients[..], &group_a[..]].concat(),
            "kms-b" => [&clients[..], &group_a[..], &group_b[..]].concat(),
            "kms-c" => [&clients[..], &group_a[..], &group_b[..], &group_c[..]].concat(),
            "office-2010" => office.to_vec(),
            _ => unreachable!(),
        }
    };
    let catalog = catalog();
    // Every product of the catalog is in the table: a new product cannot skip the matrix.
    let listed: Vec<&str> = [&clients[..], &group_a[..], &group_b[..], &group_c[..], &office[..]].concat();
    for product in catalog.products() {
        assert!(listed.contains(&product.name.as_str()), "{} is missing from the key-group matrix", product.name);
    }
    assert_eq!(listed.len(), catalog.products().len());
    for group in ["client-vl", "kms-a", "kms-b", "kms-c", "office-2010"] {
        for product in catalog.products() {
            let mut l = ledger(&[group]);
            let got = l.handle_request(&request(&product.name, cmids(1, 9)[0], t0()), t0());
            let expected_ok = serves(group).contains(&product.name.as_str());
            match got {
                Ok(_) => assert!(expected_ok, "{group} must not serve {}", product.name),
                Err(r) => {
                    assert!(!expected_ok, "{group} must serve {}", product.name);
                    assert_eq!(r.hresult, HResult::KEY_GROUP_MISMATCH);
                }
            }
        }
    }
}

#[test]
fn counters_track_totals_failures_and_license_status() {
    let mut l = ledger(&["kms-a"]);
    let ids = cmids(3, 10);
    let mut r = request("win7-enterprise", ids[0], t0());
    r.license_status = LicenseStatus::Licensed;
    l.handle_request(&r, t0()).unwrap();
    let mut r = request("server2008r2-datacenter", ids[1], t0());
    r.license_status = LicenseStatus::Notification;
    assert!(l.handle_request(&r, t0()).is_err());
    l.record_malformed();
    let c: Counters = *l.counters();
    assert_eq!((c.total, c.failed), (3, 2));
    assert_eq!(c.with_status(LicenseStatus::Licensed), 1);
    assert_eq!(c.with_status(LicenseStatus::Notification), 1);
    assert_eq!(c.by_status.iter().sum::<u64>(), 2, "malformed requests have no status");
}

#[test]
fn the_response_carries_the_host_settings_and_echoes_the_request() {
    let mut l = ledger(&["kms-b"]);
    l.settings_mut().activation_interval = 15;
    l.settings_mut().renewal_interval = 43_200;
    let req = request("win7-enterprise", cmids(1, 11)[0], t0().plus_minutes(3));
    let resp = l.handle_request(&req, t0()).unwrap();
    assert_eq!((resp.activation_interval, resp.renewal_interval), (15, 43_200));
    assert_eq!((resp.cmid, resp.client_time, resp.protocol), (req.cmid, req.client_time, req.protocol));
    assert_eq!(resp.epid, l.settings().epid);
}

#[test]
fn restored_cmids_count_only_within_the_window() {
    let mut l = ledger(&["kms-b"]);
    let windows = catalog().counted_group_by_name("windows").unwrap().kms_counted_id;
    let ids = cmids(3, 12);
    l.restore_cmid(windows, ids[0], 25, t0().plus_days(-10), t0());
    l.restore_cmid(windows, ids[1], 25, t0().plus_days(-31), t0());
    let got = l.handle_request(&request("win7-enterprise", ids[2], t0()), t0()).unwrap().current_count;
    assert_eq!(got, 2);
}

#[test]
fn an_admission_activates_once_the_count_reaches_the_requested_n_policy() {
    let mut l = ledger(&["kms-c"]);
    let ids = cmids(5, 41);
    for (i, c) in ids.iter().enumerate() {
        let admission = l.admit(&request("server2008r2-standard", *c, t0()), t0());
        assert_eq!(admission.activates(), i + 1 >= 5, "request {}", i + 1);
        let _ = l.commit(admission);
    }
    let refused = l.admit(&request("office2010-proplus", ids[0], t0()), t0());
    assert!(refused.outcome().is_err() && !refused.activates(), "a refusal never activates");
    l.roll_back(refused);
}

#[test]
fn restored_counters_include_malformed_frames_and_restored_cmids_use_the_groups_n_policy() {
    let mut l = ledger(&["kms-c"]);
    let stored = Counters { total: 10, failed: 2, by_status: [0, 8, 0, 0, 0, 0, 0] };
    l.restore_counters(stored, 3);
    assert_eq!((l.counters().total, l.counters().failed, l.counters().by_status), (13, 5, stored.by_status));
    let catalog = catalog();
    let windows = catalog.product_by_name("win7-enterprise").unwrap().kms_counted_id;
    assert_eq!(l.group_n_policy(&windows), Some(25), "the group's highest threshold (client editions)");
    assert_eq!(l.group_n_policy(&Uuid::from_u128(99)), None);
    assert!(l.restore_counted_cmid(windows, Uuid::from_u128(5), t0(), t0()));
    assert!(!l.restore_counted_cmid(Uuid::from_u128(99), Uuid::from_u128(6), t0(), t0()), "no product: nothing to count against");
    let counts = l.group_counts(t0());
    let g = counts.iter().find(|g| g.kms_counted_id == windows).unwrap();
    assert_eq!((g.count, g.max_n_policy), (1, 25));
}

//! `kmslab sim` behaviour: scenarios from docs/scenarios, determinism, validation, plot.

use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use kmslab_sim::{Scenario, run};

fn load(name: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios").join(name);
    Scenario::from_toml(&std::fs::read_to_string(path).unwrap(), &Catalog::builtin()).unwrap()
}

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::builtin())
}

#[test]
fn same_seed_and_scenario_give_byte_identical_output() {
    // Two hosts of equal weight: which host each request goes to is drawn from the seed.
    let text = "days = 40\n[[host]]\nname = \"kms1\"\nweight = 50\n[[host]]\nname = \"kms2\"\nweight = 50\n\
                [[cohort]]\nproduct = \"win7-enterprise\"\ncount = 60\nhost_caching = false\n";
    let s = Scenario::from_toml(text, &Catalog::builtin()).unwrap();
    let a = run(&s, catalog(), 7);
    let b = run(&s, catalog(), 7);
    assert!(a.timeline_csv() == b.timeline_csv(), "timeline differs between identical runs");
    assert_eq!(a.summary_json(), b.summary_json());
    assert!(kmslab_sim::plot::svg(&a, "t") == kmslab_sim::plot::svg(&b, "t"), "plot differs between identical runs");
    let c = run(&s, catalog(), 8);
    assert!(a.summary_json() != c.summary_json(), "another seed, another split: {}", a.summary_json());
}

#[test]
fn below_threshold_nobody_activates_until_the_25th_machine() {
    let out = run(&load("below-threshold.toml"), catalog(), 1);
    let day = |d: u32| &out.timeline[d as usize - 1];
    assert_eq!(day(19).licensed, 0);
    assert_eq!(day(19).hosts[0].counts[0], 20);
    assert_eq!(day(21).licensed, 30, "everyone within a day of the newcomers");
    assert!(out.summary.errors["0xC004F038"] > 200);
    // Initial grace of the first 20 ran out on day 30? No: they activated on day 20.
    assert_eq!(out.summary.notification, 0);
}

#[test]
fn cloned_machines_count_as_few_until_rearmed() {
    let out = run(&load("cloned-image.toml"), catalog(), 1);
    let day = |d: u32| &out.timeline[d as usize - 1];
    assert_eq!(day(10).hosts[0].counts[0], 4, "40 clones of 4 images");
    assert_eq!(day(10).licensed, 0);
    assert_eq!(day(11).licensed, 40);
}

#[test]
fn failover_keeps_clients_licensed_and_the_restarted_host_counts_again() {
    let out = run(&load("two-hosts-failover.toml"), catalog(), 3);
    let day = |d: u32| &out.timeline[d as usize - 1];
    assert_eq!(day(59).licensed, 100);
    assert!(!day(61).hosts[0].up && day(61).hosts[1].up);
    // During the outage the clients renew through kms2; nobody leaves Licensed.
    assert!((60..=74).all(|d| day(d).licensed == 100));
    assert!(day(74).hosts[1].counts[0] >= 50, "kms2 collected the renewals: {}", day(74).hosts[1].counts[0]);
    // The restart on day 120 empties kms1's count; renewals rebuild it within a week.
    assert!(day(121).hosts[0].counts[0] < day(119).hosts[0].counts[0]);
    assert!(day(128).hosts[0].counts[0] >= 25);
    assert_eq!(out.summary.licensed, 100);
    assert_eq!(out.summary.clients, 100);
    assert!(out.summary.answered_by["kms2"] > 0);
}

#[test]
fn the_summary_has_the_interfaces_md_shape() {
    let out = run(&load("below-threshold.toml"), catalog(), 1);
    let v: serde_json::Value = serde_json::from_str(&out.summary_json()).unwrap();
    for key in ["clients", "licensed", "initial_grace", "additional_grace", "notification", "unlicensed", "errors", "requests"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["clients"], 30);
}

#[test]
fn bad_scenarios_name_the_key() {
    let c = Catalog::builtin();
    let cases = [
        ("days = 10\n[[host]]\nname = \"k\"\n[[cohort]]\nproduct = \"win99\"\ncount = 1\n", "`product`"),
        ("days = 10\n[[host]]\nname = \"k\"\nkey_groups = [\"kms-z\"]\n", "`key_groups`"),
        ("days = 10\n[[host]]\nname = \"k\"\nactivation_interval = 5\n", "activation_interval"),
        ("days = 0\n[[host]]\nname = \"k\"\n", "`days`"),
        ("days = 10\n", "[[host]]"),
        ("days = 10\ncolour = 1\n[[host]]\nname = \"k\"\n", "colour"),
        ("days = 10\n[[host]]\nname = \"k\"\noutages = [[5, 5]]\n", "`outages`"),
        (
            "days = 10\n[[host]]\nname = \"k\"\n[[cohort]]\nproduct = \"win7-enterprise\"\ncount = 1\nmanual_host = \"nope\"\n",
            "`manual_host`",
        ),
    ];
    for (text, needle) in cases {
        let e = Scenario::from_toml(text, &c).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} should name {needle}");
    }
}

#[test]
fn the_plot_draws_hosts_thresholds_and_states_with_labels() {
    let out = run(&load("two-hosts-failover.toml"), catalog(), 3);
    let svg = kmslab_sim::plot::svg(&out, "two hosts");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for needle in ["25: client editions activate", "5: servers and Office activate", "kms1 (", "kms2 (", "Licensed (100)"] {
        assert!(svg.contains(needle), "plot lacks {needle}");
    }
    // kms1 is down on days 60-74: a band, and its line in two pieces around it.
    assert!(svg.contains("<title>kms1 down, days 61-74</title>"), "no outage band:\n{svg}");
    assert!(!svg.contains("kms2 down"), "kms2 was never down");
    assert_eq!(svg.matches("<polyline").count(), 2 + 1 + 2, "kms1 in two pieces, kms2, Licensed, Initial grace");
}

#[test]
fn a_mak_rollout_stops_when_the_key_is_used_up_and_resumes_when_activations_are_added() {
    let out = run(&load("mak-rollout.toml"), catalog(), 1);
    let day = |d: u32| &out.timeline[d as usize - 1];
    let mak = |d: u32| &day(d).maks[0];
    // 40 activations for 60 machines joining over 20 days: the key is used up on the way.
    assert_eq!(mak(1).name, "rollout");
    assert_eq!((mak(25).remaining, mak(25).used), (0, 40));
    // The 30 KMS clients and the 40 activated MAK machines are Licensed; 20 wait in grace.
    assert_eq!(day(25).licensed, 70, "{:?}", day(25));
    assert_eq!(day(25).initial_grace, 20, "{:?}", day(25));
    // Their retries fail with 0xC004C020 every day, and those whose 30 days ran out are in
    // Notification before the Activation Center adds more.
    assert!(out.summary.errors["0xC004C020"] >= 20 * 20, "{:?}", out.summary.errors);
    assert!(day(49).notification > 0, "{:?}", day(49));
    assert_eq!(day(49).licensed, 70);
    // 30 added on day 50 (the 51st row: rows are the ends of days 0, 1, ...): the rollout
    // resumes that day, 20 used, 10 left, everyone Licensed for good.
    assert_eq!((mak(50).remaining, mak(50).used), (0, 40));
    assert_eq!((mak(51).remaining, mak(51).used), (10, 60));
    assert_eq!(day(51).licensed, 90);
    assert_eq!(out.summary.mak_remaining["rollout"], 10);
    assert_eq!(out.summary.licensed, 90);
    // Timeline CSV and plot carry the key.
    let csv = out.timeline_csv();
    assert!(csv.lines().next().unwrap().ends_with(",failed_attempts,rollout_mak_remaining,rollout_mak_used"), "{csv}");
    assert!(csv.lines().nth(25).unwrap().ends_with(",0,40"), "{csv}");
    assert!(kmslab_sim::plot::svg(&out, "t").contains("MAK rollout left (10)"));
    // A scenario without MAKs has the same CSV columns as before.
    let plain = run(&load("below-threshold.toml"), catalog(), 1);
    assert!(plain.timeline_csv().lines().next().unwrap().ends_with(",requests,failed_attempts"));
    assert!(!plain.summary_json().contains("mak_remaining"));
}

#[test]
fn mak_entries_are_checked() {
    let check = |extra: &str, needle: &str| {
        let text = format!("days = 10\n[[host]]\nname = \"kms1\"\n{extra}");
        let e = Scenario::from_toml(&text, &Catalog::builtin()).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} should mention {needle}");
    };
    check("[[cohort]]\nproduct = \"win7-professional\"\ncount = 1\nmak = \"nope\"\n", "`mak` \"nope\" names no [[mak]]");
    check("[[mak]]\nname = \"a\"\ncount = 1\nproducts = [\"win7-ultimate\"]\n", "not in the catalog");
    check(
        "[[mak]]\nname = \"a\"\ncount = 1\nproducts = [\"win7-enterprise\"]\n[[cohort]]\nproduct = \"win7-professional\"\ncount = 1\nmak = \"a\"\n",
        "does not activate win7-professional",
    );
    check("[[mak]]\nname = \"a\"\ncount = 1\nadd = [[10, 5]]\n", "after the last day");
    check("[[mak]]\nname = \"a\"\ncount = 1\n[[mak]]\nname = \"a\"\ncount = 2\n", "used twice");
    check("[[mak]]\nname = \"a\"\ncount = 1\ncolour = 3\n", "colour");
}

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

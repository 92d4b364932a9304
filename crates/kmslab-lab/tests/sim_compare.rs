//! `kmslab sim` without a scenario (the built-in default) and `kmslab compare` over the
//! timelines it writes, through the real binary; and every small committed scenario played
//! by `kmslab sim` and by `kmslab up --scenario` over real daemons, the two timelines
//! agreeing within `kmslab compare`'s default tolerance.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kmslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmslab")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn sim_without_scenario_runs_the_default_the_same_way_every_time() {
    let a = kmslab(&["sim", "--seed", "11", "--json"]);
    let b = kmslab(&["sim", "--seed", "11", "--json"]);
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(a.stdout, b.stdout);
    let stdout = String::from_utf8_lossy(&a.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in [
        "scenario",
        "seed",
        "days",
        "clients",
        "licensed",
        "initial_grace",
        "additional_grace",
        "notification",
        "unlicensed",
        "errors",
        "requests",
        "answered_by",
    ] {
        assert!(last.get(key).is_some(), "{key} missing from {last}");
    }
    assert_eq!(last["seed"], 11);
    assert_eq!(last["clients"], 100);
    // Two hosts, both answered (kms2 while kms1 was down).
    let answered = last["answered_by"].as_object().unwrap();
    assert!(answered["kms1"].as_u64().unwrap() > 0 && answered["kms2"].as_u64().unwrap() > 0, "{last}");
    // Another seed is another run of the same scenario.
    let c = kmslab(&["sim", "--seed", "12", "--json"]);
    let c_last: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&c.stdout).lines().last().unwrap()).unwrap();
    assert_eq!((c_last["seed"].as_u64(), c_last["scenario"].clone()), (Some(12), last["scenario"].clone()));
}

fn timeline(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = kmslab(&["sim", "--seed", "3", "--timeline", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn identical_timelines_agree() {
    let dir = tempfile::tempdir().unwrap();
    let a = timeline(dir.path(), "a.csv");
    let b = timeline(dir.path(), "b.csv");
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("agree: 240 days compared"), "{}", text(&out));
}

/// Rewrites one field of the row of `day` in the CSV at `path`, returning the new text.
fn perturb(path: &std::path::Path, day: &str, column: &str, f: impl Fn(&str) -> String) -> String {
    let body = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
    let col = lines[0].split(',').position(|h| h == column).unwrap();
    let row = lines.iter().position(|l| l.split(',').next() == Some(day)).unwrap();
    let mut fields: Vec<String> = lines[row].split(',').map(str::to_owned).collect();
    fields[col] = f(&fields[col]);
    lines[row] = fields.join(",");
    lines.join("\n") + "\n"
}

#[test]
fn a_perturbed_timeline_disagrees_on_that_day_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let a = timeline(dir.path(), "a.csv");
    let b = dir.path().join("b.csv");
    // 100 clients: the default tolerance is max(2, 5) = 5 machines.
    std::fs::write(&b, perturb(&a, "150", "kms2_count_windows", |v| (v.parse::<u64>().unwrap() + 9).to_string())).unwrap();
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("day 150: kms2_count_windows") && l.contains("differs by 9, tolerance 5")), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("day ")).count(), 1, "{stdout}");
    // A one-day blip is not a step that came a day early or late: `--shift 1` still sees it.
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--shift", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Within a wider tolerance it agrees.
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--tolerance", "10%"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A difference within the default tolerance is not reported.
    std::fs::write(&b, perturb(&a, "150", "kms2_count_windows", |v| (v.parse::<u64>().unwrap() + 5).to_string())).unwrap();
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // kms1 is down on day 65 (days 60 to 74): its count is not compared, as a real lab
    // cannot read a stopped host's.
    assert!(std::fs::read_to_string(&a).unwrap().lines().any(|l| l.starts_with("65,") && l.split(',').nth(2) == Some("0")));
    std::fs::write(&b, perturb(&a, "65", "kms1_count_windows", |v| (v.parse::<u64>().unwrap() + 30).to_string())).unwrap();
    let out = kmslab(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_malformed_timeline_is_refused_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let a = timeline(dir.path(), "a.csv");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, perturb(&a, "7", "licensed", |_| "many".into())).unwrap();
    let out = kmslab(&["compare", a.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Day 7 is on line 8 (after the header); licensed is column 9.
    assert!(stderr.contains("bad.csv: line 8, column 9 (licensed): \"many\" is not a whole number"), "{stderr}");

    std::fs::write(&bad, perturb(&a, "7", "licensed", |v| format!("{v},1"))).unwrap();
    let out = kmslab(&["compare", bad.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv: line 8: 16 columns where the header line has 15"), "{}", text(&out));

    std::fs::write(&bad, "day,date\n1,2026-01-02\n").unwrap();
    let out = kmslab(&["compare", a.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.csv: line 1: no \"licensed\" column"), "{}", text(&out));

    let out = kmslab(&["compare", a.to_str().unwrap(), dir.path().join("missing.csv").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"), "{}", text(&out));
}

/// The committed scenarios a lab plays in reasonable time: at most 1,000 machines and 240
/// days (not million.toml, `kmslab sim`'s performance target), without MAKs (a lab refuses
/// those: they are `kmslab sim`'s alone).
fn small_scenarios() -> Vec<(PathBuf, kmslab_sim::Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios");
    let catalog = kmslab_core::catalog::Catalog::builtin();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let s = kmslab_sim::Scenario::from_toml(&std::fs::read_to_string(&path).unwrap(), &catalog).unwrap();
        let machines: u64 = s.cohorts.iter().map(|c| u64::from(c.count)).sum();
        if machines <= 1000 && s.days <= 240 && s.maks.is_empty() {
            out.push((path, s));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Plays `scenario` with `kmslab up --scenario` at `scale`; the timeline's path, the
/// requests the hosts refused (the summary's `failed`) and the requests other hosts
/// answered while one restarted (`restart_failovers`).
fn play(scenario: &Path, dir: &Path, scale: u32) -> (PathBuf, u64, u64) {
    let timeline = dir.join(format!("real-{scale}.csv"));
    let runtime = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmslab"))
        .args(["up", "--scenario", scenario.to_str().unwrap(), "--time-scale", &scale.to_string(), "--json"])
        .args(["--timeline", timeline.to_str().unwrap()])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "kmslab up --scenario {}: {}", scenario.display(), text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let refused: u64 = summary["hosts"].as_array().unwrap().iter().map(|h| h["failed"].as_u64().unwrap()).sum();
    let failovers = summary["restart_failovers"].as_u64().expect("a scenario's summary has restart_failovers");
    (timeline, refused, failovers)
}

/// The simulator and the real lab tell the same story, day by day, at 86,400x (a simulated
/// day per real second: two-hosts-failover's 240 days take four minutes).
///
/// Why not faster, and why `--shift 1`: every exchange and a host's restart take real
/// milliseconds, which the lab's clock turns into simulated time (at 86,400x, 10 ms are 14
/// minutes), and each renewal is due a renewal interval after its answer, so the real
/// machines' renewals drift later than the simulator's, by hours over months on a busy
/// machine. The counts are sampled at midnight and change in steps (the machines of one
/// join day renew together, up to 12 at a time; their CMIDs leave a count together 30 days
/// later), so a step can land on the next day: one run read 12 on the day after kms1's
/// restart where the simulator has 48 (and 12 the day before). A value therefore agrees
/// when it lies within the range the simulator's values span from the day before to the
/// day after; a machine on the wrong host for weeks still disagrees. At 345,600x the drift
/// is four times larger and refusals (below) common.
///
/// No committed scenario has a host refuse anything (no unactivated host, no skewed clock),
/// so a request a host refused is the lab falling behind its time scale on a busy machine:
/// it took longer than the hosts' 4-hour clock tolerance (167 ms of real time at 86,400x)
/// to arrive and was refused with 0xC004F06C. Each such request changes at most one
/// machine in any column of any day (that machine renews at the next host instead, or
/// retries two hours later), so the tolerance is `kmslab compare`'s default plus the
/// number of refused requests; a run with more than 10 is played again at half the scale.
///
/// A host's restart is instant in the simulator and takes real time in the lab (stopping,
/// opening its registry again: on a busy machine most of a second, most of a simulated
/// day). A machine whose renewal falls in it fails over to the next host, as a real client
/// does, and that host counts it for 30 days. Each request another host answered during a
/// restart (`restart_failovers` of the summary) moves at most one machine, so those are
/// added to the tolerance too.
#[test]
fn small_committed_scenarios_agree_between_the_simulator_and_a_real_lab() {
    let scenarios = small_scenarios();
    let names: Vec<String> = scenarios.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["below-threshold.toml", "cloned-image.toml", "two-hosts-failover.toml"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not among {names:?}");
    }
    // One thread per scenario: the labs mostly wait on simulated time.
    let threads: Vec<_> = scenarios
        .into_iter()
        .map(|(path, scenario)| {
            let days = scenario.days;
            let scenario_clients: u64 = scenario.cohorts.iter().map(|c| u64::from(c.count)).sum();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let sim = dir.path().join("sim.csv");
                let out = kmslab(&["sim", "--scenario", path.to_str().unwrap(), "--timeline", sim.to_str().unwrap()]);
                assert!(out.status.success(), "{}", text(&out));
                let (mut real, mut refused, mut failovers) = play(&path, dir.path(), 86_400);
                if refused > 10 {
                    eprintln!("{}: the hosts refused {refused} requests at 86400x (the lab fell behind); again at 43200x", path.display());
                    (real, refused, failovers) = play(&path, dir.path(), 43_200);
                }
                // The default tolerance, max(2, 5% of the clients), plus one machine per
                // refused request and per request answered elsewhere during a restart.
                let tolerance = (2.max(scenario_clients * 5 / 100) + refused + failovers).to_string();
                let out = kmslab(&["compare", sim.to_str().unwrap(), real.to_str().unwrap(), "--tolerance", &tolerance, "--shift", "1"]);
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}: the real lab disagrees with the simulator ({refused} requests refused by the hosts, {failovers} answered elsewhere during restarts):\n{}\nreal timeline:\n{}",
                    path.display(),
                    text(&out),
                    std::fs::read_to_string(&real).unwrap()
                );
                // Every day was played and compared.
                assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("agree: {days} days compared")), "{}", text(&out));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

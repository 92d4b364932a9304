//! `kmslab up --scenario FILE`: plays a `kmslab sim` scenario (docs/sim.md) over the lab's
//! real daemons on simulated time, and samples the per-day timeline `kmslab sim
//! --timeline` writes, from the real machines and hosts.
//!
//! Day `d` of the scenario starts `d` simulated days after the lab is up (hosts started,
//! their SRV records in DNS). At the start of each day the player applies that day's
//! changes in the simulator's order (hosts, DNS, cohorts), each one through the lab's own
//! control methods ([`kmslab_lab::control::Lab`]: what the lab API and the drills call):
//! a host outage blocks the host's KMS port and the end of it opens the port again (the
//! host keeps running and keeps its count, as the simulator models an outage), a restart
//! is `restart`, a host installed later is started on its `start_day`, a decommissioned
//! host is stopped, a DNS outage is the DNS server's `outage`, a cohort joining adds its
//! machines (clones sharing CMIDs, clock skew, host caching, `/skms` applied before their
//! first attempt) and a rearm day rearms every machine of the cohort. At the end of each
//! day it reads every host's status and the machines' states: one [`DayRow`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::time::{DAY_MS, MINUTE_MS};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use kmslab_lab::control::{DnsAction, HostAction, Lab};
use kmslab_lab::drill::lab::ZONE;
use kmslab_lab::engine::MachineSetup;
use kmslab_sim::{DayRow, HostDay, Scenario};

/// The timeline sampled so far, shared with `kmslab up` (which writes it at exit).
#[derive(Debug, Default)]
pub struct Timeline {
    rows: Mutex<Vec<DayRow>>,
    /// Requests the other hosts answered while a host restarted (see [`Timeline::restart_failovers`]).
    restart_failovers: AtomicU64,
}

impl Timeline {
    /// Requests the other hosts answered while a host of the scenario restarted. The
    /// simulator restarts a host in no time; a real restart takes real time (stopping,
    /// opening the registry again), which at 86,400x is a simulated day a second, and a
    /// machine whose renewal falls in it fails over as a real client does. Each such
    /// request moves at most one machine to another host, so this bounds how far the real
    /// timeline's host counts may stray from the simulator's because of it.
    pub fn restart_failovers(&self) -> u64 {
        self.restart_failovers.load(Ordering::Relaxed)
    }

    /// The rows sampled so far.
    pub fn rows(&self) -> Vec<DayRow> {
        self.rows.lock().expect("timeline lock").clone()
    }
}

/// Plays `scenario` over `lab` from `started` (the simulated start of day 0) with `seed`
/// for the cohorts' CMIDs; returns once the last day has been sampled.
pub async fn play(lab: Arc<Lab>, scenario: Scenario, catalog: Arc<Catalog>, started: Timestamp, seed: u64, timeline: Arc<Timeline>) {
    let clock = lab.clock();
    let groups: Vec<String> = catalog.counted_groups().iter().map(|g| g.name.clone()).collect();
    let mut cmid_rng = SplitMix64::new(seed.wrapping_add(0x5EED));
    // Per cohort: the CMID of each machine k (clones share their group's first), and the
    // fleet ranges its machines got.
    let mut cmids: Vec<Vec<Uuid>> = vec![Vec::new(); scenario.cohorts.len()];
    let mut members: Vec<Vec<Range<usize>>> = vec![Vec::new(); scenario.cohorts.len()];
    let mut totals = (0u64, 0u64);
    for day in 0..scenario.days {
        clock.sleep_until(started.plus_days(i64::from(day))).await;
        if day > 0 {
            sample(&lab, &groups, started, day, &mut totals, &timeline).await;
        }
        for (i, h) in scenario.hosts.iter().enumerate() {
            let running = lab.running()[i];
            if h.restarts.contains(&day) && running {
                let others = |lab: &Lab| -> u64 {
                    lab.statuses()
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .filter_map(|(_, (_, s))| s["counters"]["total"].as_u64())
                        .sum()
                };
                lab.refresh().await;
                let before = others(&lab);
                act(&lab, &h.name, HostAction::Restart).await;
                lab.refresh().await;
                let answered = others(&lab).saturating_sub(before);
                timeline.restart_failovers.fetch_add(answered, Ordering::Relaxed);
            }
            let installed = h.installed_on(day);
            if installed && !running {
                act(&lab, &h.name, HostAction::Start).await;
            } else if !installed && running {
                act(&lab, &h.name, HostAction::Stop).await;
            }
            let blocked = !lab.reachable()[i] && lab.running()[i];
            let out = installed && !h.up_on(day);
            if out != blocked && lab.running()[i] {
                act(&lab, &h.name, if out { HostAction::Block } else { HostAction::Unblock }).await;
            }
        }
        let dns_out = lab.dns().server.faults().in_outage();
        if scenario.dns.up_on(day) == dns_out {
            lab.dns_action(if dns_out { DnsAction::Restore } else { DnsAction::Outage });
        }
        // Rearms first, at the start of the day, as the simulator does them.
        for (ci, c) in scenario.cohorts.iter().enumerate() {
            if c.rearm_day == Some(day) {
                for range in &members[ci] {
                    rearm(&lab, range.clone(), day, ci, &c.product).await;
                }
            }
        }
        // The day's joins, each machine's CMID drawn in the simulator's order (cohort by
        // cohort, machine by machine), then installed at the simulator's moment: machine k
        // of a cohort at minute k % 1440 of its day.
        let mut joins: BTreeMap<u64, Vec<(usize, Uuid)>> = BTreeMap::new();
        for (ci, c) in scenario.cohorts.iter().enumerate() {
            for k in c.joining_on(day) {
                let clones = u64::from(c.clones);
                let cmid = if clones > 1 && k % clones != 0 { cmids[ci][(k - k % clones) as usize] } else { cmid_rng.uuid_v4() };
                cmids[ci].push(cmid);
                joins.entry(k % 1440).or_default().push((ci, cmid));
            }
        }
        let day_start = started.plus_days(i64::from(day));
        for (minute, list) in joins {
            clock.sleep_until(day_start.plus_ms(minute as i64 * MINUTE_MS)).await;
            for (ci, c) in scenario.cohorts.iter().enumerate() {
                let batch: Vec<Uuid> = list.iter().filter(|(i, _)| *i == ci).map(|(_, cmid)| *cmid).collect();
                if batch.is_empty() {
                    continue;
                }
                let setup = MachineSetup {
                    clock_offset_ms: Some(c.clock_skew_minutes * MINUTE_MS),
                    host_caching: Some(c.host_caching),
                    manual_host: c.manual_host.as_ref().and_then(|pin| host_addr(&lab, pin)),
                };
                let product = catalog.product_by_name(&c.product).expect("validated scenario").clone();
                match lab.add_machines_with(batch, product, setup).await {
                    Ok(range) => {
                        // Machines joining on their cohort's rearm day are rearmed at once.
                        if c.rearm_day == Some(day) {
                            rearm(&lab, range.clone(), day, ci, &c.product).await;
                        }
                        members[ci].push(range);
                    }
                    Err(e) => eprintln!("kmslab: scenario day {day}: cohort {} ({}): {e}", ci + 1, c.product),
                }
            }
        }
    }
    clock.sleep_until(started.plus_days(i64::from(scenario.days))).await;
    sample(&lab, &groups, started, scenario.days, &mut totals, &timeline).await;
}

/// `/skms` of a cohort pinned to host `name`: `<name>.lab.test:<its port>`.
fn host_addr(lab: &Lab, name: &str) -> Option<HostAddr> {
    let summary = lab.summary();
    let host = summary["hosts"].as_array()?.iter().find(|h| h["name"] == name)?.clone();
    let port = host["kms"].as_str()?.rsplit_once(':')?.1.parse().ok()?;
    Some(HostAddr::new(format!("{name}.{ZONE}"), port))
}

async fn rearm(lab: &Lab, range: Range<usize>, day: u32, ci: usize, product: &str) {
    if let Err(e) = lab.rearm_machines(range).await {
        eprintln!("kmslab: scenario day {day}: rearm of cohort {} ({product}): {e}", ci + 1);
    }
}

async fn act(lab: &Arc<Lab>, host: &str, action: HostAction) {
    if let Err(e) = lab.host_action(host, action).await {
        eprintln!("kmslab: scenario: {} {host}: {e}", action.key());
    }
}

/// Reads the hosts and machines at the end of day `day` (1 = end of the first day).
async fn sample(lab: &Lab, groups: &[String], started: Timestamp, day: u32, totals: &mut (u64, u64), timeline: &Timeline) {
    lab.refresh().await;
    let reachable = lab.reachable();
    let hosts = lab
        .statuses()
        .into_iter()
        .zip(reachable)
        .map(|((name, status), up)| {
            let status = serde_json::from_value::<kmslab_api::HostStatus>(status).ok();
            let counts = groups.iter().map(|g| status.as_ref().map_or(0, |s| s.count_of(g))).collect();
            HostDay { name, up, counts }
        })
        .collect();
    let (by, requests, failed) = match lab.fleet() {
        Some(f) => {
            let s = f.stats();
            let by: Vec<u64> = s.by_status.iter().map(|n| n.load(Ordering::Relaxed)).collect();
            let failed: u64 = s.errors.lock().map(|e| e.values().sum()).unwrap_or(0);
            (by, s.requests.load(Ordering::Relaxed), failed)
        }
        None => (vec![0; 7], 0, 0),
    };
    let at = |s: LicenseStatus| by.get(s as usize).copied().unwrap_or(0);
    let row = DayRow {
        day,
        date: kmslab_sim::date_of(started.plus_ms(i64::from(day) * DAY_MS)),
        hosts,
        licensed: at(LicenseStatus::Licensed),
        initial_grace: at(LicenseStatus::InitialGrace),
        additional_grace: at(LicenseStatus::AdditionalGrace),
        notification: at(LicenseStatus::Notification),
        unlicensed: at(LicenseStatus::Unlicensed),
        requests: requests.saturating_sub(totals.0),
        failed_attempts: failed.saturating_sub(totals.1),
        maks: Vec::new(),
    };
    *totals = (requests, failed);
    timeline.rows.lock().expect("timeline lock").push(row);
}

/// Before day 0: a host installed on a later day is stopped and its SRV record removed
/// (the simulator neither publishes nor answers for it before its `start_day`).
pub async fn prepare(lab: &Arc<Lab>, scenario: &Scenario) {
    for h in scenario.hosts.iter().filter(|h| !h.installed_on(0)) {
        act(lab, &h.name, HostAction::Stop).await;
        if h.publish
            && let Err(e) = lab.remove_record(&h.name).await
        {
            eprintln!("kmslab: scenario: removing {}'s record until its start_day: {e}", h.name);
        }
    }
}

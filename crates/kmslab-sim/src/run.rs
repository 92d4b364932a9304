//! Runs a scenario day by day on the core's simulated world and records the timeline.

use std::collections::BTreeMap;
use std::sync::Arc;

use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::labkey::{self, LabKeyKind};
use kmslab_core::ledger::HostSettings;
use kmslab_core::rng::{KmsRng, SplitMix64};
use kmslab_core::sim::{SimMak, World};
use kmslab_core::time::MINUTE_MS;
use kmslab_core::{LicenseStatus, Timestamp};
use serde::Serialize;

use crate::scenario::Scenario;

/// One host at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostDay {
    /// Host name.
    pub name: String,
    /// Whether it was up.
    pub up: bool,
    /// Its count for each counted group of the catalog, in catalog order.
    pub counts: Vec<u32>,
}

/// The world at the end of one simulated day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRow {
    /// Days since the start (1 = end of the first day).
    pub day: u32,
    /// The date (YYYY-MM-DD) of that moment.
    pub date: String,
    /// Every host.
    pub hosts: Vec<HostDay>,
    /// Machines Licensed.
    pub licensed: u64,
    /// Machines in initial grace.
    pub initial_grace: u64,
    /// Machines in additional grace.
    pub additional_grace: u64,
    /// Machines in Notification.
    pub notification: u64,
    /// Machines Unlicensed.
    pub unlicensed: u64,
    /// Requests sent that day.
    pub requests: u64,
    /// Failed attempts that day.
    pub failed_attempts: u64,
    /// Each MAK of the scenario at the end of the day (none without `[[mak]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub maks: Vec<MakDay>,
}

/// One MAK at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MakDay {
    /// The `[[mak]]` name.
    pub name: String,
    /// Activations still available.
    pub remaining: u32,
    /// Activations used so far.
    pub used: u32,
}

/// The JSON summary (interfaces.md shape plus scenario facts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Days simulated.
    pub days: u32,
    /// Machines.
    pub clients: u64,
    /// Machines Licensed at the end.
    pub licensed: u64,
    /// Machines in initial grace at the end.
    pub initial_grace: u64,
    /// Machines in additional grace at the end.
    pub additional_grace: u64,
    /// Machines in Notification at the end.
    pub notification: u64,
    /// Machines Unlicensed at the end.
    pub unlicensed: u64,
    /// Failed attempts by HRESULT over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// Requests sent over the whole run.
    pub requests: u64,
    /// Requests each host answered.
    pub answered_by: BTreeMap<String, u64>,
    /// Activations left on each MAK at the end (absent without `[[mak]]`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mak_remaining: BTreeMap<String, u32>,
}

/// Everything a run produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOutput {
    /// One row per day.
    pub timeline: Vec<DayRow>,
    /// The summary.
    pub summary: Summary,
    /// Names of the catalog's counted groups (the order of `HostDay::counts`).
    pub counted_groups: Vec<String>,
}

/// Runs `scenario` with `seed`.
pub fn run(scenario: &Scenario, catalog: Arc<Catalog>, seed: u64) -> SimOutput {
    let start = scenario.start_time();
    let mut world = World::new(catalog.clone(), start, seed);
    world.default_domain = Some(scenario.domain.clone());
    let host_addr = |name: &str| HostAddr::new(format!("{name}.{}", scenario.domain), 1688);
    for (i, h) in scenario.hosts.iter().enumerate() {
        let mut epid_rng = SplitMix64::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9));
        let settings = HostSettings {
            key_groups: h.key_groups.clone(),
            activated: h.activated,
            activation_interval: h.activation_interval,
            renewal_interval: h.renewal_interval,
            epid: kmslab_core::epid::generate(h.key_groups.first().map_or("kms-b", String::as_str), start, &mut epid_rng),
        };
        world.add_host(host_addr(&h.name), settings);
        world.hosts[i].up = false;
    }
    // The lab's activation service: one lab MAK per [[mak]], drawn from the seed.
    let mut key_rng = SplitMix64::new(seed ^ 0x4D41_4B4B_4559);
    let mut mak_keys = Vec::with_capacity(scenario.maks.len());
    for m in &scenario.maks {
        let mut random = [0u8; 20];
        for chunk in random.chunks_mut(8) {
            let word = key_rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let key = labkey::generate(LabKeyKind::Mak, &random);
        world.maks.push(SimMak::new(key.clone(), scenario.mak_products(m), m.count));
        mak_keys.push(key);
    }
    let mak_index = |name: &str| scenario.maks.iter().position(|m| m.name == name).expect("validated");
    let counted_groups: Vec<_> = catalog.counted_groups().iter().map(|g| g.name.clone()).collect();
    let group_ids: Vec<_> = catalog.counted_groups().iter().map(|g| g.kms_counted_id).collect();
    // Machine index ranges of each cohort, filled as they join.
    let mut cohort_members: Vec<Vec<usize>> = vec![Vec::new(); scenario.cohorts.len()];
    let mut cohort_cmid_rng = SplitMix64::new(seed.wrapping_add(0x5EED));
    let mut timeline = Vec::with_capacity(scenario.days as usize);
    let mut last_requests = 0;
    let mut last_failed = 0;
    for day in 0..scenario.days {
        let day_start = start.plus_days(i64::from(day));
        world.now = world.now.max(day_start);
        for (i, h) in scenario.hosts.iter().enumerate() {
            if day == h.start_day && h.publish {
                world.publish(&scenario.domain, i, h.priority, h.weight);
            }
            if h.restarts.contains(&day) {
                world.restart_host(i);
            }
            world.hosts[i].up = h.up_on(day);
        }
        world.dns_up = scenario.dns.up_on(day);
        for (mi, m) in scenario.maks.iter().enumerate() {
            for add in m.add.iter().filter(|a| a[0] == day) {
                world.maks[mi].remaining = world.maks[mi].remaining.saturating_add(add[1]);
            }
        }
        for (ci, c) in scenario.cohorts.iter().enumerate() {
            // MAK machines not activated yet run `/ato` again (those joining today ask below).
            if c.mak.is_some() && c.mak_retry_days > 0 && day % c.mak_retry_days == 0 {
                for &idx in &cohort_members[ci] {
                    if !world.clients[idx].permanently_activated() {
                        world.clients[idx].activate_now(day_start);
                        world.kick(idx);
                    }
                }
            }
        }
        for (ci, c) in scenario.cohorts.iter().enumerate() {
            for k in c.joining_on(day) {
                // Spread a day's joins over its minutes so they do not all ask at once.
                world.now = day_start.plus_ms((k % 1440) as i64 * MINUTE_MS);
                let name = format!("c{ci}-{k}");
                let idx = if c.clones > 1 && k % u64::from(c.clones) != 0 {
                    let first = cohort_members[ci][(k - k % u64::from(c.clones)) as usize];
                    let cmid = world.clients[first].cmid();
                    world.add_client_with_cmid(&c.product, name, cmid)
                } else {
                    let cmid = cohort_cmid_rng.uuid_v4();
                    world.add_client_with_cmid(&c.product, name, cmid)
                };
                let m = &mut world.clients[idx];
                m.set_host_caching(c.host_caching);
                m.set_clock_offset(c.clock_skew_minutes * MINUTE_MS);
                if let Some(pin) = &c.manual_host {
                    m.set_manual_host(Some(host_addr(pin)));
                }
                if let Some(mak) = &c.mak {
                    // `slmgr /ipk MAK` then `/ato`, the way a MAK rollout installs a machine.
                    let now = world.now;
                    m.install_mak(&mak_keys[mak_index(mak)], now).expect("a generated lab MAK");
                    m.activate_now(now);
                    world.kick(idx);
                } else {
                    world.schedule(idx);
                }
                cohort_members[ci].push(idx);
            }
            world.now = day_start;
            if c.rearm_day == Some(day) {
                for &idx in &cohort_members[ci] {
                    let mut rng = SplitMix64::new(seed ^ (idx as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                    let _ = world.clients[idx].rearm(day_start, &mut rng);
                    world.kick(idx);
                }
            }
        }
        let day_end = start.plus_days(i64::from(day) + 1);
        world.run_until(day_end);
        let failed: u64 = world.results.iter().filter(|(k, _)| **k != HResult::SUCCESS).map(|(_, v)| *v).sum();
        timeline.push(DayRow {
            day: day + 1,
            date: date_of(day_end),
            hosts: scenario
                .hosts
                .iter()
                .zip(&world.hosts)
                .map(|(h, w)| HostDay {
                    name: h.name.clone(),
                    up: w.up,
                    counts: group_ids.iter().map(|g| w.ledger.count(g, day_end)).collect(),
                })
                .collect(),
            licensed: world.tally[LicenseStatus::Licensed as usize],
            initial_grace: world.tally[LicenseStatus::InitialGrace as usize],
            additional_grace: world.tally[LicenseStatus::AdditionalGrace as usize],
            notification: world.tally[LicenseStatus::Notification as usize],
            unlicensed: world.tally[LicenseStatus::Unlicensed as usize],
            requests: world.requests - last_requests,
            failed_attempts: failed - last_failed,
            maks: scenario
                .maks
                .iter()
                .zip(&world.maks)
                .map(|(m, k)| MakDay { name: m.name.clone(), remaining: k.remaining, used: k.used })
                .collect(),
        });
        last_requests = world.requests;
        last_failed = failed;
    }
    let last = timeline.last().cloned();
    let summary = Summary {
        scenario: scenario.name.clone(),
        seed,
        days: scenario.days,
        clients: world.clients.len() as u64,
        licensed: last.as_ref().map_or(0, |r| r.licensed),
        initial_grace: last.as_ref().map_or(0, |r| r.initial_grace),
        additional_grace: last.as_ref().map_or(0, |r| r.additional_grace),
        notification: last.as_ref().map_or(0, |r| r.notification),
        unlicensed: last.as_ref().map_or(0, |r| r.unlicensed),
        errors: world.results.iter().filter(|(k, _)| **k != HResult::SUCCESS).map(|(k, v)| (k.to_string(), *v)).collect(),
        requests: world.requests,
        answered_by: scenario.hosts.iter().zip(&world.answered_by).map(|(h, n)| (h.name.clone(), *n)).collect(),
        mak_remaining: scenario.maks.iter().zip(&world.maks).map(|(m, k)| (m.name.clone(), k.remaining)).collect(),
    };
    SimOutput { timeline, summary, counted_groups }
}

/// The date (YYYY-MM-DD) of `t`, as the timeline's `date` column writes it.
pub fn date_of(t: Timestamp) -> String {
    let c = t.civil();
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

impl SimOutput {
    /// The timeline as CSV: one row per day, one count column per host and counted group,
    /// then `NAME_mak_remaining` and `NAME_mak_used` per MAK when the scenario has any.
    pub fn timeline_csv(&self) -> String {
        timeline_csv(&self.timeline, &self.counted_groups)
    }

    /// The timeline as a JSON array.
    pub fn timeline_json(&self) -> String {
        timeline_json(&self.timeline)
    }

    /// The summary as one line of JSON.
    pub fn summary_json(&self) -> String {
        serde_json::to_string(&self.summary).expect("plain data serializes")
    }
}

/// A timeline as CSV (what `kmslab sim --timeline FILE.csv` writes): one row per day, one
/// count column per host and group of `counted_groups` (each host's `counts` in that order),
/// then `NAME_mak_remaining` and `NAME_mak_used` per MAK when the timeline has any.
pub fn timeline_csv(timeline: &[DayRow], counted_groups: &[String]) -> String {
    let mut out = String::from("day,date");
    if let Some(first) = timeline.first() {
        for h in &first.hosts {
            out.push_str(&format!(",{}_up", h.name));
            for g in counted_groups {
                out.push_str(&format!(",{}_count_{}", h.name, g));
            }
        }
    }
    out.push_str(",licensed,initial_grace,additional_grace,notification,unlicensed,requests,failed_attempts");
    if let Some(first) = timeline.first() {
        for m in &first.maks {
            out.push_str(&format!(",{0}_mak_remaining,{0}_mak_used", m.name));
        }
    }
    out.push('\n');
    for r in timeline {
        out.push_str(&format!("{},{}", r.day, r.date));
        for h in &r.hosts {
            out.push_str(&format!(",{}", u8::from(h.up)));
            for c in &h.counts {
                out.push_str(&format!(",{c}"));
            }
        }
        out.push_str(&format!(
            ",{},{},{},{},{},{},{}",
            r.licensed, r.initial_grace, r.additional_grace, r.notification, r.unlicensed, r.requests, r.failed_attempts
        ));
        for m in &r.maks {
            out.push_str(&format!(",{},{}", m.remaining, m.used));
        }
        out.push('\n');
    }
    out
}

/// A timeline as a JSON array.
pub fn timeline_json(timeline: &[DayRow]) -> String {
    serde_json::to_string_pretty(timeline).expect("plain data serializes")
}

//! `kmslab drill NAME`: scripted troubleshooting scenarios (docs/kms-behaviour.md "Troubleshooting
//! cases") over real daemons in this process: hosts through `kmslab_host::run` on loopback,
//! client machines through the fleet engine, DNS through the embedded lab DNS server, all
//! on one fast simulated clock.
//!
//! Each drill prints the symptom a technician would see (the HRESULT and its name, the
//! event, the `/dli` lines), applies the fix and prints the outcome. It passes only if the
//! symptom and the outcome are the expected ones; `kmslab drill` then exits 0, else 1.
//!
//! SRV records are published by the hosts themselves (`HostConfig.dns`, as `kms-host
//! --dns-server ... --dns-zone lab.test --dns-hostname kmsN.lab.test [--tsig-key-file ...]`):
//! the embedded DNS server accepts only updates signed with its key, so a host without it
//! (or with another key) gets its updates refused. The 12293/12294 lines a drill prints and
//! checks are the host's own: the `dns.zones[]` entry of its `/api/v1/status` (result,
//! hresult, message) and the events in its registry (`/api/v1/events?id=12293`). A fix that
//! gives a host the key restarts it with the key on the same port and data directory, as an
//! administrator would restart the service after adding `--tsig-key-file`. Hosts run without
//! `--unpublish-on-exit`, so a host that stops leaves its record behind.

pub mod lab;
mod mak;
mod nongenuine;
mod scenarios;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kmslab_core::HResult;
use serde_json::{Value, json};

pub use lab::{LabDns, LabHost, LabTime, ZONE, host_dli_lines, http_get_json, http_get_text, windows_count};

use crate::engine::{Fleet, MachineView};

/// Every drill: name and what it rehearses.
pub const DRILLS: &[(&str, &str)] = &[
    ("below-threshold", "20 Windows 7 machines, count below 25: 0xC004F038 until more machines join"),
    ("cloned-cmid", "cloned machines share a CMID and are counted once: 0xC004F038; fix: slmgr /rearm"),
    ("host-failover", "the KMS host dies; auto-discovery moves on, a client pinned with /skms does not until changed"),
    ("dns-refused", "the host cannot create its SRV record (12293); clients get 0x8007232B; fix: give the host the zone's key"),
    (
        "second-host-srv",
        "the second host lacks permission on the SRV record (12293); when the first fails: 0xC004F074; fix: give it the key",
    ),
    ("port-blocked", "TCP port of the host blocked: 0x800706BA per request, 0xC004F074 per attempt; fix: open it"),
    ("time-skew", "client clock 5 hours ahead: 0xC004F06C; fix: correct the clock"),
    ("unactivated-host", "the KMS host itself is not activated: 0xC004F041; fix: activate the host"),
    ("wrong-key-group", "a client-VL host key cannot activate Server 2008 R2: 0xC004F042; fix: install a kms-b key"),
    (
        "refusing-host",
        "the priority-0 host refuses (not activated, 0xC004F041 in 12288); clients move on to priority 10 and activate; fix: activate it",
    ),
    ("mak-exhausted", "a rollout outgrows its MAK: 0xC004C020; fix: the Activation Center adds activations, slmgr /ato on the rest"),
    ("oem-marker", "an OEM box whose SLIC has no Windows marker: KMS fails with 0xC004F035; fix: a MAK"),
    ("kms-to-mak", "a KMS client leaving the network becomes a MAK machine (permanently activated) and back a KMS client (GVLK)"),
    ("proxy-offline", "an isolated network without Internet: 0x800706BA; fix: VAMT proxy activation by carrying a CIL file across"),
    (
        "leaked-host-key",
        "a leaked KMS host key is blocked: hosts non-genuine (8209), then 0xC004F041 to clients; fix: a new host key on every host",
    ),
];

/// Default time scale of the drills: an activation retry (15 simulated minutes) every 1.5 s.
pub const DEFAULT_SCALE: f64 = 600.0;

/// How long (real time) a drill waits for any one expected state.
const WAIT: Duration = Duration::from_secs(120);

/// Flags of `kmslab drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The drill to run (see --list).
    pub name: Option<String>,
    /// List the drills.
    #[arg(long)]
    pub list: bool,
    /// Print the JSON summary (with "drill" and "passed") as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Simulated time runs F times faster than real time.
    #[arg(long, value_name = "F", default_value_t = DEFAULT_SCALE)]
    pub time_scale: f64,
}

/// What a drill run produced.
#[derive(Debug, Clone)]
pub struct DrillOutcome {
    /// The drill.
    pub name: String,
    /// True when the symptom and the outcome were the expected ones.
    pub passed: bool,
    /// The checks that failed.
    pub failures: Vec<String>,
    /// The summary JSON (fleet shape plus `drill` and `passed`).
    pub summary: Value,
    /// Everything printed.
    pub transcript: Vec<String>,
}

/// Runs `kmslab drill`.
pub async fn run(args: DrillArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for (name, about) in DRILLS {
            println!("{name:<18} {about}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = args.name else {
        eprintln!("kmslab: a drill NAME is required (kmslab drill --list)");
        return Ok(ExitCode::from(2));
    };
    if !DRILLS.iter().any(|(n, _)| *n == name) {
        eprintln!("kmslab: unknown drill {name:?} (kmslab drill --list)");
        return Ok(ExitCode::from(2));
    }
    if !args.time_scale.is_finite() || args.time_scale <= 0.0 || args.time_scale > 5000.0 {
        eprintln!("kmslab: --time-scale must be > 0 and <= 5000 for drills (the 4-hour clock tolerance must span real latencies)");
        return Ok(ExitCode::from(2));
    }
    let outcome = run_drill(&name, args.time_scale, true).await?;
    if args.json {
        println!("{}", outcome.summary);
    }
    Ok(if outcome.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Runs one drill; `echo` prints the transcript as it goes.
pub async fn run_drill(name: &str, scale: f64, echo: bool) -> anyhow::Result<DrillOutcome> {
    let mut t = Transcript { echo, lines: Vec::new(), failures: Vec::new(), summaries: Vec::new() };
    let time = LabTime::new(scale);
    t.say(format!("== drill {name} =="));
    let about = DRILLS.iter().find(|(n, _)| *n == name).map_or("", |(_, a)| a);
    t.say(about.to_string());
    match name {
        "below-threshold" => scenarios::below_threshold(&mut t, time).await?,
        "cloned-cmid" => scenarios::cloned_cmid(&mut t, time).await?,
        "host-failover" => scenarios::host_failover(&mut t, time).await?,
        "dns-refused" => scenarios::dns_refused(&mut t, time).await?,
        "second-host-srv" => scenarios::second_host_srv(&mut t, time).await?,
        "port-blocked" => scenarios::port_blocked(&mut t, time).await?,
        "time-skew" => scenarios::time_skew(&mut t, time).await?,
        "unactivated-host" => scenarios::unactivated_host(&mut t, time).await?,
        "wrong-key-group" => scenarios::wrong_key_group(&mut t, time).await?,
        "refusing-host" => scenarios::refusing_host(&mut t, time).await?,
        "mak-exhausted" => mak::mak_exhausted(&mut t, time).await?,
        "oem-marker" => mak::oem_marker(&mut t, time).await?,
        "kms-to-mak" => mak::kms_to_mak(&mut t, time).await?,
        "proxy-offline" => mak::proxy_offline(&mut t, time).await?,
        "leaked-host-key" => nongenuine::leaked_host_key(&mut t, time).await?,
        other => anyhow::bail!("unknown drill {other:?}"),
    }
    let passed = t.failures.is_empty();
    t.say(if passed { format!("PASSED: {name}") } else { format!("FAILED: {name}: {}", t.failures.join("; ")) });
    let mut summary = merge(&t.summaries);
    summary["drill"] = json!(name);
    summary["passed"] = json!(passed);
    Ok(DrillOutcome { name: name.to_owned(), passed, failures: t.failures, summary, transcript: t.lines })
}

/// Adds fleet summaries together.
fn merge(summaries: &[Value]) -> Value {
    let mut out =
        json!({"clients":0,"licensed":0,"initial_grace":0,"additional_grace":0,"notification":0,"unlicensed":0,"errors":{},"requests":0});
    for s in summaries {
        for key in ["clients", "licensed", "initial_grace", "additional_grace", "notification", "unlicensed", "requests"] {
            out[key] = json!(out[key].as_u64().unwrap_or(0) + s[key].as_u64().unwrap_or(0));
        }
        for (code, n) in s["errors"].as_object().into_iter().flatten() {
            out["errors"][code] = json!(out["errors"][code].as_u64().unwrap_or(0) + n.as_u64().unwrap_or(0));
        }
    }
    out
}

/// What a drill prints and checks.
pub(crate) struct Transcript {
    echo: bool,
    lines: Vec<String>,
    failures: Vec<String>,
    summaries: Vec<Value>,
}

impl Transcript {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        if self.echo {
            println!("{line}");
        }
        self.lines.push(line);
    }

    fn section(&mut self, title: impl std::fmt::Display) {
        self.say("");
        self.say(format!("-- {title}"));
    }

    fn block(&mut self, lines: &[String]) {
        for l in lines {
            self.say(format!("    {l}"));
        }
    }

    /// Records a check; returns it.
    fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        let what = what.into();
        self.say(format!("  [{}] {what}", if ok { "ok" } else { "FAILED" }));
        if !ok {
            self.failures.push(what);
        }
        ok
    }

    /// Prints what a technician sees on `m`: `/dli`, the events, the attempt's HRESULT.
    fn machine(&mut self, m: &MachineView) {
        self.say(format!("  slmgr /dli on {}:", m.machine_name));
        self.block(&m.dli_lines());
        if m.attempt_requests.len() > 1 {
            // Several hosts tried in one attempt: one 12288 each, with that host's answer.
            for (host, r) in &m.attempt_requests {
                self.say(format!("  Event 12288 (request sent): result {r} {}, host {host}", r.name()));
            }
        } else if let Some(r) = m.last_request_result {
            let host = m.manual_host.as_ref().or(m.last_host.as_ref()).map_or_else(String::new, |h| format!(", host {h}"));
            self.say(format!("  Event 12288 (request sent): result {r} {}{host}", r.name()));
        }
        if let Some(r) = m.last_result {
            // 12289 exists only when a host answered the last request.
            if m.last_request_result == Some(HResult::SUCCESS) {
                let count = if m.last_epid.is_some() { m.last_count.unwrap_or(0) } else { 0 };
                self.say(format!(
                    "  Event 12289 (response processed): result {r} {}, activated {}, current count {count}",
                    r.name(),
                    u8::from(r == HResult::SUCCESS),
                ));
            }
            let meaning = r.info().map_or("", |i| i.meaning);
            self.say(format!("  Activation result: {r} {}: {meaning}", r.name()));
        }
    }

    async fn stop(&mut self, fleet: Fleet) {
        let s = fleet.stop().await;
        self.summaries.push(s);
    }
}

/// Waits until `pred` holds for the fleet's machines (or [`WAIT`] passed); returns the last
/// snapshot and whether it held.
async fn wait_for(fleet: &Fleet, pred: impl Fn(&[MachineView]) -> bool) -> (bool, Vec<MachineView>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let machines = fleet.machines().await;
        if pred(&machines) {
            return (true, machines);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, machines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

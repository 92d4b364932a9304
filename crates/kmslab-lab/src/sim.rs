//! `kmslab sim`: runs a scenario file on the deterministic simulator (crate `kmslab-sim`)
//! and writes the timeline, the plot and the JSON summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kmslab_core::catalog::Catalog;
use kmslab_sim::Scenario;

/// Flags of `kmslab sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Scenario file (TOML; see docs/sim.md and docs/scenarios/) [the built-in default:
    /// docs/scenarios/two-hosts-failover.toml, two hosts, 100 clients, the first host down
    /// from day 60 to 74 and restarted on day 120].
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Seed for every random choice [the scenario's `seed`, else 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write an SVG plot of host counts and license states.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write the per-day timeline; CSV, or JSON when the name ends in .json.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Extra catalog file adding products.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Print the JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// The scenario run when `--scenario` is not given.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../docs/scenarios/two-hosts-failover.toml");

/// What `--scenario` names in messages when it is not given.
const DEFAULT_SCENARIO_NAME: &str = "(built-in two-hosts-failover.toml)";

/// Runs the simulation. Bad scenario files are usage errors (exit 2).
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let mut catalog = Catalog::builtin();
    if let Some(path) = &args.catalog {
        let text = std::fs::read_to_string(path).with_context(|| format!("--catalog {}", path.display()))?;
        if let Err(e) = catalog.extend_from_toml(&text) {
            eprintln!("kmslab: --catalog {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    }
    let (text, scenario_name) = match &args.scenario {
        None => (DEFAULT_SCENARIO.to_owned(), DEFAULT_SCENARIO_NAME.to_owned()),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => (t, path.display().to_string()),
            Err(e) => {
                eprintln!("kmslab: --scenario {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        },
    };
    let scenario = match Scenario::from_toml(&text, &catalog) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kmslab: --scenario {scenario_name}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    // Real time the simulation took to compute, reported to the user.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let out = kmslab_sim::run(&scenario, Arc::new(catalog), seed);
    let elapsed = started.elapsed();
    if let Some(path) = &args.timeline {
        let body = if path.extension().is_some_and(|e| e == "json") { out.timeline_json() } else { out.timeline_csv() };
        std::fs::write(path, body).with_context(|| format!("writing --timeline {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = if scenario.name.is_empty() { format!("kmslab sim, seed {seed}") } else { format!("{} (seed {seed})", scenario.name) };
        std::fs::write(path, kmslab_sim::plot::svg(&out, &title)).with_context(|| format!("writing --plot {}", path.display()))?;
    }
    let s = &out.summary;
    eprintln!("simulated {} machines over {} days in {:.2} s ({} requests)", s.clients, s.days, elapsed.as_secs_f64(), s.requests);
    if args.json {
        println!("{}", out.summary_json());
    } else {
        println!(
            "clients {}  licensed {}  initial grace {}  additional grace {}  notification {}  unlicensed {}",
            s.clients, s.licensed, s.initial_grace, s.additional_grace, s.notification, s.unlicensed
        );
        for (code, n) in &s.errors {
            let name = kmslab_core::HResult::parse(code).map_or("", |h| h.name());
            println!("  failed attempts {code} {name}: {n}");
        }
        for (key, left) in &s.mak_remaining {
            println!("  MAK {key}: {left} activations left");
        }
    }
    Ok(ExitCode::SUCCESS)
}

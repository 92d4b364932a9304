//! `kmslab`: the lab tool. Only `bench` exists so far; `up`, `fleet`, `sim`, `drill` and `dns`
//! are further subcommands of the same clap enum when they arrive.
#![forbid(unsafe_code)]

mod bench;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kmslab", version, about = "The kmslab lab tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load generator against a KMS host (distinct random CMIDs).
    Bench(bench::BenchArgs),
    /// Deterministic simulation of a KMS deployment from a scenario file (docs/sim.md).
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
            {
                e.exit();
            }
            let text = e.to_string();
            eprintln!("kmslab: {}", text.lines().next().unwrap_or("bad usage").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmslab: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmslab: {e:#}");
            ExitCode::from(1)
        }
    }
}

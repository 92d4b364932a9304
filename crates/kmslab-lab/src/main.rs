//! `kmslab`: the lab tool: `up`, `lab`, `fleet`, `sim`, `compare`, `drill`, `dns`, `bench`, `products`,
//! `activation-service`, `vamt`, and the
//! generators of shell completions and man pages. One module per subcommand.
#![forbid(unsafe_code)]

use kmslab_lab::activation;
mod bench;
mod compare;
mod dns;
mod fleet;
mod health;
mod labcli;
mod manpages;
mod play;
mod products;
mod sim;
mod up;
use kmslab_lab::vamt;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: `kmslab up --clients 100000` takes about 1.5 KiB
/// a machine instead of 2.0 (docs/lab.md, "How much memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kmslab", version = kmslab_runtime::VERSION, about = "The kmslab lab tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole lab in one process: DNS, hosts publishing themselves, clients discovering them.
    Up(up::UpArgs),
    /// Control a running `kmslab up`: status, machines, host, DNS and machine faults.
    Lab(labcli::LabArgs),
    /// Load generator against a KMS host (distinct random CMIDs).
    Bench(bench::BenchArgs),
    /// Deterministic simulation of a KMS deployment from a scenario file (docs/sim.md).
    Sim(sim::SimArgs),
    /// Compare two per-day timelines (`kmslab sim --timeline`) within a tolerance.
    Compare(compare::CompareArgs),
    /// Embedded authoritative DNS server accepting TSIG-signed updates (docs/dns.md).
    Dns(dns::DnsArgs),
    /// One HTTP GET, exit 0 on 2xx: healthchecks in images without curl (docs/compose.md).
    Health(health::HealthArgs),
    /// N simulated client machines in one process against real KMS hosts over TCP.
    Fleet(fleet::FleetArgs),
    /// Scripted troubleshooting scenarios over real in-process daemons (`--list`).
    Drill(kmslab_lab::drill::DrillArgs),
    /// The product catalog: names, display names, channel, counted group, threshold, GVLK.
    Products(products::ProductsArgs),
    /// Shell completions for every kmslab binary.
    Completions(manpages::CompletionsArgs),
    /// Man pages for every kmslab binary.
    Man(manpages::ManArgs),
    /// The lab's simulated Microsoft activation service: MAK counts, online and phone
    /// activation (never contacts anyone), its key generator and admin verbs.
    ///
    /// Choices kmslab made where Microsoft documents nothing (docs/kms-behaviour.md "MAK
    /// activation"): activations are counted per installation ID (key + machine), so the
    /// same machine activating again with the same key uses none; machines stay activated
    /// when their key is used up later (blocked later: non-genuine at their next /ato); a
    /// MAK for another edition is 0xC004C001;
    /// confirmation IDs are 8 groups of 6 digits, each group ending in a Luhn check digit;
    /// a blocked KMS host key makes the hosts that validate it (kms-host --activation-service)
    /// non-genuine (docs/kms-behaviour.md "Non-genuine").
    ActivationService(activation::ActivationServiceArgs),
    /// Volume Activation Management Tool for the lab: MAK machines in a CIL file, direct and
    /// proxy activation, export and import for isolated networks, key counts.
    Vamt(vamt::VamtArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return kmslab_runtime::usage::exit_on_clap_error("kmslab", &e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmslab: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(args)),
        Command::Completions(args) => manpages::completions(args, Cli::command()),
        Command::Man(args) => manpages::man(args, Cli::command()),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Sim(args) => sim::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Products(args) => products::run(args),
        Command::Fleet(args) => runtime.block_on(fleet::run(args)),
        Command::Drill(args) => runtime.block_on(kmslab_lab::drill::run(args)),
        Command::Dns(args) => runtime.block_on(dns::run(args)),
        Command::Health(args) => health::run(args),
        Command::Lab(args) => labcli::run(args),
        Command::ActivationService(args) => runtime.block_on(activation::run(args)),
        Command::Vamt(args) => runtime.block_on(vamt::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmslab: {e:#}");
            ExitCode::from(1)
        }
    }
}

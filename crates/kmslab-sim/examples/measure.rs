//! Times one scenario run: `cargo run --release -p kmslab-sim --example measure -- FILE [SEED]`.
// A measurement of real run time.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: measure FILE [SEED]");
    let seed = args.next().map_or(1, |s| s.parse().expect("seed is a number"));
    let catalog = Arc::new(kmslab_core::catalog::Catalog::builtin());
    let scenario = kmslab_sim::Scenario::from_toml(&std::fs::read_to_string(&path).unwrap(), &catalog).unwrap();
    let t = Instant::now();
    let out = kmslab_sim::run(&scenario, catalog, seed);
    eprintln!("{} clients, {} days: {:.2} s", out.summary.clients, scenario.days, t.elapsed().as_secs_f64());
    println!("{}", out.summary_json());
}

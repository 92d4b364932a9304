//! Fuzz target: arbitrary UTF-8 as a `kmslab sim` scenario file. It never panics, and an
//! accepted scenario's start time parses (`start_time` relies on validation for that).
#![no_main]

use kmslab_core::catalog::Catalog;
use kmslab_sim::Scenario;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn builtin() -> &'static Catalog {
    static BUILTIN: OnceLock<Catalog> = OnceLock::new();
    BUILTIN.get_or_init(Catalog::builtin)
}

fuzz_target!(|text: &str| {
    match Scenario::from_toml(text, builtin()) {
        Ok(scenario) => {
            let _ = scenario.start_time();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

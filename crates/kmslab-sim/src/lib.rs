//! `kmslab sim`: a deterministic discrete-event simulation of a KMS deployment.
//!
//! A [`Scenario`] (TOML, see `docs/sim.md`) describes hosts (priority, weight, key groups,
//! outages, restarts, whether DNS accepts their record), DNS outages, client cohorts
//! (product, count, join day, clones, rearm day, clock skew, host caching) and a horizon.
//! [`run`] steps the core's [`kmslab_core::sim::World`] day by day (no sockets, no
//! threads, no clock) and records a per-day [`DayRow`] timeline and a [`Summary`]. The
//! same scenario and seed give byte-identical output. [`plot::svg`] draws the timeline.
#![forbid(unsafe_code)]

pub mod plot;
pub mod run;
pub mod scenario;

pub use run::{DayRow, HostDay, MakDay, SimOutput, Summary, date_of, run, timeline_csv, timeline_json};
pub use scenario::{Scenario, ScenarioError};

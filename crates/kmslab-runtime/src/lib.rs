//! Shared async plumbing of the kmslab daemons: the simulated clock, frame I/O over tokio
//! streams, and logging set-up. Everything here is thin: KMS behaviour lives in
//! `kmslab-core`.
#![forbid(unsafe_code)]

pub mod cidr;
pub mod clock;
pub mod config;
pub mod fdlimit;
pub mod framed;
pub mod logging;
pub mod notify;
pub mod process_metrics;
pub mod prometheus;
pub mod psk;
pub mod signal;
pub mod slots;
pub mod throttle;
pub mod usage;

pub use clock::SimClock;

/// The git revision the binaries were built from (12 hex digits), or "unknown" outside a
/// git checkout; set by `build.rs`.
pub const GIT_REVISION: &str = env!("KMSLAB_GIT_REVISION");

/// What every kmslab binary prints for `--version`: `0.1.0 (git abc123def456)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("KMSLAB_GIT_REVISION"), ")");

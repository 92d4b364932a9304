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

pub use clock::SimClock;

/// The git revision and `--version` line, and one-line clap usage errors: `kmslab-cli`'s,
/// re-exported for the daemons.
pub use kmslab_cli::{GIT_REVISION, VERSION, usage};

//! Shared async plumbing of the kmslab daemons: the simulated clock, frame I/O over tokio
//! streams, and logging set-up. Everything here is thin: KMS behaviour lives in
//! `kmslab-core`.
#![forbid(unsafe_code)]

pub mod clock;
pub mod framed;
pub mod logging;
pub mod notify;

pub use clock::SimClock;

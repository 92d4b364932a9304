//! What every kmslab binary's command line shares, kept light (no async runtime) so that
//! `slmgr` needs nothing more: the `--version` line with the git revision the binaries
//! were built from ([`VERSION`], set by `build.rs`) and clap usage errors on one line
//! ([`usage`]). `kmslab-runtime` re-exports both for the daemons.
#![forbid(unsafe_code)]

pub mod labaddr;
pub mod usage;

/// The git revision the binaries were built from (12 hex digits), or "unknown" outside a
/// git checkout; set by `build.rs`.
pub const GIT_REVISION: &str = env!("KMSLAB_GIT_REVISION");

/// What every kmslab binary prints for `--version`: `0.1.0 (git abc123def456)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("KMSLAB_GIT_REVISION"), ")");

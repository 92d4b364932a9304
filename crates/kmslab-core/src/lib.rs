//! The sans-IO core of kmslab: everything that models Microsoft KMS behaviour, with no I/O.
//!
//! This crate contains no networking code, reads no clock, no file and no environment
//! variable: every function that needs the time takes `now`, and randomness comes from an
//! injected [`rng::KmsRng`]. That is what lets the host daemon, the client daemon, the
//! simulator (`kmslab sim`) and the tests share one implementation, and what makes 180
//! simulated days run in milliseconds.
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | wire protocol v1: frames, requests, responses, error frames |
//! | [`catalog`] | the product catalog (built in, extendable by a user TOML file) |
//! | [`hresult`] | every HRESULT the lab produces, with its name, meaning and usual fix |
//! | [`install_id`] | the lab's Installation and Confirmation IDs (phone and proxy activation), a client's own ePID, a host license's Activation ID |
//! | [`labkey`] | the lab's own MAKs and host keys (never Microsoft's) |
//! | [`ledger`] | the host's counting ledger: request in, response or error out |
//! | [`activator`] | one client machine's licensing state machine |
//! | [`srv`] | RFC 2782 ordering of SRV records |
//! | [`sim`] | a deterministic world of hosts, DNS and clients on one simulated clock |
//! | [`time`] | simulated timestamps and durations, civil dates, RFC 3339 |
//! | [`rng`] | the injected RNG trait and a small deterministic generator |
#![forbid(unsafe_code)]

pub mod activator;
pub mod catalog;
pub mod epid;
pub mod events;
pub mod genuine;
pub mod hostaddr;
pub mod hresult;
pub mod install_id;
pub mod labkey;
pub mod ledger;
pub mod license;
pub mod rng;
pub mod sim;
pub mod srv;
pub mod time;
pub mod toml_error;
pub mod wire;

pub use hresult::HResult;
pub use license::LicenseStatus;
pub use time::{Minutes, Timestamp};
pub use uuid::Uuid;

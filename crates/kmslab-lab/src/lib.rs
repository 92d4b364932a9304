//! The kmslab lab tool as a library: the fleet engine ([`engine`]) that `kmslab fleet`,
//! `kmslab up` and the drills drive their client machines with, and the troubleshooting
//! drills ([`drill`]) over real in-process hosts, clients and DNS.
#![forbid(unsafe_code)]

pub mod activation;
pub mod control;
pub mod drill;
pub mod engine;
mod eventlog;
pub mod labaddr;
pub mod labapi;
pub mod labpage;
pub mod vamt;

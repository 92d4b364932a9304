//! Integration tests of kms-host: a real host (in-process or the real binary) on
//! 127.0.0.1 port 0, real sockets, a real SQLite registry in a temporary directory.
// Tests wait on real processes and sockets with real-time deadlines.
#![allow(clippy::disallowed_methods)]

mod access;
mod admin;
mod crash;
mod dashboard;
mod dns;
mod dns_support;
mod full_disk;
mod integrity;
mod serving;
mod support;
mod surfaces;

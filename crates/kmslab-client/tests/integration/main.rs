//! kms-client integration tests: real sockets on 127.0.0.1, a real BIND9 for discovery.
// Tests wait on real processes and sockets with real-time deadlines.
#![allow(clippy::disallowed_methods)]

mod admin_access;
mod cli;
mod discovery;
mod integrity;
mod lifecycle;
mod persistence;
mod psk;
mod slmgr;
mod support;
mod with_host;

//! kms-client integration tests: real sockets on 127.0.0.1, a real BIND9 for discovery.

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

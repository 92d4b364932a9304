//! kmslab's DNS edge: KMS host discovery, host publishing and the embedded lab DNS server.
//!
//! This is the only kmslab crate that uses hickory. It does three things:
//!
//! 1. **Discovery (client side).** [`lookup_vlmcs`] asks a DNS server for the SRV records
//!    `_vlmcs._tcp.<domain>` and returns them as [`SrvTarget`]s; [`resolve_host`] turns a
//!    target into addresses; [`system_search_domains`] gives the search list a client falls
//!    back to when no domain is set. The server is the system's ([`DnsServerChoice::System`])
//!    or one given by hand, as an address ([`DnsServerChoice::Server`]) or a name such as a
//!    container service's `dns:53` ([`DnsServerChoice::Named`], resolved by the system
//!    resolver on first use and again after a lookup through it failed). No cache of
//!    answers is kept between calls.
//!    Failures are [`LookupError`]s: NXDOMAIN, no records, no server configured, server
//!    failure, each with its KMS-lab HRESULT ([`LookupError::hresult`]).
//! 2. **Publishing (host side).** A [`Publisher`] built from a [`PublisherConfig`] sends
//!    RFC 2136 dynamic updates that add ([`Publisher::publish`]) or remove
//!    ([`Publisher::unpublish`]) this host's own SRV record in a [`PublishZone`], leaving
//!    other hosts' records alone, optionally TSIG-signed with a [`TsigKey`]. Failures are
//!    [`PublishError`]s that say what the server said: REFUSED, NOTAUTH, TSIG
//!    authentication failure, unreachable, timeout.
//! 3. **The embedded lab DNS server.** [`LabDnsServer::start`] serves one zone over UDP and
//!    TCP from a [`LabDnsConfig`], accepts updates signed with its key only, and keeps them
//!    in a journal in its data directory so they survive a restart.
//!
//! ```text
//! pub async fn lookup_vlmcs(&DnsServerChoice, domain: &str, timeout: Duration)
//!     -> Result<Vec<SrvTarget>, LookupError>
//! pub async fn resolve_host(&DnsServerChoice, name: &str, timeout: Duration)
//!     -> Result<Vec<IpAddr>, LookupError>
//! pub fn system_search_domains() -> Vec<String>
//! Publisher::new(PublisherConfig) -> Result<Publisher, PublishError>
//! Publisher::publish(&self, &PublishZone) / unpublish(..) -> Result<(), PublishError>
//! TsigKey: FromStr ("NAME:ALG:BASE64"), Display, from_file(&Path), generate(name)
//! PublishZone: FromStr ("ZONE[,PRIORITY[,WEIGHT]]")
//! LabDnsServer::start(LabDnsConfig) -> Result<LabDnsServer, ServeError>
//! LabDnsServer::local_addr(&self), shutdown(self)
//! ```
//!
//! Architecture invariant: this crate knows DNS, not KMS. It does not order SRV records by
//! priority and weight (the client core does), does not schedule the 24-hour republish and
//! does not log KMS events; it returns typed errors whose `hresult()` the callers report.
#![forbid(unsafe_code)]

mod discovery;
pub mod hresult;
mod publish;
mod server;
mod tsig;

pub use discovery::{
    DnsServerChoice, LookupError, NamedServer, SrvTarget, VLMCS_PREFIX, lookup_vlmcs, resolve_host, system_search_domains,
};
pub use publish::{PublishError, PublishZone, PublishZoneError, Publisher, PublisherConfig};
pub use server::{DnsFaults, LabDnsConfig, LabDnsServer, ServeError};
pub use tsig::{TsigAlg, TsigKey, TsigKeyError};

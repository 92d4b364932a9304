//! Client-side discovery: `_vlmcs._tcp` SRV lookups, host address lookups, search domains.
//!
//! Every call builds a fresh resolver with its cache turned off: a KMS client re-runs
//! discovery after a host stops answering, and the lab changes records between lookups, so
//! an answer cached from an earlier call would hide exactly the change being tested.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::{DnsError, NetError};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData};
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};

use crate::hresult;

/// Where the system keeps its resolver configuration.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The owner-name prefix KMS hosts register under (`_vlmcs._tcp.<domain>`).
pub const VLMCS_PREFIX: &str = "_vlmcs._tcp";

/// One `_vlmcs._tcp` SRV record: a KMS host and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SrvTarget {
    /// Lower values are tried first (RFC 2782).
    pub priority: u16,
    /// Relative chance among records of the same priority.
    pub weight: u16,
    /// The KMS port on the target (1688 by default).
    pub port: u16,
    /// The host's name, without a trailing dot.
    pub target: String,
}

/// Which DNS server a lookup asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsServerChoice {
    /// The name servers of `/etc/resolv.conf`, like an unconfigured Windows client.
    System,
    /// One server, like `kms-client --dns-server IP:PORT`; asked over UDP, then TCP when a
    /// reply is truncated.
    Server(SocketAddr),
    /// One server given by name, like `--dns-server dns:53` (a compose or Swarm service).
    Named(NamedServer),
}

impl From<SocketAddr> for DnsServerChoice {
    fn from(address: SocketAddr) -> Self {
        DnsServerChoice::Server(address)
    }
}

impl fmt::Display for DnsServerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsServerChoice::System => f.write_str("system resolver"),
            DnsServerChoice::Server(address) => write!(f, "{address}"),
            DnsServerChoice::Named(named) => write!(f, "{}:{}", named.inner.name, named.inner.port),
        }
    }
}

impl DnsServerChoice {
    /// Parses a `--dns-server` value: `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT`. A name is
    /// only checked here; it is resolved when first used (see [`NamedServer`]).
    pub fn parse_server(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(DnsServerChoice::Server(address));
        }
        let expected = || format!("{text:?} is not IP:PORT or NAME:PORT (IPv6 as [::1]:53)");
        let (name, port) = text.rsplit_once(':').ok_or_else(expected)?;
        let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(expected)?;
        let name = name.trim_end_matches('.');
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(expected());
        }
        Ok(DnsServerChoice::Named(NamedServer { inner: Arc::new(NamedInner { name: name.to_owned(), port, resolved: Mutex::new(None) }) }))
    }

    /// The address queries go to: `None` for the system resolver. A named server is
    /// resolved on first use and after [`forget_address`](Self::forget_address).
    pub async fn server_address(&self, timeout: Duration) -> Result<Option<SocketAddr>, LookupError> {
        match self {
            DnsServerChoice::System => Ok(None),
            DnsServerChoice::Server(address) => Ok(Some(*address)),
            DnsServerChoice::Named(named) => named.address(timeout).await.map(Some),
        }
    }

    /// After a failure through a named server: the next use resolves its name again (a
    /// restarted container or a rescheduled Swarm task may have a new address).
    pub fn forget_address(&self) {
        if let DnsServerChoice::Named(named) = self {
            *named.inner.resolved.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// A DNS server known by name (`dns:53`). The name is resolved by the system resolver
/// (`/etc/hosts`, then the servers of `/etc/resolv.conf`: inside a container, the
/// engine's embedded DNS that knows the service names) with hickory rather than
/// getaddrinfo, so a static binary in a `FROM scratch` image needs no NSS modules. Clones
/// share the resolved address, so one failure makes every user resolve again.
#[derive(Clone, Debug)]
pub struct NamedServer {
    inner: Arc<NamedInner>,
}

#[derive(Debug)]
struct NamedInner {
    name: String,
    port: u16,
    resolved: Mutex<Option<SocketAddr>>,
}

impl PartialEq for NamedServer {
    fn eq(&self, other: &Self) -> bool {
        (&self.inner.name, self.inner.port) == (&other.inner.name, other.inner.port)
    }
}

impl Eq for NamedServer {}

impl NamedServer {
    async fn address(&self, timeout: Duration) -> Result<SocketAddr, LookupError> {
        if let Some(address) = *self.inner.resolved.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(address);
        }
        let shown = format!("{}:{}", self.inner.name, self.inner.port);
        let ips = match literal_or_localhost(&self.inner.name) {
            Some(ips) => ips,
            None => resolve_through(None, ResolveHosts::Auto, &self.inner.name, timeout).await.map_err(|error| {
                LookupError::ServerFailure { name: shown.clone(), detail: format!("cannot resolve the server's name: {error}") }
            })?,
        };
        let ip = ips.iter().find(|ip| ip.is_ipv4()).unwrap_or(&ips[0]);
        let address = SocketAddr::new(*ip, self.inner.port);
        tracing::info!(server = %shown, %address, "DNS server name resolved");
        *self.inner.resolved.lock().unwrap_or_else(|p| p.into_inner()) = Some(address);
        Ok(address)
    }
}

/// Why a discovery lookup found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The server says the name does not exist (NXDOMAIN).
    #[error("DNS name {name} does not exist")]
    NameNotFound {
        /// The name asked for.
        name: String,
    },
    /// The name exists but has no record of the asked type (NOERROR, empty answer).
    #[error("DNS name {name} has no {record_type} records")]
    NoRecords {
        /// The name asked for.
        name: String,
        /// The record type asked for (`SRV`, `A/AAAA`).
        record_type: &'static str,
    },
    /// The system configuration names no DNS server (empty or missing resolv.conf).
    #[error("no DNS server is configured ({detail})")]
    NoServer {
        /// What was missing, naming the file read.
        detail: String,
    },
    /// The server failed, refused, could not be reached or did not answer in time.
    #[error("DNS server failure looking up {name}: {detail}")]
    ServerFailure {
        /// The name asked for.
        name: String,
        /// What went wrong (the response code or the transport error).
        detail: String,
    },
    /// The server answered with another error response code (REFUSED, FORMERR, NOTIMP,
    /// ...): each has its own `DNS_ERROR_RCODE_*` HRESULT.
    #[error("DNS server answered {rcode_name} looking up {name}")]
    ErrorResponse {
        /// The name asked for.
        name: String,
        /// The response code's value (5 for REFUSED).
        rcode: u16,
        /// Its mnemonic (`REFUSED`).
        rcode_name: String,
    },
    /// The domain or host name given is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name: {detail}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is not valid.
        detail: String,
    },
}

impl LookupError {
    /// The KMS-lab HRESULT: NXDOMAIN 0x8007232B, no records 0x8007251D, no server
    /// configured 0x8007267C, server failure (SERVFAIL, unreachable, no answer) 0x8007232A,
    /// another response code its own `DNS_ERROR_RCODE_*` (REFUSED 0x8007232D), invalid name
    /// 0x80070057.
    pub fn hresult(&self) -> u32 {
        match self {
            Self::NameNotFound { .. } => hresult::DNS_NAME_DOES_NOT_EXIST,
            Self::NoRecords { .. } => hresult::DNS_NO_RECORDS,
            Self::NoServer { .. } => hresult::DNS_NO_SERVERS,
            Self::ServerFailure { .. } => hresult::DNS_SERVER_FAILURE,
            Self::ErrorResponse { rcode, .. } => hresult::from_rcode(*rcode),
            Self::InvalidName { .. } => hresult::INVALID_ARGUMENT,
        }
    }
}

/// Looks up the KMS SRV records `_vlmcs._tcp.<domain>` and returns them in the order the
/// server sent them (ordering by priority and weight is the client core's job).
///
/// Records whose target is `.` ("service decidedly not available", RFC 2782) are dropped;
/// if nothing else remains the result is [`LookupError::NoRecords`].
pub async fn lookup_vlmcs(server: &DnsServerChoice, domain: &str, timeout: Duration) -> Result<Vec<SrvTarget>, LookupError> {
    let domain = domain.trim().trim_end_matches('.');
    let owner = format!("{VLMCS_PREFIX}.{domain}.");
    let display_name = owner.trim_end_matches('.').to_owned();
    let name = parse_name(&owner, domain)?;

    let address = server.server_address(timeout).await?;
    let resolver = build_resolver(address, timeout, ResolveHosts::Never)?;
    let lookup = with_deadline(timeout, &display_name, resolver.srv_lookup(name))
        .await
        .and_then(|r| r.map_err(|error| map_net_error(error, &display_name, "SRV")))
        .inspect_err(|error| forget_after(server, error))?;

    let targets: Vec<SrvTarget> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => {
                Some(SrvTarget { priority: srv.priority, weight: srv.weight, port: srv.port, target: name_without_dot(&srv.target) })
            }
            _ => None,
        })
        .filter(|target| !target.target.is_empty())
        .collect();
    if targets.is_empty() {
        return Err(LookupError::NoRecords { name: display_name, record_type: "SRV" });
    }
    Ok(targets)
}

/// Resolves a host name to its IPv4 and IPv6 addresses (IPv4 first).
///
/// An IP literal (`192.0.2.1`, `::1`, `[::1]`) is returned as is without asking anyone,
/// and `localhost` is `127.0.0.1`, as Windows resolves it without DNS.
pub async fn resolve_host(server: &DnsServerChoice, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
    let trimmed = name.trim();
    if let Some(ips) = literal_or_localhost(trimmed) {
        return Ok(ips);
    }
    // With the system resolver the hosts file counts, as it does for any program on the
    // machine; a server given by hand is asked directly.
    let hosts = match server {
        DnsServerChoice::System => ResolveHosts::Auto,
        DnsServerChoice::Server(_) | DnsServerChoice::Named(_) => ResolveHosts::Never,
    };
    let address = server.server_address(timeout).await?;
    resolve_through(address, hosts, trimmed, timeout).await.inspect_err(|error| forget_after(server, error))
}

/// An IP literal (bracketed or not) as itself, `localhost` as 127.0.0.1; `None` for a
/// name that needs a lookup.
fn literal_or_localhost(name: &str) -> Option<Vec<IpAddr>> {
    let unbracketed = name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(name);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Some(vec![ip]);
    }
    name.trim_end_matches('.').eq_ignore_ascii_case("localhost").then(|| vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
}

/// A lookup through a named server that failed at the transport (no answer, unreachable)
/// makes the next one resolve the server's name again.
fn forget_after(server: &DnsServerChoice, error: &LookupError) {
    if matches!(error, LookupError::ServerFailure { .. }) {
        server.forget_address();
    }
}

/// A/AAAA lookup of `name` at `server` (`None`: the system's servers).
async fn resolve_through(
    server: Option<SocketAddr>,
    hosts: ResolveHosts,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, LookupError> {
    let host = name.trim_end_matches('.');
    let parsed = parse_name(name, name)?;
    let resolver = build_resolver(server, timeout, hosts)?;
    let lookup = with_deadline(timeout, host, resolver.lookup_ip(parsed)).await?.map_err(|error| map_net_error(error, host, "A/AAAA"))?;
    let addresses: Vec<IpAddr> = lookup.iter().collect();
    if addresses.is_empty() {
        return Err(LookupError::NoRecords { name: host.to_owned(), record_type: "A/AAAA" });
    }
    Ok(addresses)
}

/// The DNS search list of this machine (`search` or `domain` in `/etc/resolv.conf`, the
/// last such line winning, as in glibc), without trailing dots; empty when there is none.
pub fn system_search_domains() -> Vec<String> {
    std::fs::read_to_string(RESOLV_CONF).map(|text| search_domains_from(&text)).unwrap_or_default()
}

/// Parses the search list out of resolv.conf text.
pub(crate) fn search_domains_from(text: &str) -> Vec<String> {
    let mut domains = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if let Some("search" | "domain") = words.next() {
            domains = words
                .filter(|word| *word != "--" && *word != ".")
                .map(|word| word.trim_end_matches('.').to_owned())
                .filter(|word| !word.is_empty())
                .collect();
        }
    }
    domains
}

fn parse_name(text: &str, shown: &str) -> Result<Name, LookupError> {
    if shown.is_empty() {
        return Err(LookupError::InvalidName { name: shown.to_owned(), detail: "the name is empty".to_owned() });
    }
    Name::from_ascii(text).map_err(|error| LookupError::InvalidName { name: shown.to_owned(), detail: error.to_string() })
}

pub(crate) fn name_without_dot(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

fn build_resolver(
    server: Option<SocketAddr>,
    timeout: Duration,
    hosts: ResolveHosts,
) -> Result<Resolver<TokioRuntimeProvider>, LookupError> {
    let (config, mut options) = match server {
        None => system_resolver_config()?,
        Some(address) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = address.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = address.port();
            let name_server = NameServerConfig::new(address.ip(), true, vec![udp, tcp]);
            (ResolverConfig::from_name_servers(vec![name_server]), ResolverOpts::default())
        }
    };
    // Two tries inside the caller's budget: one lost UDP datagram should not fail discovery.
    options.timeout = (timeout / 2).max(Duration::from_millis(100));
    options.attempts = 2;
    options.cache_size = 0;
    options.use_hosts_file = hosts;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.recursion_desired = true;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|error| LookupError::ServerFailure { name: String::new(), detail: format!("cannot build a resolver: {error}") })
}

fn system_resolver_config() -> Result<(ResolverConfig, ResolverOpts), LookupError> {
    let text =
        std::fs::read(RESOLV_CONF).map_err(|error| LookupError::NoServer { detail: format!("cannot read {RESOLV_CONF}: {error}") })?;
    resolver_config_from(&text)
}

/// Turns resolv.conf content into a resolver configuration, or [`LookupError::NoServer`]
/// when it names no server.
pub(crate) fn resolver_config_from(text: &[u8]) -> Result<(ResolverConfig, ResolverOpts), LookupError> {
    hickory_resolver::system_conf::parse_resolv_conf(text)
        .ok()
        .filter(|(config, _)| !config.name_servers().is_empty())
        .ok_or_else(|| LookupError::NoServer { detail: format!("{RESOLV_CONF} names no nameserver") })
}

async fn with_deadline<T>(timeout: Duration, name: &str, future: impl Future<Output = T>) -> Result<T, LookupError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| LookupError::ServerFailure { name: name.to_owned(), detail: format!("no answer within {} ms", timeout.as_millis()) })
}

/// The RFC 1035/2136 mnemonic of a response code (`REFUSED`, `NOTIMP`), as dig prints it.
fn rcode_mnemonic(code: ResponseCode) -> String {
    format!("{code:?}").to_ascii_uppercase()
}

fn map_net_error(error: NetError, name: &str, record_type: &'static str) -> LookupError {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            if no_records.response_code == ResponseCode::NXDomain {
                LookupError::NameNotFound { name: name.to_owned() }
            } else {
                LookupError::NoRecords { name: name.to_owned(), record_type }
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) if code != ResponseCode::ServFail => {
            LookupError::ErrorResponse { name: name.to_owned(), rcode: u16::from(code), rcode_name: rcode_mnemonic(code) }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            LookupError::ServerFailure { name: name.to_owned(), detail: format!("the server answered {code}") }
        }
        NetError::Timeout => LookupError::ServerFailure { name: name.to_owned(), detail: "the server did not answer in time".to_owned() },
        other => LookupError::ServerFailure { name: name.to_owned(), detail: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_list_comes_from_the_last_search_or_domain_line() {
        let check = |text: &str, expected: &[&str]| {
            assert_eq!(search_domains_from(text), expected, "{text:?}");
        };
        check("", &[]);
        check("nameserver 127.0.0.1\n", &[]);
        check("search lab.test corp.test.\n", &["lab.test", "corp.test"]);
        check("domain a.test\nsearch b.test c.test\n", &["b.test", "c.test"]);
        check("search b.test\ndomain a.test # comment\n", &["a.test"]);
        check("search -- lan .\n", &["lan"]);
        check("# search commented.test\n", &[]);
    }

    #[test]
    fn empty_resolv_conf_means_no_server() {
        for text in ["", "search lab.test\n", "# nothing\noptions ndots:2\n"] {
            let error = resolver_config_from(text.as_bytes()).unwrap_err();
            assert!(matches!(error, LookupError::NoServer { .. }), "{error:?}");
            assert_eq!(error.hresult(), 0x8007_267C);
            assert!(error.to_string().contains("no DNS server"), "{error}");
        }
        let (config, _) = resolver_config_from(b"nameserver 127.0.0.1\n").unwrap();
        assert_eq!(config.name_servers().len(), 1);
    }

    #[test]
    fn hresults_match_the_lab_table() {
        let name = || "x".to_owned();
        let check = |error: LookupError, expected: u32| assert_eq!(error.hresult(), expected);
        check(LookupError::NameNotFound { name: name() }, 0x8007_232B);
        check(LookupError::NoRecords { name: name(), record_type: "SRV" }, 0x8007_251D);
        check(LookupError::ServerFailure { name: name(), detail: name() }, 0x8007_232A);
        check(LookupError::ErrorResponse { name: name(), rcode: 5, rcode_name: "REFUSED".into() }, 0x8007_232D);
        check(LookupError::ErrorResponse { name: name(), rcode: 4, rcode_name: "NOTIMP".into() }, 0x8007_232C);
        check(LookupError::InvalidName { name: name(), detail: name() }, 0x8007_0057);
    }

    #[tokio::test]
    async fn literals_and_localhost_need_no_server() {
        // A server that cannot exist: if these asked it, they would fail.
        let nowhere = DnsServerChoice::Server("127.0.0.1:9".parse().unwrap());
        let timeout = Duration::from_millis(200);
        let check = async |name: &str, expected: IpAddr| {
            assert_eq!(resolve_host(&nowhere, name, timeout).await.unwrap(), vec![expected]);
        };
        check("192.0.2.7", "192.0.2.7".parse().unwrap()).await;
        check("::1", "::1".parse().unwrap()).await;
        check("[2001:db8::1]", "2001:db8::1".parse().unwrap()).await;
        check("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        check("LOCALHOST.", IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    }

    #[test]
    fn dns_servers_parse_as_addresses_or_names_with_a_port() {
        let check = |text: &str, expected: Result<&str, ()>| {
            let parsed = DnsServerChoice::parse_server(text);
            match expected {
                Ok(shown) => assert_eq!(parsed.unwrap().to_string(), shown, "{text:?}"),
                Err(()) => assert!(parsed.unwrap_err().contains("NAME:PORT"), "{text:?}"),
            }
        };
        check("127.0.0.1:53", Ok("127.0.0.1:53"));
        check("[::1]:5353", Ok("[::1]:5353"));
        check("dns:53", Ok("dns:53"));
        check(" ns1.lab.test.:5353 ", Ok("ns1.lab.test:5353"));
        check("tasks.dns_service:53", Ok("tasks.dns_service:53"));
        assert!(matches!(DnsServerChoice::parse_server("dns:53"), Ok(DnsServerChoice::Named(_))));
        for bad in ["dns", "localhost", "dns:0", "dns:99999", ":53", "a b:53", "dns..x:53", "127.0.0.1"] {
            check(bad, Err(()));
        }
    }

    #[tokio::test]
    async fn a_named_server_resolves_through_the_system_and_an_unknown_name_is_a_server_failure() {
        let timeout = Duration::from_secs(2);
        let local = DnsServerChoice::parse_server("localhost:5353").unwrap();
        assert_eq!(local.server_address(timeout).await.unwrap(), Some("127.0.0.1:5353".parse().unwrap()));
        let unknown = DnsServerChoice::parse_server("no-such-dns-server.invalid:53").unwrap();
        let error = lookup_vlmcs(&unknown, "lab.test", timeout).await.unwrap_err();
        assert_eq!(error.hresult(), 0x8007_232A, "{error}");
        assert!(error.to_string().contains("no-such-dns-server.invalid:53: cannot resolve the server's name"), "{error}");
    }

    #[tokio::test]
    async fn invalid_domain_is_reported_before_any_query() {
        let nowhere = DnsServerChoice::Server("127.0.0.1:9".parse().unwrap());
        let error = lookup_vlmcs(&nowhere, "", Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(error, LookupError::InvalidName { .. }), "{error:?}");
    }
}

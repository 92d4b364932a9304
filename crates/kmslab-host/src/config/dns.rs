//! Publishing the host's `_vlmcs._tcp` SRV record by RFC 2136 dynamic update: the server,
//! the publish list, the names and addresses published, and the TSIG key signing it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kmslab_dns::{DnsServerChoice, PublishZone};
use kmslab_runtime::config::{ConfigError, Parsed, Ranged};

use super::{HostConfig, Names, Outside};

/// `--dns-server IP:PORT|NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer(pub DnsServerChoice);

impl FromStr for DnsServer {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        DnsServerChoice::parse_server(v).map(DnsServer)
    }
}

/// One `--dns-zone` value: publish list entries `ZONE[,PRIORITY[,WEIGHT]]`, several
/// separated by spaces or `;` (how `KMSLAB_DNS_ZONE` holds a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneEntries(pub Vec<PublishZone>);

impl FromStr for ZoneEntries {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        let entries = v.split([';', ' ']).filter(|e| !e.trim().is_empty());
        // The whole value is quoted with the refusal; a part of it is named.
        let refuse = |e: &str, err: kmslab_dns::PublishZoneError| if e == v { err.to_string() } else { format!("{e:?}: {err}") };
        entries.map(|e| e.parse().map_err(|err| refuse(e, err))).collect::<Result<_, _>>().map(ZoneEntries)
    }
}

/// `--dns-address IP|NAME`: an address, or a name looked up when publishing (a Swarm
/// service name: its virtual IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAddress {
    /// Published as it is.
    Ip(IpAddr),
    /// Resolved at every publishing round.
    Name(String),
}

impl FromStr for DnsAddress {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        match v.trim().parse::<IpAddr>() {
            Ok(ip) => Ok(DnsAddress::Ip(ip)),
            Err(_) => match v.trim().parse::<kmslab_core::hostaddr::HostAddr>() {
                Ok(h) if !v.contains(':') && h.host.chars().any(|c| c.is_ascii_alphabetic()) => Ok(DnsAddress::Name(h.host)),
                _ => Err("expected an IPv4 or IPv6 address or a host name"),
            },
        }
    }
}

section! {
    /// DNS publishing.
    pub struct Dns {
        /// DNS server receiving RFC 2136 updates (IP:PORT, or NAME:PORT resolved when publishing).
        #[arg(long, env = "KMSLAB_DNS_SERVER", value_name = "IP:PORT|NAME:PORT")]
        pub dns_server: Option<Parsed<DnsServer>>,
        /// Publish list entry ZONE[,PRIORITY[,WEIGHT]] (repeatable; in KMSLAB_DNS_ZONE separate entries by spaces or `;`).
        #[arg(long, env = "KMSLAB_DNS_ZONE", value_name = "Z[,PRIO[,WEIGHT]]")]
        pub dns_zone: Option<Vec<Parsed<ZoneEntries>>>,
        /// SRV target FQDN [the system host name, completed with the first zone when it has no dot].
        #[arg(long, env = "KMSLAB_DNS_HOSTNAME", value_name = "FQDN")]
        pub dns_hostname: Option<String>,
        /// Also publish an A/AAAA record with this address for --dns-hostname (a name: the address it resolves to when publishing).
        #[arg(long, env = "KMSLAB_DNS_ADDRESS", value_name = "IP|NAME")]
        pub dns_address: Option<Parsed<DnsAddress>>,
        /// TTL of the published records, seconds (1..=604800) [600].
        #[arg(long, env = "KMSLAB_DNS_TTL", value_name = "SECS")]
        pub dns_ttl: Option<Ranged<1, 604_800>>,
        /// Do not publish in DNS at all (the /sdns setting is kept but ignored).
        #[arg(long, env = "KMSLAB_NO_DNS_PUBLISH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        pub no_dns_publish: Option<bool>,
        /// TSIG key signing the updates, NAME:ALG:BASE64 (hmac-sha256/384/512).
        #[arg(long, env = "KMSLAB_TSIG_KEY", value_name = "NAME:ALG:BASE64", conflicts_with = "tsig_key_file", hide_env_values = true)]
        pub tsig_key: Option<String>,
        /// File with the TSIG key (NAME:ALG:BASE64, or a BIND `key` clause).
        #[arg(long, env = "KMSLAB_TSIG_KEY_FILE", value_name = "FILE")]
        pub tsig_key_file: Option<PathBuf>,
        /// Remove this host's SRV record on a clean shutdown.
        #[arg(long, env = "KMSLAB_UNPUBLISH_ON_EXIT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        pub unpublish_on_exit: Option<bool>,
    }
}

impl Dns {
    pub(super) fn apply(self, n: &Names, outside: Outside, config: &mut HostConfig) -> Result<(), ConfigError> {
        let dns = &mut config.dns;
        dns.server = self.dns_server.map(|s| s.0.0);
        dns.zones = self.dns_zone.unwrap_or_default().into_iter().flat_map(|e| e.0.0).collect();
        match self.dns_address.map(|a| a.0) {
            Some(DnsAddress::Ip(ip)) => dns.address = Some(ip),
            Some(DnsAddress::Name(name)) => dns.address_name = Some(name),
            None => {}
        }
        if let Some(ttl) = self.dns_ttl {
            // Within 1..=604800.
            dns.ttl = ttl.get() as u32;
        }
        if let Some(no) = self.no_dns_publish {
            dns.publish = !no;
        }
        if let Some(unpublish) = self.unpublish_on_exit {
            dns.unpublish_on_exit = unpublish;
        }
        match (self.tsig_key, self.tsig_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(n.of("tsig_key"), format!("give either it or {}, not both", n.of("tsig_key_file"))));
            }
            // The value is never quoted: it is a secret.
            (Some(v), None) => dns.tsig = Some(v.parse().map_err(|e| ConfigError::new(n.of("tsig_key"), e))?),
            (None, Some(path)) => {
                let (name, v) = (n.of("tsig_key_file"), path.display().to_string());
                outside.may_read(&name, &v)?;
                dns.tsig = Some(kmslab_dns::TsigKey::from_file(Path::new(&path)).map_err(|e| ConfigError::value(name, v, e))?);
            }
            (None, None) => {}
        }
        let system_hostname: fn() -> Option<String> = match outside {
            Outside::System => crate::publish::system_hostname,
            Outside::Nothing => || None,
        };
        let hostname = self.dns_hostname.map(|v| (v, n.of("dns_hostname")));
        crate::publish::finish_config_with(dns, hostname, system_hostname)
    }
}

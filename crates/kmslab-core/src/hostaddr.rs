//! `host[:port]` addresses of KMS hosts, as `/skms` and SRV targets give them.

use std::fmt;
use std::str::FromStr;

/// The KMS port.
pub const DEFAULT_KMS_PORT: u16 = 1688;

/// A KMS host: a name or IP literal and a TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddr {
    /// DNS name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a `host[:port]` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid KMS host {input:?}: {reason} (expected HOST, HOST:PORT or [IPv6]:PORT)")]
pub struct HostAddrError {
    /// The text given.
    pub input: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl HostAddr {
    /// A host address from parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostAddr { host: host.into(), port }
    }
}

impl FromStr for HostAddr {
    type Err = HostAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| HostAddrError { input: s.to_owned(), reason };
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| err("missing ']'"))?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(|| err("expected ':' after ']'"))?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None) // a bare IPv6 literal
        } else if let Some((h, p)) = s.split_once(':') {
            (h, Some(p))
        } else {
            (s, None)
        };
        let port = match port {
            None => DEFAULT_KMS_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| err("port must be 1..65535"))?,
        };
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return Err(err("empty host name"));
        }
        if host.len() > 253 || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_' | '%')) {
            return Err(err("host name has characters a DNS name or IP address cannot have"));
        }
        Ok(HostAddr { host: host.to_owned(), port })
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') { write!(f, "[{}]:{}", self.host, self.port) } else { write!(f, "{}:{}", self.host, self.port) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ports_and_ipv6() {
        let cases = [
            ("kms1.lab.test", "kms1.lab.test", 1688),
            ("kms1.lab.test:1700", "kms1.lab.test", 1700),
            ("127.0.0.1:5000", "127.0.0.1", 5000),
            ("[::1]:1688", "::1", 1688),
            ("[fe80::1]", "fe80::1", 1688),
            ("::1", "::1", 1688),
            ("kms1.lab.test.", "kms1.lab.test", 1688),
        ];
        for (input, host, port) in cases {
            let a: HostAddr = input.parse().unwrap();
            assert_eq!((a.host.as_str(), a.port), (host, port), "{input}");
        }
        assert_eq!("[::1]:1688".parse::<HostAddr>().unwrap().to_string(), "[::1]:1688");
        assert_eq!("kms1:99".parse::<HostAddr>().unwrap().to_string(), "kms1:99");
        for bad in ["", ":1688", "kms1:0", "kms1:99999", "[::1", "kms 1", "[::1]x"] {
            assert!(bad.parse::<HostAddr>().is_err(), "{bad}");
        }
    }
}

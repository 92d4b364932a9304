//! Host-side publishing: RFC 2136 dynamic updates of this host's `_vlmcs._tcp` SRV record.
//!
//! Updates go over UDP through hickory-net's `Client`. When a TSIG key is configured the
//! message is signed here rather than by the transport, so that the answer comes back
//! unverified and we can read the server's TSIG error (BADSIG, BADKEY, BADTIME) and say
//! "authentication failed" instead of hickory's verifier error about "truncated HMACs"
//! (an unsigned BADSIG answer has an empty MAC). A NOERROR answer is then verified here;
//! error answers are reported as they are (a forged one could only make us report a failure).
//!
//! Before each update the current `_vlmcs._tcp` RRset is read from the same server, so that
//! this host's old record (same target, other priority, weight or port) is deleted in the
//! same update that adds the new one, and other hosts' records are never touched.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_net::NetError;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsResponse, Edns, Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use tokio::net::UdpSocket;
use tracing::debug;

use crate::discovery::{VLMCS_PREFIX, name_without_dot};
use crate::hresult;
use crate::tsig::{TsigKey, TsigKeyError};

/// The EDNS UDP payload size we offer (the DNS flag day 2020 value, safe from fragmentation).
const UDP_PAYLOAD: u16 = 1232;

/// One entry of a host's publish list: `--dns-zone Z[,PRIO[,WEIGHT]]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublishZone {
    /// The DNS domain to publish in, without a trailing dot.
    pub zone: String,
    /// SRV priority (default 0).
    pub priority: u16,
    /// SRV weight (default 0).
    pub weight: u16,
}

impl PublishZone {
    /// A zone with priority 0 and weight 0, the KMS defaults.
    pub fn new(zone: &str) -> Result<Self, PublishZoneError> {
        let zone = zone.trim().trim_end_matches('.');
        if zone.is_empty() {
            return Err(PublishZoneError::EmptyZone);
        }
        Name::from_ascii(format!("{zone}."))
            .map_err(|error| PublishZoneError::BadZone { zone: zone.to_owned(), detail: error.to_string() })?;
        Ok(Self { zone: zone.to_owned(), priority: 0, weight: 0 })
    }
}

impl fmt::Display for PublishZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.zone, self.priority, self.weight)
    }
}

impl FromStr for PublishZone {
    type Err = PublishZoneError;

    /// Parses `ZONE`, `ZONE,PRIORITY` or `ZONE,PRIORITY,WEIGHT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',');
        let mut zone = Self::new(parts.next().unwrap_or_default())?;
        let number = |part: &'static str, text: Option<&str>| -> Result<u16, PublishZoneError> {
            match text {
                None => Ok(0),
                Some(text) => text.trim().parse().map_err(|_| PublishZoneError::BadNumber { part, found: text.trim().to_owned() }),
            }
        };
        zone.priority = number("priority", parts.next())?;
        zone.weight = number("weight", parts.next())?;
        if parts.next().is_some() {
            return Err(PublishZoneError::TooManyParts { found: s.trim().to_owned() });
        }
        Ok(zone)
    }
}

/// Why a publish-list entry could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishZoneError {
    /// The zone part is empty.
    #[error("publish zone is empty (expected ZONE[,PRIORITY[,WEIGHT]])")]
    EmptyZone,
    /// The zone part is not a valid DNS name.
    #[error("publish zone {zone:?} is not a valid DNS name: {detail}")]
    BadZone {
        /// The zone given.
        zone: String,
        /// Why it is not valid.
        detail: String,
    },
    /// The priority or weight is not a number from 0 to 65535.
    #[error("publish zone {part} {found:?} is not a number from 0 to 65535")]
    BadNumber {
        /// `priority` or `weight`.
        part: &'static str,
        /// The text given.
        found: String,
    },
    /// More than three comma-separated parts.
    #[error("publish zone {found:?} has too many parts (expected ZONE[,PRIORITY[,WEIGHT]])")]
    TooManyParts {
        /// The text given.
        found: String,
    },
}

impl PublishZoneError {
    /// The KMS-lab HRESULT: always `E_INVALIDARG` (0x80070057).
    pub fn hresult(&self) -> u32 {
        hresult::INVALID_ARGUMENT
    }
}

/// How a host publishes itself.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// The DNS server that accepts the updates (`--dns-server IP:PORT`).
    pub server: SocketAddr,
    /// This host's FQDN, the SRV target (`--dns-hostname`); a trailing dot is optional.
    pub hostname: String,
    /// The KMS port clients should connect to.
    pub port: u16,
    /// TTL of the published records, in seconds.
    pub ttl: u32,
    /// Sign updates with this key (`--tsig-key`); unsigned when `None`.
    pub tsig: Option<TsigKey>,
    /// Also publish an A (IPv4) or AAAA (IPv6) record for `hostname` with this address,
    /// replacing that name's other addresses of the same family. Only done in zones that
    /// contain `hostname`: RFC 2136 updates cannot touch names outside their zone.
    pub address: Option<IpAddr>,
    /// How long to wait for each answer from the server.
    pub timeout: Duration,
}

/// Publishes and withdraws this host's SRV record by dynamic update.
#[derive(Clone)]
pub struct Publisher {
    config: PublisherConfig,
    hostname: Name,
    signer: Option<TSigner>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Why a dynamic update did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The server answered REFUSED: it does not allow this client (or this unsigned or
    /// wrongly-keyed update) to change the zone.
    #[error("DNS server refused the update for zone {zone} (REFUSED)")]
    Refused {
        /// The zone being updated.
        zone: String,
    },
    /// The server answered NOTAUTH without a TSIG error: it is not authoritative for the
    /// zone, or the update needs a signature it did not get.
    #[error("DNS server is not authoritative for zone {zone} or requires a signed update (NOTAUTH)")]
    NotAuth {
        /// The zone being updated.
        zone: String,
    },
    /// TSIG authentication failed: the server does not know the key or the signature did not
    /// verify (BADKEY/BADSIG), the clocks differ too much (BADTIME), or the server's answer
    /// failed our own verification.
    #[error("TSIG authentication failed ({detail}) for zone {zone}")]
    BadSignature {
        /// The zone being updated.
        zone: String,
        /// Which check failed.
        detail: String,
        /// The TSIG response code: 16 BADSIG (also for an answer that failed our own
        /// verification), 17 BADKEY, 18 BADTIME.
        rcode: u16,
    },
    /// The server could not be reached at all (port closed, ICMP unreachable).
    #[error("DNS server {server} is unreachable: {detail}")]
    Unreachable {
        /// The server address.
        server: SocketAddr,
        /// The transport error.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("DNS server {server} did not answer the update for zone {zone} within {} ms", timeout.as_millis())]
    Timeout {
        /// The server address.
        server: SocketAddr,
        /// The zone being updated.
        zone: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Any other failure: another response code (SERVFAIL, NOTZONE, ...) or a malformed
    /// answer.
    #[error("DNS update for zone {zone} failed: {detail}")]
    Other {
        /// The zone being updated.
        zone: String,
        /// The response code or error.
        detail: String,
        /// The server's response code, when it answered with one.
        rcode: Option<u16>,
    },
    /// The host name, zone or TSIG key in the configuration cannot be used.
    #[error("invalid DNS publishing configuration: {detail}")]
    InvalidConfig {
        /// What is wrong.
        detail: String,
    },
}

impl PublishError {
    /// The KMS-lab HRESULT: each response code its own `DNS_ERROR_RCODE_*` (REFUSED
    /// 0x8007232D, NOTAUTH 0x80072331, BADSIG 0x80072338, BADKEY 0x80072339, BADTIME
    /// 0x8007233A, SERVFAIL 0x8007232A, ...), unreachable 0x800706BA, timeout 0x800705B4, a
    /// bad configuration 0x80070057, any other local failure 0x8007232A.
    pub fn hresult(&self) -> u32 {
        match self {
            Self::Refused { .. } => hresult::DNS_REFUSED,
            Self::NotAuth { .. } => hresult::DNS_NOT_AUTH,
            Self::BadSignature { rcode, .. } => hresult::from_rcode(*rcode),
            Self::Other { rcode: Some(rcode), .. } => hresult::from_rcode(*rcode),
            Self::Other { rcode: None, .. } => hresult::DNS_SERVER_FAILURE,
            Self::Unreachable { .. } => hresult::HOST_UNREACHABLE,
            Self::Timeout { .. } => hresult::TIMEOUT,
            Self::InvalidConfig { .. } => hresult::INVALID_ARGUMENT,
        }
    }
}

impl From<TsigKeyError> for PublishError {
    fn from(error: TsigKeyError) -> Self {
        Self::InvalidConfig { detail: error.to_string() }
    }
}

/// What one update should do to this host's records.
enum Change {
    Publish,
    Unpublish,
}

impl Publisher {
    /// Checks the configuration (host name, TSIG key) and prepares a publisher. Nothing is
    /// sent until [`Publisher::publish`].
    pub fn new(config: PublisherConfig) -> Result<Self, PublishError> {
        let trimmed = config.hostname.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(PublishError::InvalidConfig { detail: "the DNS host name is empty".to_owned() });
        }
        let hostname = Name::from_ascii(format!("{trimmed}."))
            .map_err(|error| PublishError::InvalidConfig { detail: format!("host name {trimmed:?} is not a valid DNS name: {error}") })?;
        let signer = config.tsig.as_ref().map(TsigKey::to_signer).transpose()?;
        Ok(Self { config, hostname, signer })
    }

    /// The configuration this publisher was built from.
    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    /// Adds this host's record `_vlmcs._tcp.<zone> SRV prio weight port hostname` to the
    /// RRset, leaving other hosts' records alone. A record of this host (same target) with
    /// another priority, weight or port is replaced in the same update.
    pub async fn publish(&self, zone: &PublishZone) -> Result<(), PublishError> {
        self.change(zone, Change::Publish).await
    }

    /// Removes this host's SRV record (any record with this host as target) from the zone,
    /// and the address record published with it; other hosts' records stay.
    pub async fn unpublish(&self, zone: &PublishZone) -> Result<(), PublishError> {
        self.change(zone, Change::Unpublish).await
    }

    async fn change(&self, zone: &PublishZone, change: Change) -> Result<(), PublishError> {
        let zone_name = zone_name(zone)?;
        let owner = Name::from_ascii(format!("{VLMCS_PREFIX}.{}.", zone.zone))
            .map_err(|error| PublishError::InvalidConfig { detail: format!("SRV owner name in zone {:?}: {error}", zone.zone) })?;
        let existing = self.current_srv_records(&owner).await?;

        let wanted = SRV::new(zone.priority, zone.weight, self.config.port, self.hostname.clone());
        let mut updates = Vec::new();
        for srv in existing.iter().filter(|srv| srv.target == self.hostname) {
            let keep = matches!(change, Change::Publish) && srv == &wanted;
            if !keep {
                updates.push(delete_rr(&owner, RData::SRV(srv.clone())));
            }
        }
        let address = self.config.address.filter(|_| zone_name.zone_of(&self.hostname)).map(|ip| match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        });
        match change {
            Change::Publish => {
                updates.push(Record::from_rdata(owner.clone(), self.config.ttl, RData::SRV(wanted)));
                if let Some(address) = address {
                    updates.push(delete_rrset(&self.hostname, address.record_type()));
                    updates.push(Record::from_rdata(self.hostname.clone(), self.config.ttl, address));
                }
            }
            Change::Unpublish => {
                if updates.is_empty() {
                    // Nothing of ours is visible; still send a delete for the record we would
                    // have published, so that a stale answer cannot leave it behind.
                    updates.push(delete_rr(&owner, RData::SRV(wanted)));
                }
                if let Some(address) = address {
                    updates.push(delete_rr(&self.hostname, address));
                }
            }
        }
        self.send_update(&zone.zone, zone_name, updates).await
    }

    fn connect(&self) -> Client<TokioRuntimeProvider> {
        let stream =
            UdpClientStream::builder(self.config.server, TokioRuntimeProvider::default()).with_timeout(Some(self.config.timeout)).build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        // A fresh UDP client per update (a host sends one every 24 hours); the background task
        // ends by itself once every handle to the client is dropped.
        tokio::spawn(background);
        client
    }

    /// The SRV records now at `owner`, asked from the update server itself (not a cache), so
    /// that an old record of this host can be replaced rather than duplicated.
    ///
    /// This query goes over a *connected* UDP socket of our own: on a connected socket the
    /// ICMP "port unreachable" of a closed port comes back as an error, so a server that is
    /// not running is reported as unreachable at once instead of as a timeout (hickory's
    /// UDP transport uses unconnected sockets, which never see that error).
    async fn current_srv_records(&self, owner: &Name) -> Result<Vec<SRV>, PublishError> {
        let zone = name_without_dot(owner);
        let unreachable = |error: std::io::Error| PublishError::Unreachable { server: self.config.server, detail: error.to_string() };
        let local: SocketAddr = match self.config.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(unreachable)?;
        socket.connect(self.config.server).await.map_err(unreachable)?;

        let mut query = Message::query();
        query.metadata.recursion_desired = false;
        query.add_query(Query::query(owner.clone(), RecordType::SRV));
        query.edns.get_or_insert_with(Edns::new).set_max_payload(UDP_PAYLOAD).set_version(0);
        let bytes = query.to_vec().map_err(|error| PublishError::Other {
            zone: zone.clone(),
            detail: format!("cannot encode the SRV query: {error}"),
            rcode: None,
        })?;

        let exchange = async {
            socket.send(&bytes).await?;
            let mut buffer = vec![0; usize::from(UDP_PAYLOAD)];
            loop {
                let length = socket.recv(&mut buffer).await?;
                // Anything that does not parse or answers another query is not our answer.
                if let Ok(answer) = Message::from_vec(&buffer[..length])
                    && answer.metadata.id == query.metadata.id
                {
                    return Ok::<_, std::io::Error>(answer);
                }
            }
        };
        let answer = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| PublishError::Timeout { server: self.config.server, zone: zone.clone(), timeout: self.config.timeout })?
            .map_err(unreachable)?;
        // NXDOMAIN or an empty answer just mean nothing is published yet; a refusal to
        // answer the query is left for the update itself to report.
        debug!(rcode = %answer.metadata.response_code, "current SRV records at {owner}");
        Ok(answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if &record.name == owner => Some(srv.clone()),
                _ => None,
            })
            .collect())
    }

    async fn send_update(&self, zone: &str, zone_name: Name, updates: Vec<Record>) -> Result<(), PublishError> {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone_query = Query::new();
        zone_query.set_name(zone_name).set_query_class(DNSClass::IN).set_query_type(RecordType::SOA);
        message.add_zone(zone_query);
        message.add_updates(updates);
        message.edns.get_or_insert_with(Edns::new).set_max_payload(UDP_PAYLOAD).set_version(0);

        let mut verifier = None;
        if let Some(signer) = &self.signer {
            verifier = message.finalize(signer, unix_now()).map_err(|error| PublishError::Other {
                zone: zone.to_owned(),
                detail: format!("cannot sign the update: {error}"),
                rcode: None,
            })?;
        }
        debug!(?message, "sending update");
        // The client handle is kept until the answer is in: its background task stops once
        // every handle is gone.
        let client = self.connect();
        let response: DnsResponse =
            client.send(DnsRequest::from(message)).first_answer().await.map_err(|error| self.transport_error(error, zone))?;
        drop(client);

        if let Some(error) = response.signature().and_then(|tsig| tsig.data.error) {
            return Err(PublishError::BadSignature {
                zone: zone.to_owned(),
                detail: describe_tsig_error(&error),
                rcode: tsig_rcode(&error),
            });
        }
        match response.response_code {
            ResponseCode::NoError => {
                if let Some(mut verifier) = verifier {
                    verifier.verify(response.as_buffer()).map_err(|error| PublishError::BadSignature {
                        zone: zone.to_owned(),
                        detail: format!("the server's answer did not verify: {error}"),
                        rcode: u16::from(ResponseCode::BADSIG),
                    })?;
                }
                Ok(())
            }
            ResponseCode::Refused => Err(PublishError::Refused { zone: zone.to_owned() }),
            ResponseCode::NotAuth => Err(PublishError::NotAuth { zone: zone.to_owned() }),
            code @ (ResponseCode::BADSIG | ResponseCode::BADKEY | ResponseCode::BADTIME) => Err(PublishError::BadSignature {
                zone: zone.to_owned(),
                detail: format!("the server answered {code}"),
                rcode: u16::from(code),
            }),
            code => Err(PublishError::Other {
                zone: zone.to_owned(),
                detail: format!("the server answered {code}"),
                rcode: Some(u16::from(code)),
            }),
        }
    }

    fn transport_error(&self, error: NetError, zone: &str) -> PublishError {
        match error {
            NetError::Timeout => PublishError::Timeout { server: self.config.server, zone: zone.to_owned(), timeout: self.config.timeout },
            NetError::Io(io) => PublishError::Unreachable { server: self.config.server, detail: io.to_string() },
            NetError::NoConnections => {
                PublishError::Unreachable { server: self.config.server, detail: "no connection could be made".to_owned() }
            }
            other => PublishError::Other { zone: zone.to_owned(), detail: other.to_string(), rcode: None },
        }
    }
}

fn zone_name(zone: &PublishZone) -> Result<Name, PublishError> {
    Name::from_ascii(format!("{}.", zone.zone.trim_end_matches('.')))
        .map_err(|error| PublishError::InvalidConfig { detail: format!("zone {:?} is not a valid DNS name: {error}", zone.zone) })
}

/// RFC 2136 2.5.4 "Delete An RR From An RRset": class NONE, TTL 0, the record's data.
fn delete_rr(owner: &Name, data: RData) -> Record {
    let mut record = Record::from_rdata(owner.clone(), 0, data);
    record.dns_class = DNSClass::NONE;
    record
}

/// RFC 2136 2.5.2 "Delete An RRset": class ANY, TTL 0, empty data.
fn delete_rrset(owner: &Name, record_type: RecordType) -> Record {
    let mut record = Record::update0(owner.clone(), 0, record_type).into_record_of_rdata();
    record.dns_class = DNSClass::ANY;
    record
}

/// The TSIG response code behind a TSIG error (RFC 8945: BADSIG 16, BADKEY 17, BADTIME 18).
fn tsig_rcode(error: &TsigError) -> u16 {
    match error {
        TsigError::BadKey => u16::from(ResponseCode::BADKEY),
        TsigError::BadTime => u16::from(ResponseCode::BADTIME),
        _ => u16::from(ResponseCode::BADSIG),
    }
}

fn describe_tsig_error(error: &TsigError) -> String {
    match error {
        TsigError::BadSig => "bad signature: the server has this key name with another secret".to_owned(),
        TsigError::BadKey => "unknown key: the server has no key of this name and algorithm".to_owned(),
        TsigError::BadTime => "bad time: the clocks of this host and the server differ too much".to_owned(),
        other => format!("TSIG error {other:?}"),
    }
}

/// TSIG signatures carry the real time and the server checks it against its own clock
/// (300 s fudge), so this is the wall clock, never the lab's simulated time.
// TSIG signs with the real time: the server checks it against its own clock.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_zone_parses_optional_priority_and_weight() {
        let check = |text: &str, zone: &str, priority: u16, weight: u16| {
            let parsed: PublishZone = text.parse().unwrap();
            assert_eq!(parsed, PublishZone { zone: zone.to_owned(), priority, weight }, "{text:?}");
        };
        check("lab.test", "lab.test", 0, 0);
        check("lab.test.", "lab.test", 0, 0);
        check("lab.test,10", "lab.test", 10, 0);
        check(" lab.test , 10 , 25 ", "lab.test", 10, 25);
        assert_eq!("lab.test,1,2".parse::<PublishZone>().unwrap().to_string(), "lab.test,1,2");
    }

    #[test]
    fn publish_zone_errors_name_the_bad_part() {
        let check = |text: &str, expected: &str| {
            let error = text.parse::<PublishZone>().unwrap_err();
            assert!(error.to_string().contains(expected), "{text:?}: {error} should mention {expected:?}");
            assert_eq!(error.hresult(), 0x8007_0057);
        };
        check("", "empty");
        check(",1,2", "empty");
        check("lab.test,high", "priority \"high\"");
        check("lab.test,1,70000", "weight \"70000\"");
        check("lab.test,1,2,3", "too many parts");
        check("bad..zone", "bad..zone");
    }

    #[test]
    fn publish_error_messages_say_what_happened() {
        let zone = || "lab.test".to_owned();
        let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let check = |error: PublishError, text: &str, code: u32| {
            assert!(error.to_string().contains(text), "{error} / {text}");
            assert_eq!(error.hresult(), code, "{error}");
        };
        check(PublishError::Refused { zone: zone() }, "refused the update for zone lab.test (REFUSED)", 0x8007_232D);
        check(PublishError::NotAuth { zone: zone() }, "NOTAUTH", 0x8007_2331);
        check(
            PublishError::BadSignature { zone: zone(), detail: "bad signature".to_owned(), rcode: 16 },
            "TSIG authentication failed",
            0x8007_2338,
        );
        check(
            PublishError::BadSignature { zone: zone(), detail: "unknown key".to_owned(), rcode: 17 },
            "TSIG authentication failed",
            0x8007_2339,
        );
        check(
            PublishError::BadSignature { zone: zone(), detail: "bad time".to_owned(), rcode: 18 },
            "TSIG authentication failed",
            0x8007_233A,
        );
        check(PublishError::Unreachable { server, detail: "connection refused".to_owned() }, "unreachable", 0x8007_06BA);
        check(PublishError::Timeout { server, zone: zone(), timeout: Duration::from_millis(300) }, "within 300 ms", 0x8007_05B4);
        check(
            PublishError::Other { zone: zone(), detail: "the server answered SERVFAIL".to_owned(), rcode: Some(2) },
            "SERVFAIL",
            0x8007_232A,
        );
        check(
            PublishError::Other { zone: zone(), detail: "the server answered NOTZONE".to_owned(), rcode: Some(10) },
            "NOTZONE",
            0x8007_2332,
        );
    }

    #[test]
    fn publisher_rejects_bad_host_names() {
        let config = PublisherConfig {
            server: "127.0.0.1:53".parse().unwrap(),
            hostname: "bad..host".to_owned(),
            port: 1688,
            ttl: 60,
            tsig: None,
            address: None,
            timeout: Duration::from_secs(1),
        };
        let error = Publisher::new(config).unwrap_err();
        assert!(error.to_string().contains("bad..host"), "{error}");
        assert_eq!(error.hresult(), 0x8007_0057);
    }

    #[test]
    fn delete_records_follow_rfc_2136() {
        let owner = Name::from_ascii("_vlmcs._tcp.lab.test.").unwrap();
        let target = Name::from_ascii("kms1.lab.test.").unwrap();
        let one = delete_rr(&owner, RData::SRV(SRV::new(0, 0, 1688, target)));
        assert_eq!(one.dns_class, DNSClass::NONE);
        assert_eq!(one.ttl, 0);
        let all = delete_rrset(&owner, RecordType::A);
        assert_eq!(all.dns_class, DNSClass::ANY);
        assert_eq!(all.record_type(), RecordType::A);
    }
}

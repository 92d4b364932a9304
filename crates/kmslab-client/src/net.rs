//! The client's network edge, shared by the daemon ([`Net`]) and the lab's fleet engine:
//! SRV discovery through kmslab-dns ([`discover`]), host-name resolution with a cache of
//! answers ([`Resolver`]) and one request/response exchange with a KMS host over TCP
//! ([`exchange`]), each failure mapped to the HRESULT a client reports.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmslab_core::Uuid;
use kmslab_core::activator::HostOutcome;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::srv::SrvCandidate;
use kmslab_core::wire::{FrameKey, Message, Request, ServiceAnswer, ServiceRequest};
use kmslab_dns::{DnsServerChoice, LookupError};
use kmslab_runtime::framed::{FrameError, read_frame_with, write_frame_with};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Timeouts;

/// Where and how the client reaches DNS and hosts.
#[derive(Debug, Clone)]
pub struct Net {
    /// The DNS server (`--dns-server`) or the system resolver.
    pub dns: DnsServerChoice,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// The addresses each host name last resolved to. When DNS is down, a client that
    /// knows its (cached) host keeps reaching it, as Windows' resolver cache lets it.
    resolver: Resolver,
    /// The pre-shared key (`--psk`): requests carry a MAC, answers must.
    psk: Option<FrameKey>,
}

pub fn lookup_code(e: &LookupError) -> HResult {
    HResult(e.hresult())
}

impl Net {
    /// A network edge using `dns` and `timeouts`, with no addresses known yet.
    pub fn new(dns: DnsServerChoice, timeouts: Timeouts) -> Self {
        Net { dns, timeouts, resolver: Resolver::new(Duration::ZERO), psk: None }
    }

    /// The same edge with authenticated framing (`--psk`) on or off.
    pub fn with_psk(mut self, psk: Option<FrameKey>) -> Self {
        self.psk = psk;
        self
    }

    /// Looks up `_vlmcs._tcp.<domain>`; without a domain, each domain of the system search
    /// list in turn ([`discover`]).
    pub async fn discover(&self, domain: Option<String>) -> Result<Vec<SrvCandidate>, HResult> {
        discover(&self.dns, domain.as_deref(), self.timeouts.dns).await
    }

    /// Sends `request` to `host` and waits for its answer.
    pub async fn send(&self, host: &HostAddr, request: Request) -> HostOutcome {
        send(&self.dns, &self.resolver, host, request, self.timeouts, self.psk.as_ref()).await
    }

    /// Sends an online activation request to the activation service (`--activation-service`)
    /// and waits for its answer: the answer, the service's HRESULT, or how the exchange
    /// failed (0x800706BA unreachable, 0x800705B4 timed out, 0x8007000D garbled answer).
    pub async fn activate_online(&self, service: &HostAddr, request: ServiceRequest) -> Result<ServiceAnswer, HResult> {
        activate_online(&self.dns, &self.resolver, service, request, self.timeouts).await
    }
}

/// Sends an online activation request to the activation service at `service` and waits for
/// its answer: the answer, the service's HRESULT, or how the exchange failed (0x800706BA
/// unreachable, 0x800705B4 timed out, 0x8007000D garbled answer). The daemon's `/ato` of a
/// MAK and the lab's fleet machines both ask through this.
pub async fn activate_online(
    dns: &DnsServerChoice,
    resolver: &Resolver,
    service: &HostAddr,
    request: ServiceRequest,
    timeouts: Timeouts,
) -> Result<ServiceAnswer, HResult> {
    let addrs = resolver.resolve(dns, &service.host, timeouts.dns).await.map_err(|e| lookup_code(&e))?;
    let mut last = HResult::HOST_UNREACHABLE;
    for ip in addrs {
        let addr = SocketAddr::new(ip, service.port);
        let mut stream = match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
            Err(_) => {
                last = HResult::TIMEOUT;
                continue;
            }
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "cannot reach the activation service");
                last = HResult::HOST_UNREACHABLE;
                continue;
            }
            Ok(Ok(stream)) => stream,
        };
        let work = async {
            let mut buf = Vec::with_capacity(256);
            kmslab_runtime::framed::write_message(&mut stream, &Message::ServiceRequest(request), &mut buf).await?;
            kmslab_runtime::framed::read_message(&mut stream, &mut buf).await
        };
        return match tokio::time::timeout(timeouts.response, work).await {
            Err(_) => Err(HResult::TIMEOUT),
            Ok(Ok(Some(Message::ServiceAnswer(a)))) => Ok(a),
            Ok(Ok(Some(Message::Error(e)))) => {
                tracing::info!(hresult = %e.hresult, name = e.hresult.name(), reason = %e.message, "the activation service refused");
                Err(e.hresult)
            }
            Ok(Ok(Some(_))) | Ok(Err(FrameError::Decode(_))) => Err(HResult::INVALID_DATA),
            Ok(Ok(None)) | Ok(Err(_)) => Err(HResult::HOST_UNREACHABLE),
        };
    }
    Err(last)
}

/// Looks up `_vlmcs._tcp.<domain>`; without a domain (or an empty one), each domain of the
/// system search list in turn: the first that has records wins, else the first domain's
/// error. No domain at all to look in is DNS_NAME_ERROR, as Windows reports it.
pub async fn discover(dns: &DnsServerChoice, domain: Option<&str>, timeout: Duration) -> Result<Vec<SrvCandidate>, HResult> {
    let domains = match domain.filter(|d| !d.is_empty()) {
        Some(d) => vec![d.to_owned()],
        None => kmslab_dns::system_search_domains(),
    };
    let mut first_error = None;
    for d in &domains {
        match kmslab_dns::lookup_vlmcs(dns, d, timeout).await {
            Ok(targets) => {
                tracing::debug!(domain = %d, records = targets.len(), "SRV lookup");
                return Ok(targets
                    .into_iter()
                    .map(|t| SrvCandidate { priority: t.priority, weight: t.weight, target: HostAddr::new(t.target, t.port) })
                    .collect());
            }
            Err(e) => {
                tracing::info!(domain = %d, error = %e, hresult = %lookup_code(&e), "SRV lookup failed");
                first_error.get_or_insert(lookup_code(&e));
            }
        }
    }
    Err(first_error.unwrap_or(HResult::DNS_NAME_ERROR))
}

/// Each name's last answer and when it came.
type KnownAddresses = HashMap<String, (Instant, Vec<IpAddr>)>;

/// Host-name resolution with the answers remembered: an answer younger than `reuse_for` is
/// used without asking again (the fleet's many machines share one), and when a lookup
/// fails the addresses the name last resolved to are used instead, as Windows' resolver
/// cache lets a client keep reaching its cached host while DNS is down.
#[derive(Debug, Clone)]
pub struct Resolver {
    known: Arc<Mutex<KnownAddresses>>,
    reuse_for: Duration,
}

impl Resolver {
    /// A resolver with nothing known yet, reusing answers for `reuse_for` (zero: always ask).
    pub fn new(reuse_for: Duration) -> Self {
        Resolver { known: Arc::default(), reuse_for }
    }

    /// Remembers that `name` resolves to `ips` (as an earlier lookup would have).
    pub fn remember(&self, name: &str, ips: Vec<IpAddr>) {
        self.known.lock().expect("address cache lock").insert(name.to_owned(), (Instant::now(), ips));
    }

    /// The addresses of `name` through `dns`.
    pub async fn resolve(&self, dns: &DnsServerChoice, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        let fresh = self
            .known
            .lock()
            .expect("address cache lock")
            .get(name)
            .filter(|(at, ips)| !ips.is_empty() && at.elapsed() < self.reuse_for)
            .map(|(_, ips)| ips.clone());
        if let Some(ips) = fresh {
            return Ok(ips);
        }
        // Boxed: a resolver lookup is a large future, and inline it would make every
        // exchange task that large (tens of KiB each, times the fleet's concurrency).
        match Box::pin(kmslab_dns::resolve_host(dns, name, timeout)).await {
            Ok(ips) => {
                self.remember(name, ips.clone());
                Ok(ips)
            }
            Err(e) => match self.known.lock().expect("address cache lock").get(name) {
                Some((_, ips)) if !ips.is_empty() => {
                    tracing::info!(host = %name, error = %e, "DNS lookup failed; using the addresses it last resolved to");
                    Ok(ips.clone())
                }
                _ => Err(e),
            },
        }
    }
}

/// Resolves `host` through `resolver`, then runs one [`exchange`] with its addresses.
pub async fn send(
    dns: &DnsServerChoice,
    resolver: &Resolver,
    host: &HostAddr,
    request: Request,
    timeouts: Timeouts,
    psk: Option<&FrameKey>,
) -> HostOutcome {
    let addrs = match resolver.resolve(dns, &host.host, timeouts.dns).await {
        Ok(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, host.port)).collect::<Vec<_>>(),
        Err(e) => {
            tracing::info!(host = %host, error = %e, "cannot resolve the KMS host");
            return HostOutcome::Unreachable(lookup_code(&e));
        }
    };
    exchange(addrs, request, timeouts, psk).await
}

/// Connects to each of `addrs` in turn and sends `request` to the first that accepts:
/// its answer, or why there was none (TIMEOUT, HOST_UNREACHABLE, KMS_NOT_ENABLED, ...).
pub async fn exchange(addrs: Vec<SocketAddr>, request: Request, timeouts: Timeouts, psk: Option<&FrameKey>) -> HostOutcome {
    let mut last = HResult::HOST_UNREACHABLE;
    for addr in addrs {
        match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
            Err(_) => last = HResult::TIMEOUT,
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "connect failed");
                last = HResult::HOST_UNREACHABLE;
            }
            Ok(Ok(stream)) => return exchange_on(stream, request, timeouts.response, psk).await,
        }
    }
    HostOutcome::Unreachable(last)
}

async fn exchange_on(mut stream: TcpStream, request: Request, response_timeout: Duration, psk: Option<&FrameKey>) -> HostOutcome {
    let _ = stream.set_nodelay(true);
    // With --psk, each request carries a fresh nonce that the answer must echo under the
    // host's MAC: a recorded answer replayed by a proxy answers an older request.
    let nonce = psk.map(|_| *Uuid::new_v4().as_bytes());
    let client_time = request.client_time;
    let work = async {
        let mut buf = Vec::with_capacity(512);
        write_frame_with(&mut stream, &Message::Request(request), &mut buf, psk, nonce.as_ref()).await?;
        let frame = read_frame_with(&mut stream, &mut buf, psk).await?;
        Ok::<_, FrameError>(frame.map(|f| {
            let answers_this_request = match &f.message {
                Message::Response(r) => f.nonce == nonce && r.client_time == client_time,
                _ => f.nonce == nonce,
            };
            (f.message, answers_this_request)
        }))
    };
    let answer = match tokio::time::timeout(response_timeout, work).await {
        Ok(Ok(Some((_, false)))) => {
            tracing::warn!(
                "answer from the KMS host refused: it does not echo this request's nonce and client time (a replayed answer?) (--psk)"
            );
            return HostOutcome::Unreachable(HResult::FRAME_AUTH_FAILED);
        }
        other => other.map(|r| r.map(|f| f.map(|(message, _)| message))),
    };
    match answer {
        Err(_) => HostOutcome::Unreachable(HResult::TIMEOUT),
        Ok(Ok(Some(Message::Response(r)))) => HostOutcome::Response(r),
        Ok(Ok(Some(Message::Error(e)))) => HostOutcome::Refused(e),
        // A request echoed back, or a clean close without an answer: no KMS there.
        Ok(Ok(Some(Message::Request(_) | Message::ServiceRequest(_) | Message::ServiceAnswer(_)))) | Ok(Ok(None)) => {
            HostOutcome::Unreachable(HResult::KMS_NOT_ENABLED)
        }
        Ok(Err(FrameError::Decode(e))) if e.is_auth() => {
            // Not the host we share a key with (or a tampered answer): never believed.
            tracing::warn!(error = %e, "answer from the KMS host refused: its MAC does not verify (--psk)");
            HostOutcome::Unreachable(HResult::FRAME_AUTH_FAILED)
        }
        Ok(Err(FrameError::Decode(e))) => {
            tracing::info!(error = %e, "malformed answer from the KMS host");
            HostOutcome::Unreachable(HResult::INVALID_DATA)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "exchange failed");
            HostOutcome::Unreachable(HResult::KMS_NOT_ENABLED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmslab_core::LicenseStatus;
    use kmslab_core::Uuid;
    use kmslab_core::wire::KMS_PROTOCOL_V4;

    fn request() -> Request {
        Request {
            protocol: KMS_PROTOCOL_V4,
            vm: false,
            license_status: LicenseStatus::Licensed,
            minutes_to_expiry: 1,
            application_id: Uuid::from_u128(1),
            activation_id: Uuid::from_u128(2),
            kms_counted_id: Uuid::from_u128(3),
            cmid: Uuid::from_u128(4),
            previous_cmid: Uuid::nil(),
            n_policy: 25,
            client_time: kmslab_core::Timestamp::EPOCH,
            machine_name: "WS".into(),
        }
    }

    #[tokio::test]
    async fn a_known_host_is_still_reached_when_dns_is_down() {
        // A "host" that accepts and closes at once: reaching it gives 0xC004F039.
        let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = host.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = host.accept().await {
                drop(s);
            }
        });
        // A DNS server that does not answer (nothing listens on that UDP port).
        let dead_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let timeouts = Timeouts { connect: Duration::from_secs(2), response: Duration::from_secs(2), dns: Duration::from_millis(300) };
        let net = Net::new(DnsServerChoice::Server(dead_dns), timeouts);
        let kms1 = HostAddr::new("kms1.lab.test", port);
        // Never resolved: the DNS failure is the outcome.
        assert_eq!(net.send(&kms1, request()).await, HostOutcome::Unreachable(HResult::DNS_SERVER_FAILURE));
        // Resolved once before (as by an earlier renewal): the host is reached without DNS.
        net.resolver.remember("kms1.lab.test", vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(net.send(&kms1, request()).await, HostOutcome::Unreachable(HResult::KMS_NOT_ENABLED));
    }

    #[tokio::test]
    async fn a_fresh_answer_is_reused_without_asking_dns() {
        // DNS that never answers, with a lookup timeout far longer than the test allows.
        let dead_dns = DnsServerChoice::Server(std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
        let ip = IpAddr::from([127, 0, 0, 7]);
        let reusing = Resolver::new(Duration::from_secs(3600));
        reusing.remember("kms1.lab.test", vec![ip]);
        let answer = tokio::time::timeout(Duration::from_secs(20), reusing.resolve(&dead_dns, "kms1.lab.test", Duration::from_secs(120)));
        assert_eq!(answer.await.expect("a fresh answer needs no lookup").unwrap(), vec![ip]);
        // Never reusing (the daemon's resolver) asks DNS, and falls back on the last answer.
        let asking = Resolver::new(Duration::ZERO);
        asking.remember("kms1.lab.test", vec![ip]);
        assert_eq!(asking.resolve(&dead_dns, "kms1.lab.test", Duration::from_millis(300)).await.unwrap(), vec![ip]);
        assert!(asking.resolve(&dead_dns, "kms2.lab.test", Duration::from_millis(300)).await.is_err());
    }
}

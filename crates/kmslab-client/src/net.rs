//! The client's network edge: SRV discovery through kmslab-dns and one request/response
//! exchange with a KMS host over TCP, each failure mapped to the HRESULT a client reports.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use kmslab_core::Uuid;
use kmslab_core::activator::HostOutcome;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::srv::SrvCandidate;
use kmslab_core::wire::{FrameKey, Message, Request, ServiceAnswer, ServiceRequest};
use kmslab_dns::{DnsServerChoice, LookupError};
use kmslab_runtime::framed::{FrameError, read_frame_with, write_frame_with};
use tokio::net::TcpStream;

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
    known: Arc<Mutex<HashMap<String, Vec<IpAddr>>>>,
    /// The pre-shared key (`--psk`): requests carry a MAC, answers must.
    psk: Option<FrameKey>,
}

fn lookup_code(e: &LookupError) -> HResult {
    HResult(e.hresult())
}

impl Net {
    /// A network edge using `dns` and `timeouts`, with no addresses known yet.
    pub fn new(dns: DnsServerChoice, timeouts: Timeouts) -> Self {
        Net { dns, timeouts, known: Arc::default(), psk: None }
    }

    /// The same edge with authenticated framing (`--psk`) on or off.
    pub fn with_psk(mut self, psk: Option<FrameKey>) -> Self {
        self.psk = psk;
        self
    }

    /// Resolves `name`, remembering the answer; when the lookup fails, the addresses it
    /// last resolved to (if any) are used instead.
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        match kmslab_dns::resolve_host(&self.dns, name, self.timeouts.dns).await {
            Ok(ips) => {
                self.known.lock().expect("address cache lock").insert(name.to_owned(), ips.clone());
                Ok(ips)
            }
            Err(e) => match self.known.lock().expect("address cache lock").get(name) {
                Some(ips) if !ips.is_empty() => {
                    tracing::info!(host = %name, error = %e, "DNS lookup failed; using the addresses it last resolved to");
                    Ok(ips.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Looks up `_vlmcs._tcp.<domain>`; without a domain, each domain of the system search
    /// list in turn (the first that has records wins, else the first domain's error).
    pub async fn discover(&self, domain: Option<String>) -> Result<Vec<SrvCandidate>, HResult> {
        let domains = match domain {
            Some(d) => vec![d],
            None => kmslab_dns::system_search_domains(),
        };
        if domains.is_empty() {
            // No domain to look in: Windows reports the name as not existing.
            return Err(HResult::DNS_NAME_ERROR);
        }
        let mut first_error = None;
        for d in &domains {
            match kmslab_dns::lookup_vlmcs(&self.dns, d, self.timeouts.dns).await {
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

    /// Sends `request` to `host` and waits for its answer.
    pub async fn send(&self, host: &HostAddr, request: Request) -> HostOutcome {
        let addrs = match self.resolve(&host.host).await {
            Ok(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, host.port)).collect::<Vec<_>>(),
            Err(e) => {
                tracing::info!(host = %host, error = %e, "cannot resolve the KMS host");
                return HostOutcome::Unreachable(lookup_code(&e));
            }
        };
        let mut last = HResult::HOST_UNREACHABLE;
        for addr in addrs {
            match tokio::time::timeout(self.timeouts.connect, TcpStream::connect(addr)).await {
                Err(_) => last = HResult::TIMEOUT,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "connect failed");
                    last = HResult::HOST_UNREACHABLE;
                }
                Ok(Ok(stream)) => return self.exchange(stream, request).await,
            }
        }
        HostOutcome::Unreachable(last)
    }

    /// Sends an online activation request to the activation service (`--activation-service`)
    /// and waits for its answer: the answer, the service's HRESULT, or how the exchange
    /// failed (0x800706BA unreachable, 0x800705B4 timed out, 0x8007000D garbled answer).
    pub async fn activate_online(&self, service: &HostAddr, request: ServiceRequest) -> Result<ServiceAnswer, HResult> {
        let addrs = self.resolve(&service.host).await.map_err(|e| lookup_code(&e))?;
        let mut last = HResult::HOST_UNREACHABLE;
        for ip in addrs {
            let addr = SocketAddr::new(ip, service.port);
            let mut stream = match tokio::time::timeout(self.timeouts.connect, TcpStream::connect(addr)).await {
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
            return match tokio::time::timeout(self.timeouts.response, work).await {
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

    async fn exchange(&self, mut stream: TcpStream, request: Request) -> HostOutcome {
        let _ = stream.set_nodelay(true);
        // With --psk, each request carries a fresh nonce that the answer must echo under the
        // host's MAC: a recorded answer replayed by a proxy answers an older request.
        let nonce = self.psk.as_ref().map(|_| *Uuid::new_v4().as_bytes());
        let client_time = request.client_time;
        let work = async {
            let mut buf = Vec::with_capacity(512);
            write_frame_with(&mut stream, &Message::Request(request), &mut buf, self.psk.as_ref(), nonce.as_ref()).await?;
            let frame = read_frame_with(&mut stream, &mut buf, self.psk.as_ref()).await?;
            Ok::<_, FrameError>(frame.map(|f| {
                let answers_this_request = match &f.message {
                    Message::Response(r) => f.nonce == nonce && r.client_time == client_time,
                    _ => f.nonce == nonce,
                };
                (f.message, answers_this_request)
            }))
        };
        let answer = match tokio::time::timeout(self.timeouts.response, work).await {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmslab_core::LicenseStatus;
    use kmslab_core::Uuid;
    use kmslab_core::wire::KMS_PROTOCOL_V4;
    use std::time::Duration;

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
        net.known.lock().unwrap().insert("kms1.lab.test".into(), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(net.send(&kms1, request()).await, HostOutcome::Unreachable(HResult::KMS_NOT_ENABLED));
    }
}

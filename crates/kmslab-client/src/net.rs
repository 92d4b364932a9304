//! The client's network edge: SRV discovery through kmslab-dns and one request/response
//! exchange with a KMS host over TCP, each failure mapped to the HRESULT a client reports.

use std::net::SocketAddr;

use kmslab_core::activator::HostOutcome;
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::hresult::HResult;
use kmslab_core::srv::SrvCandidate;
use kmslab_core::wire::{Message, Request};
use kmslab_dns::{DnsServerChoice, LookupError};
use kmslab_runtime::framed::{FrameError, read_message, write_message};
use tokio::net::TcpStream;

use crate::config::Timeouts;

/// Where and how the client reaches DNS and hosts.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// The DNS server (`--dns-server`) or the system resolver.
    pub dns: DnsServerChoice,
    /// Timeouts.
    pub timeouts: Timeouts,
}

fn lookup_code(e: &LookupError) -> HResult {
    HResult(e.hresult())
}

impl Net {
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
        let addrs = match kmslab_dns::resolve_host(&self.dns, &host.host, self.timeouts.dns).await {
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

    async fn exchange(&self, mut stream: TcpStream, request: Request) -> HostOutcome {
        let _ = stream.set_nodelay(true);
        let work = async {
            let mut buf = Vec::with_capacity(512);
            write_message(&mut stream, &Message::Request(request), &mut buf).await?;
            read_message(&mut stream, &mut buf).await
        };
        match tokio::time::timeout(self.timeouts.response, work).await {
            Err(_) => HostOutcome::Unreachable(HResult::TIMEOUT),
            Ok(Ok(Some(Message::Response(r)))) => HostOutcome::Response(r),
            Ok(Ok(Some(Message::Error(e)))) => HostOutcome::Refused(e),
            // A request echoed back, or a clean close without an answer: no KMS there.
            Ok(Ok(Some(Message::Request(_)))) | Ok(Ok(None)) => HostOutcome::Unreachable(HResult::KMS_NOT_ENABLED),
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

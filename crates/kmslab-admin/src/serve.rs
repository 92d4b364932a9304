//! A bounded HTTP/1.1 server for an admin router. `axum::serve` accepts every connection
//! and waits for its headers forever; here a connection cap (waiting connections stay in
//! the kernel backlog, holding no descriptor of ours), a per-source cap (excess
//! connections are closed at accept) and a header-read timeout (also bounding an idle
//! keep-alive connection) keep slow or silent clients from holding descriptors.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use kmslab_runtime::slots::PerSource;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Default cap on open admin connections (lowered to fit the open-files limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default cap on open admin connections from one source address: a browser opens about
/// six per site, slmgr and probes one at a time.
pub const DEFAULT_PER_SOURCE: usize = 16;
/// Default time a connection has to send a request's headers, from the moment it is
/// accepted or its previous answer was sent.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one source address.
    pub per_source: usize,
    /// Time to send a request's headers (and the longest idle keep-alive).
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            per_source: DEFAULT_PER_SOURCE,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// What the server counts (exported on the host's `/metrics`).
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Admin connections open now.
    pub open: AtomicI64,
    /// Connections closed at accept because their source already held its share.
    pub refused_per_source: AtomicU64,
    /// Connections closed because their headers did not arrive within the timeout.
    pub header_timeouts: AtomicU64,
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in flight finish
/// (the caller bounds how long it waits). Each request carries
/// `ConnectInfo<SocketAddr>` with its source, as `into_make_service_with_connect_info`
/// would.
pub async fn serve(listener: TcpListener, router: Router, limits: ServeLimits, stats: Arc<ServeStats>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_source = PerSource::new(limits.per_source);
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::from_millis(1);
    let mut refusals_logged_at: Option<tokio::time::Instant> = None;
    loop {
        // A free slot first: beyond the cap, clients wait in the kernel backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => { backoff = Duration::from_millis(1); pair }
                Err(err) => {
                    tracing::warn!(error = %err, backoff_ms = backoff.as_millis() as u64, "admin accept failed; backing off");
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let Some(source_slot) = per_source.try_acquire(peer.ip()) else {
            stats.refused_per_source.fetch_add(1, Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            if refusals_logged_at.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60)) {
                refusals_logged_at = Some(now);
                tracing::warn!(%peer, per_source = limits.per_source, "admin connection closed at accept: its source holds its share of connections (logged once a minute)");
            }
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|never| match never {})) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = conn.await {
                if err.is_timeout() {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "admin connection closed: no request headers within the timeout");
                } else {
                    tracing::debug!(%peer, error = %err, "admin connection error");
                }
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop((permit, source_slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

//! KMS listeners: the accept loop (connection cap, per-source cap, back-off) and one task
//! per connection (several requests per connection, idle timeout on reads and writes,
//! malformed frames answered and closed).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use kmslab_core::HResult;
use kmslab_core::wire::{ErrorFrame, Message};
use kmslab_runtime::framed::{FrameError, read_frame_with, write_frame_with};
use kmslab_runtime::slots::PerSource;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::HostState;

/// Accepts connections on `listener` until `shutdown`, spawning each onto `tracker`.
pub(crate) async fn accept_loop(
    mut listener: TcpListener,
    state: Arc<HostState>,
    limit: Arc<Semaphore>,
    per_source: Arc<PerSource>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(1);
    let mut blocked = state.faults.as_ref().map(|f| f.watch_blocked());
    loop {
        if let Some(watch) = blocked.as_mut()
            && *watch.borrow_and_update()
        {
            // A lab's firewall (crate::faults): the port is closed until it opens again.
            match closed_until_unblocked(listener, watch, &shutdown).await {
                Some(l) => listener = l,
                None => return,
            }
        }
        let block_changed = async {
            match blocked.as_mut() {
                Some(watch) => {
                    let _ = watch.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        // Wait for a free slot before accepting: excess clients wait in the kernel backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = block_changed => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(1);
                pair
            }
            Err(err) => {
                // Usually EMFILE or ECONNABORTED: wait a little, doubling up to a second.
                tracing::warn!(error = %err, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if !state.access.admit(&state.metrics, peer) {
            // Not in --allow: closed before a byte is read (counted and logged by `admit`).
            continue;
        }
        let Some(source_slot) = per_source.try_acquire(peer.ip()) else {
            // The source holds its share of the slots: closed at once, so that one machine
            // cannot take every slot (counted and logged by `note_per_source`).
            state.access.note_per_source(&state.metrics, peer, per_source.cap());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            state.metrics.open_connections.fetch_add(1, Ordering::Relaxed);
            state.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
            serve_connection(stream, peer, &state, &shutdown).await;
            state.metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
            drop((permit, source_slot));
        });
    }
}

/// Closes `listener` until the lab's block switch opens it again, then binds the same
/// address anew; `None` at shutdown.
async fn closed_until_unblocked(
    listener: TcpListener,
    watch: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> Option<TcpListener> {
    let addr = listener.local_addr().ok()?;
    drop(listener);
    tracing::warn!(%addr, "KMS port closed by the lab (blocked)");
    tokio::select! {
        _ = shutdown.cancelled() => return None,
        changed = watch.wait_for(|b| !*b) => changed.ok()?,
    };
    // The port was ours a moment ago; binding it again can fail briefly on a busy box.
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            tracing::info!(%addr, "KMS port open again");
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::error!(%addr, "cannot bind the KMS port again after the lab unblocked it");
    None
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, state: &HostState, shutdown: &CancellationToken) {
    let mut rbuf = Vec::with_capacity(256);
    let mut wbuf = Vec::with_capacity(256);
    let idle = state.wire.idle_timeout;
    let mut answered = 0u64;
    loop {
        // The idle timeout covers the whole frame, not each read: a slowloris that trickles
        // bytes is closed `idle` after its frame began, however often it sends.
        let mut counted = CountingReader { inner: &mut stream, bytes: 0 };
        let read = tokio::select! {
            // Between requests a shutdown simply closes the connection; a request already
            // read is finished below, outside this select.
            _ = shutdown.cancelled() => return,
            read = tokio::time::timeout(idle, read_frame_with(&mut counted, &mut rbuf, state.wire.psk.as_ref())) => read,
        };
        // With --psk, the answer echoes the request's nonce under its MAC (docs/protocol.md),
        // so that a recorded answer cannot pass for the answer to a later request.
        let mut nonce = None;
        let read = read.map(|r| {
            r.map(|f| {
                f.map(|frame| {
                    nonce = frame.nonce;
                    frame.message
                })
            })
        });
        let partial = counted.bytes;
        let started = Instant::now();
        // An answer to a frame whose MAC failed goes without one, so that a peer without
        // the key can read why (a peer with a key never accepts an unauthenticated frame).
        let mut plain_reply = false;
        let (answer, close_after) = match read {
            Err(_) if partial > 0 => {
                // A slow or stalled sender (slowloris, half-open peer): a failed request.
                closed_without_request(state, peer, format!("incomplete frame at the idle timeout ({partial} bytes in {idle:?})")).await;
                return;
            }
            Err(_) if answered == 0 => {
                // Connected and never sent a byte: holds a slot for nothing; a failed request.
                closed_without_request(state, peer, format!("no request within the idle timeout ({idle:?})")).await;
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "idle timeout; closing the connection");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(Message::Request(req)))) => match state.access.rate_limited(&state.metrics, peer, &req) {
                Some(refusal) => (refusal, false),
                None => (state.handle_request(&req, Some(peer)).await, false),
            },
            Ok(Ok(Some(_))) => {
                malformed(state, peer, "unexpected frame kind: a client sends request frames only".into()).await;
                let message = "unexpected frame kind: a client sends request frames only".to_owned();
                (Message::Error(ErrorFrame { hresult: HResult::INVALID_DATA, cmid: kmslab_core::Uuid::nil(), message }), true)
            }
            Ok(Err(FrameError::Decode(err))) => {
                plain_reply = state.access.note_decode_error(&state.metrics, &err);
                let message = err.to_string();
                malformed(state, peer, message.clone()).await;
                (Message::Error(ErrorFrame { hresult: err.hresult(), cmid: kmslab_core::Uuid::nil(), message }), true)
            }
            Ok(Err(err @ FrameError::ClosedMidFrame { .. })) => {
                // The peer is gone: count it, nobody is left to answer.
                malformed(state, peer, err.to_string()).await;
                return;
            }
            Ok(Err(err)) if partial > 0 => {
                // Reset inside a frame: as a close mid-frame, nobody is left to answer.
                closed_without_request(state, peer, format!("connection error inside a frame: {err}")).await;
                return;
            }
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "connection error");
                return;
            }
        };
        answered += 1;
        // The idle timeout covers writes too: a peer that sends requests and never reads
        // its answers fills both socket buffers, and the write would wait forever.
        let write = write_frame_with(&mut stream, &answer, &mut wbuf, state.wire.psk.as_ref().filter(|_| !plain_reply), nonce.as_ref());
        match tokio::time::timeout(idle, write).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "could not write the answer");
                return;
            }
            Err(_) => {
                state.metrics.write_timeouts.fetch_add(1, Ordering::Relaxed);
                // Logged once per connection: it is closed right after; a failed request.
                tracing::warn!(%peer, answered, "closing a connection whose peer does not read its answers (write not done within the idle timeout)");
                state.record_malformed().await;
                return;
            }
        }
        state.metrics.request_latency.observe(started.elapsed());
        if close_after {
            return;
        }
    }
}

async fn closed_without_request(state: &HostState, peer: SocketAddr, why: String) {
    // Logged once per connection: the connection is closed right after.
    tracing::warn!(%peer, reason = %why, "closing a connection that sent no complete request");
    state.record_malformed().await;
}

/// Counts the bytes read through it, so a timeout or a reset can tell an idle connection
/// from one that stopped inside a frame.
struct CountingReader<'a> {
    inner: &'a mut TcpStream,
    bytes: usize,
}

impl AsyncRead for CountingReader<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        self.bytes += buf.filled().len() - before;
        polled
    }
}

async fn malformed(state: &HostState, peer: SocketAddr, why: String) {
    // Logged once per connection: the connection is closed right after.
    tracing::warn!(%peer, reason = %why, "malformed frame; answering with an error frame and closing");
    state.record_malformed().await;
}

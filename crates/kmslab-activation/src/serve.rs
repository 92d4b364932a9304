//! The activation service's listener: kmslab's wire protocol, activation service frames
//! (kinds 4 and 5, docs/protocol.md). Each connection may send several requests; each is
//! decided and stored before its answer is written. Garbage, another frame kind or a
//! silent peer gets an error frame (when there is someone to answer) and the connection
//! is closed.

use std::sync::Arc;
use std::time::Duration;

use kmslab_core::Uuid;
use kmslab_core::hresult::HResult;
use kmslab_core::wire::{ErrorFrame, Message};
use kmslab_runtime::framed::{FrameError, read_message, write_message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// How long a connection may stay silent.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections served at once (more wait in the backlog).
pub const MAX_CONNECTIONS: usize = 256;

/// The wall clock in Unix milliseconds. The service stands for Microsoft's activation
/// servers, which are not on a lab's simulated time: its records carry real time.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Serves `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, service: Arc<Service>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = Arc::clone(&service);
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = token.cancelled() => {}
                _ = connection(stream, service) => {}
            }
            tracing::debug!(%peer, "connection closed");
        });
    }
}

async fn connection(mut stream: TcpStream, service: Arc<Service>) {
    let peer = stream.peer_addr().ok();
    let (mut rbuf, mut wbuf) = (Vec::new(), Vec::new());
    loop {
        let (answer, close) = match tokio::time::timeout(IDLE_TIMEOUT, read_message(&mut stream, &mut rbuf)).await {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Ok(Some(Message::ServiceRequest(request)))) => {
                let service = Arc::clone(&service);
                let decided = tokio::task::spawn_blocking(move || service.handle(&request, wall_ms())).await;
                match decided {
                    Ok(Ok(answer)) => (Message::ServiceAnswer(answer), false),
                    Ok(Err(refusal)) => {
                        tracing::info!(peer = ?peer, hresult = %refusal.hresult, name = refusal.hresult.name(), reason = %refusal.message, "refused");
                        (Message::Error(ErrorFrame { hresult: refusal.hresult, cmid: Uuid::nil(), message: refusal.message }), false)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "request task failed");
                        return;
                    }
                }
            }
            Ok(Ok(Some(_))) => {
                let message = "unexpected frame kind: the activation service answers activation service requests (kind 4) only".to_owned();
                (Message::Error(ErrorFrame { hresult: HResult::INVALID_DATA, cmid: Uuid::nil(), message }), true)
            }
            Ok(Err(FrameError::Decode(e))) => {
                tracing::info!(peer = ?peer, error = %e, "malformed frame");
                (Message::Error(ErrorFrame { hresult: e.hresult(), cmid: Uuid::nil(), message: e.to_string() }), true)
            }
            Ok(Err(_)) => return,
        };
        match tokio::time::timeout(IDLE_TIMEOUT, write_message(&mut stream, &answer, &mut wbuf)).await {
            Ok(Ok(())) if !close => {}
            _ => return,
        }
    }
}

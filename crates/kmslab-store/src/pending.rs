//! `Pending`: the caller's handle on a queued write, resolved once it is durable.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StoreError;

/// A queued write. Resolves to `Ok(())` only after the transaction holding the write has
/// committed (with [`Synchronous::Full`](crate::Synchronous::Full), after the WAL's fsync), so a host may answer its client
/// then without risk of losing the row.
///
/// `.await` it from async code, or call [`Pending::wait`] from a plain thread. Dropping it
/// does not cancel the write.
#[derive(Debug)]
#[must_use = "a write is durable only when its Pending resolves"]
pub struct Pending {
    state: State,
}

#[derive(Debug)]
enum State {
    Queued(oneshot::Receiver<Result<(), StoreError>>),
    Done(Option<Result<(), StoreError>>),
}

impl Pending {
    pub(crate) fn queued(rx: oneshot::Receiver<Result<(), StoreError>>) -> Self {
        Pending { state: State::Queued(rx) }
    }

    pub(crate) fn ready(result: Result<(), StoreError>) -> Self {
        Pending { state: State::Done(Some(result)) }
    }

    /// Blocks the current thread until the write is committed or has failed.
    ///
    /// # Panics
    /// When called from inside an async runtime (tokio forbids blocking there): use
    /// `.await` instead.
    pub fn wait(self) -> Result<(), StoreError> {
        match self.state {
            State::Queued(rx) => rx.blocking_recv().unwrap_or(Err(StoreError::Closed)),
            State::Done(result) => result.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

impl Future for Pending {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Queued(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(result) => {
                    // The writer dropped the reply only if it stopped before the write.
                    Poll::Ready(result.unwrap_or(Err(StoreError::Closed)))
                }
                Poll::Pending => Poll::Pending,
            },
            State::Done(result) => Poll::Ready(result.take().unwrap_or(Err(StoreError::Closed))),
        }
    }
}

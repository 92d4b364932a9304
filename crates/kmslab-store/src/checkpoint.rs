//! The checkpointer thread: copies committed WAL pages into the database file off the
//! writer thread.
//!
//! With SQLite's automatic checkpoint, the commit that crosses the threshold also copies
//! the whole WAL into the database and fsyncs it, so every caller in that batch (and every
//! write queued behind it) waits for a checkpoint: that was about a fifth of the writer's
//! time and the tail of the request latency. Here a second connection runs PASSIVE
//! checkpoints every [`INTERVAL`]; PASSIVE never blocks the writer or readers, and the
//! writer restarts the WAL from its start at its next commit once everything is copied.
//! The writer keeps a high automatic threshold as a backstop, should this thread fall
//! behind. Durability does not depend on checkpoints: a commit is durable in the WAL.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;
use crate::schema;

/// How often the checkpointer looks at the WAL.
const INTERVAL: Duration = Duration::from_millis(50);

/// Stops the checkpointer when dropped or [`stop`](Checkpointer::stop)ped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = schema::open_checkpointer(path)?;
        let (stop, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("kmslab-store-checkpoint".into())
            .spawn(move || run(&conn, &rx))
            .map_err(|_| StoreError::Closed)?;
        Ok(Checkpointer { stop, handle })
    }

    /// Stops the thread and waits for it (after the checkpoint in progress, if any).
    pub(crate) fn stop(self) {
        drop(self.stop);
        if self.handle.join().is_err() {
            tracing::error!("registry checkpointer thread panicked");
        }
    }
}

fn run(conn: &Connection, stop: &Receiver<()>) {
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        // (busy, WAL frames, frames checkpointed); a no-op when the WAL is empty.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0)) {
            Ok(_) => failing = false,
            // The writer's commits still succeed or fail on their own; say it once.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "registry checkpoint failed; will retry");
            }
            Err(_) => {}
        }
    }
}

//! The checkpointer thread: copies committed WAL pages into the database file off the
//! writer thread.
//!
//! With SQLite's automatic checkpoint, the commit that crosses the threshold also copies
//! the whole WAL into the database and fsyncs it, so every caller in that batch (and every
//! write queued behind it) waits for a checkpoint: that was about a fifth of the writer's
//! time and the tail of the request latency. Here a second connection runs PASSIVE
//! checkpoints every [`INTERVAL`]; PASSIVE never blocks the writer or readers. Once the WAL
//! holds [`RESTART_FRAMES`] frames it also tries a RESTART checkpoint between two commits,
//! so that the writer starts the WAL over (see [`checkpoint`]). The writer keeps a high
//! automatic threshold as a backstop, should this thread stop. Durability does not depend
//! on checkpoints: a commit is durable in the WAL.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;
use crate::schema;

/// How often the checkpointer looks at the WAL.
const INTERVAL: Duration = Duration::from_millis(50);

/// WAL size (frames, one page each) above which a round also rewinds the WAL (4 MiB at
/// 4 KiB pages).
const RESTART_FRAMES: i64 = 1000;

/// Attempts at a RESTART checkpoint per round, and the pause between two.
const RESTART_ATTEMPTS: u32 = 20;
const RESTART_RETRY: Duration = Duration::from_micros(500);

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
        match checkpoint(conn) {
            Ok(()) => failing = false,
            // The writer's commits still succeed or fail on their own; say it once.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "registry checkpoint failed; will retry");
            }
            Err(_) => {}
        }
    }
}

/// One round: a PASSIVE checkpoint, then, when the WAL has grown past [`RESTART_FRAMES`],
/// a few attempts at a RESTART checkpoint so that the writer starts the WAL over from its
/// beginning.
///
/// Why the second step: the writer only rewinds the WAL when it begins a transaction while
/// every frame has been copied, and under steady load a commit nearly always lands while a
/// PASSIVE checkpoint runs, so the WAL kept growing until the writer's own automatic
/// checkpoint copied it inline, with a database fsync, stalling every request queued behind
/// that commit for 15 to 35 ms. RESTART takes the writer lock itself, but only between two
/// commits (no busy handler here: a busy writer makes the attempt fail at once) and only
/// for the few frames committed since the PASSIVE step, so the writer waits for at most one
/// short copy and fsync.
fn checkpoint(conn: &Connection) -> Result<(), rusqlite::Error> {
    // (busy, frames in the WAL, frames checkpointed); a no-op when the WAL is empty.
    let (_, frames, _) = wal_checkpoint(conn, "PASSIVE")?;
    if frames < RESTART_FRAMES {
        return Ok(());
    }
    for _ in 0..RESTART_ATTEMPTS {
        let (busy, _, _) = wal_checkpoint(conn, "RESTART")?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(RESTART_RETRY);
    }
    Ok(())
}

fn wal_checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64, i64), rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
}

//! Durable registry of a kmslab KMS host: clients, counters, settings and events in SQLite.
//!
//! # What it keeps
//! - one row per client (CMID): what it last reported, first/last seen, request count, last
//!   source address, last result and last successful activation;
//! - the cumulative request counters (total, failed, one per license status 0..=6);
//! - the host's ePID (generated once by the caller, kept for the host's lifetime);
//! - settings changed by slmgr verbs (key/value text);
//! - the host event log (12290, 12293, 12294), trimmed to the newest
//!   [`StoreOptions::event_retention`] events.
//!
//! # Durability
//! A write a caller waits for (request, event, setting) is appended to the registry's
//! journal by the journal thread, one group per batch of queued writes, and its
//! [`Pending`] resolves once that group is on the disk (one `fdatasync` per group with
//! [`Synchronous::Full`]): a host sends its response after the client's facts are durable,
//! so neither a `kill -9` nor a power cut loses anything a client was told. The writer
//! thread then folds the journaled writes into the SQLite tables in large transactions
//! (up to 10 ms of writes each) and the journal forgets them once the fold is on the disk;
//! [`Store::open`] folds whatever a crash left in the journal before anything else.
//! If the disk fails or fills, the writes whose journal append fails fail with
//! [`StoreError::Full`] / [`StoreError::Io`]; writes already acknowledged whose fold fails
//! are kept and folded when space returns, and new writes are refused meanwhile.
//! [`Store::health`] reports it, and later writes succeed again once space returns: the
//! writer never stops because of a failed write. One store at a time may have a registry
//! open (an advisory lock on `<db>-kmslab-lock`).
//!
//! # Reads
//! Reads run on their own connection (WAL readers do not wait for the writer). A read first
//! waits until every write acknowledged so far is folded (it asks the writer to fold at
//! once), so it sees what callers were told is stored; while folding fails it shows what is
//! folded. They are blocking calls that take well under a millisecond for single rows and a
//! few milliseconds for a page of clients; async callers with many of them should use
//! `spawn_blocking`.
//!
//! # Times and ids
//! Times are Unix milliseconds of *simulated* time supplied by the caller; the store never
//! reads a clock (except `Instant` to measure commit latency for [`Store::stats`]). CMIDs
//! and GUIDs are [`uuid::Uuid`], stored as lowercase hyphenated text.
//!
//! # API at a glance
//! - [`Store::open`]`(path, `[`StoreOptions`]`)`; [`Store::close`] (or dropping the last
//!   clone) commits what is queued and joins the writer.
//! - Writes return a [`Pending`] (`.await` it, or [`Pending::wait`] on a plain thread):
//!   [`Store::record_request`], [`Store::append_event`], [`Store::set_setting`],
//!   [`Store::flush`]. [`Store::get_or_init_epid`] blocks until the ePID is durable.
//! - Reads: [`Store::counters`], [`Store::client`], [`Store::clients`],
//!   [`Store::client_count`], [`Store::events`], [`Store::event_count`],
//!   [`Store::recent_cmids`], [`Store::get_setting`], [`Store::settings`].
//! - Operations: [`Store::health`], [`Store::stats`], [`integrity_check`], the start-up
//!   check [`check_existing`] and [`set_aside`] for a damaged file, and the lab
//!   knob [`Store::set_max_page_count`].
//!
//! ```no_run
//! # fn main() -> Result<(), kmslab_store::StoreError> {
//! use kmslab_store::{Store, StoreOptions};
//! let store = Store::open("data/host.sqlite".as_ref(), StoreOptions::default())?;
//! let epid = store.get_or_init_epid(|| "55041-00168-305-123456-03-1033-7600.0000-0012026".into())?;
//! store.set_setting("activation_interval", "120").wait()?;
//! println!("{epid}: {} requests so far", store.counters()?.total);
//! # Ok(()) }
//! ```
//!
//! # The activation service's state
//! [`mak::MakStore`] is a separate, much smaller store for `kmslab activation-service`:
//! MAK counts used and added, blocking, and which installation each key activated.
//!
//! **Architecture Invariant:** this is the only kmslab crate that uses rusqlite, and it
//! depends on no other kmslab crate: callers convert protocol types to these rows.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod checkpoint;
mod error;
mod journal;
pub mod mak;
mod pending;
mod read;
mod report;
mod schema;
mod shared;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use check::{CheckOutcome, QUICK_CHECK_BUDGET, check_existing, set_aside};
pub use error::StoreError;
pub use pending::Pending;
pub use report::Tally;
pub use schema::integrity_check;
pub use types::{
    ClientPage, ClientQuery, ClientRow, Counters, EventQuery, EventRecord, EventRow, Health, LICENSE_STATUS_COUNT, RecentClient,
    RequestRecord, StoreStats,
};

use shared::Shared;
use writer::{Command, Op, Reply, Writer};

/// A read waits for the fold of acknowledged writes at most this many steps of this long.
const READ_WAIT_ROUNDS: u32 = 1_000;
const READ_WAIT_STEP: Duration = Duration::from_millis(5);

/// How long [`Store::open`] waits for another store on the same file to close.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes the registry for this store (an advisory lock on `<db>-kmslab-lock`), waiting up
/// to [`LOCK_WAIT`] for a store closing meanwhile (a host restarting in the same process).
/// A second store on the same file would fold the first one's journal as its own.
fn lock_registry(db: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = db.as_os_str().to_owned();
    name.push("-kmslab-lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| StoreError::Io(format!("cannot open the registry lock {}: {err}", path.display())))?;
    // Real time: how long to wait for another store to close, not simulated time.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => std::thread::sleep(Duration::from_millis(10)),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy(format!(
                    "registry {} is open in another store or process ({} is held)",
                    db.display(),
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(StoreError::Io(format!("cannot lock the registry {}: {err}", path.display())));
            }
        }
    }
}

/// Folds what the journal holds beyond the tables (writes a crash left acknowledged but not
/// folded) in one transaction and makes it durable; returns the newest sequence number
/// used, from which the journal goes on.
fn recover(conn: &mut Connection, path: &Path, event_retention: u64) -> Result<u64, StoreError> {
    let folded = schema::folded_seq(conn)?;
    let found = journal::replay(path, folded)?;
    if found.torn_bytes > 0 {
        tracing::warn!(bytes = found.torn_bytes, "registry journal ends in an unfinished append (never acknowledged); ignored");
    }
    if let Some(&(last, _)) = found.ops.last() {
        let ops: Vec<&writer::Op> = found.ops.iter().map(|(_, op)| op).collect();
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let folded = writer::fold(conn, &ops, Some(last), event_retention);
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        folded?;
        tracing::info!(writes = ops.len(), "registry folded the journal's acknowledged writes left by an unclean stop");
    }
    Ok(folded.max(found.last_seq))
}

/// Refuses an event whose fields are not a JSON text ([`StoreError::Invalid`]), on the
/// caller's thread: the one writer thread does no parsing.
fn check_event(event: &EventRecord) -> Result<(), StoreError> {
    serde_json::from_str::<serde::de::IgnoredAny>(&event.fields_json)
        .map(drop)
        .map_err(|err| StoreError::Invalid(format!("event {} fields are not JSON: {err}", event.event_id)))
}

/// Default number of events kept in the log.
pub const DEFAULT_EVENT_RETENTION: u64 = 100_000;

/// Default cap on writes per group commit.
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// How hard a commit tries to reach the disk before its writes are completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the WAL after every commit, before its writes are completed: a completed
    /// write survives a power cut. The default, and what the "answered only after durable"
    /// promise means.
    #[default]
    Full,
    /// fsync only at checkpoints: a commit survives a process crash (`kill -9`) but maybe
    /// not a power cut. For benchmarks and throwaway labs.
    Normal,
}

/// How to open a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Events kept in the log; older ones are deleted as new ones arrive
    /// [`DEFAULT_EVENT_RETENTION`].
    pub event_retention: u64,
    /// Most writes committed in one transaction [`DEFAULT_MAX_BATCH`].
    pub max_batch: usize,
    /// Commit durability [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// Test and lab knob: cap the database at this many pages (SQLite's
    /// `PRAGMA max_page_count`, on the writer connection), so that "disk full" can be
    /// produced without filling a real disk. Writes past it fail with
    /// [`StoreError::Full`]; [`Store::set_max_page_count`] lifts it again. `None` leaves
    /// SQLite's default (effectively unlimited).
    pub max_page_count: Option<u64>,
    /// Check an existing file before opening it ([`check_existing`]: zero length or
    /// `PRAGMA quick_check` failing is [`StoreError::Damaged`]) within this time budget;
    /// `Some(Duration::ZERO)` checks only the file's length, `None` nothing.
    /// [`QUICK_CHECK_BUDGET`].
    pub check_budget: Option<std::time::Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_retention: DEFAULT_EVENT_RETENTION,
            max_batch: DEFAULT_MAX_BATCH,
            synchronous: Synchronous::Full,
            max_page_count: None,
            check_budget: Some(QUICK_CHECK_BUDGET),
        }
    }
}

/// Handle on an open registry. Cheap to clone; all clones share one writer thread and one
/// read connection. The writer stops when [`Store::close`] is called or the last clone is
/// dropped, after committing everything queued.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    // std's Sender is Sync, so every clone shares it; the queue is unbounded because the
    // host already bounds concurrent requests, and a blocking send would stall async
    // callers.
    tx: Sender<Command>,
    // The writer's own queue, for readers' nudges (everything else goes through the
    // journal thread, which passes it on in order).
    writer_tx: Sender<Command>,
    // One read connection behind a std Mutex: reads are short and synchronous, never held
    // across an await.
    reader: Mutex<Connection>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    journal: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    // Held while the store is open (see `lock_registry`); released by `shutdown`.
    lock: Mutex<Option<std::fs::File>>,
}

impl Store {
    /// Opens (creating if needed) the registry at `path`, migrates its schema, switches it
    /// to WAL and starts the writer thread. The parent directory is created too. An
    /// existing file is checked first ([`StoreOptions::check_budget`]); a damaged one is
    /// refused with [`StoreError::Damaged`] and left untouched.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let Some(budget) = options.check_budget {
            check_existing(path, budget)?;
        }
        let mut writer_conn = schema::open_writer(path, options.max_page_count)?;
        let lock = lock_registry(path)?;
        let last_seq = recover(&mut writer_conn, path, options.event_retention)?;
        let journal = journal::Journal::start(path, last_seq + 1)?;
        let reader = schema::open_reader(path)?;
        let shared = Arc::new(Shared::new());
        shared.start_at(last_seq);
        let (writer_tx, rx) = mpsc::channel();
        let durable = options.synchronous == Synchronous::Full;
        let writer = Writer::new(writer_conn, rx, Arc::clone(&shared), options.max_batch, options.event_retention, durable)?;
        let handle =
            std::thread::Builder::new().name("kmslab-store-writer".into()).spawn(move || writer.run()).map_err(|_| StoreError::Closed)?;
        let (tx, journal_rx) = mpsc::channel();
        let journal_thread = journal::JournalThread {
            journal,
            rx: journal_rx,
            writer: writer_tx.clone(),
            shared: Arc::clone(&shared),
            next_seq: last_seq + 1,
            sync: durable,
            max_batch: options.max_batch.max(1),
        };
        let buffers = (Vec::with_capacity(options.max_batch.max(1)), Vec::with_capacity(options.max_batch.max(1)));
        let journal_handle = std::thread::Builder::new()
            .name("kmslab-store-journal".into())
            .spawn(move || journal_thread.run(buffers.0, buffers.1))
            .map_err(|_| StoreError::Closed)?;
        let checkpointer = checkpoint::Checkpointer::start(path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                tx,
                writer_tx,
                reader: Mutex::new(reader),
                shared,
                writer: Mutex::new(Some(handle)),
                journal: Mutex::new(Some(journal_handle)),
                checkpointer: Mutex::new(Some(checkpointer)),
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn submit(&self, op: Op) -> Pending {
        let (reply, rx) = oneshot::channel();
        match self.enqueue(op, Reply::Pending(reply)) {
            Ok(()) => Pending::queued(rx),
            Err(err) => Pending::ready(Err(err)),
        }
    }

    /// Queues a write and blocks the calling thread until it is committed; usable from
    /// any thread, async or not (unlike [`Pending::wait`]).
    fn submit_blocking(&self, op: Op) -> Result<(), StoreError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.enqueue(op, Reply::Blocking(reply))?;
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    fn enqueue(&self, op: Op, reply: Reply) -> Result<(), StoreError> {
        self.inner.shared.stats.queue_depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.inner.tx.send(Command::Write(op, reply)).is_err() {
            self.inner.shared.stats.queue_depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Records one activation request: upserts the client's row (first seen kept, request
    /// count + 1, last activation changed only when `activated_at_ms` is set), bumps the
    /// cumulative counters and appends the request's event, all in one transaction.
    pub fn record_request(&self, record: RequestRecord) -> Pending {
        if usize::from(record.license_status) >= LICENSE_STATUS_COUNT {
            return Pending::ready(Err(StoreError::Invalid(format!("license status {} is not 0..=6", record.license_status))));
        }
        if let Some(event) = &record.event
            && let Err(err) = check_event(event)
        {
            return Pending::ready(Err(err));
        }
        self.submit(Op::Request(Box::new(record)))
    }

    /// Appends an event (12293, 12294, ...) to the host event log. Fields that are not a
    /// JSON text are refused at once with [`StoreError::Invalid`] (as is a request whose
    /// event's fields are not).
    pub fn append_event(&self, event: EventRecord) -> Pending {
        if let Err(err) = check_event(&event) {
            return Pending::ready(Err(err));
        }
        self.submit(Op::Event(event))
    }

    /// Stores a setting (slmgr verb), replacing its previous value.
    pub fn set_setting(&self, key: impl Into<String>, value: impl Into<String>) -> Pending {
        self.submit(Op::Setting { key: key.into(), value: value.into() })
    }

    /// Resolves once every write queued before this call has been committed or has failed.
    pub fn flush(&self) -> Pending {
        self.submit(Op::Barrier)
    }

    /// Returns the stored ePID, or stores and returns `generate()` when there is none yet.
    /// Blocks until the new ePID is durable (a startup call; it works from async code too).
    /// If two callers race, both get the one stored first.
    pub fn get_or_init_epid(&self, generate: impl FnOnce() -> String) -> Result<String, StoreError> {
        if let Some(epid) = read::epid(&self.reader())? {
            return Ok(epid);
        }
        self.submit_blocking(Op::InitEpid(generate()))?;
        read::epid(&self.reader())?.ok_or_else(|| StoreError::Malformed("ePID missing after it was stored".into()))
    }

    /// The stored ePID, if one was ever stored (never generates one).
    pub fn epid(&self) -> Result<Option<String>, StoreError> {
        read::epid(&self.reader())
    }

    /// Lab knob: changes the database's page limit (see [`StoreOptions::max_page_count`])
    /// after queued writes are done, and returns the limit SQLite applied (never below the
    /// current size). Blocks until applied; works from any thread.
    pub fn set_max_page_count(&self, pages: u64) -> Result<u64, StoreError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.inner.tx.send(Command::SetMaxPageCount(pages, reply)).map_err(|_| StoreError::Closed)?;
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Waits until every write acknowledged so far is folded into the tables, so that a
    /// read sees what its caller (or anyone) was told is stored. Nudges the writer to fold
    /// now rather than at the end of its gathering window. Does not wait while folding
    /// fails (the read then shows what is folded), nor for ever.
    fn caught_up(&self) {
        let shared = &self.inner.shared;
        let target = shared.acked();
        if shared.folded() >= target {
            return;
        }
        for _ in 0..READ_WAIT_ROUNDS {
            if shared.fold_error().is_some() || self.inner.writer_tx.send(Command::Nudge).is_err() {
                return;
            }
            if shared.wait_folded(target, READ_WAIT_STEP) {
                return;
            }
        }
        tracing::warn!(target, folded = shared.folded(), "registry read went ahead before the acknowledged writes were folded");
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.caught_up();
        // A panic while holding the lock cannot leave the connection in a bad state (each
        // read is its own statement or a read transaction rolled back on drop).
        self.inner.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks up a setting.
    pub fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        read::setting(&self.reader(), key)
    }

    /// Every setting, ordered by key.
    pub fn settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        read::settings(&self.reader())
    }

    /// The cumulative request counters.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        read::counters(&self.reader())
    }

    /// One client's row.
    pub fn client(&self, cmid: Uuid) -> Result<Option<ClientRow>, StoreError> {
        read::client(&self.reader(), cmid)
    }

    /// Number of clients ever seen.
    pub fn client_count(&self) -> Result<u64, StoreError> {
        read::client_count(&self.reader())
    }

    /// A filtered page of clients, most recently seen first, with the number of matches.
    pub fn clients(&self, query: &ClientQuery) -> Result<ClientPage, StoreError> {
        read::clients(&mut self.reader(), query)
    }

    /// Events matching the query, oldest first unless `newest_first`.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        read::events(&self.reader(), query)
    }

    /// Number of events in the log.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        read::event_count(&self.reader())
    }

    /// Clients seen at or after `since_ms` with their counted group, most recent first:
    /// what a host started with `--keep-count` needs to rebuild its count.
    pub fn recent_cmids(&self, since_ms: i64) -> Result<Vec<RecentClient>, StoreError> {
        read::recent_clients(&self.reader(), since_ms)
    }

    /// Whether writes currently succeed.
    pub fn health(&self) -> Health {
        self.inner.shared.health()
    }

    /// Writer counters (commits, batch sizes, commit latency) for metrics export.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats()
    }

    /// Commits everything queued so far, then stops the writer thread and waits for it.
    /// Writes submitted afterwards, from any clone, fail with [`StoreError::Closed`].
    /// Calling it again is harmless.
    pub fn close(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn shutdown(&self) {
        let handle = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(handle) = handle {
            // The journal thread passes it on to the writer after the writes queued before
            // it. Fails only if they already stopped, which is what we want anyway.
            let _ = self.tx.send(Command::Shutdown);
            if let Some(journal) = self.journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
                && journal.join().is_err()
            {
                tracing::error!("registry journal thread panicked");
                let _ = self.writer_tx.send(Command::Shutdown);
            }
            if handle.join().is_err() {
                tracing::error!("registry writer thread panicked");
            }
        }
        if let Some(checkpointer) = self.checkpointer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            checkpointer.stop();
        }
        // Closed: another store may open the registry now (closing the file unlocks it).
        drop(self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

//! The writer thread: group commit of every queued write in one transaction.
//!
//! SQLite allows one writer at a time and a durable commit costs an fsync, so the store
//! funnels all writes through one thread. It takes the first queued write, then whatever
//! else is already queued (up to `max_batch`), applies them all in one transaction and
//! commits. Under load the fsync is shared by the whole batch; when idle a lone write
//! commits at once.
//!
//! With [`Synchronous::Full`](crate::Synchronous::Full) the fsync is not done inside
//! COMMIT: the connection commits with `synchronous=NORMAL` (the commit is in the WAL file,
//! not yet on the disk) and hands the batch's callers to the syncer thread ([`Syncer`]),
//! which `fdatasync`s the WAL file and only then completes them. The writer meanwhile
//! applies the next batch, so the disk's flush and the next batch's CPU overlap instead of
//! adding up, and the syncer covers every batch committed during one flush with the next
//! one. A caller is still told "done" only once its commit is on the disk.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::schema;
use crate::shared::Shared;
use crate::types::{EventRecord, RequestRecord};
use crate::{LICENSE_STATUS_COUNT, StoreError};

/// Tells a caller how its write ended.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Completes a [`Pending`](crate::Pending).
    Pending(oneshot::Sender<Result<(), StoreError>>),
    /// For the store's own blocking calls (ePID at startup), which must work from any
    /// thread, including an async runtime's where tokio forbids `blocking_recv`.
    Blocking(SyncSender<Result<(), StoreError>>),
    /// A journaled write, already acknowledged to its caller by the journal thread
    /// (`journal.rs`), with its sequence number: nobody waits for it here.
    Journaled(u64),
}

impl Reply {
    pub(crate) fn send(self, result: Result<(), StoreError>) {
        // The caller may have stopped waiting; its write is committed all the same.
        let _ = match self {
            Reply::Pending(tx) => tx.send(result).map_err(drop),
            Reply::Blocking(tx) => tx.send(result).map_err(drop),
            Reply::Journaled(_) => Ok(()),
        };
    }

    fn journaled(&self) -> Option<u64> {
        match self {
            Reply::Journaled(seq) => Some(*seq),
            _ => None,
        }
    }
}

/// One write.
#[derive(Debug)]
pub(crate) enum Op {
    Request(Box<RequestRecord>),
    Event(EventRecord),
    Setting {
        key: String,
        value: String,
    },
    /// Stores the ePID unless one is stored already.
    InitEpid(String),
    /// Writes nothing; completes once everything queued before it is done.
    Barrier,
}

/// What the writer thread receives.
#[derive(Debug)]
pub(crate) enum Command {
    Write(Op, Reply),
    /// Lab knob: change `PRAGMA max_page_count`; replies with the applied limit.
    SetMaxPageCount(u64, SyncSender<Result<u64, StoreError>>),
    /// Commit what is queued before this, then stop.
    Shutdown,
    /// A reader waits for journaled writes: fold what is gathered now.
    Nudge,
    /// Folding failed: try the kept writes again now; replies whether folding works again.
    Retry(SyncSender<bool>),
}

pub(crate) struct Writer {
    conn: Connection,
    rx: Receiver<Command>,
    shared: Arc<Shared>,
    max_batch: usize,
    event_retention: u64,
    /// Where committed batches wait for their fsync; `None` with `Synchronous::Normal`,
    /// whose callers are completed as soon as COMMIT returns.
    syncer: Option<Syncer>,
    /// When a failed group commit was last logged, and how many failed since (a full disk
    /// fails every batch: logged once a minute with a count, not once per batch).
    failure_logged_at: Option<Instant>,
    failures_not_logged: u64,
}

/// How long the writer gathers journaled writes before it folds them into the database
/// (fewer, larger transactions: see `journal.rs`). Writes that a caller waits for here
/// (barriers, the ePID) and readers (`Command::Nudge`) cut it short. Longer windows cost
/// less CPU per write but fold in longer bursts, which the requests of a renewal-heavy
/// load feel: at 10,000 renewals/s the p99 was 3.7 ms with 10 ms, 4.3–6.0 ms with 20 ms
/// and 4.7–5.4 ms with 50 ms, for a writer 15% cheaper per request (docs/performance.md).
const FOLD_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// While folding fails (full, I/O error), how often the writer tries again.
const FOLD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// A failed group commit is logged at most once per this interval.
const FAILURE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Writer {
    /// `durable`: complete callers only after the WAL file is fsynced (the connection itself
    /// must then commit with `synchronous=NORMAL`, see the module doc).
    pub(crate) fn new(
        conn: Connection,
        rx: Receiver<Command>,
        shared: Arc<Shared>,
        max_batch: usize,
        event_retention: u64,
        durable: bool,
    ) -> Result<Self, StoreError> {
        let syncer = if durable { Some(Syncer::start(wal_path(&conn), Arc::clone(&shared))?) } else { None };
        Ok(Writer {
            conn,
            rx,
            shared,
            max_batch: max_batch.max(1),
            event_retention,
            syncer,
            failure_logged_at: None,
            failures_not_logged: 0,
        })
    }

    /// Runs until [`Command::Shutdown`] or until every sender is gone, then waits until the
    /// syncer has completed every caller.
    pub(crate) fn run(mut self) {
        self.serve();
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
    }

    fn serve(&mut self) {
        // Journaled writes kept from a failed fold stay at the front, in order.
        let mut batch: Vec<(Op, Reply)> = Vec::with_capacity(self.max_batch);
        let mut stopping = false;
        while !stopping {
            let mut control = None;
            let mut now_please = false;
            let take = |cmd: Command, batch: &mut Vec<(Op, Reply)>, control: &mut Option<Command>, now_please: &mut bool| match cmd {
                Command::Write(op, reply) => {
                    // Somebody waits for this one here: commit without gathering more.
                    *now_please |= reply.journaled().is_none();
                    batch.push((op, reply));
                }
                Command::Nudge => *now_please = true,
                other => *control = Some(other),
            };
            // Block for the first command; with writes kept from a failed fold, only until
            // it is time to retry them.
            if batch.is_empty() {
                match self.rx.recv() {
                    Ok(cmd) => take(cmd, &mut batch, &mut control, &mut now_please),
                    Err(_) => return,
                }
            } else {
                match self.rx.recv_timeout(FOLD_RETRY) {
                    Ok(cmd) => take(cmd, &mut batch, &mut control, &mut now_please),
                    Err(mpsc::RecvTimeoutError::Timeout) => now_please = true,
                    Err(mpsc::RecvTimeoutError::Disconnected) => stopping = true,
                }
            }
            // Gather journaled writes for up to FOLD_DELAY; take what else is queued. The
            // window is real time (how long writes wait in memory), not simulated time.
            #[allow(clippy::disallowed_methods)]
            let deadline = Instant::now() + FOLD_DELAY;
            while control.is_none() && batch.len() < self.max_batch && !stopping {
                let cmd = if now_please {
                    match self.rx.try_recv() {
                        Ok(cmd) => cmd,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            stopping = true;
                            break;
                        }
                    }
                } else {
                    // Real time, as the deadline above.
                    #[allow(clippy::disallowed_methods)]
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(left) {
                        Ok(cmd) => cmd,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            stopping = true;
                            break;
                        }
                    }
                };
                take(cmd, &mut batch, &mut control, &mut now_please);
            }
            if !batch.is_empty() {
                self.commit_batch(&mut batch);
            }
            match control {
                None => {}
                Some(Command::SetMaxPageCount(pages, reply)) => {
                    let applied = schema::set_max_page_count(&self.conn, pages);
                    // Space may have returned: fold what was kept before answering.
                    if !batch.is_empty() {
                        self.commit_batch(&mut batch);
                    }
                    let _ = reply.send(applied);
                }
                Some(Command::Retry(reply)) => {
                    // What was gathered, the kept writes first, was committed just above.
                    let _ = reply.send(self.shared.fold_error().is_none());
                }
                Some(Command::Shutdown) => stopping = true,
                Some(Command::Write(..) | Command::Nudge) => unreachable!("taken above"),
            }
        }
        if !batch.is_empty() {
            // Still failing at shutdown: the journal keeps these for the next start.
            tracing::warn!(writes = batch.len(), "registry stopped with acknowledged writes not folded; they stay in the journal");
        }
    }

    /// Commits the batch in one transaction. If that fails, retries each write in its own
    /// transaction so that one bad record cannot fail its neighbours and every caller
    /// learns its own write's fate. A journaled write, already acknowledged, cannot fail:
    /// from the first one that meets a storage failure on, the journaled writes stay in
    /// `batch`, in order, to be folded once the failure clears, and new writes are refused
    /// meanwhile (`Shared::fold_error`).
    fn commit_batch(&mut self, batch: &mut Vec<(Op, Reply)>) {
        // Measures how long a real commit takes (the commit-latency metric), not simulated time.
        #[allow(clippy::disallowed_methods)]
        let started = Instant::now();
        let fold_seq = batch.iter().filter_map(|(_, reply)| reply.journaled()).max();
        let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
        let result = self.transaction(&ops, fold_seq);
        match result {
            Ok(()) => {
                // A barrier writes nothing.
                let writes = batch.iter().filter(|(op, _)| !matches!(op, Op::Barrier)).count();
                let replies = batch.drain(..).map(|(_, reply)| (reply, Ok(()))).collect();
                self.folded(fold_seq);
                self.finish(Committed { started, transactions: 1, writes, replies, fold_seq });
            }
            Err(batch_err) => {
                record_failure(&self.shared, &batch_err);
                if self.failure_logged_at.is_none_or(|at| at.elapsed() >= FAILURE_LOG_INTERVAL) {
                    self.failure_logged_at = Some(started);
                    tracing::warn!(
                        error = %batch_err,
                        writes = batch.len(),
                        repeated = std::mem::take(&mut self.failures_not_logged),
                        "registry group commit failed; retrying the writes one by one"
                    );
                } else {
                    self.failures_not_logged += 1;
                }
                let mut replies = Vec::with_capacity(batch.len());
                let mut kept = Vec::new();
                let mut blocked: Option<StoreError> = None;
                let mut writes = 0;
                let mut folded = None;
                for (op, reply) in batch.drain(..) {
                    let seq = reply.journaled();
                    if let Some(err) = &blocked {
                        match seq {
                            Some(_) => kept.push((op, reply)),
                            None => replies.push((reply, Err(err.clone()))),
                        }
                        continue;
                    }
                    match self.transaction(&[&op], seq) {
                        Ok(()) => {
                            writes += usize::from(!matches!(op, Op::Barrier));
                            folded = seq.or(folded);
                            replies.push((reply, Ok(())));
                        }
                        Err(err) if seq.is_some() && err.is_storage_failure() => {
                            record_failure(&self.shared, &err);
                            blocked = Some(err);
                            kept.push((op, reply));
                        }
                        Err(err) => {
                            record_failure(&self.shared, &err);
                            if seq.is_some() {
                                tracing::error!(error = %err, "registry cannot store an acknowledged write; it is dropped");
                            }
                            replies.push((reply, Err(err)));
                        }
                    }
                }
                *batch = kept;
                self.shared.set_fold_error(blocked);
                self.folded(folded);
                // One transaction per committed write.
                self.finish(Committed { started, transactions: writes, writes, replies, fold_seq: folded });
            }
        }
    }

    /// Journaled writes up to `seq` are in the database: readers may see them.
    fn folded(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.shared.set_folded(seq);
        }
    }

    /// Completes the callers of a committed batch: after the WAL's fsync when durable, at
    /// once otherwise.
    fn finish(&self, committed: Committed) {
        match &self.syncer {
            Some(syncer) => syncer.submit(committed),
            None => committed.deliver(&self.shared, Ok(())),
        }
    }

    fn transaction(&mut self, ops: &[&Op], fold_seq: Option<u64>) -> Result<(), StoreError> {
        let result = fold(&mut self.conn, ops, fold_seq, self.event_retention);
        if result.is_ok() && fold_seq.is_some() {
            self.shared.set_fold_error(None);
        }
        result
    }
}

/// Applies `ops` in one transaction; `fold_seq`, the newest journaled write among them, is
/// stored with them (`journal_state`), so that a restart folds only what is newer.
pub(crate) fn fold(conn: &mut Connection, ops: &[&Op], fold_seq: Option<u64>, event_retention: u64) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut effects = TxEffects::default();
    {
        // Each statement is taken from the cache once per transaction, not once per
        // write: rusqlite hashes the whole SQL text on every look-up and every return.
        let mut statements = Statements::default();
        for op in ops {
            apply(&tx, &mut statements, op, &mut effects)?;
        }
    }
    if effects.counters.total > 0 {
        effects.counters.apply(&tx)?;
    }
    if effects.events_written {
        trim_events(&tx, event_retention)?;
    }
    if let Some(seq) = fold_seq {
        tx.prepare_cached("UPDATE journal_state SET folded_seq = ?1 WHERE id = 1")?
            .execute(params![i64::try_from(seq).unwrap_or(i64::MAX)])?;
    }
    // Dropping `tx` on an error above rolls the whole transaction back.
    tx.commit()?;
    Ok(())
}

fn record_failure(shared: &Shared, err: &StoreError) {
    shared.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
    if err.is_storage_failure() {
        shared.set_unhealthy(err);
    }
}

/// The callers of one committed batch (or of one batch retried write by write), waiting
/// for their commit to be durable.
struct Committed {
    /// When the batch's transaction began (commit latency is measured to its fsync).
    started: Instant,
    /// Transactions committed.
    transactions: usize,
    /// Writes committed (a failed write's caller is in `replies` with its error).
    writes: usize,
    replies: Vec<(Reply, Result<(), StoreError>)>,
    /// Newest journaled write committed, which the journal may drop once this is durable.
    fold_seq: Option<u64>,
}

impl Committed {
    /// Completes every caller; `synced` is the outcome of the fsync that covered the batch.
    fn deliver(self, shared: &Shared, synced: Result<(), StoreError>) {
        let stats = &shared.stats;
        match &synced {
            Ok(()) if self.writes > 0 => {
                let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let writes = self.writes as u64;
                // Writes per transaction: the batch, or 1 when it was retried write by write.
                let batch_size = writes / (self.transactions as u64).max(1);
                stats.commits.fetch_add(self.transactions as u64, Ordering::Relaxed);
                stats.writes_committed.fetch_add(writes, Ordering::Relaxed);
                stats.last_batch_size.store(batch_size, Ordering::Relaxed);
                stats.max_batch_size.fetch_max(batch_size, Ordering::Relaxed);
                stats.last_commit_micros.store(micros, Ordering::Relaxed);
                stats.total_commit_micros.fetch_add(micros, Ordering::Relaxed);
                if let Some(seq) = self.fold_seq {
                    shared.set_durable_folded(seq);
                }
                if shared.fold_error().is_none() {
                    shared.set_healthy();
                }
            }
            Ok(()) => {}
            Err(err) => record_failure(shared, err),
        }
        for (reply, result) in self.replies {
            // A write whose commit may not have reached the disk must not be acknowledged.
            let result = result.and_then(|()| synced.clone());
            if result.is_err() {
                stats.writes_failed.fetch_add(1, Ordering::Relaxed);
            }
            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            reply.send(result);
        }
    }
}

/// The `-wal` file SQLite keeps next to the database.
fn wal_path(conn: &Connection) -> PathBuf {
    let mut path = conn.path().unwrap_or_default().to_owned();
    path.push_str("-wal");
    PathBuf::from(path)
}

/// The syncer thread: makes committed batches durable with one `fdatasync` of the WAL file
/// for every batch committed since the previous one, then completes their callers.
///
/// This is what `synchronous=FULL` does inside COMMIT (sync the WAL after the commit
/// frame is written), moved off the writer thread. The WAL file keeps its inode while the
/// store's connections are open (SQLite rewrites it from the start, and deletes it only
/// when the last connection closes), so one descriptor, opened at the first sync, serves
/// the store's lifetime; and any fsync that starts after a commit returned covers it.
/// What FULL adds besides (a sync of the WAL header when the WAL starts over) only orders
/// writes that no caller has been told about yet; a power cut before the fsync loses those
/// commits whole, as SQLite's NORMAL level does, and never an acknowledged one.
///
/// If the fsync fails, every caller of the batches it covered is told the write failed,
/// although their rows may be visible until a power cut: a caller is never told "done"
/// for a commit not known to be on the disk.
struct Syncer {
    tx: Sender<Committed>,
    handle: JoinHandle<()>,
}

impl Syncer {
    fn start(wal: PathBuf, shared: Arc<Shared>) -> Result<Syncer, StoreError> {
        let (tx, rx) = mpsc::channel();
        // Allocated here rather than on the syncer thread: glibc gives each thread that
        // first calls malloc an arena of its own, which costs an idle host resident memory.
        let waiting = Vec::with_capacity(SYNCER_BACKLOG);
        let handle = std::thread::Builder::new()
            .name("kmslab-store-sync".into())
            .spawn(move || run_syncer(&wal, &rx, &shared, waiting))
            .map_err(|_| StoreError::Closed)?;
        Ok(Syncer { tx, handle })
    }

    fn submit(&self, committed: Committed) {
        // The syncer stops only after the writer dropped its sender (`stop`).
        let _ = self.tx.send(committed);
    }

    /// Lets the syncer complete everything submitted, then waits for it.
    fn stop(self) {
        drop(self.tx);
        if self.handle.join().is_err() {
            tracing::error!("registry syncer thread panicked");
        }
    }
}

/// Committed batches the syncer holds without allocating (more are queued only while one
/// fsync takes as long as that many commits).
const SYNCER_BACKLOG: usize = 256;

fn run_syncer(wal: &std::path::Path, rx: &Receiver<Committed>, shared: &Shared, mut waiting: Vec<Committed>) {
    let mut file: Option<File> = None;
    while let Ok(first) = rx.recv() {
        waiting.push(first);
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
        }
        let synced = if waiting.iter().any(|c| c.writes > 0) { sync_wal(wal, &mut file) } else { Ok(()) };
        for committed in waiting.drain(..) {
            committed.deliver(shared, synced.clone());
        }
    }
}

fn sync_wal(wal: &std::path::Path, file: &mut Option<File>) -> Result<(), StoreError> {
    let io_error = |err: std::io::Error| StoreError::Io(format!("fdatasync of {}: {err}", wal.display()));
    if file.is_none() {
        *file = Some(File::open(wal).map_err(io_error)?);
    }
    let Some(open) = file.as_ref() else { return Ok(()) };
    open.sync_data().map_err(|err| {
        // After a failed fsync the kernel may have dropped the dirty pages: reopen next time
        // rather than trust this descriptor's error state.
        *file = None;
        io_error(err)
    })
}

/// What the writes of one transaction leave to do once, at its end, rather than per write.
#[derive(Debug, Default)]
struct TxEffects {
    /// Whether any write added an event (the log then needs trimming).
    events_written: bool,
    /// Counter increments, applied with one UPDATE per transaction.
    counters: CounterDelta,
}

/// Increments of the `counters` row accumulated over a transaction.
#[derive(Debug, Default)]
struct CounterDelta {
    total: i64,
    failed: i64,
    by_status: [i64; LICENSE_STATUS_COUNT],
}

impl CounterDelta {
    fn add(&mut self, record: &RequestRecord) -> Result<(), StoreError> {
        // `Store::record_request` already refused other statuses; this keeps the
        // writer from panicking should another path ever queue one.
        let slot = self
            .by_status
            .get_mut(usize::from(record.license_status))
            .ok_or_else(|| StoreError::Invalid(format!("license status {} is not 0..=6", record.license_status)))?;
        *slot += 1;
        self.total += 1;
        self.failed += i64::from(record.failed);
        Ok(())
    }

    fn apply(&self, conn: &Connection) -> Result<(), StoreError> {
        let s = &self.by_status;
        conn.prepare_cached(
            "UPDATE counters SET
                 total = total + ?1,
                 failed = failed + ?2,
                 status_0 = status_0 + ?3,
                 status_1 = status_1 + ?4,
                 status_2 = status_2 + ?5,
                 status_3 = status_3 + ?6,
                 status_4 = status_4 + ?7,
                 status_5 = status_5 + ?8,
                 status_6 = status_6 + ?9
             WHERE id = 1",
        )?
        .execute(params![self.total, self.failed, s[0], s[1], s[2], s[3], s[4], s[5], s[6]])?;
        Ok(())
    }
}

/// The insert statements of one transaction, prepared (taken from the connection's cache)
/// at their first use in it.
#[derive(Default)]
struct Statements<'conn> {
    upsert_client: Option<rusqlite::CachedStatement<'conn>>,
    insert_event: Option<rusqlite::CachedStatement<'conn>>,
}

const UPSERT_CLIENT: &str = "INSERT INTO clients (cmid, machine_name, activation_id, application_id,
         counted_id, license_status, minutes_to_expiry, first_seen_ms,
         last_seen_ms, request_count, last_address, last_result,
         last_activation_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 1, ?9, ?10, ?11)
     ON CONFLICT (cmid) DO UPDATE SET
         machine_name = excluded.machine_name,
         activation_id = excluded.activation_id,
         application_id = excluded.application_id,
         counted_id = excluded.counted_id,
         license_status = excluded.license_status,
         minutes_to_expiry = excluded.minutes_to_expiry,
         last_seen_ms = excluded.last_seen_ms,
         request_count = request_count + 1,
         last_address = excluded.last_address,
         last_result = excluded.last_result,
         last_activation_ms =
             coalesce(excluded.last_activation_ms, last_activation_ms)";

const INSERT_EVENT: &str = "INSERT INTO events (event_id, time_ms, fields_json) VALUES (?1, ?2, ?3)";

/// `slot`'s statement, prepared from `sql` on first use.
fn statement<'s, 'conn>(
    conn: &'conn Connection,
    slot: &'s mut Option<rusqlite::CachedStatement<'conn>>,
    sql: &str,
) -> Result<&'s mut rusqlite::CachedStatement<'conn>, StoreError> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    // Just filled above.
    slot.as_mut().ok_or(StoreError::Closed)
}

/// The text form of a UUID as stored (lowercase, hyphenated), written into `buf` without
/// the formatting machinery of `Display`.
fn uuid_text<'b>(uuid: &uuid::Uuid, buf: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'b str {
    uuid.hyphenated().encode_lower(buf)
}

/// The text form of a source address as stored, the same text as `Display` gives
/// (`192.0.2.10:50000`, `[2001:db8::1]:50000`): IPv4 addresses, nearly every one, are
/// written digit by digit, which costs a tenth of `Display`'s formatting.
fn address_text(addr: &std::net::SocketAddr, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    match addr {
        std::net::SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u32::from(*octet));
            }
            out.push(':');
            push_decimal(out, u32::from(v4.port()));
        }
        std::net::SocketAddr::V6(_) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "{addr}");
        }
    }
}

fn push_decimal(out: &mut String, mut value: u32) {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in digits[..n].iter().rev() {
        out.push(char::from(digit));
    }
}

/// Applies one write inside the open transaction, leaving per-transaction work (counters,
/// event trimming) in `effects`.
fn apply<'conn>(conn: &'conn Connection, statements: &mut Statements<'conn>, op: &Op, effects: &mut TxEffects) -> Result<(), StoreError> {
    match op {
        Op::Request(record) => {
            let (mut cmid, mut activation_id, mut application_id, mut counted_id) = ([0u8; 36], [0u8; 36], [0u8; 36], [0u8; 36]);
            let mut address = String::new();
            let address = record.source.map(|addr| {
                address_text(&addr, &mut address);
                address
            });
            statement(conn, &mut statements.upsert_client, UPSERT_CLIENT)?.execute(params![
                uuid_text(&record.cmid, &mut cmid),
                record.machine_name,
                uuid_text(&record.activation_id, &mut activation_id),
                uuid_text(&record.application_id, &mut application_id),
                uuid_text(&record.counted_id, &mut counted_id),
                record.license_status,
                record.minutes_to_expiry,
                record.time_ms,
                address,
                record.result,
                record.activated_at_ms,
            ])?;
            effects.counters.add(record)?;
            if let Some(event) = &record.event {
                insert_event(conn, statements, event)?;
                effects.events_written = true;
            }
        }
        Op::Event(event) => {
            insert_event(conn, statements, event)?;
            effects.events_written = true;
        }
        Op::Setting { key, value } => {
            conn.prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        }
        Op::InitEpid(epid) => {
            conn.prepare_cached("INSERT OR IGNORE INTO host_identity (id, epid) VALUES (1, ?1)")?.execute(params![epid])?;
        }
        Op::Barrier => {}
    }
    Ok(())
}

fn insert_event<'conn>(conn: &'conn Connection, statements: &mut Statements<'conn>, event: &EventRecord) -> Result<(), StoreError> {
    statement(conn, &mut statements.insert_event, INSERT_EVENT)?.execute(params![event.event_id, event.time_ms, event.fields_json])?;
    Ok(())
}

/// Keeps the `retention` newest events. Runs once per transaction, not per event.
///
/// `seq` is the rowid and events only ever leave from the low end, so the seqs in the log
/// are contiguous and the newest `retention` are those above `max(seq) - retention`: two
/// b-tree seeks plus the rows actually deleted, instead of walking `retention` rows back
/// from the newest one (which cost a full scan of the log per commit).
fn trim_events(conn: &Connection, retention: u64) -> Result<(), StoreError> {
    if retention == 0 {
        conn.prepare_cached("DELETE FROM events")?.execute([])?;
        return Ok(());
    }
    let retention = i64::try_from(retention).unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?1")?.execute(params![retention])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_address_and_uuid_texts_are_those_display_gives() {
        let mut out = String::new();
        for text in ["127.0.0.1:49152", "0.0.0.0:0", "255.255.255.255:65535", "192.0.2.10:1688", "10.0.100.9:80", "[2001:db8::1]:50000"] {
            let addr: std::net::SocketAddr = text.parse().unwrap();
            address_text(&addr, &mut out);
            assert_eq!(out, addr.to_string());
            assert_eq!(out, text);
        }
        let uuid = uuid::Uuid::from_u128(0xAE2EE509_1B34_41C0_ACB7_6D4650168915);
        assert_eq!(uuid_text(&uuid, &mut [0; 36]), uuid.to_string());
    }
}

//! The request journal: what the store has acknowledged and not yet folded into the database.
//!
//! Every write a caller waits for (a request, an event, a setting) is first appended to a
//! flat file next to the database by the journal thread, one group per batch of queued
//! writes, and the caller is told "done" once that group is on the disk (one `fdatasync`
//! per group with [`Synchronous::Full`](crate::Synchronous::Full); with `Normal`, once it is
//! in the OS page cache). The same writes then go on to the writer thread, which folds them
//! into the database's tables in transactions up to `FOLD_DELAY` apart (`writer.rs`): the
//! b-tree pages a batch shares (the newest client and event rows, their indexes' last
//! pages, the counters) are written once per fold instead of once per small commit. Each
//! fold also stores the sequence number of the newest journaled write it holds
//! (`journal_state`), in the same transaction.
//!
//! # On disk
//! Segment files `<db file>-kmslab-journal-<first sequence number, 20 digits>`, each a
//! sequence of groups: a 28-byte header (`"KJ01"`, payload length u32, sequence number of
//! the group's first write u64, number of writes u32, a 64-bit checksum of those and the
//! payload) and the writes (little-endian, [`encode_op`]). A group whose header or checksum
//! does not check is where a crash interrupted an append that no caller was told about:
//! reading a segment stops there. A segment is started once the previous one is past
//! [`ROTATE_BYTES`] (its name made durable with an fsync of the directory), and removed
//! once every write in it is folded and the fold is on the disk.
//!
//! # Recovery
//! [`replay`] at open reads every segment and returns the writes numbered above the
//! database's `journal_state`: what a `kill -9` or a power cut left acknowledged but not
//! folded. The store folds those first (synchronously), then removes the segments and
//! starts a new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use std::hash::Hasher;

use fnv::FnvHasher;
use uuid::Uuid;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use crate::StoreError;
use crate::shared::Shared;
use crate::types::{EventRecord, RequestRecord};
use crate::writer::{Command, Op, Reply};

const MAGIC: &[u8; 4] = b"KJ01";
const HEADER_LEN: usize = 28;
/// Where the checksum starts in the header; what it covers starts after the magic.
const CHECKSUM_AT: usize = 20;

/// The group's checksum: 64-bit FNV-1a of the header's length, sequence number and count,
/// then the payload. It tells a whole group from one a crash cut short or a torn sector
/// damaged; it is not a defence against anyone who can write the file.
fn checksum(header: &[u8], payload: &[u8]) -> [u8; 8] {
    let mut hasher = FnvHasher::default();
    hasher.write(&header[4..CHECKSUM_AT]);
    hasher.write(payload);
    hasher.finish().to_le_bytes()
}

/// The journal is emptied once it is larger than this and wholly folded.
pub(crate) const ROTATE_BYTES: u64 = 8 << 20;

/// Largest group payload recovery accepts (a batch of 1,024 writes is far below it).
const MAX_GROUP_BYTES: usize = 64 << 20;

/// Journal segment files of the database at `db` are named `<db file name>-kmslab-journal-<first sequence number>`.
fn segment_prefix(db: &Path) -> (PathBuf, String) {
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_owned);
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, format!("{name}-kmslab-journal-"))
}

/// The journal's segment files, oldest first, with the sequence number each starts at.
pub(crate) fn segments(db: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let (dir, prefix) = segment_prefix(db);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(&dir, "list", &err)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error(&dir, "list", &err))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|n| n.parse::<u64>().ok()) else { continue };
        found.push((first, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// Whether an op goes through the journal (acknowledged before it is folded).
pub(crate) fn is_journaled(op: &Op) -> bool {
    matches!(op, Op::Request(_) | Op::Event(_) | Op::Setting { .. })
}

/// The journal while the store runs, appended to by the journal thread only: the segment
/// being written and the older ones not yet wholly folded.
#[derive(Debug)]
pub(crate) struct Journal {
    db: PathBuf,
    active: File,
    active_path: PathBuf,
    active_len: u64,
    /// Older segments and the last sequence number each holds.
    older: std::collections::VecDeque<(PathBuf, u64)>,
    /// An fdatasync of the active segment failed: its descriptor is not trusted again
    /// (the kernel may have dropped the dirty pages and cleared the error), so the next
    /// group goes to a new segment.
    broken: bool,
    buf: Vec<u8>,
}

impl Journal {
    /// Removes every segment (all folded: call after [`replay`] was folded and synced) and
    /// starts a new one at `first_seq`.
    pub(crate) fn start(db: &Path, first_seq: u64) -> Result<Journal, StoreError> {
        for (_, path) in segments(db)? {
            std::fs::remove_file(&path).map_err(|err| io_error(&path, "remove", &err))?;
        }
        let (active, active_path) = create_segment(db, first_seq)?;
        Ok(Journal {
            db: db.to_owned(),
            active,
            active_path,
            active_len: 0,
            older: Default::default(),
            broken: false,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Starts a new segment at `next_seq` once the active one is past [`ROTATE_BYTES`] (or
    /// its last fdatasync failed), and
    /// removes the older segments whose writes are all durably folded (up to
    /// `durable_folded`).
    pub(crate) fn rotate(&mut self, next_seq: u64, durable_folded: u64) -> Result<(), StoreError> {
        if self.active_len > ROTATE_BYTES || self.broken {
            let (file, path) = create_segment(&self.db, next_seq)?;
            let done = std::mem::replace(&mut self.active_path, path);
            self.active = file;
            self.active_len = 0;
            self.broken = false;
            self.older.push_back((done, next_seq.saturating_sub(1)));
        }
        while let Some((path, last)) = self.older.front() {
            if *last > durable_folded {
                break;
            }
            // A segment that comes back after a power cut is skipped by its numbers.
            std::fs::remove_file(path).map_err(|err| io_error(path, "remove", &err))?;
            self.older.pop_front();
        }
        Ok(())
    }

    /// Appends one group holding `ops` (numbered from `first_seq`) and, when `sync`, flushes
    /// it to the disk. On failure the segment is cut back to where it was, so that a later
    /// group never follows a partial one.
    pub(crate) fn append<'a>(&mut self, first_seq: u64, ops: impl Iterator<Item = &'a Op>, sync: bool) -> Result<(), StoreError> {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        let mut count: u32 = 0;
        for op in ops {
            encode_op(op, &mut self.buf);
            count += 1;
        }
        let payload_len = self.buf.len() - HEADER_LEN;
        self.buf[0..4].copy_from_slice(MAGIC);
        self.buf[4..8].copy_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
        self.buf[8..16].copy_from_slice(&first_seq.to_le_bytes());
        self.buf[16..20].copy_from_slice(&count.to_le_bytes());
        let sum = checksum(&self.buf[..HEADER_LEN], &self.buf[HEADER_LEN..]);
        self.buf[CHECKSUM_AT..HEADER_LEN].copy_from_slice(&sum);
        let path = &self.active_path;
        let written = self.active.write_all(&self.buf).map_err(|err| io_error(path, "append to", &err)).and_then(|()| {
            if sync {
                self.active.sync_data().map_err(|err| {
                    self.broken = true;
                    io_error(path, "fdatasync", &err)
                })
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.active_len += self.buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Best effort: truncating needs no free space.
                let _ = self.active.set_len(self.active_len);
                Err(err)
            }
        }
    }
}

/// Most journaled writes acknowledged and not yet folded; the journal thread waits for the
/// writer beyond it, so that a writer that cannot keep up slows the callers down instead
/// of holding ever more writes in memory.
const MAX_UNFOLDED: u64 = 10_000;

/// The journal thread: appends each batch of queued writes to the journal as one group,
/// acknowledges them once it is on the disk, and passes them on to the writer in order
/// (with everything else it receives: barriers, the ePID, control commands).
pub(crate) struct JournalThread {
    pub(crate) journal: Journal,
    pub(crate) rx: Receiver<Command>,
    pub(crate) writer: Sender<Command>,
    pub(crate) shared: Arc<Shared>,
    /// Sequence number of the next journaled write.
    pub(crate) next_seq: u64,
    /// fdatasync each group (`Synchronous::Full`).
    pub(crate) sync: bool,
    pub(crate) max_batch: usize,
}

impl JournalThread {
    /// `commands` and `group` are allocated by the caller, not on the journal thread:
    /// glibc gives each thread that first calls malloc an arena of its own, which costs an
    /// idle host resident memory.
    pub(crate) fn run(mut self, mut commands: Vec<Command>, mut group: Vec<(Op, Reply)>) {
        loop {
            match self.rx.recv() {
                Ok(command) => commands.push(command),
                Err(_) => return,
            }
            while commands.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            for command in commands.drain(..) {
                match command {
                    Command::Write(op, reply) if is_journaled(&op) => group.push((op, reply)),
                    other => {
                        // In order: what was queued before it goes first.
                        self.write_group(&mut group);
                        let stop = matches!(other, Command::Shutdown);
                        let _ = self.writer.send(other);
                        if stop {
                            return;
                        }
                    }
                }
            }
            self.write_group(&mut group);
        }
    }

    fn write_group(&mut self, group: &mut Vec<(Op, Reply)>) {
        if group.is_empty() {
            return;
        }
        self.wait_for_the_writer();
        let stored = match self.fold_error() {
            // What cannot be folded now is refused, not acknowledged and held.
            Some(err) => Err(err),
            None => self
                .journal
                .rotate(self.next_seq, self.shared.durable_folded())
                .and_then(|()| self.journal.append(self.next_seq, group.iter().map(|(op, _)| op), self.sync)),
        };
        match stored {
            Ok(()) => {
                let first = self.next_seq;
                self.next_seq += group.len() as u64;
                self.shared.set_acked(self.next_seq - 1);
                // Writes succeed (again, after a full disk or a failed fsync).
                self.shared.set_healthy();
                for (i, (op, reply)) in group.drain(..).enumerate() {
                    reply.send(Ok(()));
                    // The writer stops only after this thread (Shutdown comes through here).
                    let _ = self.writer.send(Command::Write(op, Reply::Journaled(first + i as u64)));
                }
            }
            Err(err) => {
                let stats = &self.shared.stats;
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                if err.is_storage_failure() {
                    self.shared.set_unhealthy(&err);
                }
                for (_, reply) in group.drain(..) {
                    stats.writes_failed.fetch_add(1, Ordering::Relaxed);
                    stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// The writer's failure to fold, if it still fails when asked to try again now (space
    /// may have returned since its last attempt).
    fn fold_error(&self) -> Option<StoreError> {
        self.shared.fold_error()?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        if self.writer.send(Command::Retry(reply)).is_ok() && answer.recv().unwrap_or(false) {
            return None;
        }
        self.shared.fold_error()
    }

    /// Waits while the writer is more than [`MAX_UNFOLDED`] writes behind (and folding
    /// does not fail).
    fn wait_for_the_writer(&self) {
        loop {
            let acked = self.shared.acked();
            if acked <= self.shared.folded() + MAX_UNFOLDED || self.shared.fold_error().is_some() {
                return;
            }
            if self.writer.send(Command::Nudge).is_err() {
                // The writer is gone: nothing will be folded to wait for.
                return;
            }
            self.shared.wait_folded(acked - MAX_UNFOLDED, std::time::Duration::from_millis(10));
        }
    }
}

/// Creates a segment file and makes its name durable (fsync of the directory): a group
/// fdatasynced into a file whose directory entry a power cut lost would be lost with it.
fn create_segment(db: &Path, first_seq: u64) -> Result<(File, PathBuf), StoreError> {
    let (dir, prefix) = segment_prefix(db);
    let path = dir.join(format!("{prefix}{first_seq:020}"));
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|err| io_error(&path, "create", &err))?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|err| io_error(&dir, "fsync", &err))?;
    Ok((file, path))
}

fn io_error(path: &Path, what: &str, err: &std::io::Error) -> StoreError {
    let text = format!("cannot {what} the registry journal {}: {err}", path.display());
    if err.raw_os_error() == Some(28) || err.kind() == std::io::ErrorKind::StorageFull {
        StoreError::Full(text)
    } else {
        StoreError::Io(text)
    }
}

/// What [`replay`] found.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Writes above the folded sequence number, in order, with their numbers.
    pub(crate) ops: Vec<(u64, Op)>,
    /// Highest sequence number in the journal (0 if none).
    pub(crate) last_seq: u64,
    /// Bytes after the last whole group of a segment (an append a crash interrupted).
    pub(crate) torn_bytes: u64,
}

/// Reads the journal of the database at `db` (no segments: nothing) and returns the writes
/// numbered above `folded_seq`.
pub(crate) fn replay(db: &Path, folded_seq: u64) -> Result<Replayed, StoreError> {
    let mut out = Replayed::default();
    for (_, path) in segments(db)? {
        let data = std::fs::read(&path).map_err(|err| io_error(&path, "read", &err))?;
        let mut at = 0usize;
        while let Some(header) = data.get(at..at + HEADER_LEN) {
            if &header[0..4] != MAGIC {
                break;
            }
            let payload_len = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default()) as usize;
            let first_seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            let count = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default());
            if payload_len > MAX_GROUP_BYTES {
                break;
            }
            let Some(payload) = data.get(at + HEADER_LEN..at + HEADER_LEN + payload_len) else { break };
            if checksum(header, payload)[..] != header[CHECKSUM_AT..HEADER_LEN] {
                break;
            }
            let ops = decode_ops(payload, count)
                .map_err(|problem| StoreError::Malformed(format!("registry journal {} at byte {at}: {problem}", path.display())))?;
            for (i, op) in ops.into_iter().enumerate() {
                let seq = first_seq + i as u64;
                out.last_seq = out.last_seq.max(seq);
                if seq > folded_seq {
                    out.ops.push((seq, op));
                }
            }
            at += HEADER_LEN + payload_len;
        }
        out.torn_bytes += (data.len() - at) as u64;
    }
    Ok(out)
}

const TAG_REQUEST: u8 = 1;
const TAG_EVENT: u8 = 2;
const TAG_SETTING: u8 = 3;

/// Appends the journal form of a journaled op (others write nothing).
pub(crate) fn encode_op(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Request(r) => {
            out.push(TAG_REQUEST);
            out.extend_from_slice(r.cmid.as_bytes());
            put_str(out, &r.machine_name);
            out.extend_from_slice(r.activation_id.as_bytes());
            out.extend_from_slice(r.application_id.as_bytes());
            out.extend_from_slice(r.counted_id.as_bytes());
            out.push(r.license_status);
            out.extend_from_slice(&r.minutes_to_expiry.to_le_bytes());
            out.extend_from_slice(&r.time_ms.to_le_bytes());
            match r.source {
                None => out.push(0),
                Some(SocketAddr::V4(a)) => {
                    out.push(4);
                    out.extend_from_slice(&a.ip().octets());
                    out.extend_from_slice(&a.port().to_le_bytes());
                }
                Some(SocketAddr::V6(a)) => {
                    out.push(6);
                    out.extend_from_slice(&a.ip().octets());
                    out.extend_from_slice(&a.port().to_le_bytes());
                }
            }
            out.extend_from_slice(&r.result.to_le_bytes());
            out.push(u8::from(r.failed));
            match r.activated_at_ms {
                None => out.push(0),
                Some(ms) => {
                    out.push(1);
                    out.extend_from_slice(&ms.to_le_bytes());
                }
            }
            match &r.event {
                None => out.push(0),
                Some(event) => {
                    out.push(1);
                    put_event(out, event);
                }
            }
        }
        Op::Event(event) => {
            out.push(TAG_EVENT);
            put_event(out, event);
        }
        Op::Setting { key, value } => {
            out.push(TAG_SETTING);
            put_str(out, key);
            put_str(out, value);
        }
        Op::InitEpid(_) | Op::Barrier => {}
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_event(out: &mut Vec<u8>, event: &EventRecord) {
    out.extend_from_slice(&event.event_id.to_le_bytes());
    out.extend_from_slice(&event.time_ms.to_le_bytes());
    put_str(out, &event.fields_json);
}

/// Reads `count` ops from a group's payload.
fn decode_ops(payload: &[u8], count: u32) -> Result<Vec<Op>, String> {
    let mut r = Reader { data: payload, at: 0 };
    let mut ops = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let op = match r.u8()? {
            TAG_REQUEST => {
                let cmid = r.uuid()?;
                let machine_name = r.string()?;
                let activation_id = r.uuid()?;
                let application_id = r.uuid()?;
                let counted_id = r.uuid()?;
                let license_status = r.u8()?;
                let minutes_to_expiry = u32::from_le_bytes(r.array()?);
                let time_ms = i64::from_le_bytes(r.array()?);
                let source = match r.u8()? {
                    0 => None,
                    4 => {
                        let ip = Ipv4Addr::from(r.array::<4>()?);
                        Some(SocketAddr::new(IpAddr::V4(ip), u16::from_le_bytes(r.array()?)))
                    }
                    6 => {
                        let ip = Ipv6Addr::from(r.array::<16>()?);
                        Some(SocketAddr::new(IpAddr::V6(ip), u16::from_le_bytes(r.array()?)))
                    }
                    other => return Err(format!("unknown address tag {other}")),
                };
                let result = u32::from_le_bytes(r.array()?);
                let failed = r.u8()? != 0;
                let activated_at_ms = match r.u8()? {
                    0 => None,
                    _ => Some(i64::from_le_bytes(r.array()?)),
                };
                let event = match r.u8()? {
                    0 => None,
                    _ => Some(r.event()?),
                };
                Op::Request(Box::new(RequestRecord {
                    cmid,
                    machine_name,
                    activation_id,
                    application_id,
                    counted_id,
                    license_status,
                    minutes_to_expiry,
                    time_ms,
                    source,
                    result,
                    failed,
                    activated_at_ms,
                    event,
                }))
            }
            TAG_EVENT => Op::Event(r.event()?),
            TAG_SETTING => {
                let key = r.string()?;
                let value = r.string()?;
                Op::Setting { key, value }
            }
            other => return Err(format!("unknown record tag {other}")),
        };
        ops.push(op);
    }
    if r.at != payload.len() {
        return Err(format!("{} bytes after the group's {count} records", payload.len() - r.at));
    }
    Ok(ops)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let bytes = self.data.get(self.at..self.at + n).ok_or_else(|| format!("record cut short at byte {}", self.at))?;
        self.at += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn uuid(&mut self) -> Result<Uuid, String> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8".to_owned())
    }

    fn event(&mut self) -> Result<EventRecord, String> {
        let event_id = u32::from_le_bytes(self.array()?);
        let time_ms = i64::from_le_bytes(self.array()?);
        let fields_json = self.string()?;
        Ok(EventRecord { event_id, time_ms, fields_json })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_ops() -> Vec<Op> {
        let request = |source: Option<SocketAddr>, activated: Option<i64>, event: bool| {
            Op::Request(Box::new(RequestRecord {
                cmid: Uuid::from_u128(0x1234),
                machine_name: "pc-ü-01".into(),
                activation_id: Uuid::from_u128(7),
                application_id: Uuid::from_u128(8),
                counted_id: Uuid::from_u128(9),
                license_status: 5,
                minutes_to_expiry: 43_200,
                time_ms: -3,
                source,
                result: 0xC004_F038,
                failed: true,
                activated_at_ms: activated,
                event: event.then(|| EventRecord { event_id: 12290, time_ms: 99, fields_json: r#"{"a":1}"#.into() }),
            }))
        };
        vec![
            request(Some("192.0.2.1:50000".parse().unwrap()), Some(5), true),
            request(Some("[2001:db8::1]:1688".parse().unwrap()), None, false),
            request(None, None, true),
            Op::Event(EventRecord { event_id: 12294, time_ms: 1, fields_json: "{}".into() }),
            Op::Setting { key: "k".into(), value: String::new() },
        ]
    }

    /// A new journal (numbered from 1) for the registry `r.sqlite` of a temporary directory,
    /// with the sample ops.
    fn fresh() -> (tempfile::TempDir, PathBuf, Vec<Op>, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.sqlite");
        let journal = Journal::start(&db, 1).unwrap();
        (dir, db, sample_ops(), journal)
    }

    #[test]
    fn groups_round_trip_and_replay_skips_what_was_folded() {
        let (_dir, db, ops, mut journal) = fresh();
        journal.append(1, ops.iter(), true).unwrap();
        journal.append(6, ops.iter().take(2), false).unwrap();
        let all = replay(&db, 0).unwrap();
        assert_eq!(all.last_seq, 7);
        assert_eq!(all.torn_bytes, 0);
        let seqs: Vec<u64> = all.ops.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
        let decoded: Vec<String> = all.ops.iter().map(|(_, op)| format!("{op:?}")).collect();
        let expected: Vec<String> = ops.iter().chain(ops.iter().take(2)).map(|op| format!("{op:?}")).collect();
        assert_eq!(decoded, expected);
        let rest = replay(&db, 5).unwrap();
        assert_eq!(rest.ops.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![6, 7]);
    }

    #[test]
    fn segments_rotate_and_go_once_folded() {
        let (_dir, db, ops, mut journal) = fresh();
        let mut seq = 1;
        while journal.active_len <= ROTATE_BYTES {
            journal.append(seq, ops.iter(), false).unwrap();
            seq += 5;
        }
        journal.rotate(seq, 0).unwrap();
        journal.append(seq, ops.iter(), false).unwrap();
        assert_eq!(segments(&db).unwrap().len(), 2);
        // Both segments replay, in order.
        let all = replay(&db, 0).unwrap();
        assert_eq!(all.ops.len() as u64, seq + 4);
        assert!(all.ops.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        // Not yet folded: kept. Folded: removed.
        journal.rotate(seq + 5, seq - 2).unwrap();
        assert_eq!(segments(&db).unwrap().len(), 2);
        journal.rotate(seq + 5, seq - 1).unwrap();
        assert_eq!(segments(&db).unwrap(), vec![(seq, journal.active_path.clone())]);
        // A new start removes every segment.
        drop(journal);
        let _ = Journal::start(&db, 1000).unwrap();
        assert_eq!(segments(&db).unwrap().iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![1000]);
    }

    #[test]
    fn replay_stops_at_a_torn_or_damaged_group() {
        let (dir, db, ops, mut journal) = fresh();
        journal.append(1, ops.iter(), true).unwrap();
        let whole = journal.active_len;
        journal.append(6, ops.iter(), true).unwrap();
        let path = journal.active_path.clone();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        // A torn second group: cut in the middle.
        std::fs::write(&path, &bytes[..whole as usize + 50]).unwrap();
        let torn = replay(&db, 0).unwrap();
        assert_eq!(torn.ops.len(), 5);
        assert_eq!(torn.torn_bytes, 50);
        // A flipped byte in the second group's payload fails its checksum.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let damaged = replay(&db, 0).unwrap();
        assert_eq!(damaged.ops.len(), 5);
        assert_eq!(damaged.torn_bytes, bytes.len() as u64 - whole);
        assert_eq!(replay(&dir.path().join("absent.sqlite"), 0).unwrap().ops.len(), 0);
    }
}

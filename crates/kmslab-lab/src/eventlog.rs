//! Compact storage of the fleet engine's per-machine event rings.
//!
//! A lab machine keeps its last events ([`crate::engine::FleetConfig::event_ring`], 16 in
//! `kmslab up`). As [`ClientEvent`] values that was about 2 KiB per machine: 112 bytes an
//! event plus a heap string for each host address. Here an event is a few bytes: its
//! length, a kind byte and LEB128 varints, times as differences, and every host address, UUID (CMIDs,
//! activation IDs) and text stored once per fleet in an [`Interner`] and referred to by
//! index. A ring of 16 ordinary events takes about 200 bytes. Sequence numbers are not
//! stored: the ring holds consecutive events, so they follow from the next one's.

use std::collections::HashMap;
use std::hash::Hash;

use kmslab_core::activator::ClientEvent;
use kmslab_core::events::{RequestSent, ResponseProcessed};
use kmslab_core::hostaddr::HostAddr;
use kmslab_core::{HResult, LicenseStatus, Timestamp, Uuid};

use crate::engine::MachineEvent;

/// Values stored once per fleet and referred to by index.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    hosts: Table<HostAddr>,
    uuids: Table<Uuid>,
    texts: Table<String>,
}

#[derive(Debug)]
struct Table<T> {
    values: Vec<T>,
    index: HashMap<T, u32>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { values: Vec::new(), index: HashMap::new() }
    }
}

impl<T: Clone + Eq + Hash> Table<T> {
    fn id(&mut self, value: &T) -> u32 {
        if let Some(&id) = self.index.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(value.clone());
        self.index.insert(value.clone(), id);
        id
    }

    fn get(&self, id: u32) -> &T {
        &self.values[id as usize]
    }
}

impl Interner {
    /// The index of a host address.
    pub(crate) fn host_id(&mut self, host: &HostAddr) -> u32 {
        self.hosts.id(host)
    }

    /// The host address of an index from [`Interner::host_id`].
    pub(crate) fn host(&self, id: u32) -> &HostAddr {
        self.hosts.get(id)
    }
}

const REQUEST_SENT: u8 = 1;
const RESPONSE_PROCESSED: u8 = 2;
const LICENSE_CHANGED: u8 = 3;
const NOTIFICATION_REMINDER: u8 = 4;
const GENUINE: u8 = 5;
const ATTEMPT_FINISHED: u8 = 6;
const ATTEMPT_FINISHED_NO_HOST: u8 = 7;

/// A machine's last events, encoded.
#[derive(Debug, Default)]
pub(crate) struct EventRing {
    /// Sequence number of the newest event (0: none yet).
    next_seq: u64,
    /// Events held.
    len: u32,
    /// The time the first held event's time is a difference from.
    base_ms: i64,
    /// Time of the newest event (what the next one's time is a difference from).
    last_ms: i64,
    bytes: Vec<u8>,
}

impl EventRing {
    /// Appends an event at `time`, dropping the oldest beyond `capacity`.
    pub(crate) fn push(&mut self, interner: &mut Interner, capacity: usize, time: Timestamp, event: &ClientEvent) {
        if capacity == 0 {
            return;
        }
        while self.len as usize >= capacity {
            self.pop_front();
        }
        // Grown by small steps, never doubled, and never shrunk: once the ring is full its
        // contents keep about the same size, so the buffer is reallocated now and then, not
        // at every event (an encoded event takes at most 70 bytes).
        if self.bytes.capacity() - self.bytes.len() < 72 {
            self.bytes.reserve_exact(72);
        }
        let t = time.as_unix_ms();
        if self.len == 0 {
            self.base_ms = t;
            self.last_ms = t;
        }
        // A length byte first, so that dropping the oldest event needs no decoding.
        let start = self.bytes.len();
        self.bytes.push(0);
        put_i64(&mut self.bytes, t.wrapping_sub(self.last_ms));
        self.last_ms = t;
        encode(&mut self.bytes, interner, t, event);
        self.bytes[start] = u8::try_from(self.bytes.len() - start - 1).expect("an event encodes in under 256 bytes");
        self.len += 1;
        self.next_seq += 1;
    }

    fn pop_front(&mut self) {
        let mut r = Reader { bytes: &self.bytes, pos: 0 };
        let used = 1 + usize::from(r.byte());
        self.base_ms = self.base_ms.wrapping_add(r.i64());
        self.bytes.drain(..used);
        self.len -= 1;
    }

    /// The events with a sequence number above `since`, oldest first.
    pub(crate) fn events_since(&self, interner: &Interner, since: u64) -> Vec<MachineEvent> {
        let first_seq = self.next_seq + 1 - u64::from(self.len);
        let mut out = Vec::new();
        let mut r = Reader { bytes: &self.bytes, pos: 0 };
        let mut t = self.base_ms;
        for i in 0..u64::from(self.len) {
            r.byte(); // the length
            t = t.wrapping_add(r.i64());
            let event = decode(&mut r, interner, t);
            let seq = first_seq + i;
            if seq > since {
                out.push(MachineEvent { seq, time: Timestamp::from_unix_ms(t), event });
            }
        }
        out
    }
}

fn encode(out: &mut Vec<u8>, interner: &mut Interner, t: i64, event: &ClientEvent) {
    match event {
        ClientEvent::RequestSent(s) => {
            out.push(REQUEST_SENT);
            put_u64(out, u64::from(s.result.0));
            put_u64(out, u64::from(s.status_flags));
            put_u64(out, u64::from(interner.hosts.id(&s.host)));
            put_u64(out, u64::from(interner.uuids.id(&s.cmid)));
            put_i64(out, s.client_time.as_unix_ms().wrapping_sub(t));
            out.push((s.license_status as u8) << 1 | u8::from(s.vm));
            put_u64(out, u64::from(s.minutes_to_expiry));
            put_u64(out, u64::from(interner.uuids.id(&s.activation_id)));
            put_u64(out, u64::from(s.n_policy));
        }
        ClientEvent::ResponseProcessed(p) => {
            out.push(RESPONSE_PROCESSED);
            put_u64(out, u64::from(p.result.0));
            put_u64(out, u64::from(p.status_flags));
            out.push(u8::from(p.activated));
            put_u64(out, u64::from(p.current_count));
            put_u64(out, u64::from(p.activation_interval));
            put_u64(out, u64::from(p.renewal_interval));
        }
        ClientEvent::LicenseChanged { from, to, at } => {
            out.push(LICENSE_CHANGED);
            out.push(*from as u8);
            out.push(*to as u8);
            put_i64(out, at.as_unix_ms().wrapping_sub(t));
        }
        ClientEvent::NotificationReminder { reason, at } => {
            out.push(NOTIFICATION_REMINDER);
            put_u64(out, u64::from(reason.0));
            put_i64(out, at.as_unix_ms().wrapping_sub(t));
        }
        ClientEvent::Genuine { event_id, result, message, at } => {
            out.push(GENUINE);
            put_u64(out, u64::from(*event_id));
            put_u64(out, u64::from(result.0));
            put_u64(out, u64::from(interner.texts.id(message)));
            put_i64(out, at.as_unix_ms().wrapping_sub(t));
        }
        ClientEvent::AttemptFinished { attempt, result, host } => {
            out.push(if host.is_some() { ATTEMPT_FINISHED } else { ATTEMPT_FINISHED_NO_HOST });
            put_u64(out, *attempt);
            put_u64(out, u64::from(result.0));
            if let Some(host) = host {
                put_u64(out, u64::from(interner.hosts.id(host)));
            }
        }
    }
}

fn decode(r: &mut Reader<'_>, interner: &Interner, t: i64) -> ClientEvent {
    let at = |r: &mut Reader<'_>| Timestamp::from_unix_ms(t.wrapping_add(r.i64()));
    match r.byte() {
        REQUEST_SENT => {
            let result = HResult(r.u32());
            let status_flags = r.u32();
            let host = interner.hosts.get(r.u32()).clone();
            let cmid = *interner.uuids.get(r.u32());
            let client_time = at(r);
            let flags = r.byte();
            let minutes_to_expiry = r.u32();
            let activation_id = *interner.uuids.get(r.u32());
            let n_policy = r.u32();
            ClientEvent::RequestSent(RequestSent {
                result,
                status_flags,
                host,
                cmid,
                client_time,
                vm: flags & 1 == 1,
                license_status: status(flags >> 1),
                minutes_to_expiry,
                activation_id,
                n_policy,
            })
        }
        RESPONSE_PROCESSED => ClientEvent::ResponseProcessed(ResponseProcessed {
            result: HResult(r.u32()),
            status_flags: r.u32(),
            activated: r.byte() == 1,
            current_count: r.u32(),
            activation_interval: r.u32(),
            renewal_interval: r.u32(),
        }),
        LICENSE_CHANGED => {
            let from = status(r.byte());
            let to = status(r.byte());
            ClientEvent::LicenseChanged { from, to, at: at(r) }
        }
        NOTIFICATION_REMINDER => {
            let reason = HResult(r.u32());
            ClientEvent::NotificationReminder { reason, at: at(r) }
        }
        GENUINE => {
            let event_id = r.u32();
            let result = HResult(r.u32());
            let message = interner.texts.get(r.u32()).clone();
            ClientEvent::Genuine { event_id, result, message, at: at(r) }
        }
        kind @ (ATTEMPT_FINISHED | ATTEMPT_FINISHED_NO_HOST) => {
            let attempt = r.u64();
            let result = HResult(r.u32());
            let host = (kind == ATTEMPT_FINISHED).then(|| interner.hosts.get(r.u32()).clone());
            ClientEvent::AttemptFinished { attempt, result, host }
        }
        kind => unreachable!("event kind {kind} is never encoded"),
    }
}

fn status(v: u8) -> LicenseStatus {
    LicenseStatus::from_u8(v).expect("a status this module encoded")
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes[self.pos];
        self.pos += 1;
        b
    }

    fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.u64()).expect("a u32 this module encoded")
    }

    fn i64(&mut self) -> i64 {
        let z = self.u64();
        ((z >> 1) as i64) ^ -((z & 1) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u16) -> HostAddr {
        HostAddr::new(format!("kms{n}.lab.test"), 1688)
    }

    fn every_kind(i: u64, t: Timestamp) -> Vec<ClientEvent> {
        let cmid = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788 + u128::from(i % 3));
        vec![
            ClientEvent::RequestSent(RequestSent {
                result: HResult(if i.is_multiple_of(2) { 0 } else { 0xC004_F06C }),
                status_flags: 3,
                host: host((i % 2) as u16),
                cmid,
                client_time: t.plus_ms(-(i as i64) * 3_600_000 * 7),
                vm: i % 2 == 1,
                license_status: LicenseStatus::ALL[(i as usize) % 7],
                minutes_to_expiry: 259_200 - i as u32,
                activation_id: Uuid::from_u128(42),
                n_policy: 25,
            }),
            ClientEvent::ResponseProcessed(ResponseProcessed {
                result: HResult::SUCCESS,
                status_flags: 1,
                activated: i.is_multiple_of(3),
                current_count: 50 + i as u32,
                activation_interval: 120,
                renewal_interval: 10_080,
            }),
            ClientEvent::LicenseChanged { from: LicenseStatus::InitialGrace, to: LicenseStatus::Licensed, at: t.plus_ms(5) },
            ClientEvent::NotificationReminder { reason: HResult(0xC004_F009), at: t.plus_ms(-5) },
            ClientEvent::Genuine { event_id: 8209, result: HResult(0xC004_C4A2), message: format!("text {}", i % 2), at: t },
            ClientEvent::AttemptFinished { attempt: i * 1_000_003, result: HResult(0x8007_06BA), host: Some(host(7)) },
            ClientEvent::AttemptFinished { attempt: i, result: HResult::SUCCESS, host: None },
        ]
    }

    #[test]
    fn a_ring_gives_back_its_last_events_exactly() {
        let mut interner = Interner::default();
        let mut ring = EventRing::default();
        let mut all = Vec::new();
        let start = Timestamp::from_unix_ms(1_700_000_000_000);
        for i in 0..40u64 {
            // Times go back as well as forward (a clock skewed by hand).
            let t = start.plus_ms(if i % 5 == 4 { -(i as i64) * 1000 } else { i as i64 * 60_000 });
            for event in every_kind(i, t) {
                ring.push(&mut interner, 16, t, &event);
                all.push((t, event));
            }
        }
        let got = ring.events_since(&interner, 0);
        assert_eq!(got.len(), 16);
        let want = &all[all.len() - 16..];
        for (k, (e, (t, event))) in got.iter().zip(want).enumerate() {
            assert_eq!(e.seq, (all.len() - 16 + k + 1) as u64);
            assert_eq!(e.time, *t);
            assert_eq!(format!("{:?}", e.event), format!("{event:?}"));
        }
        let since = ring.events_since(&interner, all.len() as u64 - 3);
        assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![all.len() as u64 - 2, all.len() as u64 - 1, all.len() as u64]);
        assert!(ring.bytes.len() < 16 * 24, "16 events took {} bytes", ring.bytes.len());
    }

    #[test]
    fn an_empty_ring_and_a_ring_of_none() {
        let mut interner = Interner::default();
        let mut ring = EventRing::default();
        assert!(ring.events_since(&interner, 0).is_empty());
        let t = Timestamp::from_unix_ms(0);
        ring.push(&mut interner, 0, t, &every_kind(0, t)[0]);
        assert!(ring.events_since(&interner, 0).is_empty());
        ring.push(&mut interner, 1, t, &every_kind(0, t)[0]);
        ring.push(&mut interner, 1, t.plus_ms(9), &every_kind(1, t)[1]);
        let got = ring.events_since(&interner, 0);
        assert_eq!((got.len(), got[0].seq, got[0].time), (1, 2, t.plus_ms(9)));
    }
}

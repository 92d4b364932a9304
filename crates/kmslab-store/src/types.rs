//! Plain row, record and query types of the registry (no protocol types: callers convert).

use std::net::SocketAddr;

use uuid::Uuid;

/// Number of license status values a client can report (0 Unlicensed .. 6 Extended grace).
pub const LICENSE_STATUS_COUNT: usize = 7;

/// One activation request as the host handled it: everything the registry keeps about the
/// requesting client, plus what the cumulative counters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Client Machine ID of the requester.
    pub cmid: Uuid,
    /// Machine name the client sent.
    pub machine_name: String,
    /// Activation (SKU) ID of the product the client asked for.
    pub activation_id: Uuid,
    /// Application ID (Windows, Office, ...).
    pub application_id: Uuid,
    /// KMS counted ID: the group the client is counted in.
    pub counted_id: Uuid,
    /// License status the client reported, 0..=6.
    pub license_status: u8,
    /// Minutes to expiry the client reported.
    pub minutes_to_expiry: u32,
    /// Simulated time the host received the request, Unix milliseconds.
    pub time_ms: i64,
    /// Source address of the request, if it came over a socket.
    pub source: Option<SocketAddr>,
    /// HRESULT the host answered with (0 for success).
    pub result: u32,
    /// Whether the request counts as a failed request in the cumulative counters.
    pub failed: bool,
    /// Simulated time of a successful activation, when this request activated the client;
    /// `None` leaves the stored last activation time unchanged.
    pub activated_at_ms: Option<i64>,
    /// The 12290 event the host logs for this request, written in the same transaction.
    pub event: Option<EventRecord>,
}

/// An event for the host's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Event id: 12290 (request received), 12293 (DNS publishing failed), 12294 (DNS
    /// publishing succeeded).
    pub event_id: u32,
    /// Simulated time of the event, Unix milliseconds.
    pub time_ms: i64,
    /// The event's fields as a JSON text; a write whose text is not JSON is refused with
    /// [`StoreError::Invalid`](crate::StoreError::Invalid).
    pub fields_json: String,
}

/// What the registry knows about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// Client Machine ID.
    pub cmid: Uuid,
    /// Machine name from the latest request.
    pub machine_name: String,
    /// Activation (SKU) ID from the latest request.
    pub activation_id: Uuid,
    /// Application ID from the latest request.
    pub application_id: Uuid,
    /// KMS counted ID from the latest request.
    pub counted_id: Uuid,
    /// License status reported in the latest request.
    pub license_status: u8,
    /// Minutes to expiry reported in the latest request.
    pub minutes_to_expiry: u32,
    /// Time of the first request ever seen from this CMID.
    pub first_seen_ms: i64,
    /// Time of the latest request.
    pub last_seen_ms: i64,
    /// Number of requests seen from this CMID.
    pub request_count: u64,
    /// Source address of the latest request.
    pub last_address: Option<SocketAddr>,
    /// HRESULT answered to the latest request.
    pub last_result: u32,
    /// Time of the latest successful activation, if any.
    pub last_activation_ms: Option<i64>,
}

/// The host's cumulative request counters (kept until the registry is deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Total requests received.
    pub total: u64,
    /// Failed requests received.
    pub failed: u64,
    /// Requests per license status the client reported, indexed by status 0..=6.
    pub by_status: [u64; LICENSE_STATUS_COUNT],
}

/// Filter and page for [`Store::clients`](crate::Store::clients). All filters combine
/// with AND. Rows come most recently seen first (ties by CMID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuery {
    /// Only clients whose latest reported license status is this.
    pub status: Option<u8>,
    /// Only clients whose latest activation ID is this.
    pub activation_id: Option<Uuid>,
    /// Only clients seen at or after this time (Unix ms).
    pub seen_since: Option<i64>,
    /// Case-insensitive substring of the CMID text or of the machine name.
    pub search: Option<String>,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

impl Default for ClientQuery {
    fn default() -> Self {
        ClientQuery { status: None, activation_id: None, seen_since: None, search: None, offset: 0, limit: 100 }
    }
}

/// One page of clients.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientPage {
    /// Number of clients matching the filters, over all pages.
    pub total: u64,
    /// The clients of this page.
    pub rows: Vec<ClientRow>,
}

/// Filter and page for [`Store::events`](crate::Store::events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with this id.
    pub event_id: Option<u32>,
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only events before this time (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Newest first when true; oldest first (export order) when false.
    pub newest_first: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery { event_id: None, since_ms: None, until_ms: None, newest_first: false, offset: 0, limit: 1000 }
    }
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the log; increases with every event written.
    pub seq: i64,
    /// Event id (12290, 12293, 12294).
    pub event_id: u32,
    /// Simulated time of the event, Unix milliseconds.
    pub time_ms: i64,
    /// The event's fields as JSON text.
    pub fields_json: String,
}

/// A client seen recently, for rebuilding the host's count after a restart
/// (`--keep-count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentClient {
    /// Client Machine ID.
    pub cmid: Uuid,
    /// KMS counted ID the client was counted in.
    pub counted_id: Uuid,
    /// Time of its latest request.
    pub last_seen_ms: i64,
}

/// Whether the registry's writes currently succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// False after a write failed for a storage reason (full, I/O, ...), true again after
    /// the next commit succeeds.
    pub ok: bool,
    /// The latest storage failure, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}

/// Cheap snapshot of the writer's counters, for export as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Transactions committed.
    pub commits: u64,
    /// Writes (requests, events, settings) committed.
    pub writes_committed: u64,
    /// Writes that failed.
    pub writes_failed: u64,
    /// Transactions that failed and were rolled back.
    pub failed_commits: u64,
    /// Writes queued and not yet completed.
    pub queue_depth: u64,
    /// Writes in the latest committed transaction.
    pub last_batch_size: u64,
    /// Largest number of writes in one committed transaction.
    pub max_batch_size: u64,
    /// Duration of the latest committed transaction (BEGIN to COMMIT returned), µs.
    pub last_commit_micros: u64,
    /// Sum of all committed transactions' durations, µs (divide by `commits` for the mean).
    pub total_commit_micros: u64,
}

impl StoreStats {
    /// Mean writes per committed transaction.
    pub fn average_batch_size(&self) -> f64 {
        if self.commits == 0 { 0.0 } else { self.writes_committed as f64 / self.commits as f64 }
    }

    /// Mean duration of a committed transaction, µs.
    pub fn average_commit_micros(&self) -> f64 {
        if self.commits == 0 { 0.0 } else { self.total_commit_micros as f64 / self.commits as f64 }
    }
}

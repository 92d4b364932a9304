//! Events (`GET /api/v1/events` of both daemons) and kms-host's client list
//! (`GET /api/v1/clients`).
//!
//! The fields of the KMS events (12288, 12289, 12290) are built here from the core's event
//! values, so the daemons that log them and the tools that read them agree on one form.

use kmslab_core::events::{
    DNS_PUBLISH_FAILED, DNS_PUBLISH_SUCCEEDED, GENUINE_STATE_NON_GENUINE, GENUINE_TICKET_FAILED, REQUEST_RECEIVED, REQUEST_SENT,
    RESPONSE_PROCESSED, RequestReceived, RequestSent, ResponseProcessed,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One event as the admin APIs serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sequence number (1, 2, ...), increasing.
    pub seq: u64,
    /// The KMS event ID (12288, 12289, 12290, 12293, 12294, 8208, 8209), none for the lab's
    /// own events.
    pub event_id: Option<u32>,
    /// Simulated time (RFC 3339).
    pub time: String,
    /// What happened: `request_sent`, `response_processed`, `request_received`,
    /// `dns_publish_failed`, `dns_publish_succeeded`, `genuine_ticket_failed` (8208),
    /// `genuine_state_non_genuine` (8209), or one of kms-client's own events
    /// (`license_changed`, `notification_reminder`, `attempt_finished`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The event's fields.
    pub fields: Value,
}

impl EventRecord {
    /// The record of KMS event `event_id`, with its kind.
    pub fn kms(seq: u64, event_id: u32, time: String, fields: Value) -> Self {
        EventRecord { seq, event_id: Some(event_id), time, kind: kind_of(event_id).map(str::to_owned), fields }
    }

    /// The event's fields as `(name, value)` text pairs, in the order of the JSON object
    /// (strings unquoted, `null` as empty): what the event tables show.
    pub fn field_pairs(&self) -> Vec<(String, String)> {
        match &self.fields {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), value_text(v))).collect(),
            Value::Null => Vec::new(),
            other => vec![(String::new(), value_text(other))],
        }
    }
}

/// A JSON value as a cell shows it: strings without quotes, `null` empty.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The kind of a KMS event ID.
pub fn kind_of(event_id: u32) -> Option<&'static str> {
    match event_id {
        REQUEST_SENT => Some("request_sent"),
        RESPONSE_PROCESSED => Some("response_processed"),
        REQUEST_RECEIVED => Some("request_received"),
        DNS_PUBLISH_FAILED => Some("dns_publish_failed"),
        DNS_PUBLISH_SUCCEEDED => Some("dns_publish_succeeded"),
        GENUINE_TICKET_FAILED => Some("genuine_ticket_failed"),
        GENUINE_STATE_NON_GENUINE => Some("genuine_state_non_genuine"),
        _ => None,
    }
}

/// The fields of event 12288 (the client sent a request).
pub fn request_sent_fields(e: &RequestSent) -> Value {
    json!({
        "result": e.result.to_string(), "name": e.result.name(), "status_flags": e.status_flags, "host": e.host.to_string(),
        "cmid": e.cmid.to_string(), "client_time": e.client_time.to_string(), "vm": e.vm,
        "license_status": e.license_status as u8, "minutes_to_expiry": e.minutes_to_expiry,
        "activation_id": e.activation_id.to_string(), "n_policy": e.n_policy,
    })
}

/// The fields of event 12289 (the client processed a response).
pub fn response_processed_fields(e: &ResponseProcessed) -> Value {
    json!({
        "result": e.result.to_string(), "name": e.result.name(), "status_flags": e.status_flags, "activated": u8::from(e.activated),
        "current_count": e.current_count, "activation_interval": e.activation_interval,
        "renewal_interval": e.renewal_interval,
    })
}

/// The fields of event 12290 (the host received a request), as stored and exported.
pub fn request_received_fields(e: &RequestReceived) -> Value {
    json!({
        "result": format!("0x{:08X}", e.result.0),
        "n_policy": e.n_policy,
        "machine_name": e.machine_name,
        "cmid": e.cmid.to_string(),
        "client_time": e.client_time.to_string(),
        "vm": e.vm,
        "license_status": e.license_status.key(),
        "minutes_to_expiry": e.minutes_to_expiry,
        "activation_id": e.activation_id.to_string(),
    })
}

/// The fields of event 12290 as the JSON text [`request_received_fields`] serializes to
/// (the same keys in the same order, the same escaping), written directly: no `Value`
/// tree, no string per field. The host builds one for every request.
pub fn request_received_fields_json(e: &RequestReceived) -> String {
    use serde::ser::SerializeStruct as _;
    struct Fields<'a>(&'a RequestReceived);
    impl Serialize for Fields<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let e = self.0;
            let mut uuid = [0u8; 36];
            // The keys in sorted order, as a `serde_json::Map` (a BTreeMap) writes them.
            let mut m = s.serialize_struct("RequestReceived", 9)?;
            m.serialize_field("activation_id", &*e.activation_id.hyphenated().encode_lower(&mut uuid))?;
            m.serialize_field("client_time", &Display(&e.client_time))?;
            m.serialize_field("cmid", &*e.cmid.hyphenated().encode_lower(&mut uuid))?;
            m.serialize_field("license_status", e.license_status.key())?;
            m.serialize_field("machine_name", &e.machine_name)?;
            m.serialize_field("minutes_to_expiry", &e.minutes_to_expiry)?;
            m.serialize_field("n_policy", &e.n_policy)?;
            m.serialize_field("result", &Display(&format_args!("0x{:08X}", e.result.0)))?;
            m.serialize_field("vm", &e.vm)?;
            m.end()
        }
    }
    /// A `Display` value serialized as a JSON string without an intermediate `String`.
    struct Display<'a, T: std::fmt::Display>(&'a T);
    impl<T: std::fmt::Display> Serialize for Display<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }
    let mut out = Vec::with_capacity(288 + e.machine_name.len());
    // Writing to a Vec cannot fail, and serde_json writes only UTF-8.
    let _ = Fields(e).serialize(&mut serde_json::Serializer::new(&mut out));
    String::from_utf8(out).unwrap_or_default()
}

/// `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<EventRecord>,
}

/// One row of kms-host's `GET /api/v1/clients`: a client machine as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEntry {
    /// CMID.
    pub cmid: String,
    /// Machine name from its last request.
    pub machine_name: String,
    /// Catalog product name, when the catalog knows the Activation ID.
    pub product: Option<String>,
    /// Activation ID.
    pub activation_id: String,
    /// Application ID.
    pub application_id: String,
    /// Counted group name.
    pub counted_group: Option<String>,
    /// License status key from its last request.
    pub license_status: Option<String>,
    /// Minutes to expiry from its last request.
    pub minutes_to_expiry: u32,
    /// First request (RFC 3339).
    pub first_seen: String,
    /// Last request (RFC 3339).
    pub last_seen: String,
    /// Requests received.
    pub request_count: u64,
    /// Source address of the last request.
    pub last_address: Option<String>,
    /// The last answer's HRESULT.
    pub last_result: String,
    /// The last answer that activated it (RFC 3339).
    pub last_activation: Option<String>,
}

/// `GET /api/v1/clients`: one page of clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientList {
    /// Clients matching the query.
    pub total: u64,
    /// The page's offset.
    pub offset: u64,
    /// The page's size limit.
    pub limit: u64,
    /// The page.
    pub clients: Vec<ClientEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmslab_core::{HResult, LicenseStatus, Timestamp, Uuid};

    #[test]
    fn the_direct_12290_text_is_the_value_s_text() {
        let names = ["WS-0001", "", "pc\n\"quoted\"\\ \u{1b}[2J\u{7f}\u{85}", "Ünïcødé ✓ 名前", "\u{0}\u{1f}</script>"];
        for (i, name) in names.into_iter().enumerate() {
            for (result, time_ms) in
                [(HResult::SUCCESS, 1_767_225_600_000), (HResult(0xC004_F06C), 1_767_225_600_123), (HResult(0x8007_232D), -5)]
            {
                let e = RequestReceived {
                    result,
                    n_policy: 25 + i as u32,
                    machine_name: name.to_owned(),
                    cmid: Uuid::from_u128(0x0123_4567_89AB_4DEF_8123_4567_89AB_CDEF ^ (i as u128)),
                    client_time: Timestamp::from_unix_ms(time_ms),
                    vm: i % 2 == 0,
                    license_status: LicenseStatus::AdditionalGrace,
                    minutes_to_expiry: u32::MAX - i as u32,
                    activation_id: Uuid::from_u128(0xABCD_EF01_2345_6789_ABCD_EF01_2345_6789),
                };
                assert_eq!(request_received_fields_json(&e), request_received_fields(&e).to_string(), "{name:?}");
            }
        }
    }
}

//! KMS events as values (docs/kms-behaviour.md "Events"): the daemons log them and serve them.
//! The genuine-validation events 8208 and 8209 are built by [`crate::genuine`].

use crate::hostaddr::HostAddr;
use crate::hresult::HResult;
use crate::license::LicenseStatus;
use crate::time::Timestamp;
use crate::wire::Request;
use uuid::Uuid;

/// Client: a request was sent (one per host tried).
pub const REQUEST_SENT: u32 = 12288;
/// Client: a response was processed.
pub const RESPONSE_PROCESSED: u32 = 12289;
/// Host: a request was received.
pub const REQUEST_RECEIVED: u32 = 12290;
/// Host: DNS publishing failed.
pub const DNS_PUBLISH_FAILED: u32 = 12293;
/// Host: DNS publishing succeeded.
pub const DNS_PUBLISH_SUCCEEDED: u32 = 12294;

/// Security-SPP: acquiring a genuine ticket failed (the genuine validation's HRESULT).
pub const GENUINE_TICKET_FAILED: u32 = 8208;
/// Security-SPP: the genuine state was set to non-genuine (the reason in the fields).
pub const GENUINE_STATE_NON_GENUINE: u32 = 8209;

/// Status flag set in 12288/12289 when the host's count was too low
/// (`SL_VL_BINDING_ERROR_NOT_ENOUGH_COUNT`).
pub const STATUS_NOT_ENOUGH_COUNT: u32 = 0x0400_0000;

/// Event 12288: the client sent a request to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSent {
    /// 0 if the host answered with a count, else the host's refusal (its error frame's
    /// HRESULT) or why the exchange failed.
    pub result: HResult,
    /// Status flags.
    pub status_flags: u32,
    /// The host tried.
    pub host: HostAddr,
    /// The client's CMID.
    pub cmid: Uuid,
    /// The client time in the request.
    pub client_time: Timestamp,
    /// VM flag.
    pub vm: bool,
    /// The license status in the request.
    pub license_status: LicenseStatus,
    /// Minutes to expiry in the request.
    pub minutes_to_expiry: u32,
    /// Activation ID.
    pub activation_id: Uuid,
    /// N-policy.
    pub n_policy: u32,
}

/// Event 12289: the client processed a host's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseProcessed {
    /// Outcome of the activation (0, 0xC004F038, or the host's error).
    pub result: HResult,
    /// Status flags.
    pub status_flags: u32,
    /// True when the machine is now activated.
    pub activated: bool,
    /// The count the host reported.
    pub current_count: u32,
    /// Activation interval the host sent (minutes).
    pub activation_interval: u32,
    /// Renewal interval the host sent (minutes).
    pub renewal_interval: u32,
}

/// Event 12290: the host received a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestReceived {
    /// What the host answered (0 for a response, else the error frame's HRESULT).
    pub result: HResult,
    /// N-policy.
    pub n_policy: u32,
    /// Machine name.
    pub machine_name: String,
    /// CMID.
    pub cmid: Uuid,
    /// Client time.
    pub client_time: Timestamp,
    /// VM flag.
    pub vm: bool,
    /// License status.
    pub license_status: LicenseStatus,
    /// Minutes to expiry.
    pub minutes_to_expiry: u32,
    /// Activation ID.
    pub activation_id: Uuid,
}

impl RequestReceived {
    /// The 12290 event for `req` answered with `result`.
    pub fn new(req: &Request, result: HResult) -> Self {
        RequestReceived {
            result,
            n_policy: req.n_policy,
            machine_name: req.machine_name.clone(),
            cmid: req.cmid,
            client_time: req.client_time,
            vm: req.vm,
            license_status: req.license_status,
            minutes_to_expiry: req.minutes_to_expiry,
            activation_id: req.activation_id,
        }
    }
}

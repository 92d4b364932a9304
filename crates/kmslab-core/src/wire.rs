//! Wire protocol v1: kmslab's own open, length-prefixed framing (see `docs/protocol.md`).
//!
//! Every frame starts with a 12-byte header: the magic `KMSL`, a version byte, a kind byte,
//! two flag bytes (reserved, zero, except [`FLAG_MAC`]) and the body length as a
//! little-endian `u32`.
//!
//! Authenticated framing (`--psk`) keeps v1 intact: a frame with [`FLAG_MAC`] set in the
//! flag bytes carries a [`MAC_LEN`]-byte HMAC-SHA256 trailer after its body, computed with
//! a pre-shared [`FrameKey`] over the header and the body. A peer without a key refuses
//! such frames, a peer with a key refuses frames without one, and the MAC is verified
//! before a single body field is parsed ([`decode_with`], [`encode_with`]).
//!
//! Binding answers to requests (`--psk`): an authenticated request may also set
//! [`FLAG_NONCE`] and carry a [`NONCE_LEN`]-byte random [`Nonce`] between its body and its
//! MAC; the host echoes it, under its own MAC, in its answer ([`decode_frame`],
//! [`encode_frame`]). A client that checks the echo (and the echoed client time) cannot be
//! fooled by a recorded answer to an earlier request.
//! The decoder checks before it parses: a partial frame is [`DecodeError::Incomplete`], a
//! body length over [`MAX_BODY_LEN`] is an error *before* anything is allocated, and every
//! field error names the field. All integers are little-endian; GUIDs are in the Microsoft
//! mixed-endian layout (`Uuid::to_bytes_le`).
//!
//! This is not Microsoft's KMS RPC protocol and cannot talk to real Windows machines.

use crate::hresult::HResult;
use crate::license::LicenseStatus;
use crate::time::Timestamp;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The four magic bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"KMSL";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 12;
/// The largest whole frame (header and body) a peer may send.
pub const MAX_FRAME_LEN: usize = 4096;
/// The largest body a peer may announce.
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - HEADER_LEN;
/// The flag bit (in the little-endian `u16` at header offset 6) announcing a MAC trailer.
pub const FLAG_MAC: u16 = 0x0001;
/// Bytes of the HMAC-SHA256 trailer of an authenticated frame.
pub const MAC_LEN: usize = 32;
/// The flag bit (with [`FLAG_MAC`] only) announcing a [`NONCE_LEN`]-byte nonce between the
/// body and the MAC: a request's fresh nonce, or in an answer the nonce of the request it
/// answers.
pub const FLAG_NONCE: u16 = 0x0002;
/// Bytes of a request nonce.
pub const NONCE_LEN: usize = 16;
/// The largest body an authenticated frame may announce: header, body and MAC together
/// stay within [`MAX_FRAME_LEN`].
pub const MAX_AUTH_BODY_LEN: usize = MAX_FRAME_LEN - HEADER_LEN - MAC_LEN;
/// The largest body an authenticated frame with a nonce may announce.
pub const MAX_NONCE_BODY_LEN: usize = MAX_AUTH_BODY_LEN - NONCE_LEN;

/// A request nonce (`FLAG_NONCE`): random bytes a client draws for each request and the
/// host echoes in the answer, under the MAC.
pub type Nonce = [u8; NONCE_LEN];

/// A decoded frame with what authenticated framing carried besides the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message.
    pub message: Message,
    /// The nonce of a frame with [`FLAG_NONCE`] (verified under the MAC).
    pub nonce: Option<Nonce>,
}
/// The shortest pre-shared key accepted (bytes).
pub const MIN_PSK_LEN: usize = 16;
/// The longest pre-shared key accepted (bytes).
pub const MAX_PSK_LEN: usize = 1024;
/// The most characters a machine name may have (as on Windows: a NetBIOS/DNS label).
pub const MAX_MACHINE_NAME_CHARS: usize = 63;
/// The most bytes an ePID may have.
pub const MAX_EPID_LEN: usize = 63;
/// The most bytes the message of an error frame may have.
pub const MAX_ERROR_MESSAGE_LEN: usize = 512;
/// The KMS protocol level Windows 7 speaks (carried in requests and echoed in responses).
pub const KMS_PROTOCOL_V4: ProtocolVersion = ProtocolVersion { major: 4, minor: 0 };

/// Frame kinds (the header's kind byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// An activation request, client to host.
    Request = 1,
    /// An activation response, host to client.
    Response = 2,
    /// An error, host to client, carrying an HRESULT.
    Error = 3,
    /// A request to the simulated activation service (MAK), client to service.
    ServiceRequest = 4,
    /// The activation service's answer to a [`FrameKind::ServiceRequest`].
    ServiceAnswer = 5,
}

/// The most bytes a product key may have on the wire (5 × 5 characters and 4 dashes).
pub const MAX_KEY_LEN: usize = 29;
/// The most bytes a product name may have on the wire.
pub const MAX_PRODUCT_NAME_LEN: usize = 63;
/// The most bytes an installation or confirmation ID may have on the wire (digits and
/// separators).
pub const MAX_ID_TEXT_LEN: usize = 63;

/// A request to the simulated Microsoft activation service (docs/protocol.md "Activation
/// service frames"). Its operation byte comes first in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceRequest {
    /// Operation 1: online activation (`slmgr /ato` with a MAK): uses one activation of
    /// `key` unless this installation was activated with it before.
    Activate {
        /// The MAK.
        key: String,
        /// The catalog name of the installed product.
        product: String,
        /// The machine's installation ID.
        installation_id: String,
    },
    /// Operation 2: phone activation: the confirmation ID for an installation ID.
    Confirm {
        /// The installation ID read out by the caller.
        installation_id: String,
    },
    /// Operation 3: a key's remaining activations (VAMT's "refresh product key data").
    KeyInfo {
        /// The MAK.
        key: String,
    },
}

/// The activation service's answer; refusals are error frames with the HRESULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAnswer {
    /// The confirmation ID (empty for [`ServiceRequest::KeyInfo`]).
    pub confirmation_id: String,
    /// Activations of the key still available.
    pub remaining: u32,
    /// Activations of the key used so far.
    pub used: u32,
    /// True when the key is blocked.
    pub blocked: bool,
    /// True when this answer used one activation (false for a re-activation).
    pub counted: bool,
}

/// The KMS protocol level a request was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    /// Major version (4 for Windows 7).
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

/// An activation request (docs/kms-behaviour.md "Request and response contents").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// KMS protocol level of the client.
    pub protocol: ProtocolVersion,
    /// True when the client runs in a virtual machine.
    pub vm: bool,
    /// The license status the client is in.
    pub license_status: LicenseStatus,
    /// Minutes until the client's current state (grace or validity) expires.
    pub minutes_to_expiry: u32,
    /// Application ID of the licensed application (Windows or Office).
    pub application_id: Uuid,
    /// Activation (SKU) ID of the installed product.
    pub activation_id: Uuid,
    /// KMS counted ID: which count the request is counted in.
    pub kms_counted_id: Uuid,
    /// The client machine ID.
    pub cmid: Uuid,
    /// The CMID before the last rearm (nil if none).
    pub previous_cmid: Uuid,
    /// The count the client requires to activate (25 client, 5 server/Office).
    pub n_policy: u32,
    /// The client's clock.
    pub client_time: Timestamp,
    /// The client's machine name (at most 63 characters).
    pub machine_name: String,
}

/// An activation response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// KMS protocol level, echoed from the request.
    pub protocol: ProtocolVersion,
    /// The host's extended PID.
    pub epid: String,
    /// The CMID of the request, echoed.
    pub cmid: Uuid,
    /// The client time of the request, echoed.
    pub client_time: Timestamp,
    /// The host's current count for the request's counted group, including this client.
    pub current_count: u32,
    /// Minutes between attempts while not activated.
    pub activation_interval: u32,
    /// Minutes between renewals while activated.
    pub renewal_interval: u32,
}

/// An error frame: the host refuses a request with an HRESULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// The reason.
    pub hresult: HResult,
    /// The CMID of the refused request, nil when the request could not be parsed.
    pub cmid: Uuid,
    /// A human-readable explanation (at most 512 bytes of UTF-8).
    pub message: String,
}

/// Any decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request frame.
    Request(Request),
    /// A response frame.
    Response(Response),
    /// An error frame.
    Error(ErrorFrame),
    /// A request to the activation service.
    ServiceRequest(ServiceRequest),
    /// An answer of the activation service.
    ServiceAnswer(ServiceAnswer),
}

/// Why bytes could not be decoded. Every variant but `Incomplete` means the peer sent
/// something wrong; the connection should get an error frame and be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not enough bytes yet: at least `needed` bytes in all are required.
    #[error("incomplete frame: {needed} bytes needed")]
    Incomplete {
        /// Total bytes needed before decoding can go on.
        needed: usize,
    },
    /// The first bytes are not `KMSL`.
    #[error("bad magic {0:02X?}: not a kmslab frame")]
    BadMagic(Vec<u8>),
    /// The version byte names a version this decoder does not speak.
    #[error("unsupported protocol version {0} (this peer speaks version 1)")]
    UnsupportedVersion(u8),
    /// The kind byte is not 1 to 5.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The flag bytes carry bits other than [`FLAG_MAC`].
    #[error("reserved header bytes are not zero ({0:#06X})")]
    ReservedNotZero(u16),
    /// The frame carries a MAC but this peer has no pre-shared key (`--psk`).
    #[error("frame carries a MAC but this peer has no pre-shared key (--psk)")]
    MacUnexpected,
    /// This peer has a pre-shared key and the frame carries no MAC.
    #[error("frame carries no MAC but this peer requires one (--psk)")]
    MacMissing,
    /// The frame's MAC does not verify with this peer's pre-shared key.
    #[error("frame MAC does not verify: wrong pre-shared key or altered frame")]
    BadMac,
    /// The announced body is longer than [`MAX_BODY_LEN`] ([`MAX_AUTH_BODY_LEN`] with a MAC).
    #[error("frame body of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Announced body length.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// The body ended inside a field.
    #[error("frame body ends inside field `{0}`")]
    Truncated(&'static str),
    /// A text field is not UTF-8.
    #[error("field `{0}` is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A field is longer than allowed.
    #[error("field `{field}` is too long: {len} (maximum {max})")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length (characters for names, bytes otherwise).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A field holds a value outside its domain.
    #[error("field `{field}` has invalid value {value}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// The body has bytes after its last field.
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// The HRESULT an error frame for this decode error carries.
    pub fn hresult(&self) -> HResult {
        match self {
            DecodeError::MacUnexpected | DecodeError::MacMissing | DecodeError::BadMac => HResult::FRAME_AUTH_FAILED,
            _ => HResult::INVALID_DATA,
        }
    }

    /// True for the MAC errors of authenticated framing.
    pub fn is_auth(&self) -> bool {
        matches!(self, DecodeError::MacUnexpected | DecodeError::MacMissing | DecodeError::BadMac)
    }
}

/// A pre-shared key for authenticated framing, kept as a keyed HMAC-SHA256 state (cloned
/// per frame). `Debug` never shows the key.
#[derive(Clone)]
pub struct FrameKey(Hmac<Sha256>);

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameKey(..)")
    }
}

/// Why a pre-shared key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Shorter than [`MIN_PSK_LEN`] bytes (after trimming).
    #[error("pre-shared key is {0} bytes; at least 16 are needed (e.g. `openssl rand -hex 32`)")]
    TooShort(usize),
    /// Longer than [`MAX_PSK_LEN`] bytes.
    #[error("pre-shared key is {0} bytes; at most 1024 are allowed")]
    TooLong(usize),
}

impl FrameKey {
    /// A key from raw bytes ([`MIN_PSK_LEN`]..=[`MAX_PSK_LEN`]).
    pub fn new(secret: &[u8]) -> Result<FrameKey, KeyError> {
        if secret.len() < MIN_PSK_LEN {
            return Err(KeyError::TooShort(secret.len()));
        }
        if secret.len() > MAX_PSK_LEN {
            return Err(KeyError::TooLong(secret.len()));
        }
        Ok(FrameKey(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length")))
    }

    /// A key from the contents of a `--psk` file: the bytes of the file with leading and
    /// trailing ASCII whitespace (the final newline) removed. The daemons read the file.
    pub fn from_file_contents(contents: &[u8]) -> Result<FrameKey, KeyError> {
        FrameKey::new(contents.trim_ascii())
    }

    /// The MAC of `header_and_body`.
    pub fn mac(&self, header_and_body: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.0.clone();
        m.update(header_and_body);
        m.finalize().into_bytes().into()
    }

    fn verify(&self, header_and_body: &[u8], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(header_and_body);
        // Constant-time comparison.
        m.verify_slice(tag).is_ok()
    }
}

/// A frame header whose checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The frame kind.
    pub kind: FrameKind,
    /// The body length.
    pub body_len: usize,
    /// True when [`FLAG_MAC`] is set: a [`MAC_LEN`]-byte trailer follows the body.
    pub authenticated: bool,
    /// True when [`FLAG_NONCE`] is set: a [`NONCE_LEN`]-byte nonce precedes the MAC.
    pub nonce: bool,
}

impl Header {
    /// Total frame length (header, body, and the nonce and MAC trailer if any).
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len + if self.authenticated { MAC_LEN } else { 0 } + if self.nonce { NONCE_LEN } else { 0 }
    }
}

/// Checks the header at the start of `buf`. Rejects a bad magic as soon as the bytes that
/// are there disagree with it, and an over-long length before any body byte is read.
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    let have = buf.len().min(MAGIC.len());
    if buf[..have] != MAGIC[..have] {
        return Err(DecodeError::BadMagic(buf[..have].to_vec()));
    }
    if buf.len() > 4 && buf[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(buf[4]));
    }
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete { needed: HEADER_LEN });
    }
    let kind = match buf[5] {
        1 => FrameKind::Request,
        2 => FrameKind::Response,
        3 => FrameKind::Error,
        4 => FrameKind::ServiceRequest,
        5 => FrameKind::ServiceAnswer,
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    // A nonce means something only under a MAC: alone, its bit is as reserved as any other.
    if flags & !(FLAG_MAC | FLAG_NONCE) != 0 || flags == FLAG_NONCE {
        return Err(DecodeError::ReservedNotZero(flags));
    }
    let authenticated = flags & FLAG_MAC != 0;
    let nonce = flags & FLAG_NONCE != 0;
    let max = match (authenticated, nonce) {
        (false, _) => MAX_BODY_LEN,
        (true, false) => MAX_AUTH_BODY_LEN,
        (true, true) => MAX_NONCE_BODY_LEN,
    };
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if len as usize > max {
        return Err(DecodeError::TooLong { len: u64::from(len), max });
    }
    Ok(Header { kind, body_len: len as usize, authenticated, nonce })
}

/// Decodes one unauthenticated frame from the start of `buf`, returning it and the bytes
/// it used (a frame with a MAC is [`DecodeError::MacUnexpected`]).
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    decode_with(buf, None)
}

/// Decodes one frame from the start of `buf`. With `key`, the frame must carry a MAC that
/// verifies; without, it must carry none. The MAC is checked before the body is parsed.
pub fn decode_with(buf: &[u8], key: Option<&FrameKey>) -> Result<(Message, usize), DecodeError> {
    decode_frame(buf, key).map(|(frame, used)| (frame.message, used))
}

/// As [`decode_with`], also returning the frame's nonce ([`FLAG_NONCE`]), which the MAC
/// covers.
pub fn decode_frame(buf: &[u8], key: Option<&FrameKey>) -> Result<(Frame, usize), DecodeError> {
    let header = decode_header(buf)?;
    let total = header.frame_len();
    if buf.len() < total {
        return Err(DecodeError::Incomplete { needed: total });
    }
    let body_end = HEADER_LEN + header.body_len;
    let mac_start = total - if header.authenticated { MAC_LEN } else { 0 };
    match (key, header.authenticated) {
        (None, false) => {}
        (None, true) => return Err(DecodeError::MacUnexpected),
        (Some(_), false) => return Err(DecodeError::MacMissing),
        (Some(key), true) => {
            if !key.verify(&buf[..mac_start], &buf[mac_start..total]) {
                return Err(DecodeError::BadMac);
            }
        }
    }
    let nonce = header.nonce.then(|| {
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&buf[body_end..body_end + NONCE_LEN]);
        n
    });
    let mut r = Reader { buf: &buf[HEADER_LEN..body_end] };
    let msg = match header.kind {
        FrameKind::Request => Message::Request(decode_request_body(&mut r)?),
        FrameKind::Response => Message::Response(decode_response_body(&mut r)?),
        FrameKind::Error => Message::Error(decode_error_body(&mut r)?),
        FrameKind::ServiceRequest => Message::ServiceRequest(decode_service_request_body(&mut r)?),
        FrameKind::ServiceAnswer => Message::ServiceAnswer(decode_service_answer_body(&mut r)?),
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok((Frame { message: msg, nonce }, total))
}

fn decode_request_body(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    let protocol = r.protocol()?;
    let flags = r.u8("flags")?;
    if flags & !1 != 0 {
        return Err(DecodeError::InvalidValue { field: "flags", value: u64::from(flags) });
    }
    let status = r.u8("license_status")?;
    let license_status =
        LicenseStatus::from_u8(status).ok_or(DecodeError::InvalidValue { field: "license_status", value: u64::from(status) })?;
    Ok(Request {
        protocol,
        vm: flags & 1 == 1,
        license_status,
        minutes_to_expiry: r.u32("minutes_to_expiry")?,
        application_id: r.guid("application_id")?,
        activation_id: r.guid("activation_id")?,
        kms_counted_id: r.guid("kms_counted_id")?,
        cmid: r.guid("cmid")?,
        previous_cmid: r.guid("previous_cmid")?,
        n_policy: r.u32("n_policy")?,
        client_time: Timestamp::from_unix_ms(r.i64("client_time")?),
        machine_name: r.short_string("machine_name", MAX_MACHINE_NAME_CHARS, true)?,
    })
}

fn decode_response_body(r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    Ok(Response {
        protocol: r.protocol()?,
        epid: r.short_string("epid", MAX_EPID_LEN, false)?,
        cmid: r.guid("cmid")?,
        client_time: Timestamp::from_unix_ms(r.i64("client_time")?),
        current_count: r.u32("current_count")?,
        activation_interval: r.u32("activation_interval")?,
        renewal_interval: r.u32("renewal_interval")?,
    })
}

fn decode_error_body(r: &mut Reader<'_>) -> Result<ErrorFrame, DecodeError> {
    let hresult = HResult(r.u32("hresult")?);
    let cmid = r.guid("cmid")?;
    let len = usize::from(r.u16("message_len")?);
    if len > MAX_ERROR_MESSAGE_LEN {
        return Err(DecodeError::FieldTooLong { field: "message", len, max: MAX_ERROR_MESSAGE_LEN });
    }
    let bytes = r.take(len, "message")?;
    let message = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8("message"))?.to_owned();
    Ok(ErrorFrame { hresult, cmid, message })
}

fn decode_service_request_body(r: &mut Reader<'_>) -> Result<ServiceRequest, DecodeError> {
    match r.u8("operation")? {
        1 => Ok(ServiceRequest::Activate {
            key: r.short_string("key", MAX_KEY_LEN, false)?,
            product: r.short_string("product", MAX_PRODUCT_NAME_LEN, false)?,
            installation_id: r.short_string("installation_id", MAX_ID_TEXT_LEN, false)?,
        }),
        2 => Ok(ServiceRequest::Confirm { installation_id: r.short_string("installation_id", MAX_ID_TEXT_LEN, false)? }),
        3 => Ok(ServiceRequest::KeyInfo { key: r.short_string("key", MAX_KEY_LEN, false)? }),
        other => Err(DecodeError::InvalidValue { field: "operation", value: u64::from(other) }),
    }
}

fn decode_service_answer_body(r: &mut Reader<'_>) -> Result<ServiceAnswer, DecodeError> {
    let confirmation_id = r.short_string("confirmation_id", MAX_ID_TEXT_LEN, false)?;
    let remaining = r.u32("remaining")?;
    let used = r.u32("used")?;
    let flags = r.u8("flags")?;
    if flags & !3 != 0 {
        return Err(DecodeError::InvalidValue { field: "flags", value: u64::from(flags) });
    }
    Ok(ServiceAnswer { confirmation_id, remaining, used, blocked: flags & 1 != 0, counted: flags & 2 != 0 })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }
    fn guid(&mut self, field: &'static str) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes_le(self.array(field)?))
    }
    fn protocol(&mut self) -> Result<ProtocolVersion, DecodeError> {
        Ok(ProtocolVersion { major: self.u16("protocol_major")?, minor: self.u16("protocol_minor")? })
    }
    /// A u8 byte length then UTF-8; `max` counts characters when `chars`, else bytes.
    fn short_string(&mut self, field: &'static str, max: usize, chars: bool) -> Result<String, DecodeError> {
        let len = usize::from(self.u8(field)?);
        if !chars && len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        let bytes = self.take(len, field)?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(field))?;
        if chars {
            let n = s.chars().count();
            if n > max {
                return Err(DecodeError::FieldTooLong { field, len: n, max });
            }
        }
        Ok(s.to_owned())
    }
}

/// Why a message could not be encoded (a field that the decoder would refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A text field is longer than the protocol allows.
    #[error("field `{field}` is too long: {len} (maximum {max})")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// Appends the encoded (unauthenticated) frame of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with(msg, None, out)
}

/// Appends the encoded frame of `msg` to `out`; with `key`, sets [`FLAG_MAC`] and appends
/// the HMAC-SHA256 of the header and body.
pub fn encode_with(msg: &Message, key: Option<&FrameKey>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_frame(msg, key, None, out)
}

/// As [`encode_with`]; with a key and a `nonce`, also sets [`FLAG_NONCE`] and puts the
/// nonce between the body and the MAC (the MAC covers it). A nonce without a key is not
/// sent: it means nothing without a MAC over it.
pub fn encode_frame(msg: &Message, key: Option<&FrameKey>, nonce: Option<&Nonce>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let kind = match msg {
        Message::Request(_) => FrameKind::Request,
        Message::Response(_) => FrameKind::Response,
        Message::Error(_) => FrameKind::Error,
        Message::ServiceRequest(_) => FrameKind::ServiceRequest,
        Message::ServiceAnswer(_) => FrameKind::ServiceAnswer,
    };
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, kind as u8, 0, 0, 0, 0, 0, 0]);
    let body_start = out.len();
    let result = match msg {
        Message::Request(r) => encode_request_body(r, out),
        Message::Response(r) => encode_response_body(r, out),
        Message::Error(e) => encode_error_body(e, out),
        Message::ServiceRequest(q) => encode_service_request_body(q, out),
        Message::ServiceAnswer(a) => encode_service_answer_body(a, out),
    };
    if let Err(e) = result {
        out.truncate(start);
        return Err(e);
    }
    let body_len = (out.len() - body_start) as u32;
    out[start + 8..start + 12].copy_from_slice(&body_len.to_le_bytes());
    if let Some(key) = key {
        let flags = if nonce.is_some() { FLAG_MAC | FLAG_NONCE } else { FLAG_MAC };
        // Field limits keep every body far below MAX_NONCE_BODY_LEN.
        debug_assert!(body_len as usize <= MAX_NONCE_BODY_LEN);
        out[start + 6..start + 8].copy_from_slice(&flags.to_le_bytes());
        if let Some(nonce) = nonce {
            out.extend_from_slice(nonce);
        }
        let mac = key.mac(&out[start..]);
        out.extend_from_slice(&mac);
    }
    Ok(())
}

/// Encodes `msg` into a new buffer, authenticated with `key` if given.
pub fn encode_to_vec_with(msg: &Message, key: Option<&FrameKey>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(192);
    encode_with(msg, key, &mut out)?;
    Ok(out)
}

/// Encodes `msg` into a new buffer.
pub fn encode_to_vec(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(160);
    encode(msg, &mut out)?;
    Ok(out)
}

fn put_protocol(p: ProtocolVersion, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.major.to_le_bytes());
    out.extend_from_slice(&p.minor.to_le_bytes());
}

fn put_short_string(field: &'static str, s: &str, max: usize, chars: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len = if chars { s.chars().count() } else { s.len() };
    if len > max || s.len() > usize::from(u8::MAX) {
        return Err(EncodeError::FieldTooLong { field, len, max });
    }
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_request_body(r: &Request, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_protocol(r.protocol, out);
    out.push(u8::from(r.vm));
    out.push(r.license_status as u8);
    out.extend_from_slice(&r.minutes_to_expiry.to_le_bytes());
    for g in [r.application_id, r.activation_id, r.kms_counted_id, r.cmid, r.previous_cmid] {
        out.extend_from_slice(&g.to_bytes_le());
    }
    out.extend_from_slice(&r.n_policy.to_le_bytes());
    out.extend_from_slice(&r.client_time.as_unix_ms().to_le_bytes());
    put_short_string("machine_name", &r.machine_name, MAX_MACHINE_NAME_CHARS, true, out)
}

fn encode_response_body(r: &Response, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_protocol(r.protocol, out);
    put_short_string("epid", &r.epid, MAX_EPID_LEN, false, out)?;
    out.extend_from_slice(&r.cmid.to_bytes_le());
    out.extend_from_slice(&r.client_time.as_unix_ms().to_le_bytes());
    out.extend_from_slice(&r.current_count.to_le_bytes());
    out.extend_from_slice(&r.activation_interval.to_le_bytes());
    out.extend_from_slice(&r.renewal_interval.to_le_bytes());
    Ok(())
}

fn encode_error_body(e: &ErrorFrame, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if e.message.len() > MAX_ERROR_MESSAGE_LEN {
        return Err(EncodeError::FieldTooLong { field: "message", len: e.message.len(), max: MAX_ERROR_MESSAGE_LEN });
    }
    out.extend_from_slice(&e.hresult.0.to_le_bytes());
    out.extend_from_slice(&e.cmid.to_bytes_le());
    out.extend_from_slice(&(e.message.len() as u16).to_le_bytes());
    out.extend_from_slice(e.message.as_bytes());
    Ok(())
}

fn encode_service_request_body(q: &ServiceRequest, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match q {
        ServiceRequest::Activate { key, product, installation_id } => {
            out.push(1);
            put_short_string("key", key, MAX_KEY_LEN, false, out)?;
            put_short_string("product", product, MAX_PRODUCT_NAME_LEN, false, out)?;
            put_short_string("installation_id", installation_id, MAX_ID_TEXT_LEN, false, out)
        }
        ServiceRequest::Confirm { installation_id } => {
            out.push(2);
            put_short_string("installation_id", installation_id, MAX_ID_TEXT_LEN, false, out)
        }
        ServiceRequest::KeyInfo { key } => {
            out.push(3);
            put_short_string("key", key, MAX_KEY_LEN, false, out)
        }
    }
}

fn encode_service_answer_body(a: &ServiceAnswer, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_short_string("confirmation_id", &a.confirmation_id, MAX_ID_TEXT_LEN, false, out)?;
    out.extend_from_slice(&a.remaining.to_le_bytes());
    out.extend_from_slice(&a.used.to_le_bytes());
    out.push(u8::from(a.blocked) | (u8::from(a.counted) << 1));
    Ok(())
}

/// Renders bytes as a classic hex dump (16 bytes a line, offset, hex, ASCII), as used in
/// `docs/protocol.md`.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        s.push_str(&format!("{:04x}  ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => s.push_str(&format!("{b:02x} ")),
                None => s.push_str("   "),
            }
            if j == 7 {
                s.push(' ');
            }
        }
        s.push(' ');
        s.extend(chunk.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_request() -> Request {
        Request {
            protocol: KMS_PROTOCOL_V4,
            vm: true,
            license_status: LicenseStatus::InitialGrace,
            minutes_to_expiry: 43_200,
            application_id: Uuid::parse_str("55c92734-d682-4d71-983e-d6ec3f16059f").unwrap(),
            activation_id: Uuid::parse_str("ae2ee509-1b34-41c0-acb7-6d4650168915").unwrap(),
            kms_counted_id: Uuid::parse_str("7fde5219-fbfa-484a-82c9-34d1ad53e856").unwrap(),
            cmid: Uuid::parse_str("2ffcfc30-6a6a-49ec-92b8-f6150c7df211").unwrap(),
            previous_cmid: Uuid::nil(),
            n_policy: 25,
            client_time: Timestamp::parse_rfc3339("2026-01-12T08:00:00Z").unwrap(),
            machine_name: "WS-0001".into(),
        }
    }

    fn check_err(bytes: &[u8], expected: DecodeError) {
        assert_eq!(decode(bytes).unwrap_err(), expected, "{}", hex_dump(bytes));
    }

    #[test]
    fn request_round_trip_and_layout() {
        let req = sample_request();
        let bytes = encode_to_vec(&Message::Request(req.clone())).unwrap();
        assert_eq!(&bytes[..4], b"KMSL");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 1);
        assert_eq!(bytes.len(), HEADER_LEN + 4 + 2 + 4 + 5 * 16 + 4 + 8 + 1 + 7);
        // GUIDs are little-endian: the first group of the application ID is reversed.
        assert_eq!(&bytes[22..26], &[0x34, 0x27, 0xc9, 0x55]);
        let (msg, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(msg, Message::Request(req));
    }

    #[test]
    fn every_prefix_is_incomplete_never_an_error() {
        let bytes = encode_to_vec(&Message::Request(sample_request())).unwrap();
        for n in 0..bytes.len() {
            match decode(&bytes[..n]) {
                Err(DecodeError::Incomplete { needed }) => assert!(needed > n),
                other => panic!("prefix of {n} bytes gave {other:?}"),
            }
        }
    }

    #[test]
    fn header_errors_name_what_was_wrong() {
        check_err(b"GET / HTTP/1.1\r\n", DecodeError::BadMagic(b"GET ".to_vec()));
        check_err(b"KX", DecodeError::BadMagic(b"KX".to_vec()));
        check_err(b"KMSL\x02\x01\0\0\0\0\0\0", DecodeError::UnsupportedVersion(2));
        check_err(b"KMSL\x01\x09\0\0\0\0\0\0", DecodeError::UnknownKind(9));
        check_err(b"KMSL\x01\x01\x02\0\0\0\0\0", DecodeError::ReservedNotZero(2));
        check_err(b"KMSL\x01\x01\x01\x80\0\0\0\0", DecodeError::ReservedNotZero(0x8001));
        // An over-long length is refused from the header alone, before any body byte.
        check_err(b"KMSL\x01\x01\0\0\xff\xff\xff\xff", DecodeError::TooLong { len: u64::from(u32::MAX), max: MAX_BODY_LEN });
        check_err(b"KMSL\x01\x01\0\0\x00\x10\0\0", DecodeError::TooLong { len: 4096, max: MAX_BODY_LEN });
        check_err(b"KMSL\x01\x01\0\0\0\0\0\0", DecodeError::Truncated("protocol_major"));
    }

    #[test]
    fn body_errors_name_the_field() {
        let mut req = sample_request();
        req.machine_name = "x".repeat(63);
        let ok = encode_to_vec(&Message::Request(req.clone())).unwrap();
        assert!(decode(&ok).is_ok());

        // 64 characters: refused by the encoder, and by the decoder when forced onto the wire.
        req.machine_name = "x".repeat(64);
        assert!(matches!(encode_to_vec(&Message::Request(req)), Err(EncodeError::FieldTooLong { field: "machine_name", .. })));
        let mut forced = ok.clone();
        let name_at = forced.len() - 63 - 1;
        forced[name_at] = 64;
        forced.push(b'x');
        let body = (forced.len() - HEADER_LEN) as u32;
        forced[8..12].copy_from_slice(&body.to_le_bytes());
        check_err(&forced, DecodeError::FieldTooLong { field: "machine_name", len: 64, max: 63 });

        // Bad UTF-8 in the machine name.
        let mut bad = ok.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        check_err(&bad, DecodeError::InvalidUtf8("machine_name"));

        // A license status that does not exist.
        let mut bad = ok.clone();
        bad[HEADER_LEN + 5] = 7;
        check_err(&bad, DecodeError::InvalidValue { field: "license_status", value: 7 });

        // Unknown flag bits.
        let mut bad = ok.clone();
        bad[HEADER_LEN + 4] = 0x81;
        check_err(&bad, DecodeError::InvalidValue { field: "flags", value: 0x81 });

        // Trailing bytes inside the announced body.
        let mut bad = ok;
        bad.push(0);
        let body = (bad.len() - HEADER_LEN) as u32;
        bad[8..12].copy_from_slice(&body.to_le_bytes());
        check_err(&bad, DecodeError::TrailingBytes(1));
    }

    fn key(s: &str) -> FrameKey {
        FrameKey::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_nonce_rides_under_the_mac_and_cannot_be_changed_or_sent_alone() {
        let k = key("0123456789abcdef0123456789abcdef");
        let msg = Message::Request(sample_request());
        let nonce: Nonce = *b"0123456789ABCDEF";
        let mut with_nonce = Vec::new();
        encode_frame(&msg, Some(&k), Some(&nonce), &mut with_nonce).unwrap();
        let signed = encode_to_vec_with(&msg, Some(&k)).unwrap();
        assert_eq!(with_nonce.len(), signed.len() + NONCE_LEN);
        assert_eq!(&with_nonce[6..8], &[3, 0]);
        let (frame, used) = decode_frame(&with_nonce, Some(&k)).unwrap();
        assert_eq!((frame, used), (Frame { message: msg.clone(), nonce: Some(nonce) }, with_nonce.len()));
        assert_eq!(decode_frame(&signed, Some(&k)).unwrap().0.nonce, None);
        // Another nonce in place of the recorded one: the MAC no longer verifies.
        let mut swapped = with_nonce.clone();
        let at = swapped.len() - MAC_LEN - NONCE_LEN;
        swapped[at] ^= 1;
        assert_eq!(decode_frame(&swapped, Some(&k)).unwrap_err(), DecodeError::BadMac);
        // Every prefix is incomplete, asking for at most the whole frame.
        for cut in 0..with_nonce.len() {
            assert!(
                matches!(decode_frame(&with_nonce[..cut], Some(&k)), Err(DecodeError::Incomplete { needed }) if needed <= with_nonce.len())
            );
        }
        // A nonce without a MAC is refused from the header; without a key, none is sent.
        check_err(b"KMSL\x01\x01\x02\0\0\0\0\0", DecodeError::ReservedNotZero(2));
        let mut plain = Vec::new();
        encode_frame(&msg, None, Some(&nonce), &mut plain).unwrap();
        assert_eq!(plain, encode_to_vec(&msg).unwrap());
    }

    #[test]
    fn authenticated_frames_round_trip_and_refuse_what_does_not_verify() {
        let k = key("0123456789abcdef0123456789abcdef");
        let msg = Message::Request(sample_request());
        let plain = encode_to_vec(&msg).unwrap();
        let signed = encode_to_vec_with(&msg, Some(&k)).unwrap();
        assert_eq!(signed.len(), plain.len() + MAC_LEN);
        assert_eq!(&signed[6..8], &[1, 0]);
        // Same body length field, same body: only the flag and the trailer differ.
        assert_eq!(&signed[8..plain.len()], &plain[8..]);
        assert_eq!(decode_with(&signed, Some(&k)).unwrap(), (msg.clone(), signed.len()));
        check_err(&signed, DecodeError::MacUnexpected);
        assert_eq!(decode_with(&plain, Some(&k)).unwrap_err(), DecodeError::MacMissing);
        assert_eq!(decode_with(&signed, Some(&key("another key of 16+ bytes"))).unwrap_err(), DecodeError::BadMac);
        // Any flipped bit (header, body or MAC) is refused.
        for i in 0..signed.len() {
            let mut bad = signed.clone();
            bad[i] ^= 0x10;
            assert!(decode_with(&bad, Some(&k)).is_err(), "flip at {i} accepted");
        }
        // Every prefix is Incomplete, asking for the whole frame with its MAC at most.
        for n in 0..signed.len() {
            match decode_with(&signed[..n], Some(&k)) {
                Err(DecodeError::Incomplete { needed }) => assert!(needed > n && needed <= signed.len()),
                other => panic!("prefix of {n} bytes gave {other:?}"),
            }
        }
        // The body limit leaves room for the MAC.
        let mut over = b"KMSL\x01\x01\x01\0".to_vec();
        over.extend_from_slice(&((MAX_AUTH_BODY_LEN + 1) as u32).to_le_bytes());
        check_err(&over, DecodeError::TooLong { len: (MAX_AUTH_BODY_LEN + 1) as u64, max: MAX_AUTH_BODY_LEN });
        assert_eq!(DecodeError::BadMac.hresult(), HResult::FRAME_AUTH_FAILED);
    }

    #[test]
    fn keys_are_checked_trimmed_and_never_printed() {
        assert_eq!(FrameKey::new(b"short").unwrap_err(), KeyError::TooShort(5));
        assert!(FrameKey::new(&[7u8; 1025]).is_err());
        let a = FrameKey::from_file_contents(b"  0123456789abcdef0123\n").unwrap();
        let b = FrameKey::new(b"0123456789abcdef0123").unwrap();
        assert_eq!(a.mac(b"x"), b.mac(b"x"));
        assert_eq!(format!("{a:?}"), "FrameKey(..)");
    }

    #[test]
    fn service_frames_round_trip_and_name_bad_fields() {
        let requests = [
            ServiceRequest::Activate {
                key: "LABMK-23456-789BC-DFGHJ-KMPQR".into(),
                product: "win7-enterprise".into(),
                installation_id: "1".repeat(54),
            },
            ServiceRequest::Confirm { installation_id: "123456-".repeat(8) + "123456" },
            ServiceRequest::KeyInfo { key: "LABMK-23456-789BC-DFGHJ-KMPQR".into() },
        ];
        for q in requests {
            let bytes = encode_to_vec(&Message::ServiceRequest(q.clone())).unwrap();
            assert_eq!(bytes[5], 4);
            assert_eq!(decode(&bytes).unwrap(), (Message::ServiceRequest(q), bytes.len()));
        }
        let answer = ServiceAnswer { confirmation_id: "0".repeat(48), remaining: 9, used: 1, blocked: false, counted: true };
        let bytes = encode_to_vec(&Message::ServiceAnswer(answer.clone())).unwrap();
        assert_eq!(bytes[5], 5);
        assert_eq!(bytes.len(), HEADER_LEN + 1 + 48 + 4 + 4 + 1);
        assert_eq!(decode(&bytes).unwrap().0, Message::ServiceAnswer(answer));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 4;
        check_err(&bad, DecodeError::InvalidValue { field: "flags", value: 4 });
        check_err(b"KMSL\x01\x04\0\0\x01\0\0\0\x09", DecodeError::InvalidValue { field: "operation", value: 9 });
        check_err(b"KMSL\x01\x04\0\0\x02\0\0\0\x03\x1e", DecodeError::FieldTooLong { field: "key", len: 30, max: MAX_KEY_LEN });
        let long = ServiceRequest::KeyInfo { key: "K".repeat(30) };
        assert!(matches!(encode_to_vec(&Message::ServiceRequest(long)), Err(EncodeError::FieldTooLong { field: "key", .. })));
        check_err(b"KMSL\x01\x06\0\0\0\0\0\0", DecodeError::UnknownKind(6));
    }

    #[test]
    fn two_frames_back_to_back_decode_one_at_a_time() {
        let mut buf = encode_to_vec(&Message::Request(sample_request())).unwrap();
        let first = buf.len();
        let err = Message::Error(ErrorFrame { hresult: HResult::KEY_GROUP_MISMATCH, cmid: Uuid::nil(), message: "no".into() });
        encode(&err, &mut buf).unwrap();
        let (_, used) = decode(&buf).unwrap();
        assert_eq!(used, first);
        let (msg, used2) = decode(&buf[used..]).unwrap();
        assert_eq!(msg, err);
        assert_eq!(used + used2, buf.len());
    }
}

//! Checks shared by the fuzz targets: what must hold for any input, decoded or not.
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use kmslab_core::catalog::Catalog;
use kmslab_core::ledger::{Ledger, MAX_CLOCK_SKEW_MS};
use kmslab_core::wire::{self, DecodeError, FrameKind, HEADER_LEN, MAGIC, MAX_BODY_LEN, MAX_FRAME_LEN, Message, Request, VERSION};
use kmslab_core::{HResult, Timestamp};

/// Runs a decoded request through a host ledger at several host clocks (including the ends
/// of `i64`): no panic or overflow, and it is accepted only within 4 hours of the clock.
pub fn check_ledger(req: &Request) {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    let catalog = CATALOG.get_or_init(|| Arc::new(Catalog::builtin()));
    let fixed = Timestamp::from_unix_ms(1_767_225_600_000); // 2026-01-01
    for now in [fixed, req.client_time, Timestamp::from_unix_ms(i64::MIN), Timestamp::from_unix_ms(i64::MAX)] {
        let settings = kmslab_core::sim::host_settings(&["kms-c", "office-2010"], 1, fixed);
        let mut ledger = Ledger::new(settings, Arc::clone(catalog));
        match ledger.handle_request(req, now) {
            Ok(_) => assert!(req.client_time.abs_diff_ms(now) <= MAX_CLOCK_SKEW_MS as u64, "{:?} accepted at {now:?}", req.client_time),
            Err(refusal) => assert_ne!(refusal.hresult, HResult::SUCCESS),
        }
        let admission = ledger.admit(req, now);
        ledger.roll_back(admission);
        let _ = ledger.group_counts(now);
    }
}

/// Decodes `buf` and checks the decoder's contract: a frame that decodes re-encodes to the
/// same bytes and decodes again to the same message; `Incomplete` asks for more bytes than
/// were given but never more than a whole frame; every other error has a message.
pub fn check_frame(buf: &[u8]) {
    match wire::decode(buf) {
        Ok((msg, used)) => {
            assert!(used >= HEADER_LEN && used <= buf.len() && used <= MAX_FRAME_LEN, "used {used} of {}", buf.len());
            let header = wire::decode_header(buf).expect("a frame that decodes has a valid header");
            assert_eq!(header.frame_len(), used);
            // The encoding is canonical (no flag bits, lengths or padding to choose), so the
            // decoded message must re-encode to exactly the bytes it came from.
            let again = wire::encode_to_vec(&msg).expect("a decoded message re-encodes");
            assert_eq!(again.as_slice(), &buf[..used], "re-encoding changed the bytes");
            let (back, used_again) = wire::decode(&again).expect("a re-encoded message decodes");
            assert_eq!(used_again, again.len());
            assert_eq!(back, msg, "decode(encode(m)) != m");
            if let Message::Request(req) = &msg {
                check_ledger(req);
            }
        }
        Err(DecodeError::Incomplete { needed }) => {
            assert!(needed > buf.len() && needed <= MAX_FRAME_LEN, "Incomplete needs {needed} with {} bytes", buf.len());
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = e.hresult();
        }
    }
    // The header check alone must agree with the full decoder on header errors.
    if let Err(e) = wire::decode_header(buf) {
        assert_eq!(wire::decode(buf).unwrap_err(), e, "decode and decode_header disagree");
    }
    // Authenticated framing (`--psk`): the same contract with a key; what verifies must
    // re-encode, MAC included, to the same bytes.
    let key = wire::FrameKey::new(b"kmslab-fuzz-key-0123456789").expect("a valid key");
    match wire::decode_frame(buf, Some(&key)) {
        Ok((frame, used)) => {
            let mut again = Vec::new();
            wire::encode_frame(&frame.message, Some(&key), frame.nonce.as_ref(), &mut again).expect("a decoded message re-encodes");
            assert_eq!(again.as_slice(), &buf[..used], "re-encoding with the key changed the bytes");
        }
        Err(DecodeError::Incomplete { needed }) => assert!(needed > buf.len() && needed <= MAX_FRAME_LEN),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A frame with a valid header of `kind` around `body` (cut to the largest legal body).
pub fn frame_with_body(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let body = &body[..body.len().min(MAX_BODY_LEN)];
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&[VERSION, kind as u8, 0, 0]);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Fuzzes the body decoder of `kind`: the frame always has a valid header, so every input
/// reaches the body parser.
pub fn check_body(kind: FrameKind, body: &[u8]) {
    let frame = frame_with_body(kind, body);
    let header = wire::decode_header(&frame).expect("the fuzz harness builds valid headers");
    assert_eq!(header.kind, kind);
    check_frame(&frame);
    // The decoder must not care about what follows the frame.
    let mut with_tail = frame.clone();
    with_tail.extend_from_slice(b"KMSL");
    match (wire::decode(&frame), wire::decode(&with_tail)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("bytes after the frame changed the result: {a:?} vs {b:?}"),
    }
}

/// Checks an installation ID text: a parsed one prints as 9 groups that parse back to it,
/// its confirmation ID checks against it, and errors carry a failure code and a reason.
pub fn check_installation_id(text: &str) {
    use kmslab_core::install_id::InstallationId;
    match InstallationId::parse(text) {
        Ok(iid) => {
            assert_eq!(InstallationId::parse(&iid.to_string()), Ok(iid));
            iid.check_confirmation(&iid.confirmation_id().to_string()).expect("an IID's own CID checks");
        }
        Err((code, why)) => assert!(!code.is_success() && !why.is_empty()),
    }
}

/// Checks a confirmation ID text against a fixed IID: never a panic, a failure has a reason.
pub fn check_confirmation_id(text: &str) {
    let iid = kmslab_core::install_id::installation_id("LABMB-CDFGH-JKMPQ-RTVWX-Y234C", kmslab_core::Uuid::from_u128(1));
    if let Err((code, why)) = iid.check_confirmation(text) {
        assert!(!code.is_success() && !why.is_empty());
    }
}

/// The fields of a decoded service request through the parsers the service runs on them.
pub fn check_service_request_fields(body: &[u8]) {
    use kmslab_core::wire::ServiceRequest;
    let Ok((Message::ServiceRequest(req), _)) = wire::decode(&frame_with_body(FrameKind::ServiceRequest, body)) else { return };
    let (key, iid) = match &req {
        ServiceRequest::Activate { key, installation_id, .. } => (Some(key), Some(installation_id)),
        ServiceRequest::Confirm { installation_id } => (None, Some(installation_id)),
        ServiceRequest::KeyInfo { key } => (Some(key), None),
    };
    if let Some(key) = key
        && let Ok((_, canonical)) = kmslab_core::labkey::parse(key)
    {
        assert_eq!(kmslab_core::labkey::parse(&canonical).map(|(_, k)| k), Ok(canonical.clone()));
    }
    if let Some(iid) = iid {
        check_installation_id(iid);
    }
}

/// The confirmation ID of a decoded service answer through the CID parser.
pub fn check_service_answer_fields(body: &[u8]) {
    if let Ok((Message::ServiceAnswer(a), _)) = wire::decode(&frame_with_body(FrameKind::ServiceAnswer, body)) {
        check_confirmation_id(&a.confirmation_id);
    }
}

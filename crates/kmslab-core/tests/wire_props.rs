//! Property tests of wire protocol v1: every message round-trips, arbitrary bytes never panic.

use kmslab_core::hresult::HResult;
use kmslab_core::wire::{self, DecodeError, ErrorFrame, Message, ProtocolVersion, Request, Response};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};
use proptest::prelude::*;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn request() -> impl Strategy<Value = Request> {
    (
        (any::<u16>(), any::<u16>(), any::<bool>(), 0u8..7, any::<u32>()),
        (uuid(), uuid(), uuid(), uuid(), uuid()),
        (any::<u32>(), any::<i64>(), "\\PC{0,63}"),
    )
        .prop_map(|((major, minor, vm, status, minutes), (app, act, kms, cmid, prev), (n, time, name))| Request {
            protocol: ProtocolVersion { major, minor },
            vm,
            license_status: LicenseStatus::from_u8(status).unwrap(),
            minutes_to_expiry: minutes,
            application_id: app,
            activation_id: act,
            kms_counted_id: kms,
            cmid,
            previous_cmid: prev,
            n_policy: n,
            client_time: Timestamp::from_unix_ms(time),
            machine_name: name,
        })
        .prop_filter("names fit a u8 byte length", |r| r.machine_name.len() <= 255)
}

fn response() -> impl Strategy<Value = Response> {
    (any::<u16>(), any::<u16>(), "[ -~]{0,63}", uuid(), any::<i64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(major, minor, epid, cmid, t, count, ai, ri)| Response {
            protocol: ProtocolVersion { major, minor },
            epid,
            cmid,
            client_time: Timestamp::from_unix_ms(t),
            current_count: count,
            activation_interval: ai,
            renewal_interval: ri,
        },
    )
}

fn error_frame() -> impl Strategy<Value = ErrorFrame> {
    (any::<u32>(), uuid(), "\\PC{0,100}").prop_map(|(code, cmid, message)| ErrorFrame { hresult: HResult(code), cmid, message })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![request().prop_map(Message::Request), response().prop_map(Message::Response), error_frame().prop_map(Message::Error)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = wire::encode_to_vec(&msg).unwrap();
        prop_assert!(bytes.len() <= wire::MAX_FRAME_LEN);
        let (back, used) = wire::decode(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn arbitrary_bytes_give_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        match wire::decode(&bytes) {
            Ok((_, used)) => prop_assert!(used <= bytes.len()),
            Err(DecodeError::Incomplete { needed }) => prop_assert!(needed > bytes.len() && needed <= wire::MAX_FRAME_LEN),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn a_valid_header_with_random_body_never_panics(kind in 1u8..4, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = b"KMSL\x01".to_vec();
        bytes.extend_from_slice(&[kind, 0, 0]);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        let _ = wire::decode(&bytes);
    }

    #[test]
    fn every_message_round_trips_with_a_mac(msg in message(), secret in proptest::collection::vec(any::<u8>(), 16..80)) {
        let key = wire::FrameKey::new(&secret).unwrap();
        let bytes = wire::encode_to_vec_with(&msg, Some(&key)).unwrap();
        prop_assert_eq!(bytes.len(), wire::encode_to_vec(&msg).unwrap().len() + wire::MAC_LEN);
        let (back, used) = wire::decode_with(&bytes, Some(&key)).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, msg);
        // Without the key it is refused, never misread.
        prop_assert_eq!(wire::decode(&bytes).unwrap_err(), DecodeError::MacUnexpected);
        // Every prefix is Incomplete.
        for n in [0, 5, wire::HEADER_LEN, bytes.len() - wire::MAC_LEN, bytes.len() - 1] {
            let incomplete = matches!(wire::decode_with(&bytes[..n], Some(&key)), Err(DecodeError::Incomplete { .. }));
            prop_assert!(incomplete);
        }
    }

    #[test]
    fn changing_any_byte_of_an_authenticated_frame_is_refused(msg in message(), pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let key = wire::FrameKey::new(b"property-test-key-0123").unwrap();
        let mut bytes = wire::encode_to_vec_with(&msg, Some(&key)).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = bytes[i].wrapping_add(delta);
        prop_assert!(wire::decode_with(&bytes, Some(&key)).is_err());
    }

    #[test]
    fn flipping_any_byte_of_a_valid_frame_never_panics(msg in message(), pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut bytes = wire::encode_to_vec(&msg).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = val;
        let _ = wire::decode(&bytes);
    }
}

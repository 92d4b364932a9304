//! Keeps docs/protocol.md true: its hex dumps (three plain frames and one authenticated
//! with the documented example key) must be what the encoder produces.
//! Run with `KMSLAB_PRINT_DUMPS=1 cargo test -p kmslab-core --test protocol_doc -- --nocapture`
//! to print them after a deliberate protocol change.

use kmslab_core::hresult::HResult;
use kmslab_core::wire::{self, ErrorFrame, FrameKey, KMS_PROTOCOL_V4, Message, Request, Response};
use kmslab_core::{LicenseStatus, Timestamp, Uuid};

fn samples() -> [(&'static str, Message); 3] {
    let cmid = Uuid::parse_str("2ffcfc30-6a6a-49ec-92b8-f6150c7df211").unwrap();
    let time = Timestamp::parse_rfc3339("2026-01-12T08:00:00Z").unwrap();
    let request = Request {
        protocol: KMS_PROTOCOL_V4,
        vm: false,
        license_status: LicenseStatus::InitialGrace,
        minutes_to_expiry: 43_200,
        application_id: Uuid::parse_str("55c92734-d682-4d71-983e-d6ec3f16059f").unwrap(),
        activation_id: Uuid::parse_str("ae2ee509-1b34-41c0-acb7-6d4650168915").unwrap(),
        kms_counted_id: Uuid::parse_str("7fde5219-fbfa-484a-82c9-34d1ad53e856").unwrap(),
        cmid,
        previous_cmid: Uuid::nil(),
        n_policy: 25,
        client_time: time,
        machine_name: "WS-0001".into(),
    };
    let response = Response {
        protocol: KMS_PROTOCOL_V4,
        epid: "55041-00168-305-123456-03-1033-7600.0000-0012026".into(),
        cmid,
        client_time: time,
        current_count: 25,
        activation_interval: 120,
        renewal_interval: 10_080,
    };
    let error =
        ErrorFrame { hresult: HResult::KEY_GROUP_MISMATCH, cmid, message: "the host key group cannot activate this product".into() };
    [("request", Message::Request(request)), ("response", Message::Response(response)), ("error", Message::Error(error))]
}

#[test]
fn docs_protocol_md_shows_what_the_encoder_produces() {
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/protocol.md exists");
    let print = std::env::var_os("KMSLAB_PRINT_DUMPS").is_some();
    for (name, msg) in samples() {
        let bytes = wire::encode_to_vec(&msg).unwrap();
        let dump = wire::hex_dump(&bytes);
        if print {
            println!("--- {name} ({} bytes)\n{dump}--- end", bytes.len());
            continue;
        }
        assert!(doc.contains(&dump), "docs/protocol.md lacks the current {name} dump:\n{dump}");
        assert_eq!(wire::decode(&bytes).unwrap().0, msg);
    }
    // The authenticated request: the same request with the example key of the doc.
    let doc_key = "kmslab-example-psk-0123456789abcdef";
    assert!(print || doc.contains(doc_key), "docs/protocol.md does not name the example key");
    let key = FrameKey::from_file_contents(doc_key.as_bytes()).unwrap();
    let [(_, request), ..] = samples();
    let bytes = wire::encode_to_vec_with(&request, Some(&key)).unwrap();
    let dump = wire::hex_dump(&bytes);
    if print {
        println!("--- authenticated request ({} bytes)\n{dump}--- end", bytes.len());
        return;
    }
    assert!(doc.contains(&dump), "docs/protocol.md lacks the current authenticated request dump:\n{dump}");
    assert_eq!(wire::decode_with(&bytes, Some(&key)).unwrap().0, request);
}

#[test]
fn docs_protocol_md_shows_the_activation_service_frames() {
    use kmslab_core::wire::{ServiceAnswer, ServiceRequest};
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/protocol.md exists");
    let print = std::env::var_os("KMSLAB_PRINT_DUMPS").is_some();
    let key = "LABMB-CDFGH-JKMPQ-RTVWX-Y234C";
    let cmid = Uuid::parse_str("2ffcfc30-6a6a-49ec-92b8-f6150c7df211").unwrap();
    let iid = kmslab_core::install_id::installation_id(key, cmid);
    let samples = [
        (
            "service request",
            Message::ServiceRequest(ServiceRequest::Activate {
                key: key.into(),
                product: "win7-enterprise".into(),
                installation_id: iid.to_string(),
            }),
        ),
        (
            "service answer",
            Message::ServiceAnswer(ServiceAnswer {
                confirmation_id: iid.confirmation_id().to_string(),
                remaining: 9,
                used: 1,
                blocked: false,
                counted: true,
            }),
        ),
    ];
    for (name, msg) in samples {
        let bytes = wire::encode_to_vec(&msg).unwrap();
        let dump = wire::hex_dump(&bytes);
        if print {
            println!("--- {name} ({} bytes)\n{dump}--- end", bytes.len());
            continue;
        }
        assert!(doc.contains(&dump), "docs/protocol.md lacks the current {name} dump:\n{dump}");
        assert_eq!(wire::decode(&bytes).unwrap().0, msg);
    }
}

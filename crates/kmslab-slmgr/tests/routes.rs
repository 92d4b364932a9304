//! Where slmgr sends its requests and what it prints for the answers, through the real
//! binary against a small HTTP/1.1 server that records every request: `--machine NAME`
//! against a lab control plane, and `/dti`, `/atp` against a daemon that has those
//! endpoints and against an older one that answers 404 for them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// `(method, path, body)` of one request.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A client's status document, as kms-client's `/api/v1/status` writes it.
const STATUS: &str = r#"{"role":"client","now":"2009-04-28T14:32:10Z","product":{"name":"win7-enterprise","display_name":"Windows(R) 7, Enterprise edition","description":"d","partial_key":"HVTHH","activation_id":"ae2ee509-1b34-41c0-acb7-6d4650168915","application_id":"55c92734-d682-4d71-983e-d6ec3f16059f","required_count":25},"status":"licensed","status_code":1,"status_label":"Licensed","notification_reason":null,"cmid":"c","previous_cmid":"00000000-0000-0000-0000-000000000000","minutes_remaining":259200,"grace_end":null,"valid_until":"2009-10-25T14:32:10Z","activation_interval":120,"renewal_interval":10080,"next_attempt":null,"attempt_in_progress":false,"host":{"manual":null,"cached":null,"last":null,"last_source":null},"epid":null,"current_count":null,"host_caching":true,"domain":null,"dns_server":null,"rearm_count":3,"machine_name":"pc","vm":false,"state_save_error":null,"last_result":null}"#;

/// Serves `answer(method, path, body) -> (status, body)` on 127.0.0.1, port 0, one
/// connection at a time, until the test ends.
fn serve(answer: fn(&str, &str, &str) -> (u16, String)) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
            let (status, reply) = answer(&method, &path, &body);
            log.lock().unwrap().push((method, path, body));
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                reply.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (addr, seen)
}

fn slmgr(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slmgr")).args(args).env_remove("KMSLAB_SLMGR_TARGET").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn paths(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().iter().map(|(m, p, _)| format!("{m} {p}")).collect()
}

/// A lab control plane with one machine, FLEET-3.
fn lab(method: &str, path: &str, _body: &str) -> (u16, String) {
    match (method, path) {
        ("GET", "/api/v1/lab/machines/FLEET-3/status") => (200, STATUS.to_owned()),
        ("POST", "/api/v1/lab/machines/FLEET-3/ato") => (200, r#"{"activated":true,"hresult":"0x00000000"}"#.to_owned()),
        ("POST", "/api/v1/lab/machines/FLEET-3/ipk") => (200, "{}".to_owned()),
        _ => (404, String::new()),
    }
}

#[test]
fn machine_sends_every_request_to_the_lab_machine() {
    let (addr, seen) = serve(lab);
    let (code, out, err) = slmgr(&["--target", &addr, "--machine", "FLEET-3", "/dli"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Name: Windows(R) 7, Enterprise edition\n"), "{out}");
    assert!(out.contains("License Status: Licensed\n"), "{out}");

    let (code, out, err) = slmgr(&["--target", &addr, "--machine", "FLEET-3", "/ato"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Activating Windows(R) 7, Enterprise edition (ae2ee509-1b34-41c0-acb7-6d4650168915) ...\nProduct activated successfully.\n"
    );
    let (code, out, err) = slmgr(&["--target", &addr, "--machine", "FLEET-3", "-ipk", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]);
    assert_eq!((code, out.as_str()), (0, "Installed product key AAAAA-BBBBB-CCCCC-DDDDD-EEEEE successfully.\n"), "{err}");
    assert_eq!(
        paths(&seen),
        [
            "GET /api/v1/lab/machines/FLEET-3/status",
            "GET /api/v1/lab/machines/FLEET-3/status",
            "GET /api/v1/lab/machines/FLEET-3/status",
            "POST /api/v1/lab/machines/FLEET-3/ato",
            "GET /api/v1/lab/machines/FLEET-3/status",
            "GET /api/v1/lab/machines/FLEET-3/status",
            "POST /api/v1/lab/machines/FLEET-3/ipk",
        ]
    );
    assert_eq!(seen.lock().unwrap().last().unwrap().2, r#"{"key":"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"}"#);

    // A machine the lab does not have, and a host verb on a lab machine.
    let (code, _, err) = slmgr(&["--target", &addr, "--machine", "NOPE", "/dli"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no machine \"NOPE\""), "{err}");
    let (code, _, err) = slmgr(&["--target", &addr, "--machine", "FLEET-3", "/sai", "60"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a verb for a KMS client (the lab machine FLEET-3"), "{err}");
}

/// A kms-client with MAK and phone activation.
fn with_phone_activation(method: &str, path: &str, body: &str) -> (u16, String) {
    match (method, path) {
        ("GET", "/api/v1/status") => (200, STATUS.to_owned()),
        ("GET", "/api/v1/dti") => {
            (200, r#"{"installation_id":"123456-234567-345678-456789-567890-678901-789012-890123-901234"}"#.to_owned())
        }
        ("POST", "/api/v1/atp") if body.contains("\"cid\":\"bad\"") => (
            400,
            r#"{"error":"0xC004F04F SL_E_CONFIRMATION_ID_INVALID: the confirmation ID is not valid","hresult":"0xC004F04F"}"#.to_owned(),
        ),
        ("POST", "/api/v1/atp") => (200, r#"{"activation_id":"ae2ee509-1b34-41c0-acb7-6d4650168915"}"#.to_owned()),
        _ => (404, String::new()),
    }
}

#[test]
fn dti_and_atp_print_as_slmgr_vbs_does() {
    let (addr, seen) = serve(with_phone_activation);
    let (code, out, err) = slmgr(&["--target", &addr, "/dti"]);
    assert_eq!((code, out.as_str()), (0, "Installation ID: 123456-234567-345678-456789-567890-678901-789012-890123-901234\n"), "{err}");
    let (code, out, err) = slmgr(&["--target", &addr, "/atp", "111111-222222"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Confirmation ID for product ae2ee509-1b34-41c0-acb7-6d4650168915 deposited successfully.\n"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().last().unwrap().2, r#"{"cid":"111111-222222"}"#);
    let (code, out, _) = slmgr(&["--target", &addr, "/atp", "bad"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("Error: 0xC004F04F SL_E_CONFIRMATION_ID_INVALID"), "{out}");
    let (code, _, err) = slmgr(&["--target", &addr, "/atp"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<CID>"), "{err}");
}

/// A kms-client from before MAK and phone activation: 404 for both endpoints.
fn without_phone_activation(method: &str, path: &str, _body: &str) -> (u16, String) {
    match (method, path) {
        ("GET", "/api/v1/status") => (200, STATUS.to_owned()),
        _ => (404, String::new()),
    }
}

#[test]
fn dti_and_atp_on_a_daemon_without_them_give_one_clear_line() {
    let (addr, _) = serve(without_phone_activation);
    for args in [&["/dti"][..], &["/atp", "111111-222222"]] {
        let mut full = vec!["--target", &addr];
        full.extend_from_slice(args);
        let (code, out, err) = slmgr(&full);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("slmgr: {} is not available on the kms-client at {addr}", args[0])), "{err}");
    }
}

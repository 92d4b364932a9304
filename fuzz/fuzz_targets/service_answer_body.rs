//! Fuzz target: a valid activation service answer header (kind 5) around an arbitrary body,
//! so every input reaches the service answer decoder (what a client reads from the service);
//! what decodes must round-trip byte for byte, and its confirmation ID goes through the CID
//! parser.
#![no_main]

use kmslab_core::wire::FrameKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    kmslab_fuzz::check_body(FrameKind::ServiceAnswer, body);
    kmslab_fuzz::check_service_answer_fields(body);
});

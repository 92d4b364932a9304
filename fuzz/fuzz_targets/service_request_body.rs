//! Fuzz target: a valid activation service request header (kind 4) around an arbitrary
//! body, so every input reaches the service request decoder; what decodes must round-trip
//! byte for byte, and its key and installation ID go through the lab key and IID parsers.
#![no_main]

use kmslab_core::wire::FrameKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    kmslab_fuzz::check_body(FrameKind::ServiceRequest, body);
    kmslab_fuzz::check_service_request_fields(body);
});

//! Fuzz target: a valid request header around an arbitrary body, so every input reaches the
//! request body decoder; what decodes must round-trip byte for byte.
#![no_main]

use kmslab_core::wire::FrameKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    kmslab_fuzz::check_body(FrameKind::Request, body);
});

//! Fuzz target: arbitrary bytes into `wire::decode` (header and body); what decodes must
//! re-encode to the same bytes and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kmslab_fuzz::check_frame(data);
});

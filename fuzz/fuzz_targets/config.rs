#![no_main]
//! `roomcast::fuzzing::config`: see fuzz/README.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roomcast::fuzzing::config(data);
});

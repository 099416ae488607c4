//! `protocol::parse` on arbitrary bytes, then the parsed request's invariants and `route::route`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::request(data);
});

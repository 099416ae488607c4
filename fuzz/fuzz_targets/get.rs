//! The whole `get` path (`app::run`) on arbitrary bytes, against a state directory prepared once.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::Fixture::shared().get(data);
});

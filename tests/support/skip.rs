//! A test that cannot check what it is for on this machine (a tool is missing, it needs root, git
//! is too old) says so where it is seen: on stderr, and in the count `scripts/test` prints after
//! cargo's summary, which counts such a test as passed. Whether a tool is there is only known
//! once the test runs, and libtest cannot mark a running test ignored. With GCGA_REQUIRE_TOOLS
//! set (CI sets it) a skip fails the test instead.
//!
//! One file for the end-to-end tests (`tests/e2e/support.rs`) and the unit tests (`src/lib.rs`).

/// Skip what follows in the running test because of `reason` (say what is missing and what it
/// would have checked): record it for `scripts/test`'s summary (the file GCGA_SKIP_LOG names), or
/// fail when GCGA_REQUIRE_TOOLS is set. The caller returns afterwards.
#[track_caller]
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("GCGA_REQUIRE_TOOLS").is_none(),
        "{reason}, and GCGA_REQUIRE_TOOLS is set: this test must run here"
    );
    eprintln!("skipped: {reason}");
    let Some(log) = std::env::var_os("GCGA_SKIP_LOG") else {
        return;
    };
    // libtest runs each test on a thread named after it.
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => {
            let at = std::panic::Location::caller();
            format!("{}:{}", at.file(), at.line())
        }
    };
    let line = format!("{} {test}: {reason}\n", env!("CARGO_CRATE_NAME"));
    // One write per line to a file opened for appending: lines from parallel tests stay whole.
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("cannot record the skip in {}: {e}", log.to_string_lossy());
    }
}

//! The process start on Linux with glibc, where `main.rs` enters at C's `main` instead of through
//! Rust's runtime start-up (std's `lang_start`).
//!
//! Why: std's start-up asks glibc for the main thread's stack bounds (`pthread_getattr_np`), and
//! glibc finds them by parsing /proc/self/maps: about 94k of the 575k instructions of a cached
//! `get`, the helper's most frequent run. docs/performance.md has the figures.
//!
//! What std's start-up did, and what of it is done here instead:
//! - standard descriptors 0, 1 and 2 that are closed get /dev/null, so that no file the helper
//!   opens later becomes its stdout (a token written into a cache or lock file): [`prepare`];
//! - SIGPIPE is ignored, so a write to a closed pipe is an error the helper reports (as before),
//!   not a silent death: [`prepare`]. Children still start with SIGPIPE at its default (std's
//!   `Command` resets it, as it did);
//! - stdout is flushed at the end: [`finish`];
//! - not done: the handler that prints "thread 'main' has overflowed its stack". An overflow
//!   still hits the kernel's guard gap below the main stack and ends the process with SIGSEGV
//!   instead of SIGABRT and that line; no recursion in the helper is unbounded.
//!
//! `std::env::args_os` needs nothing from here: on Linux glibc hands argc/argv to std through
//! `.init_array`, before `main`.

use std::process::ExitCode;

/// Everything of std's start-up the helper relies on (see the module docs). Call it first.
pub fn prepare() {
    sanitize_standard_fds();
    // SAFETY: `signal` with SIG_IGN installs no handler code; no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Descriptors 0, 1 and 2 that are not open are opened on /dev/null (as std and git do).
fn sanitize_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the duration of the call.
    let polled = loop {
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if r != -1 {
            break true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break false;
        }
    };
    for pfd in fds {
        let closed = if polled {
            pfd.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD on any descriptor number only reads its flags.
            let r = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) };
            r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        // Descriptors are allocated lowest first, so /dev/null lands on the closed one. If even
        // that fails, going on could write a token into the next file opened: stop.
        // SAFETY: a NUL-terminated path and plain flags.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
            std::process::abort();
        }
    }
}

/// The end of the process: stdout flushed (std did it after `main`), the exit status as C's
/// `main` returns it.
pub fn finish(code: ExitCode) -> i32 {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    exit_status(code)
}

/// The number an `ExitCode` stands for. std has no stable way to read it (`ExitCode::exit_process`
/// is unstable); every `ExitCode` the helper makes comes from a `u8`, so one of these matches.
fn exit_status(code: ExitCode) -> i32 {
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, i32::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_keep_their_numbers() {
        assert_eq!(exit_status(ExitCode::SUCCESS), 0);
        assert_eq!(exit_status(ExitCode::FAILURE), 1);
        for n in [2u8, 3, 101, 255] {
            assert_eq!(exit_status(ExitCode::from(n)), i32::from(n));
        }
    }
}

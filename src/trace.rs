//! Trace output for people debugging a setup: `--verbose`, or `GIT_CREDENTIAL_GITHUB_APP_TRACE=1`
//! (stderr) or `=/path/to/file` (appended). Secrets never reach it: callers pass fingerprints
//! ([`crate::secret::Secret::fingerprint`]), never values.

use std::io::Write;
use std::sync::OnceLock;

enum Sink {
    Stderr,
    File(std::sync::Mutex<std::fs::File>),
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();

/// Turn tracing on or off for this process. Only the first call counts.
pub fn init(verbose: bool, env_value: Option<String>) {
    let value = env_value.as_deref().map(str::trim).unwrap_or("");
    let sink = if verbose {
        Some(Sink::Stderr)
    } else {
        match value.to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" | "off" => None,
            // Like GIT_TRACE: an absolute path appends to that file; anything else means stderr
            // (never a file named after the value in the repository).
            _ if value.starts_with('/') => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(value)
                .ok()
                .map(|f| Sink::File(std::sync::Mutex::new(f)))
                .or(Some(Sink::Stderr)),
            _ => Some(Sink::Stderr),
        }
    };
    let _ = SINK.set(sink);
}

pub fn enabled() -> bool {
    matches!(SINK.get(), Some(Some(_)))
}

/// Write one trace line. Use the [`trace!`](crate::trace!) macro.
pub fn write(args: std::fmt::Arguments<'_>) {
    let Some(Some(sink)) = SINK.get() else { return };
    let line = format!("git-credential-github-app: trace: {args}\n");
    match sink {
        Sink::Stderr => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        Sink::File(file) => {
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

/// `trace!("minted {}", token.fingerprint())`: one line when tracing is on, nothing otherwise.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::trace::enabled() {
            $crate::trace::write(format_args!($($arg)*));
        }
    };
}

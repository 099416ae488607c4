//! Secrets (installation tokens, private keys, JWTs) held so that they cannot leak by accident.
//!
//! A [`Secret`] has no `Display`, its `Debug` prints a short fingerprint, and the value is only reachable
//! through [`Secret::expose`], which marks every place where the real value leaves our hands (the protocol
//! answer, the `Authorization` header, the cache).

use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroize;

/// A secret string. Dropping it wipes the bytes it owns.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value. Every call site is a place where the secret leaves this process or is compared.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible tag to show in traces: `sha256:1a2b3c4d`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

/// A secret and when it stops working (Unix seconds, on this machine's clock): a token as GitHub
/// mints it and as the cache holds it.
#[derive(Debug, Clone)]
pub struct Expiring {
    pub secret: Secret,
    pub expires_at: u64,
}

/// Keep this process's memory (the private key, JWTs, tokens) from other processes and from core
/// files, as ssh-agent does: on Linux the process is marked non-dumpable, so no core file is
/// written (a SIGQUIT mid-mint leaves nothing in the repository) and the user's other processes
/// can neither ptrace it nor read its `/proc/PID/mem`. Called first thing in `main`; a failure is
/// traced later and changes nothing else.
pub fn protect_process() -> Result<(), String> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::process::{DumpableBehavior, set_dumpable_behavior};
        set_dumpable_behavior(DumpableBehavior::NotDumpable)
            .map_err(|e| format!("cannot mark the process non-dumpable: {e}"))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(())
    }
}

/// `sha256:` plus the first 8 hex digits of the SHA-256 of `value`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    format!("sha256:{}", hex(&digest[..4]))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    // A table, not `write!("{b:02x}")`: the cache's file names are digests, and formatting
    // machinery per byte was a measurable part of a cached get's instructions.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: wipe the heap buffer we own before it is freed.
        self.0.zeroize();
    }
}

/// What a value someone gave looks like when it could be a secret: a private key, a GitHub
/// token, a client secret or another long random string (`None` otherwise). Messages show such
/// a value as `(a GitHub token, not shown)`.
pub fn kind(text: &str) -> Option<&'static str> {
    let t = text.trim();
    if t.contains("-----BEGIN") || t.contains("PRIVATE KEY") {
        return Some("a private key");
    }
    let token_prefixes = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];
    if token_prefixes.iter().any(|p| t.starts_with(p)) {
        return Some("a GitHub token");
    }
    let random =
        |min: usize, allowed: &dyn Fn(u8) -> bool| t.len() >= min && t.bytes().all(allowed);
    if random(20, &|b| b.is_ascii_hexdigit()) && !t.bytes().all(|b| b.is_ascii_digit()) {
        return Some("what looks like a client secret");
    }
    let mixed = t.bytes().any(|b| b.is_ascii_uppercase())
        && t.bytes().any(|b| b.is_ascii_lowercase())
        && t.bytes().any(|b| b.is_ascii_digit());
    if mixed && random(24, &|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b)) {
        return Some("what looks like a token or secret");
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }

    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("ghs_supersecretvalue");
        let shown = format!("{s:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.starts_with("Secret(sha256:"), "{shown}");
    }

    #[test]
    fn fingerprint_is_stable_and_short() {
        assert_eq!(fingerprint("abc"), "sha256:ba7816bf");
        assert_eq!(Secret::new("abc").fingerprint(), "sha256:ba7816bf");
    }
}

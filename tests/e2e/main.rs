//! End-to-end tests: the built helper under real git, against the local GitHub in
//! `tests/local-github` (REST + `git http-backend`).

mod support;

/// Where tokens are cached and when they are replaced.
mod cache;
/// GitPython, pip git+https and cargo git dependencies through the helper.
mod clients;
/// The helper binary fed requests directly: protocol edge cases, messages, no leaks.
mod direct;
/// cargo's libgit2 path, Go modules, npm and uv fetching private git dependencies.
mod ecosystems;
/// Faults: clock skew, server errors, rate limits, timeouts, concurrency, broken caches.
mod faults;
/// Clone, fetch and push through the helper; who gets a token and who falls through.
mod flows;
/// install.sh into a scratch HOME.
mod install;
/// git-lfs: the LFS batch API and basic transfer through the helper.
mod lfs;
/// HTTPS with a private CA, an untrusted certificate, an HTTP proxy (tinyproxy).
mod network;
/// No token, JWT or key on stderr, whatever happens; keys as people paste them.
mod secrets;
/// Stateless (long, dotted) installation tokens through every cache; the token-format knob.
mod token_format;

//! End-to-end tests: the built helper under real git, against the local GitHub in
//! `tests/local-github` (REST + `git http-backend`).
//!
//! The harness runs on a Unix host: a Windows build is tested from Linux, its `.exe` under Wine
//! (mod `windows`), so this crate is not built for a Windows target.
#![cfg(unix)]

mod support;

/// The GitHub Action's steps (action.yml, revoke/action.yml) run as a runner would.
mod action;

/// Tokens from a broker: octo-sts, chinmina, a token_command; OIDC from each CI.
mod brokers;
/// One time budget per get: every app, lock wait and API call inside --timeout.
mod budget;
/// Where tokens are cached and when they are replaced.
mod cache;
/// The CI recipes of docs/ci.md: Actions' extraheader, submodules across organisations, the shell steps.
mod ci_recipes;
/// The command line: commands, help, a terminal on stdin.
mod cli;
/// GitPython, pip git+https and cargo git dependencies through the helper.
mod clients;
/// token, exec, status, installations, revoke, forget; least privilege; the not-installed notice.
mod commands;
/// The shell completion scripts and the man page, as bash and groff read them.
mod completions;
/// The helper binary fed requests directly: protocol edge cases, messages, no leaks.
mod direct;
/// doctor: every check, against the local GitHub and real git config.
mod doctor;
/// cargo's libgit2 path, Go modules, npm and uv fetching private git dependencies.
mod ecosystems;
/// Faults: clock skew, server errors, rate limits, timeouts, concurrency, broken caches.
mod faults;
/// Clone, fetch and push through the helper; who gets a token and who falls through.
mod flows;
/// Hostile and unlucky cases (issue "never stuck, never echoing").
mod hardening;
/// install.sh into a scratch HOME.
mod install;
/// git-lfs: the LFS batch API and basic transfer through the helper.
mod lfs;
/// HTTPS with a private CA, an untrusted certificate, an HTTP proxy (tinyproxy).
mod network;
/// Public repositories, proactive authentication and the public fallback app.
mod public;
/// The static Linux release binary (scripts/release-build, musl).
mod release;
/// No token, JWT or key on stderr, whatever happens; keys as people paste them.
mod secrets;
/// setup and unsetup under real git: the user's helpers kept, the file restored.
mod setup;
/// setup under attack: a line git runs as written, the user's lines kept, a locked file.
#[cfg(unix)]
mod setup_safety;
/// The JWT signed elsewhere: a signer command, PKCS#11 (SoftHSM2), AWS KMS (moto).
mod signers;
/// The process start: closed standard descriptors, a reader that went away, SIGPIPE.
mod startup;
/// Stateless (long, dotted) installation tokens through every cache; the token-format knob.
mod token_format;
/// GitHub App user tokens: login (device flow), clone and push as the person, refresh once
/// across processes, bad_refresh_token, no login from get, both kinds side by side.
mod user_tokens;
/// The Windows build under Wine, answering Linux git (.ci/windows.sh prepares it).
mod windows;

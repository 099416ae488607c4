//! git-credential-github-app: a git credential helper that answers with GitHub App installation tokens.
//!
//! Data flows one way: [`protocol`] parses git's request → [`route`] picks the configured entries
//! and the owner from the [`config`] → [`app`] asks each entry's token [`source`] where its token
//! is cached and answers from the [`cache`] if it is fresh → otherwise, under a cross-process lock
//! in [`state`], the source fetches one (for [`source::installation`]: [`github`] finds the
//! installation and mints a token with a JWT from [`jwt`], signed by a [`signer`] — a [`key`] on
//! this machine, a PKCS#11 token, AWS KMS or a command) → the token is cached, recorded in the
//! [`cache::index`], and written back by [`protocol`]. [`app`] is the only module that knows that order,
//! and it knows no kind of token: see [`source`] for the seam a new kind plugs into.

pub mod about;
pub mod app;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod container;
pub mod gitconfig;
pub mod github;
pub mod jwt;
pub mod key;
pub mod keyref;
pub mod net;
pub mod private_file;
pub mod protocol;
pub mod route;
pub mod secret;
pub mod signer;
pub mod source;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub mod startup;
pub mod state;
pub mod trace;

/// Unit tests that cannot run here say so in `scripts/test`'s summary (shared with tests/e2e).
/// Only Unix tests skip so far.
#[cfg(all(test, unix))]
#[path = "../tests/support/skip.rs"]
mod test_skip;

//! git-credential-github-app: a git credential helper that answers with GitHub App installation tokens.
//!
//! Data flows one way: [`protocol`] parses git's request → [`route`] picks the app and owner from the
//! [`config`] → [`cache`] answers if it holds a fresh token → otherwise, under a cross-process lock,
//! [`github`] finds the installation and mints a token with a JWT from [`jwt`], signed by a
//! [`signer`] (a [`key`] on this machine, a PKCS#11 token, AWS KMS or a command) → the token
//! is cached and written back by [`protocol`]. [`app`] is the only module that knows that order.

pub mod app;
#[path = "source/broker/mod.rs"]
pub mod broker;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod gitconfig;
pub mod github;
pub mod index;
pub mod jwt;
pub mod key;
pub mod protocol;
pub mod route;
pub mod secret;
pub mod signer;
pub mod state;
pub mod trace;

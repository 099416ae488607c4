//! Kinds of token.

pub mod user;

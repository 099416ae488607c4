//! GitHub App user access tokens: a person logs in once with the device flow (`login`), and git
//! gets that person's token, refreshed under the cross-process lock when it runs out.

pub mod login;
pub mod oauth;
pub mod store;

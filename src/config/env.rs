//! Environment variables read by the helper (besides `HOME`/`XDG_*`). The global options'
//! table (`flags::GLOBAL`) names the variable of each option from here.

pub const APP_ID: &str = "GITHUB_APP_ID";
pub const PRIVATE_KEY: &str = crate::keyref::PRIVATE_KEY_ENV;
pub const PRIVATE_KEY_PATH: &str = "GITHUB_APP_PRIVATE_KEY_PATH";
pub const INSTALLATION_ID: &str = "GITHUB_APP_INSTALLATION_ID";
pub const API_URL: &str = "GITHUB_APP_API_URL";
pub const HOST: &str = "GITHUB_APP_HOST";
pub const CONFIG: &str = "GIT_CREDENTIAL_GITHUB_APP_CONFIG";
pub const CACHE: &str = "GIT_CREDENTIAL_GITHUB_APP_CACHE";
pub const REFRESH_MARGIN: &str = "GIT_CREDENTIAL_GITHUB_APP_REFRESH_MARGIN";
pub const TIMEOUT: &str = "GIT_CREDENTIAL_GITHUB_APP_TIMEOUT";
pub const TRACE: &str = "GIT_CREDENTIAL_GITHUB_APP_TRACE";
pub const STATELESS_TOKENS: &str = "GIT_CREDENTIAL_GITHUB_APP_STATELESS_TOKENS";

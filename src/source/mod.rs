//! Token sources: where a token for git comes from. Each kind of token is one [`TokenSource`]
//! implementation in its own module; everything around it — the cache and its refresh margin,
//! the fallback to a still-valid token, the single-flight cross-process lock and its takeover,
//! `erase`, the index of minted tokens, `status`, `revoke`, `forget`, `token` and `exec` — lives
//! once in `app` and the commands, and knows no kind.
//!
//! # The seam
//!
//! - A configured entry ([`App`]) says where its tokens come from in a [`SourceSpec`] (config
//!   parses it; config knows nothing of sources). [`open`] turns an entry into a
//!   `Box<dyn TokenSource>`: it is the one registration point, one `match` arm per kind.
//! - The generic layer asks the source, for a [`Target`] (host, owner, repository):
//!   1. [`TokenSource::key`] before any lock: where a token for the target is cached
//!      ([`Known::Key`]), that this cannot be known before fetching ([`Known::Unknown`]), or that
//!      the target is already known not to be this source's ([`Known::NotMine`]). Called on
//!      every cached `get`: it must be cheap (no network, at most a small file read).
//!   2. on a miss, [`TokenSource::flight`] names the single-flight lock (processes that would
//!      fetch the same token take the same lock), and [`TokenSource::fetch`] gets the token
//!      under that lock, within the [`Cx`]'s deadline. It returns [`Fetched::Token`] (a
//!      [`Token`] and the [`CacheKey`] it goes under) or [`Fetched::NotMine`] with a typed
//!      reason ([`NotMine`]): not an error, `get` passes the request on to the next entry and
//!      then to git's next helper. Errors are errors: `get` falls back to a cached token that
//!      is still valid, else fails with one line.
//! - `revoke` works from the index record of a cached token, without the configuration:
//!   [`revoke`] has one arm per [`Kind`].
//!
//! A new kind of token is: a variant in `config::SourceSpec` (and the config keys that build
//! it), a variant in [`Kind`], a module here implementing [`TokenSource`], an arm in [`open`]
//! and in [`revoke`]; plus, if it has reasons of its own not to serve, a variant in [`NotMine`]
//! (with its arms in [`NotMine::asked_now`] and [`NotMine::since`], and in the messages of
//! `app::NotServed`, which say on stderr why a request was left to other helpers).
//!
//! A source whose upstream gives no expiry sets `expires_at` itself (brokers: at most
//! [`broker::exchange::ASSUMED_LIFETIME`] from when the token was asked for), so that the cache
//! and the refresh margin work the same for it.

pub mod broker;
pub mod installation;
pub mod user;

use crate::cache::CacheKey;
use crate::config::{App, AppId, Config, Host, SourceSpec};
use crate::github::unix_now;
use crate::github::{Deadline, Revoked};
use crate::secret::Secret;
use crate::state::State;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Permissions as GitHub writes them: `contents` → `read`.
pub type Permissions = BTreeMap<String, String>;

/// The kinds of token source. Recorded in the index of minted tokens (`"installation"`), so that
/// `revoke` and `status` know a cached token's kind without the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A GitHub App installation token, minted with the app's key.
    #[default]
    Installation,
    /// A person's user access token through a GitHub App (device flow, refreshed).
    User,
    /// An installation token from octo-sts, for the job's OIDC token.
    OctoSts,
    /// An installation token from chinmina-bridge, for the job's OIDC token.
    Chinmina,
    /// A token printed by a `token_command`.
    Command,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Installation => "installation",
            Kind::User => "user",
            Kind::OctoSts => "octo-sts",
            Kind::Chinmina => "chinmina",
            Kind::Command => "command",
        }
    }
}

/// What a token is wanted for: git's request (or a person's `OWNER[/REPO]`), as routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host git talks to.
    pub host: Host,
    /// The account that owns the repository (lower case), when git sent a path.
    pub owner: Option<String>,
    /// The repository's name, when git sent it.
    pub repo: Option<String>,
}

impl Target {
    /// A short description for messages: `owner 'acme' on github.com`.
    pub fn describe(&self) -> String {
        match &self.owner {
            Some(owner) => format!("owner '{owner}' on {}", self.host.as_str()),
            None => self.host.as_str().to_owned(),
        }
    }
}

/// A token ready for use, and what is known about it.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// Unix seconds, on this machine's clock.
    pub expires_at: u64,
    pub kind: Kind,
    /// The account the token acts for or on, when known (the installation's account).
    pub account: Option<String>,
    /// The permissions as granted, when known (fetched now, or remembered in the index).
    pub permissions: Option<Permissions>,
}

/// Where a token for a target is, as far as can be known before fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// It is cached (if at all) under this key.
    Key(CacheKey),
    /// Not known until fetched (an owner whose installation has not been looked up yet).
    Unknown,
    /// Already known not to be this source's (remembered from an earlier fetch).
    NotMine(NotMine),
}

/// Why a source does not serve a target. Not an error: `get` passes the request on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMine {
    /// The app is not installed on the owner. `since`: remembered from a lookup at that time
    /// (Unix seconds); `None`: GitHub said so just now.
    NotInstalled { app: AppId, since: Option<u64> },
    /// No one is logged in to the app on this host (or the login just ended). `login`: the
    /// command that logs in; `said`: the source already told the person why in this run.
    NotLoggedIn {
        app: String,
        host: String,
        login: String,
        said: bool,
    },
    /// A broker refused (400/403/404: no trust policy, a policy mismatch, an unknown profile) or
    /// declined (chinmina's empty answer, a `token_command` that printed nothing). `message` is
    /// one line, with the broker's own words.
    Broker { message: String },
}

impl NotMine {
    /// Whether the source asked upstream in this run (else: remembered).
    pub fn asked_now(&self) -> bool {
        match self {
            NotMine::NotInstalled { since, .. } => since.is_none(),
            NotMine::NotLoggedIn { .. } => true,
            NotMine::Broker { .. } => true,
        }
    }

    /// Since when it is remembered (Unix seconds), if it is.
    pub fn since(&self) -> Option<u64> {
        match self {
            NotMine::NotInstalled { since, .. } => *since,
            NotMine::NotLoggedIn { .. } => None,
            NotMine::Broker { .. } => None,
        }
    }
}

/// What [`TokenSource::fetch`] got.
#[derive(Debug)]
pub enum Fetched {
    /// A new token, to be cached under `key` (which [`TokenSource::key`] gives from now on).
    Token {
        token: Token,
        key: CacheKey,
        /// What the index records about it beside the token's own fields: see [`About`].
        about: About,
    },
    NotMine(NotMine),
}

/// What the index of minted tokens records about a fetched token (never the token), for
/// `status`, `revoke` and `forget`.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// The installation the token belongs to, when it is an installation token.
    pub installation: Option<u64>,
    /// What the token is narrowed to ("" for everything the source can give), as in the key.
    pub scope: String,
}

/// What a fetch may use: the helper's private state (remembered lookups, clock offsets), the
/// run's deadline, and a way to tell the person something (one line each).
pub struct Cx<'a> {
    pub state: &'a State,
    pub deadline: Deadline,
    pub say: &'a mut dyn FnMut(&str),
}

/// One kind of token. See the module docs for how the generic layer calls it.
pub trait TokenSource {
    fn kind(&self) -> Kind;

    /// What to call this source in messages: `app 123`.
    fn describe(&self) -> String;

    /// Its identity, as recorded in the index: the app's `iss`.
    fn id(&self) -> String;

    /// The REST API base it talks to (no trailing slash).
    fn api_url(&self) -> &str;

    /// Where a token for `target` is cached, before fetching; see [`Known`]. Runs on every
    /// cached `get`: no network, at most a small file read.
    fn key(&self, target: &Target, state: &State) -> Known;

    /// The name of the single-flight lock for `target`: two processes that would fetch the same
    /// token give the same name.
    fn flight(&self, target: &Target) -> String;

    /// Get a token for `target` (the cold path), under the lock named by [`Self::flight`].
    fn fetch(&self, target: &Target, cx: &mut Cx<'_>) -> Result<Fetched>;

    /// git rejected `token`, the one cached for `target` (it is dropped from the cache): forget
    /// whatever would hand the same token out again. Default: nothing (a fetch gets a new one).
    fn rejected(&self, _token: &Secret, _state: &State) {}

    /// Cache entries this source may hold that have no index record (the record could not be
    /// written, or was deleted), so that `status`, `revoke` and `forget` still find them.
    fn unrecorded_entries(&self, _state: &State) -> Vec<Record> {
        Vec::new()
    }
}

/// The token source of a configured entry, talking to `api_url` (the entry's REST API base for
/// the protocol git used). The one registration point: one arm per kind.
pub fn open<'a>(app: &'a App, api_url: String, config: &Config) -> Box<dyn TokenSource + 'a> {
    match &app.source {
        SourceSpec::Installation(spec) => Box::new(installation::Installation::new(
            spec,
            &app.host,
            api_url,
            config.stateless_tokens,
        )),
        SourceSpec::User(spec) => Box::new(user::User::new(spec, &app.host, api_url, config)),
        SourceSpec::Broker(spec) => Box::new(broker::Brokered::new(spec, &app.host, api_url)),
    }
}

/// Revoke a cached token upstream, from its index record (no configuration needed). One arm per
/// kind.
pub fn revoke(record: &Record, token: &Secret, deadline: Deadline) -> Result<Revoked> {
    match record.kind {
        Kind::Installation => installation::revoke(record, token, deadline),
        Kind::User => user::revoke(record),
        // Brokered tokens are installation tokens too: revoked with themselves.
        Kind::OctoSts | Kind::Chinmina | Kind::Command => {
            installation::revoke(record, token, deadline)
        }
    }
}

/// What the index of minted tokens records about one cached token (never the token itself), for
/// `status`, `revoke` and `forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The cache key, as [`CacheKey::as_str`].
    pub key: String,
    /// The kind of token source that fetched it (records written before kinds existed are
    /// installation tokens).
    #[serde(default)]
    pub kind: Kind,
    pub host: String,
    pub api: String,
    /// The source's identity: the app's `iss` (App ID or client ID).
    pub app: String,
    /// The owner it was minted for (empty for an installation given by id without a path).
    pub owner: String,
    /// The installation (0: not an installation token).
    pub installation: u64,
    /// The account the installation belongs to, as GitHub wrote it.
    pub account: String,
    /// Permissions and repository the token is narrowed to ("" for all).
    pub scope: String,
    /// `sha256:` + 8 hex digits of the token: enough to recognise it, useless to use it.
    pub fingerprint: String,
    pub expires_at: u64,
    pub minted_at: u64,
    /// The permissions GitHub granted.
    pub permissions: BTreeMap<String, String>,
    /// The cache stores that took it.
    pub stores: Vec<String>,
}

impl Record {
    pub fn new(
        source: &dyn TokenSource,
        target: &Target,
        key: &CacheKey,
        token: &Token,
        about: &About,
        stores: &[&str],
    ) -> Record {
        Record {
            key: key.as_str().to_owned(),
            kind: token.kind,
            host: target.host.as_str().to_owned(),
            api: source.api_url().to_owned(),
            app: source.id(),
            owner: target.owner.clone().unwrap_or_default(),
            installation: about.installation.unwrap_or_default(),
            account: token.account.clone().unwrap_or_default(),
            scope: about.scope.clone(),
            fingerprint: token.secret.fingerprint(),
            expires_at: token.expires_at,
            minted_at: unix_now(),
            permissions: token.permissions.clone().unwrap_or_default(),
            stores: stores.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The cache key of the entry it describes.
    pub fn cache_key(&self) -> CacheKey {
        CacheKey::new(self.key.as_str())
    }
}

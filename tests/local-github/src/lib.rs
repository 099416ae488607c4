//! `local-github`: a local emulator of the parts of GitHub (Enterprise Server URL
//! layout) that a git credential helper acting as a GitHub App touches:
//!
//! * REST under `/api/v3`: `GET /app`, `GET /app/installations[/{id}]`,
//!   `GET /repos/{o}/{r}/installation`, `GET /users/{u}/installation`,
//!   `GET /orgs/{o}/installation`, `POST /app/installations/{id}/access_tokens`,
//!   `GET /installation/repositories`, `DELETE /installation/token`, `GET /rate_limit`,
//!   with GitHub's JWT rules and error strings;
//! * git smart HTTP at `/{owner}/{repo}[.git]/...`, authorised with minted
//!   installation tokens and served by the real `git http-backend`; public
//!   repositories for anyone;
//! * the Git LFS batch API and basic transfer (`lfs`), `?go-get=1` meta tags (`goget`);
//! * the services that trade a CI job's OIDC token for an installation token, each on its own
//!   port: an OIDC issuer with GitHub Actions' ID-token endpoint ([`OidcIssuer`]), octo-sts
//!   with trust policies read from the repositories ([`OctoSts`]), chinmina-bridge ([`Chinmina`]),
//!   a generic RFC 8693 token-exchange server ([`TokenExchange`]);
//! * optionally HTTPS with a CA made for the run (`tls`);
//! * fault injection (status answers, delays, dropped connections), a skewable
//!   server clock, configurable token lifetime and format, world mutations and a
//!   request log, in-process ([`GitHub`]) or over `/_emulator/*` (the binary).
//!
//! ```no_run
//! use local_github::{Account, App, GitHub, Installation};
//! let gh = GitHub::builder()
//!     .app(App::new(1001, "demo-app"))
//!     .account(Account::org("acme"))
//!     .repo("acme", "widgets")
//!     .installation(Installation::new(11, 1001, "acme").selected(["widgets"]))
//!     .start()
//!     .unwrap();
//! println!("{} {}", gh.api_url(), gh.app(1001).private_key_pem());
//! ```

mod api;
mod chinmina;
mod control;
mod git;
mod goget;
mod http;
mod jwt;
mod keys;
mod lfs;
mod minter;
mod model;
mod oauth;
mod octo_sts;
mod oidc;
mod public;
mod rfc8693;
mod state;
mod tls;
mod users;
mod world_file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use chinmina::{Chinmina, ChinminaRequest, VEND_CACHE_SECS, buildkite_claims};
pub use keys::AppKey;
pub use model::{
    Account, AccountType, App, Fault, FaultAction, Installation, IssuedToken, RepositorySelection,
    RequestRecord, TokenFormat,
};
pub use octo_sts::{OctoSts, StsExchange};
pub use oidc::{ACTIONS_TOKEN_LIFETIME, ActionsJob, OidcIssuer};
pub use rfc8693::TokenExchange;
pub use users::{
    DEFAULT_DEVICE_CODE_LIFETIME, DEFAULT_DEVICE_INTERVAL, DEFAULT_REFRESH_TOKEN_LIFETIME,
    DEFAULT_USER_TOKEN_LIFETIME, OAuthStats, UserToken,
};
pub use world_file::{AccountSpec, AppSpec, InstallationSpec, WorldFile, write_private};

use http::{HttpRequest, HttpResponse, Outcome};
use state::World;

/// `Mutex::lock` that ignores poisoning: a panicking request thread must not
/// take the whole emulator down with it.
pub(crate) trait LockExt<T> {
    fn guard(&self) -> std::sync::MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn guard(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The error type of this crate.
#[derive(Debug, Clone)]
pub struct Error(String);

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Default installation-token lifetime: one hour (POST access_tokens description).
pub const DEFAULT_TOKEN_LIFETIME: u64 = 3600;
/// Default tolerance, in seconds, for a JWT `iat` ahead of the server clock.
pub const DEFAULT_IAT_LEEWAY: i64 = 1;
/// Primary rate limit reported in `x-ratelimit-limit` (docs: 5,000 requests/h minimum for installations).
pub const RATE_LIMIT: u64 = 5000;

/// State shared by the request threads.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    clock_offset: AtomicI64,
    token_lifetime: AtomicU64,
    token_format: AtomicU8,
    iat_leeway: AtomicI64,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<RequestRecord>>,
    seq: AtomicU64,
    rate: Mutex<(u64, i64)>,
    pub repo_root: PathBuf,
    pub base: String,
    pub api: String,
    pub host: String,
    pub started: i64,
    pub stateless_secret: Vec<u8>,
    /// Public repositories (`owner/name`, lower case): fetched without credentials.
    pub public: Mutex<std::collections::BTreeSet<String>>,
}

impl Shared {
    pub fn now(&self) -> i64 {
        real_now() + self.clock_offset.load(Ordering::SeqCst)
    }
    pub fn urls(&self) -> api::Urls<'_> {
        api::Urls {
            api: &self.api,
            web: &self.base,
            host: &self.host,
        }
    }
    pub fn token_lifetime(&self) -> u64 {
        self.token_lifetime.load(Ordering::SeqCst)
    }
    pub fn token_format(&self) -> TokenFormat {
        match self.token_format.load(Ordering::SeqCst) {
            1 => TokenFormat::Stateless,
            _ => TokenFormat::Classic,
        }
    }
    pub fn iat_leeway(&self) -> i64 {
        self.iat_leeway.load(Ordering::SeqCst)
    }
    fn set_token_format(&self, f: TokenFormat) {
        let v = match f {
            TokenFormat::Classic => 0,
            TokenFormat::Stateless => 1,
        };
        self.token_format.store(v, Ordering::SeqCst);
    }

    /// (limit, used, reset) of the hourly window at server time `now`.
    pub fn rate_snapshot(&self, now: i64) -> (u64, u64, i64) {
        let mut r = self.rate.guard();
        if now >= r.1 || r.1 - now > 3600 {
            *r = (0, now + 3600);
        }
        (RATE_LIMIT, r.0, r.1)
    }
    fn rate_count(&self, now: i64) -> (u64, u64, i64) {
        self.rate_snapshot(now);
        let mut r = self.rate.guard();
        r.0 += 1;
        (RATE_LIMIT, r.0, r.1)
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<FaultAction> {
        let mut faults = self.faults.guard();
        let i = faults.iter().position(|f| f.matches(method, path))?;
        let action = faults[i].action.clone();
        faults[i].times -= 1;
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(action)
    }

    fn count(&self, method: &str, prefix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(prefix))
            .count()
    }

    fn stats(&self) -> serde_json::Value {
        let log = self.log.guard();
        let mints = log.iter().filter(|r| is_mint(r)).count();
        let lookups = log.iter().filter(|r| is_lookup(r)).count();
        let git = log.iter().filter(|r| is_git(r)).count();
        serde_json::json!({"requests": log.len(), "mints": mints, "lookups": lookups, "git": git})
    }
}

/// Git (and LFS) requests: everything outside the REST API and the OAuth endpoints.
fn is_git(r: &RequestRecord) -> bool {
    !r.path.starts_with("/api/v3") && !oauth::is_oauth_path(&r.path)
}

fn is_mint(r: &RequestRecord) -> bool {
    r.method == "POST" && r.path.starts_with("/api/v3/app/installations/")
}

/// Installation lookups: `GET .../installation` (repos, users, orgs) and `GET /app/installations[/{id}]`.
fn is_lookup(r: &RequestRecord) -> bool {
    r.method == "GET"
        && r.path.starts_with("/api/v3/")
        && (r.path.ends_with("/installation") || r.path.starts_with("/api/v3/app/installations"))
}

fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

/// Builds a [`GitHub`].
#[derive(Default)]
pub struct Builder {
    apps: Vec<App>,
    accounts: Vec<Account>,
    repos: Vec<(String, String)>,
    installations: Vec<Installation>,
    token_lifetime: Option<u64>,
    token_format: TokenFormat,
    clock_offset: i64,
    iat_leeway: Option<i64>,
    state_dir: Option<PathBuf>,
    addr: Option<SocketAddr>,
    https: bool,
    hostname: Option<String>,
    public: Vec<(String, String)>,
    members: Vec<(String, String, String)>,
    collaborators: Vec<(String, String, String, String)>,
    oauth: users::OAuthSettings,
}

impl Builder {
    pub fn app(mut self, app: App) -> Builder {
        self.apps.push(app);
        self
    }
    pub fn account(mut self, account: Account) -> Builder {
        self.accounts.push(account);
        self
    }
    /// A repository `owner/name`, created on disk as a bare repository with one commit on `main`.
    /// An owner not declared with [`Builder::account`] becomes a `User`.
    pub fn repo(mut self, owner: &str, name: &str) -> Builder {
        self.repos.push((owner.to_string(), name.to_string()));
        self
    }
    /// A public repository `owner/name`: anyone may clone it, with or without a token.
    pub fn public_repo(mut self, owner: &str, name: &str) -> Builder {
        self.public.push((owner.to_string(), name.to_string()));
        self.repo(owner, name)
    }
    pub fn installation(mut self, inst: Installation) -> Builder {
        self.installations.push(inst);
        self
    }
    /// `login` is a member of organisation `org` with `permission` (`read`, `write`, `admin`)
    /// on its repositories (what the user may do there with a user token, app permitting).
    pub fn member(mut self, org: &str, login: &str, permission: &str) -> Builder {
        self.members
            .push((org.into(), login.into(), permission.into()));
        self
    }
    /// `login` is a collaborator on `owner/name` with `permission`.
    pub fn collaborator(
        mut self,
        owner: &str,
        name: &str,
        login: &str,
        permission: &str,
    ) -> Builder {
        self.collaborators
            .push((owner.into(), name.into(), login.into(), permission.into()));
        self
    }
    /// Lifetime of user access tokens (default 28800 s) and of refresh tokens (default
    /// 15897600 s), as the token endpoint reports them in `expires_in` /
    /// `refresh_token_expires_in`.
    pub fn user_token_lifetimes(mut self, access_secs: u64, refresh_secs: u64) -> Builder {
        self.oauth.user_token_lifetime = access_secs;
        self.oauth.refresh_token_lifetime = refresh_secs;
        self
    }
    /// The device flow's `interval` (default 5 s) and device-code lifetime (default 900 s).
    pub fn device_flow_timing(mut self, interval_secs: u64, code_lifetime_secs: u64) -> Builder {
        self.oauth.device_interval = interval_secs;
        self.oauth.device_code_lifetime = code_lifetime_secs;
        self
    }
    /// Lifetime of minted tokens in seconds (default 3600).
    pub fn token_lifetime(mut self, secs: u64) -> Builder {
        self.token_lifetime = Some(secs);
        self
    }
    pub fn token_format(mut self, format: TokenFormat) -> Builder {
        self.token_format = format;
        self
    }
    /// Server clock = real time + `secs`.
    pub fn clock_offset(mut self, secs: i64) -> Builder {
        self.clock_offset = secs;
        self
    }
    /// Seconds a JWT `iat` may be ahead of the server clock (default 1).
    pub fn iat_leeway(mut self, secs: i64) -> Builder {
        self.iat_leeway = Some(secs);
        self
    }
    /// Keep the bare repositories in `dir` (default: a temporary directory removed on drop).
    /// Existing repositories there are reused.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.state_dir = Some(dir.into());
        self
    }
    /// Listen address (default `127.0.0.1:0`).
    pub fn addr(mut self, addr: SocketAddr) -> Builder {
        self.addr = Some(addr);
        self
    }

    /// Serve HTTPS (REST and git) with a certificate from a CA made for this run
    /// ([`GitHub::ca_pem`]); the default is plain http.
    pub fn https(mut self) -> Builder {
        self.https = true;
        self
    }
    /// The host name in [`GitHub::url`] and friends instead of the listen IP (e.g. `localhost`,
    /// so that clients see a DNS name). The name must resolve to the listen address.
    pub fn hostname(mut self, name: &str) -> Builder {
        self.hostname = Some(name.to_string());
        self
    }

    /// Binds, creates the repositories and serves on background threads until dropped.
    pub fn start(self) -> Result<GitHub> {
        let addr = self
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (listener, local) = http::Server::bind(addr)?;
        let (tempdir, repo_root) = match &self.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.canonicalize()?)
            }
            None => {
                let t = tempfile::Builder::new().prefix("local-github-").tempdir()?;
                let p = t.path().canonicalize()?;
                (Some(t), p)
            }
        };
        let now = real_now() + self.clock_offset;
        let mut world = World::new();
        for app in self.apps {
            if world.apps.contains_key(&app.id) {
                return Err(Error::new(format!("duplicate app id {}", app.id)));
            }
            world.apps.insert(app.id, app);
        }
        for acc in &self.accounts {
            world.ensure_account(&acc.login, acc.kind, acc.id);
        }
        for (owner, name) in &self.repos {
            let rec = world.add_repo(owner, name, now);
            git::create_bare_repo(&repo_root, &rec.owner, &rec.name)?;
        }
        world.users.settings = self.oauth.clone();
        for (org, login, perm) in &self.members {
            world.ensure_account(login, AccountType::User, None);
            world
                .users
                .members
                .entry(state::key(org))
                .or_default()
                .insert(state::key(login), perm.clone());
        }
        for (owner, name, login, perm) in &self.collaborators {
            world.ensure_account(login, AccountType::User, None);
            world
                .users
                .collaborators
                .entry(state::key(&format!("{owner}/{name}")))
                .or_default()
                .insert(state::key(login), perm.clone());
        }
        for inst in &self.installations {
            if world.installations.contains_key(&inst.id) {
                return Err(Error::new(format!("duplicate installation id {}", inst.id)));
            }
            if !world.apps.contains_key(&inst.app_id) {
                return Err(Error::new(format!(
                    "installation {} names unknown app {}",
                    inst.id, inst.app_id
                )));
            }
            world.add_installation(inst, now);
        }
        let mut secret = vec![0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secret[..]);
        let tls = match self.https {
            true => Some(tls::generate(self.hostname.as_slice())?),
            false => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let name = match &self.hostname {
            Some(n) => n.clone(),
            None if local.is_ipv6() => format!("[{}]", local.ip()),
            None => local.ip().to_string(),
        };
        // A default port is left out, as a user would write the URL (`http://localhost/...`).
        let host = match (scheme, local.port()) {
            ("http", 80) | ("https", 443) => name,
            (_, port) => format!("{name}:{port}"),
        };
        let base = format!("{scheme}://{host}");
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            clock_offset: AtomicI64::new(self.clock_offset),
            token_lifetime: AtomicU64::new(self.token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME)),
            token_format: AtomicU8::new(0),
            iat_leeway: AtomicI64::new(self.iat_leeway.unwrap_or(DEFAULT_IAT_LEEWAY)),
            faults: Mutex::default(),
            log: Mutex::default(),
            seq: AtomicU64::new(0),
            rate: Mutex::new((0, now + 3600)),
            repo_root,
            api: format!("{base}/api/v3"),
            host,
            base,
            started: now,
            stateless_secret: secret,
            public: Mutex::new(self.public.iter().map(|(o, n)| public::key(o, n)).collect()),
        });
        shared.set_token_format(self.token_format);
        let handler_shared = shared.clone();
        let handler: Arc<http::Handler> = Arc::new(move |req| dispatch(&handler_shared, req));
        let server =
            http::Server::start(listener, handler, tls.as_ref().map(|t| t.config.clone()))?;
        Ok(GitHub {
            ca_pem: tls.map(|t| t.ca_pem),
            shared,
            addr: local,
            server: Some(server),
            _tempdir: tempdir,
        })
    }
}

/// A running emulator. Serves on background threads; stops (and deletes its
/// temporary repositories) when dropped.
pub struct GitHub {
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<http::Server>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Drop for GitHub {
    fn drop(&mut self) {
        self.server.take();
    }
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("url", &self.url()).finish()
    }
}

impl GitHub {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The PEM certificate of this run's CA when serving HTTPS ([`Builder::https`]).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }
    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.shared.host.clone()
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT/api/v3`
    pub fn api_url(&self) -> String {
        self.shared.api.clone()
    }
    /// `http://127.0.0.1:PORT/owner/name.git`
    pub fn git_url(&self, owner: &str, name: &str) -> String {
        format!("{}/{owner}/{name}.git", self.shared.base)
    }
    /// Directory holding `owner/name.git` bare repositories.
    pub fn repo_root(&self) -> &Path {
        &self.shared.repo_root
    }
    /// The bare repository of `owner/name` on disk.
    pub fn repo_path(&self, owner: &str, name: &str) -> PathBuf {
        let world = self.shared.world.guard();
        let (o, n) = world
            .repo(owner, name)
            .map(|r| (r.owner.clone(), r.name.clone()))
            .unwrap_or_else(|| (owner.to_string(), name.to_string()));
        self.shared.repo_root.join(o).join(format!("{n}.git"))
    }

    /// The app with this id (panics if unknown).
    pub fn app(&self, id: u64) -> App {
        self.shared
            .world
            .lock()
            .unwrap()
            .apps
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("no app {id} in the world"))
    }
    pub fn apps(&self) -> Vec<App> {
        self.shared
            .world
            .lock()
            .unwrap()
            .apps
            .values()
            .cloned()
            .collect()
    }

    // ---- clock, lifetimes, formats ----

    /// The server's clock as unix seconds (real time + offset).
    pub fn now(&self) -> i64 {
        self.shared.now()
    }
    /// Makes the server behave as if its clock were real time + `secs`
    /// (JWT checks, token expiry, the `Date` header).
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.clock_offset.store(secs, Ordering::SeqCst);
    }
    pub fn clock_offset(&self) -> i64 {
        self.shared.clock_offset.load(Ordering::SeqCst)
    }
    /// Lifetime of tokens minted from now on (default 3600 s).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.shared.token_lifetime.store(secs, Ordering::SeqCst);
    }
    pub fn token_lifetime(&self) -> u64 {
        self.shared.token_lifetime()
    }
    pub fn set_token_format(&self, format: TokenFormat) {
        self.shared.set_token_format(format);
    }
    pub fn token_format(&self) -> TokenFormat {
        self.shared.token_format()
    }
    /// Seconds a JWT `iat` may be ahead of the server clock (default 1).
    pub fn set_iat_leeway(&self, secs: i64) {
        self.shared.iat_leeway.store(secs, Ordering::SeqCst);
    }

    /// A JWT for `app_id` that this server accepts now (iat = server now − 60, exp = server now + 540).
    pub fn jwt(&self, app_id: u64) -> String {
        self.app(app_id).jwt_at(self.now())
    }

    // ---- user tokens and the device flow ----

    /// Sets the lifetimes of user access tokens and refresh tokens issued from now on.
    pub fn set_user_token_lifetimes(&self, access_secs: u64, refresh_secs: u64) {
        let mut world = self.shared.world.guard();
        world.users.settings.user_token_lifetime = access_secs;
        world.users.settings.refresh_token_lifetime = refresh_secs;
    }
    /// Sets the device flow's `interval` and code lifetime for codes issued from now on.
    pub fn set_device_flow_timing(&self, interval_secs: u64, code_lifetime_secs: u64) {
        let mut world = self.shared.world.guard();
        world.users.settings.device_interval = interval_secs;
        world.users.settings.device_code_lifetime = code_lifetime_secs;
    }
    /// Ticks or unticks "Enable Device Flow" on an app.
    pub fn set_device_flow(&self, app_id: u64, enabled: bool) -> bool {
        match self.shared.world.guard().apps.get_mut(&app_id) {
            Some(app) => {
                app.device_flow = enabled;
                true
            }
            None => false,
        }
    }
    /// Approves (`true`) or denies the pending device code `user_code` as user `login`, as the
    /// page at `/login/device` does. `false` when no such pending code or user exists.
    pub fn decide_device_code(&self, user_code: &str, login: &str, approve: bool) -> bool {
        oauth::decide(&self.shared, user_code, login, approve)
    }
    /// Every user access token issued so far, oldest first.
    pub fn user_tokens(&self) -> Vec<UserToken> {
        let mut v: Vec<UserToken> = self
            .shared
            .world
            .guard()
            .users
            .tokens
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|t| t.expires_at);
        v
    }
    /// Whether user token `token` would be accepted right now.
    pub fn user_token_is_valid(&self, token: &str) -> bool {
        let now = self.now();
        self.shared.world.guard().users.check(token, now).is_ok()
    }
    /// Makes a user access token expire now (server clock); its refresh token still works.
    pub fn expire_user_token(&self, token: &str) -> bool {
        let now = self.now();
        match self.shared.world.guard().users.tokens.get_mut(token) {
            Some(t) => {
                t.expires_at = Some(now);
                true
            }
            None => false,
        }
    }
    /// Revokes every refresh token (as when the user revokes the app's authorisation): the next
    /// refresh gets `bad_refresh_token`. Access tokens keep working until they expire.
    pub fn revoke_refresh_tokens(&self) {
        for r in self.shared.world.guard().users.refresh_tokens.values_mut() {
            r.spent = true;
        }
    }
    /// Counters of the device flow and refresh grants.
    pub fn oauth_stats(&self) -> OAuthStats {
        self.shared.world.guard().users.stats
    }
    /// Adds `login` to organisation `org` with `permission` on its repositories.
    pub fn add_member(&self, org: &str, login: &str, permission: &str) {
        let mut world = self.shared.world.guard();
        world.ensure_account(login, AccountType::User, None);
        world
            .users
            .members
            .entry(state::key(org))
            .or_default()
            .insert(state::key(login), permission.to_string());
    }

    // ---- faults ----

    /// Queues a fault; faults are consumed in order.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.guard().push(fault);
    }
    pub fn clear_faults(&self) {
        self.shared.faults.guard().clear();
    }
    /// Remaining uses of all queued faults.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .faults
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.times)
            .sum()
    }

    // ---- request log ----

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.guard().clone()
    }
    /// Requests whose method is `method` and path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared.count(method, path_prefix)
    }
    pub fn clear_log(&self) {
        self.shared.log.guard().clear();
    }
    /// `POST /api/v3/app/installations/...` requests (token mints).
    pub fn mint_count(&self) -> usize {
        self.shared.count("POST", "/api/v3/app/installations/")
    }
    /// Installation lookups (`GET .../installation`, `GET /app/installations[/{id}]`).
    pub fn lookup_count(&self) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| is_lookup(r))
            .count()
    }
    /// Git smart-HTTP requests.
    pub fn git_count(&self) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| is_git(r))
            .count()
    }
    /// `{"requests": n, "mints": n, "lookups": n, "git": n}` (also at `GET /_emulator/stats`).
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats()
    }

    // ---- world mutations ----

    /// Adds an app (or replaces the app with the same id).
    pub fn add_app(&self, app: App) {
        self.shared.world.guard().apps.insert(app.id, app);
    }
    /// Adds a cached generated key to the app; returns its PKCS#1 PEM.
    pub fn add_app_key(&self, app_id: u64) -> String {
        let mut world = self.shared.world.guard();
        let app = world.apps.get_mut(&app_id).expect("unknown app");
        let updated = app.clone().with_additional_key();
        let pem = updated.keys.last().unwrap().private_key_pem().to_string();
        *app = updated;
        pem
    }
    /// Removes the app key with this `SHA256:...` fingerprint; JWTs signed with it stop verifying.
    pub fn remove_app_key(&self, app_id: u64, fingerprint: &str) -> bool {
        let mut world = self.shared.world.guard();
        let Some(app) = world.apps.get_mut(&app_id) else {
            return false;
        };
        let before = app.keys.len();
        app.keys.retain(|k| k.fingerprint() != fingerprint);
        app.keys.len() != before
    }
    /// Commits `content` as `path` on `main` of `owner/name` (e.g. an octo-sts trust policy
    /// `.github/chainguard/ci.sts.yaml`), as a push would.
    pub fn write_file(&self, owner: &str, name: &str, path: &str, content: &str) -> Result<()> {
        Ok(minter::write_file(
            &self.repo_path(owner, name),
            path,
            content,
        )?)
    }
    /// Creates `owner/name` (bare repository with one commit) and returns its path.
    pub fn add_repo(&self, owner: &str, name: &str) -> Result<PathBuf> {
        let now = self.now();
        let rec = self.shared.world.guard().add_repo(owner, name, now);
        Ok(git::create_bare_repo(
            &self.shared.repo_root,
            &rec.owner,
            &rec.name,
        )?)
    }
    /// Adds an account (no-op if the login exists).
    pub fn add_account(&self, account: Account) {
        self.shared
            .world
            .lock()
            .unwrap()
            .ensure_account(&account.login, account.kind, account.id);
    }
    /// Installs an app (replacing an installation with the same id).
    pub fn add_installation(&self, inst: Installation) {
        let now = self.now();
        self.shared
            .world
            .lock()
            .unwrap()
            .add_installation(&inst, now);
    }
    /// Deletes an installation: lookups 404, its tokens stop working.
    pub fn uninstall(&self, installation_id: u64) -> bool {
        self.shared
            .world
            .lock()
            .unwrap()
            .installations
            .remove(&installation_id)
            .is_some()
    }
    /// Replaces installation `old_id` by an identical one with id `new_id` (uninstall +
    /// reinstall): old tokens stop working, lookups return the new id.
    pub fn reinstall(&self, old_id: u64, new_id: u64) -> bool {
        let now = self.now();
        let mut world = self.shared.world.guard();
        let Some(mut inst) = world.installations.remove(&old_id) else {
            return false;
        };
        inst.id = new_id;
        inst.created_at = now;
        inst.updated_at = now;
        world.installations.insert(new_id, inst);
        true
    }
    /// Moves an installation to another account (same id).
    pub fn move_installation(&self, installation_id: u64, account: &str) -> bool {
        let now = self.now();
        let mut world = self.shared.world.guard();
        let login = world
            .account(account)
            .map(|a| a.login.clone())
            .unwrap_or_else(|| world.ensure_account(account, AccountType::User, None));
        match world.installations.get_mut(&installation_id) {
            Some(i) => {
                i.account = login;
                i.updated_at = now;
                true
            }
            None => false,
        }
    }
    /// Suspends an installation: minting answers 403, its tokens stop working.
    pub fn suspend(&self, installation_id: u64) -> bool {
        let now = self.now();
        self.update_installation(installation_id, |i| i.suspended_at = Some(now))
    }
    pub fn unsuspend(&self, installation_id: u64) -> bool {
        self.update_installation(installation_id, |i| i.suspended_at = None)
    }
    /// Adds repositories (by name) to a `selected` installation.
    pub fn add_repos_to_installation<S: AsRef<str>>(
        &self,
        installation_id: u64,
        names: impl IntoIterator<Item = S>,
    ) -> bool {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.update_installation(installation_id, |i| {
            for n in names {
                if !i.repositories.iter().any(|r| r.eq_ignore_ascii_case(&n)) {
                    i.repositories.push(n);
                }
            }
        })
    }
    /// Removes repositories from a `selected` installation (tokens lose access at once).
    pub fn remove_repos_from_installation<S: AsRef<str>>(
        &self,
        installation_id: u64,
        names: impl IntoIterator<Item = S>,
    ) -> bool {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.update_installation(installation_id, |i| {
            i.repositories
                .retain(|r| !names.iter().any(|n| n.eq_ignore_ascii_case(r)))
        })
    }
    pub fn set_installation_permissions<K: Into<String>, V: Into<String>>(
        &self,
        installation_id: u64,
        perms: impl IntoIterator<Item = (K, V)>,
    ) -> bool {
        let perms = perms
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.update_installation(installation_id, |i| i.permissions = perms)
    }
    fn update_installation(&self, id: u64, f: impl FnOnce(&mut state::InstRec)) -> bool {
        let now = self.now();
        match self.shared.world.guard().installations.get_mut(&id) {
            Some(i) => {
                f(i);
                i.updated_at = now;
                true
            }
            None => false,
        }
    }

    // ---- tokens ----

    /// Mints a token for an installation without going through HTTP (not logged),
    /// with the installation's permissions and repositories.
    pub fn mint_token(&self, installation_id: u64) -> Result<IssuedToken> {
        let now = self.now();
        let mut world = self.shared.world.guard();
        let inst = world
            .installations
            .get(&installation_id)
            .cloned()
            .ok_or_else(|| Error::new(format!("no installation {installation_id}")))?;
        let repos = match inst.selection {
            RepositorySelection::All => Vec::new(),
            RepositorySelection::Selected => world
                .installation_repos(&inst)
                .into_iter()
                .map(|r| r.name.clone())
                .collect(),
        };
        Ok(world.issue_token(
            installation_id,
            inst.permissions.clone(),
            inst.selection,
            repos,
            now,
            self.shared.token_lifetime(),
            self.shared.token_format(),
            &self.shared.stateless_secret,
        ))
    }
    /// Every token issued so far.
    pub fn tokens(&self) -> Vec<IssuedToken> {
        let mut v: Vec<IssuedToken> = self
            .shared
            .world
            .lock()
            .unwrap()
            .tokens
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|t| t.expires_at);
        v
    }
    /// Whether `token` would be accepted right now.
    pub fn token_is_valid(&self, token: &str) -> bool {
        let now = self.now();
        self.shared
            .world
            .lock()
            .unwrap()
            .check_token(token, now)
            .is_ok()
    }
    pub fn revoke_token(&self, token: &str) -> bool {
        match self.shared.world.guard().tokens.get_mut(token) {
            Some(t) => {
                t.revoked = true;
                true
            }
            None => false,
        }
    }
    pub fn revoke_all_tokens(&self) {
        for t in self.shared.world.guard().tokens.values_mut() {
            t.revoked = true;
        }
    }
    /// Makes a token expire now (server clock).
    pub fn expire_token(&self, token: &str) -> bool {
        let now = self.now();
        match self.shared.world.guard().tokens.get_mut(token) {
            Some(t) => {
                t.expires_at = now;
                t.expires_at_rfc3339 = state::rfc3339(now);
                true
            }
            None => false,
        }
    }
}

/// Handles one request: control endpoints, faults, REST, git; logs it.
fn dispatch(shared: &Arc<Shared>, req: HttpRequest) -> Outcome {
    if req.path.starts_with("/_emulator/") || req.path == "/_emulator" {
        return Outcome::Respond(control::handle(shared, &req));
    }
    let started = Instant::now();
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let request_id = format!(
        "{:04X}:{:04X}:{:06X}:{:07X}:{:08X}",
        std::process::id() & 0xFFFF,
        (seq >> 24) & 0xFFFF,
        seq & 0xFF_FFFF,
        shared.started & 0xFFF_FFFF,
        seq.wrapping_mul(2_654_435_761) & 0xFFFF_FFFF
    );
    let arrived = shared.now();
    let mut fault_name = None;
    let outcome = match shared.take_fault(&req.method, &req.path) {
        Some(FaultAction::Drop) => {
            fault_name = Some("drop");
            Outcome::Drop
        }
        Some(FaultAction::Respond {
            status,
            content_type,
            body,
            headers,
        }) => {
            fault_name = Some("respond");
            let mut r = HttpResponse::new(status, &content_type, body);
            common_headers(shared, &mut r, &request_id);
            for (k, v) in headers {
                r.set_header(&k, v);
            }
            Outcome::Respond(r)
        }
        Some(FaultAction::Delay(d)) => {
            fault_name = Some("delay");
            std::thread::sleep(d);
            Outcome::Respond(serve(shared, &req, &request_id))
        }
        None => Outcome::Respond(serve(shared, &req, &request_id)),
    };
    let status = match &outcome {
        Outcome::Respond(r) => r.status,
        Outcome::Drop => 0,
    };
    let auth_scheme = req
        .header("authorization")
        .map(|a| a.split_whitespace().next().unwrap_or("").to_string());
    shared.log.guard().push(RequestRecord {
        seq,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        status,
        user_agent: req.header("user-agent").map(str::to_string),
        accept: req.header("accept").map(str::to_string),
        x_github_api_version: req.header("x-github-api-version").map(str::to_string),
        auth_scheme,
        git_protocol: req.header("git-protocol").map(str::to_string),
        fault: fault_name.map(str::to_string),
        time: arrived,
        elapsed_ms: started.elapsed().as_millis() as u64,
        request_id,
        stateless_s2s_token: req
            .header("x-github-stateless-s2s-token")
            .map(str::to_string),
    });
    outcome
}

fn common_headers(shared: &Shared, r: &mut HttpResponse, request_id: &str) {
    r.set_header(
        "Date",
        httpdate::fmt_http_date(unix_to_system(shared.now())),
    );
    r.default_header("Server", "local-github");
    r.set_header("X-GitHub-Request-Id", request_id);
}

fn serve(shared: &Shared, req: &HttpRequest, request_id: &str) -> HttpResponse {
    let now = shared.now();
    let mut r = if req.path == "/api/v3" || req.path.starts_with("/api/v3/") {
        rest(shared, req, now)
    } else if oauth::is_oauth_path(&req.path) {
        oauth::handle(shared, req, now)
    } else if goget::is_go_get(req) {
        goget::handle(&shared.base, req)
    } else if let Some(lp) = lfs::parse_path(&req.path) {
        lfs::handle(shared, req, &lp, now)
    } else if let Some(gp) = git::parse_path(&req.path) {
        let auth = {
            let world = shared.world.guard();
            let public = shared.public.guard();
            match public::authorize(&world, &public, req, &gp, now) {
                Some(anyone) => Ok(anyone),
                None => {
                    let is_public = world
                        .repo(&gp.owner, &gp.repo)
                        .is_some_and(|r| public.contains(&public::key(&r.owner, &r.name)));
                    git::authorize(&world, req, &gp, is_public, now)
                }
            }
        };
        match auth {
            Ok(auth) => git::run_backend(&shared.repo_root, req, &auth).unwrap_or_else(|e| {
                HttpResponse::new(500, "text/plain; charset=UTF-8", format!("{e}\n"))
            }),
            Err(resp) => resp,
        }
    } else {
        HttpResponse::new(404, "text/plain; charset=UTF-8", "Not Found\n")
    };
    common_headers(shared, &mut r, request_id);
    r
}

fn rest(shared: &Shared, req: &HttpRequest, now: i64) -> HttpResponse {
    if req
        .header("user-agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        return HttpResponse::new(403, "text/html", api::MSG_NO_USER_AGENT);
    }
    let path = &req.path["/api/v3".len()..];
    let (limit, used, reset) = if path == "/rate_limit" {
        shared.rate_snapshot(now)
    } else {
        shared.rate_count(now)
    };
    let mut r = api::handle(shared, req, path, now);
    if r.status != 204 {
        r.default_header("Content-Type", api::JSON);
    }
    r.set_header("X-GitHub-Media-Type", "github.v3; format=json");
    r.set_header(
        "X-GitHub-Api-Version-Selected",
        req.header("x-github-api-version").unwrap_or("2022-11-28"),
    );
    r.set_header("x-ratelimit-limit", limit.to_string());
    r.set_header(
        "x-ratelimit-remaining",
        limit.saturating_sub(used).to_string(),
    );
    r.set_header("x-ratelimit-reset", reset.to_string());
    r.set_header("x-ratelimit-used", used.to_string());
    r.set_header("x-ratelimit-resource", "core");
    r
}

//! Public description types: apps, accounts, installations, tokens, faults, log records.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::keys::AppKey;

/// A GitHub App: id, client id, slug, name and one or more RSA keys.
#[derive(Clone, Debug)]
pub struct App {
    pub(crate) id: u64,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) owner: Option<String>,
    pub(crate) permissions: BTreeMap<String, String>,
    pub(crate) keys: Vec<AppKey>,
    /// "Enable Device Flow" in the app's settings (off unless ticked, as on GitHub).
    pub(crate) device_flow: bool,
    /// "Opt-in to user access token expiration" (on for new apps): user tokens expire and come
    /// with a refresh token.
    pub(crate) expiring_user_tokens: bool,
    /// Next key-cache slot offset for [`App::with_additional_key`] (never reused).
    pub(crate) next_key: u64,
}

/// Default permissions of apps and installations when none are given.
pub(crate) fn default_permissions() -> BTreeMap<String, String> {
    [("contents", "write"), ("metadata", "read")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl App {
    /// An app with one 2048-bit RSA key taken from the per-process key cache
    /// (the same app id always gets the same key within one process, so many
    /// tests do not each pay for key generation).
    pub fn new(id: u64, slug: &str) -> App {
        App::with_key(id, slug, AppKey::pooled(id.wrapping_mul(64)))
    }

    /// An app with a freshly generated key that no other app in the process shares.
    pub fn new_unique_key(id: u64, slug: &str) -> App {
        App::with_key(id, slug, AppKey::generate())
    }

    /// An app whose (first) key is loaded from a PKCS#1 or PKCS#8 PEM.
    pub fn with_key_pem(id: u64, slug: &str, pem: &str) -> Result<App, Error> {
        Ok(App::with_key(id, slug, AppKey::from_pem(pem)?))
    }

    pub fn with_key(id: u64, slug: &str, key: AppKey) -> App {
        App {
            id,
            slug: slug.to_string(),
            name: slug.to_string(),
            client_id: default_client_id(id),
            owner: None,
            permissions: default_permissions(),
            keys: vec![key],
            device_flow: false,
            expiring_user_tokens: true,
            next_key: 1,
        }
    }

    /// Adds a second (third, ...) key from the key cache; all keys verify JWTs.
    pub fn with_additional_key(mut self) -> App {
        let slot = self.id.wrapping_mul(64).wrapping_add(self.next_key);
        self.next_key += 1;
        self.keys.push(AppKey::pooled(slot));
        self
    }

    /// Adds a key loaded from PEM.
    pub fn with_additional_key_pem(mut self, pem: &str) -> Result<App, Error> {
        self.keys.push(AppKey::from_pem(pem)?);
        Ok(self)
    }

    pub fn with_name(mut self, name: &str) -> App {
        self.name = name.to_string();
        self
    }

    pub fn with_client_id(mut self, client_id: &str) -> App {
        self.client_id = client_id.to_string();
        self
    }

    /// Login of the account that owns the app (shown in `GET /app`).
    pub fn with_owner(mut self, login: &str) -> App {
        self.owner = Some(login.to_string());
        self
    }

    /// App-level permissions shown by `GET /app`.
    pub fn with_permissions<K: Into<String>, V: Into<String>>(
        mut self,
        perms: impl IntoIterator<Item = (K, V)>,
    ) -> App {
        self.permissions = perms
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Ticks (or unticks) "Enable Device Flow" (default off, as on GitHub).
    pub fn with_device_flow(mut self, enabled: bool) -> App {
        self.device_flow = enabled;
        self
    }

    /// Whether user tokens expire (8 h, with a 6-month refresh token; the default) or never.
    pub fn with_expiring_user_tokens(mut self, expiring: bool) -> App {
        self.expiring_user_tokens = expiring;
        self
    }

    pub fn device_flow(&self) -> bool {
        self.device_flow
    }

    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn slug(&self) -> String {
        self.slug.clone()
    }
    pub fn name(&self) -> String {
        self.name.clone()
    }
    /// "Iv23li" + 14 alphanumerics unless set with [`App::with_client_id`].
    pub fn client_id(&self) -> String {
        self.client_id.clone()
    }
    pub fn owner(&self) -> Option<String> {
        self.owner.clone()
    }
    pub fn permissions(&self) -> BTreeMap<String, String> {
        self.permissions.clone()
    }
    pub fn keys(&self) -> &[AppKey] {
        &self.keys
    }

    /// The first key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`, as GitHub hands out).
    pub fn private_key_pem(&self) -> String {
        self.keys[0].private_key_pem().to_string()
    }

    /// The first key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn private_key_pkcs8_pem(&self) -> String {
        self.keys[0].private_key_pkcs8_pem().to_string()
    }

    /// `SHA256:<base64>` fingerprint of the first key.
    pub fn fingerprint(&self) -> String {
        self.keys[0].fingerprint().to_string()
    }

    /// Signs arbitrary claims with the first key (RS256), e.g. to craft bad JWTs.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> String {
        self.keys[0].sign_jwt(claims)
    }

    /// A JWT that GitHub accepts at unix time `now`: iat = now - 60, exp = now + 540,
    /// iss = the app id as a string (the docs' Ruby example).
    pub fn jwt_at(&self, now: i64) -> String {
        self.sign_jwt(&serde_json::json!({
            "iat": now - 60,
            "exp": now + 540,
            "iss": self.id.to_string(),
        }))
    }
}

/// "Iv23li" + 14 alphanumerics, derived from the app id (stable across runs).
fn default_client_id(id: u64) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(format!("local-github client id {id}").as_bytes());
    let tail: String = digest
        .iter()
        .take(14)
        .map(|b| ALNUM[*b as usize % ALNUM.len()] as char)
        .collect();
    format!("Iv23li{tail}")
}

/// `User` or `Organization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AccountType {
    User,
    Organization,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::User => "User",
            AccountType::Organization => "Organization",
        }
    }
}

/// A user or organisation account.
#[derive(Clone, Debug)]
pub struct Account {
    pub(crate) login: String,
    pub(crate) id: Option<u64>,
    pub(crate) kind: AccountType,
}

impl Account {
    pub fn user(login: &str) -> Account {
        Account {
            login: login.to_string(),
            id: None,
            kind: AccountType::User,
        }
    }
    pub fn org(login: &str) -> Account {
        Account {
            login: login.to_string(),
            id: None,
            kind: AccountType::Organization,
        }
    }
    /// Sets the numeric id (otherwise one is assigned from 5000 up).
    pub fn id(mut self, id: u64) -> Account {
        self.id = Some(id);
        self
    }
    pub fn login(&self) -> &str {
        &self.login
    }
    pub fn kind(&self) -> AccountType {
        self.kind
    }
}

/// `all` or `selected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositorySelection {
    All,
    Selected,
}

impl RepositorySelection {
    pub fn as_str(self) -> &'static str {
        match self {
            RepositorySelection::All => "all",
            RepositorySelection::Selected => "selected",
        }
    }
}

/// An installation of an app on an account.
#[derive(Clone, Debug)]
pub struct Installation {
    pub(crate) id: u64,
    pub(crate) app_id: u64,
    pub(crate) account: String,
    pub(crate) selection: RepositorySelection,
    pub(crate) repositories: Vec<String>,
    pub(crate) permissions: BTreeMap<String, String>,
    pub(crate) suspended: bool,
}

impl Installation {
    /// Installation `id` of app `app_id` on `account`; repository selection `all`
    /// and permissions `{"contents":"write","metadata":"read"}` unless changed.
    pub fn new(id: u64, app_id: u64, account: &str) -> Installation {
        Installation {
            id,
            app_id,
            account: account.to_string(),
            selection: RepositorySelection::All,
            repositories: Vec::new(),
            permissions: default_permissions(),
            suspended: false,
        }
    }
    pub fn all(mut self) -> Installation {
        self.selection = RepositorySelection::All;
        self.repositories.clear();
        self
    }
    /// Selected repositories, by name (without the owner).
    pub fn selected<S: Into<String>>(mut self, repos: impl IntoIterator<Item = S>) -> Installation {
        self.selection = RepositorySelection::Selected;
        self.repositories = repos.into_iter().map(Into::into).collect();
        self
    }
    pub fn permissions<K: Into<String>, V: Into<String>>(
        mut self,
        perms: impl IntoIterator<Item = (K, V)>,
    ) -> Installation {
        self.permissions = perms
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }
    pub fn suspended(mut self, suspended: bool) -> Installation {
        self.suspended = suspended;
        self
    }
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Format of newly minted installation tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// `ghs_` + 36 alphanumerics (40 characters).
    #[default]
    Classic,
    /// `ghs_{app_id}_{JWT}`: several hundred characters (GitHub's 2026 stateless format).
    Stateless,
}

/// A token the emulator issued.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub installation_id: u64,
    pub app_id: u64,
    /// Server-clock unix time at which the token stops working.
    pub expires_at: i64,
    /// RFC 3339 form of `expires_at`, as returned by the API.
    pub expires_at_rfc3339: String,
    pub permissions: BTreeMap<String, String>,
    pub repository_selection: RepositorySelection,
    /// Repository names when `repository_selection` is `selected`.
    pub repositories: Vec<String>,
    pub revoked: bool,
}

/// What a fault does to a matching request.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer with this status, content type, body and extra headers instead of the real handler.
    Respond {
        status: u16,
        content_type: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    /// Wait, then answer normally.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

impl FaultAction {
    /// A JSON answer (`application/json; charset=utf-8`).
    pub fn json(status: u16, body: serde_json::Value) -> FaultAction {
        FaultAction::Respond {
            status,
            content_type: "application/json; charset=utf-8".into(),
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }
    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> FaultAction {
        FaultAction::Respond {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
    /// A GitHub-style error body `{"message", "documentation_url", "status"}`.
    pub fn github_error(status: u16, message: &str) -> FaultAction {
        FaultAction::json(
            status,
            serde_json::json!({
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": status.to_string(),
            }),
        )
    }
    /// Adds a header to a `Respond` action (ignored for other actions).
    pub fn with_header(mut self, name: &str, value: impl ToString) -> FaultAction {
        if let FaultAction::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
    pub fn delay_ms(ms: u64) -> FaultAction {
        FaultAction::Delay(Duration::from_millis(ms))
    }
}

/// A scripted fault: the next `times` requests matching `method` (any when None)
/// and `path_prefix` (path without query) get `action`. Faults are consumed in
/// the order they were injected.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    pub times: usize,
    pub action: FaultAction,
}

impl Fault {
    /// Matches any method once.
    pub fn new(path_prefix: &str, action: FaultAction) -> Fault {
        Fault {
            method: None,
            path_prefix: path_prefix.to_string(),
            times: 1,
            action,
        }
    }
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
    pub fn times(mut self, times: usize) -> Fault {
        self.times = times;
        self
    }
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// One request as the emulator saw it. Credentials are never recorded: only the
/// scheme of the `Authorization` header.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// Sequence number (0-based, per server).
    pub seq: u64,
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: String,
    /// Status sent; 0 when the connection was dropped by a fault.
    pub status: u16,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub x_github_api_version: Option<String>,
    /// `Bearer`, `token`, `Basic`, ... or None when absent.
    pub auth_scheme: Option<String>,
    /// The `Git-Protocol` request header (git smart HTTP).
    pub git_protocol: Option<String>,
    /// `respond`, `delay` or `drop` when an injected fault applied.
    pub fault: Option<String>,
    /// Server-clock unix time the request arrived.
    pub time: i64,
    /// Wall time spent answering, in milliseconds.
    pub elapsed_ms: u64,
    /// The `X-GitHub-Request-Id` sent back.
    pub request_id: String,
    /// The `X-GitHub-Stateless-S2S-Token` request header (token format override).
    pub stateless_s2s_token: Option<String>,
}

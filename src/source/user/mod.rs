//! GitHub App user access tokens: a person logs in once with the device flow (`login`), and git
//! gets that person's token, refreshed under the cross-process lock when it runs out.
//!
//! [`oauth`] speaks GitHub's OAuth endpoints, [`login`] runs the device flow as a person sees
//! it, [`store`] keeps the login (access token, refresh token, both expiries, who) in the
//! keyring or a 0600 file. This module ties them together: [`log_in`] for the `login` command,
//! [`renew`] for a token that runs out, and [`User`], the [`TokenSource`]: its token is the
//! login's access token, cached like any other under its own key (one per API and app, whatever
//! the owner); on a miss, under the single-flight lock, it reads the login and refreshes it when
//! it has less than the refresh margin left. It never starts a login: without one the request is
//! [`NotMine::NotLoggedIn`] and git asks its next helper.
//!
//! A token of an app that opted out of expiring user tokens never expires; it is cached and
//! answered for [`NON_EXPIRING_ANSWER`] at a time, then read from the login again.

pub mod browser;
pub mod login;
pub mod oauth;
pub mod store;

use super::{About, Cx, Fetched, Kind, Known, NotMine, Record, Target, Token, TokenSource};
use crate::cache::CacheKey;
use crate::config::{AppId, CacheMode, Config, Host, UserSpec};
use crate::github::{Revoked, unix_now};
use crate::secret::Secret;
use crate::state::{Remembered, State, digest};
use anyhow::Result;
use oauth::{OAuthError, Post, Web};
use std::io::Write;
use std::time::Duration;
use store::{Login, LoginKey, Place, Store};

/// How long a token that never expires is answered and cached at a time.
pub const NON_EXPIRING_ANSWER: u64 = 8 * 3600;

/// The user-token source of one configured app.
pub struct User {
    app: UserApp,
    cache: CacheMode,
    refresh_margin: u64,
    /// For keyring calls outside a fetch (`rejected`).
    timeout: Duration,
}

impl User {
    pub fn new(spec: &UserSpec, host: &Host, api_url: String, config: &Config) -> User {
        User {
            app: UserApp {
                client_id: spec.client_id.clone(),
                host: host.as_str().to_owned(),
                api_url,
            },
            cache: config.cache,
            refresh_margin: config.refresh_margin.as_secs(),
            timeout: config.timeout,
        }
    }

    fn cache_key(&self) -> CacheKey {
        cache_key(&self.app)
    }

    /// Whether the app serves `owner` for the logged-in person, as remembered; `None`: not known.
    fn remembered(&self, owner: &str, state: &State) -> Option<(Remembered, u64)> {
        state.lookup_record(&self.app.api_url, &records_app(&self.app), owner)
    }

    fn not_logged_in(&self, said: bool) -> Fetched {
        Fetched::NotMine(NotMine::NotLoggedIn {
            app: self.app.client_id.clone(),
            host: self.app.host.clone(),
            login: self.app.login_command(),
            said,
        })
    }

    fn fetched(&self, login: &Login, now: u64) -> Fetched {
        Fetched::Token {
            token: Token {
                secret: login.access.clone(),
                expires_at: login.expires_at.unwrap_or(now + NON_EXPIRING_ANSWER),
                kind: Kind::User,
                account: Some(login.user.clone()),
                permissions: None,
            },
            key: self.cache_key(),
            about: About::default(),
        }
    }
}

/// The cache key of a login's token: API and app (the login is the same for every owner).
pub fn cache_key(app: &UserApp) -> CacheKey {
    CacheKey::new(format!("{}|user-token|app={}", app.api_url, app.client_id))
}

impl TokenSource for User {
    fn kind(&self) -> Kind {
        Kind::User
    }

    fn describe(&self) -> String {
        format!("app {} (user tokens)", self.app.client_id)
    }

    fn id(&self) -> String {
        self.app.client_id.clone()
    }

    fn api_url(&self) -> &str {
        &self.app.api_url
    }

    /// The token is the same for every owner, but it is answered only for owners where the
    /// person can reach an installation of the app (remembered from `GET /user/installations`),
    /// so that git asks its next helper for the others, as for installation tokens.
    fn key(&self, target: &Target, state: &State) -> Known {
        let Some(owner) = &target.owner else {
            return Known::Key(self.cache_key());
        };
        match self.remembered(owner, state) {
            Some((Remembered::Installation(_), _)) => Known::Key(self.cache_key()),
            Some((Remembered::NotInstalled, at)) => Known::NotMine(NotMine::NotInstalled {
                app: AppId::ClientId(self.app.client_id.clone()),
                since: Some(at),
            }),
            None => Known::Unknown,
        }
    }

    fn flight(&self, _target: &Target) -> String {
        flight(&self.app)
    }

    /// The login's access token was refused (revoked, or the app's access changed): mark it
    /// spent, so that the next fetch refreshes it instead of handing it out again.
    fn rejected(&self, token: &Secret, state: &State) {
        let store = Store::new(
            self.cache,
            store::default_state(),
            std::time::Instant::now() + self.timeout,
        );
        mark_spent(&self.app, &store, state, self.timeout, token);
    }

    fn fetch(&self, target: &Target, cx: &mut Cx<'_>) -> Result<Fetched> {
        let store = Store::new(self.cache, store::default_state(), cx.deadline.at());
        let Some((login, _)) = store.load(&self.app.key()) else {
            return Ok(self.not_logged_in(false));
        };
        let now = unix_now();
        let http = oauth::Http::new(cx.deadline.remaining().max(Duration::from_millis(100)));
        let login = if login
            .expires_at
            .is_none_or(|at| at >= now + self.refresh_margin)
        {
            // Fresh (logged in or refreshed by another process since the cache was written).
            login
        } else {
            crate::trace!(
                "user token {} of {} has {} s left; refreshing",
                login.access.fingerprint(),
                login.user,
                login.expires_at.unwrap_or(now).saturating_sub(now)
            );
            match renew(&self.app, &store, &login, &http, now)? {
                Renewed::Login(renewed) => renewed,
                Renewed::Gone(text) => {
                    (cx.say)(&text);
                    return Ok(self.not_logged_in(true));
                }
            }
        };
        if let Some(owner) = &target.owner
            && !matches!(
                self.remembered(owner, cx.state),
                Some((Remembered::Installation(_), _))
            )
            && !remember_installations(&self.app, cx.state, &http, &login.access)?
                .iter()
                .any(|(account, _)| account == owner)
        {
            cx.state
                .remember_not_installed(&self.app.api_url, &records_app(&self.app), owner);
            return Ok(Fetched::NotMine(NotMine::NotInstalled {
                app: AppId::ClientId(self.app.client_id.clone()),
                since: None,
            }));
        }
        Ok(self.fetched(&login, now))
    }
}

/// The name of the single-flight lock under which a login is refreshed (and marked spent).
fn flight(app: &UserApp) -> String {
    digest(&[&app.api_url, "user-token", &app.client_id])
}

/// Mark the stored login's access token spent if it is still `token`, under the lock a refresh
/// holds: without it, a login read before a concurrent refresh would be written back over the
/// refreshed one, and its rotated refresh token lost. Without the lock within `wait`, nothing is
/// written. Returns whether the login was marked.
fn mark_spent(app: &UserApp, store: &Store, state: &State, wait: Duration, token: &Secret) -> bool {
    let Some(_lock) = state.lock(&flight(app), wait) else {
        crate::trace!("the login is being refreshed elsewhere; not marking the rejected token");
        return false;
    };
    let Some((mut login, _)) = store.load(&app.key()) else {
        return false;
    };
    if login.access != *token {
        crate::trace!("the rejected user token is no longer the stored one; login kept");
        return false;
    }
    login.expires_at = Some(0);
    match store.save(&app.key(), &login) {
        Ok(_) => true,
        Err(e) => {
            crate::trace!("cannot mark the rejected user token as spent: {e:#}");
            false
        }
    }
}

/// The identity under which owner → installation records of a user-token app are remembered:
/// apart from an installation-token entry of the same app, because what the person can reach is
/// not what the app can.
pub fn records_app(app: &UserApp) -> AppId {
    AppId::ClientId(format!("user:{}", app.client_id))
}

/// Ask GitHub which of the app's installations the person can reach (`GET
/// /user/installations`) and remember each account (lower case) as served. Returns them.
pub fn remember_installations(
    app: &UserApp,
    state: &State,
    post: &dyn Post,
    token: &Secret,
) -> Result<Vec<(String, u64)>> {
    let found = oauth::user_installations(post, &app.api_url, &app.host, token)
        .map_err(|e| anyhow::anyhow!("{}", e.explain(&app.client_id, &app.host)))?;
    let found: Vec<(String, u64)> = found
        .into_iter()
        .map(|(account, id)| (account.to_ascii_lowercase(), id))
        .collect();
    for (account, id) in &found {
        state.remember_installation(&app.api_url, &records_app(app), account, *id);
    }
    crate::trace!(
        "app {} reaches {} installation(s) for the person",
        app.client_id,
        found.len()
    );
    Ok(found)
}

/// Forget what was remembered about owners for `app` (another login may reach other owners).
pub fn forget_installations(app: &UserApp, state: &State) {
    let who = records_app(app);
    for record in state.installation_records() {
        if record.api == app.api_url && record.app == who.iss() {
            state.forget_installation(&app.api_url, &who, &record.owner);
        }
    }
}

/// A configured user-token app and its stored login, if any (for `status` and `doctor`).
pub struct LoginInfo {
    pub app: UserApp,
    pub login: Option<(Login, Place)>,
}

/// Every configured app with user tokens, with its stored login. No GitHub call.
pub fn logins(config: &Config, deadline: std::time::Instant) -> Vec<LoginInfo> {
    let store = Store::new(config.cache, store::default_state(), deadline);
    config
        .apps
        .iter()
        .filter_map(|a| match &a.source {
            crate::config::SourceSpec::User(spec) => Some(UserApp {
                client_id: spec.client_id.clone(),
                host: a.host.as_str().to_owned(),
                api_url: a.api_url(a.git_protocol()),
            }),
            _ => None,
        })
        .map(|app| LoginInfo {
            login: store.load(&app.key()),
            app,
        })
        .collect()
}

/// A refresh token with less than this left is reported by `doctor`: log in again before then.
pub const REFRESH_WARNING: u64 = 14 * 86_400;

/// One `doctor` check of a user-token app: (stable id, passed, one line).
pub type Check = (&'static str, bool, String);

/// `doctor`'s checks for a user-token app: the login, the refresh token's remaining life, the
/// stored token against `GET /user`, and whether the device flow is enabled (a device code is
/// requested and left unused; it expires by itself).
pub fn doctor_checks(app: &UserApp, cache: CacheMode, timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    let store = Store::new(cache, store::default_state(), deadline);
    let now = unix_now();
    let http = oauth::Http::new(timeout.min(Duration::from_secs(10)));
    match store.load(&app.key()) {
        None => checks.push((
            "login",
            false,
            format!(
                "no one is logged in to {} with app {}: git asks its next helper; run: {}",
                app.host,
                app.client_id,
                app.login_command()
            ),
        )),
        Some((login, place)) => {
            checks.push((
                "login",
                true,
                format!(
                    "logged in to {} as {} with app {} ({}; kept in {})",
                    app.host,
                    login.user,
                    app.client_id,
                    lifetimes(&login, now),
                    place.describe()
                ),
            ));
            checks.push(match (&login.refresh, login.refresh_expires_at) {
                (Some(_), Some(at)) if at <= now => (
                    "refresh-token",
                    false,
                    format!("the refresh token expired; run: {}", app.login_command()),
                ),
                (Some(_), Some(at)) if at - now < REFRESH_WARNING => (
                    "refresh-token",
                    false,
                    format!(
                        "the refresh token expires in {}: after that git gets no token until you log in again; run: {}",
                        approx(at - now),
                        app.login_command()
                    ),
                ),
                (Some(_), Some(at)) => (
                    "refresh-token",
                    true,
                    format!(
                        "the refresh token expires in {}; each refresh renews it",
                        approx(at - now)
                    ),
                ),
                (Some(_), None) => (
                    "refresh-token",
                    true,
                    "the refresh token has no expiry".to_owned(),
                ),
                (None, _) => (
                    "refresh-token",
                    true,
                    "the app's user tokens do not expire: no refresh token needed".to_owned(),
                ),
            });
            if login.expires_at.is_none_or(|at| at > now) {
                checks.push(
                    match oauth::user_login(&http, &app.api_url, &app.host, &login.access) {
                        Ok(user) => (
                            "user-token",
                            true,
                            format!("{} accepts the stored token: GET /user is {user}", app.host),
                        ),
                        Err(e) => (
                            "user-token",
                            false,
                            format!(
                                "{}; the next get refreshes it, or run: {}",
                                e.explain(&app.client_id, &app.host),
                                app.login_command()
                            ),
                        ),
                    },
                );
            }
        }
    }
    checks.push(
        match oauth::request_device_code(&http, &app.web(), &app.host, &app.client_id) {
            Ok(_) => (
                "device-flow",
                true,
                format!(
                    "the device flow is enabled for app {} on {}",
                    app.client_id, app.host
                ),
            ),
            Err(e) => ("device-flow", false, e.explain(&app.client_id, &app.host)),
        },
    );
    checks
}

/// A user token cannot be revoked by the helper: GitHub's `DELETE
/// /applications/{client_id}/token` needs the app's client secret.
pub fn revoke(record: &Record) -> Result<Revoked> {
    Err(anyhow::anyhow!(
        "the helper cannot revoke user tokens (GitHub needs the app's client secret for that); run git-credential-github-app logout to forget it here, or revoke app {}'s authorization in your GitHub settings (Applications → Authorized GitHub Apps) on {}",
        record.app,
        record.host
    ))
}

/// A GitHub App used for user tokens: its client ID, the host, the REST API base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserApp {
    pub client_id: String,
    /// `github.com`, `ghe.example.com`, `127.0.0.1:8080`.
    pub host: String,
    pub api_url: String,
}

impl UserApp {
    pub fn web(&self) -> Web {
        Web::new(&self.api_url, &self.host)
    }

    pub fn key(&self) -> LoginKey {
        LoginKey {
            web: self.web().0,
            client_id: self.client_id.clone(),
        }
    }

    /// The command that logs in to this app.
    pub fn login_command(&self) -> String {
        if self.host == "github.com" {
            format!(
                "git-credential-github-app login --app-id {}",
                self.client_id
            )
        } else {
            format!(
                "git-credential-github-app login --app-id {} --host {}",
                self.client_id, self.host
            )
        }
    }
}

/// `secs` for a person: whole days from two days up (`184 days`), to the minute from an hour
/// (`8h`, `2h 45m`), else to the second.
pub fn approx(secs: u64) -> String {
    const DAY: u64 = 86_400;
    if secs >= 2 * DAY {
        return format!("{} days", (secs + DAY / 2) / DAY);
    }
    let secs = if secs >= 3600 {
        (secs + 30) / 60 * 60
    } else {
        secs
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// How long the login's tokens last, for messages: `the token expires in 8h, the refresh token
/// in 184days`.
pub fn lifetimes(login: &Login, now: u64) -> String {
    let token = match login.expires_at {
        Some(at) => format!("the token expires in {}", approx(at.saturating_sub(now))),
        None => "the token does not expire".to_owned(),
    };
    match (&login.refresh, login.refresh_expires_at) {
        (Some(_), Some(at)) => format!(
            "{token}, the refresh token in {}",
            approx(at.saturating_sub(now))
        ),
        _ => token,
    }
}

/// Why `login` ended without a login.
#[derive(Debug)]
pub enum LoginFailed {
    /// GitHub said no (each error its own line: [`OAuthError::explain`]).
    OAuth(String),
    Cancelled,
    /// Storing it failed.
    Store(anyhow::Error),
}

/// The `login` command's work: the device flow, `GET /user` for who it is, then the login
/// stored (replacing an earlier one). Messages go to `err`, one line each.
pub fn log_in(
    app: &UserApp,
    store: &Store,
    post: &dyn Post,
    flow_clock: &mut dyn login::Clock,
    cancelled: &std::sync::atomic::AtomicBool,
    open: Option<login::Opener<'_>>,
    err: &mut dyn Write,
) -> Result<(Login, Place), LoginFailed> {
    let web = app.web();
    let flow = login::Flow {
        web: &web,
        host: &app.host,
        client_id: &app.client_id,
        cancelled,
        open,
    };
    let tokens = match login::run(&flow, post, flow_clock, err) {
        Ok(t) => t,
        Err(login::LoginError::Cancelled) => return Err(LoginFailed::Cancelled),
        Err(login::LoginError::OAuth(e)) => {
            return Err(LoginFailed::OAuth(e.explain(&app.client_id, &app.host)));
        }
    };
    let user = oauth::user_login(post, &app.api_url, &app.host, &tokens.access)
        .map_err(|e| LoginFailed::OAuth(e.explain(&app.client_id, &app.host)))?;
    let login = Login {
        web: web.0.clone(),
        client_id: app.client_id.clone(),
        user,
        access: tokens.access,
        expires_at: tokens.expires_at,
        refresh: tokens.refresh,
        refresh_expires_at: tokens.refresh_expires_at,
        logged_in_at: flow_clock.now(),
    };
    let place = store.save(&app.key(), &login).map_err(LoginFailed::Store)?;
    let _ = writeln!(
        err,
        "git-credential-github-app: logged in to {} as {} through app {}; {} (kept in {})",
        app.host,
        login.user,
        app.client_id,
        lifetimes(&login, flow_clock.now()),
        place.describe()
    );
    Ok((login, place))
}

/// What [`renew`] got.
#[derive(Debug)]
pub enum Renewed {
    /// The refreshed login, already stored.
    Login(Login),
    /// No login any more (refresh token refused, or nothing to refresh with): the stored login
    /// was dropped; the text says so and how to log in again.
    Gone(String),
}

/// Refresh `login`'s tokens (the caller holds the cross-process lock: GitHub rotates the
/// refresh token, so two refreshes would race and one would lose the login). The new tokens are
/// stored before anything else is done with them.
pub fn renew(
    app: &UserApp,
    store: &Store,
    login: &Login,
    post: &dyn Post,
    now: u64,
) -> Result<Renewed> {
    let Some(refresh) = &login.refresh else {
        store.remove(&app.key());
        return Ok(Renewed::Gone(format!(
            "the token of the login to {} (app {}, user {}) expired and there is no refresh token; log in again with: {}",
            app.host,
            app.client_id,
            login.user,
            app.login_command()
        )));
    };
    if login.is_dead(now) {
        store.remove(&app.key());
        return Ok(Renewed::Gone(format!(
            "the login to {} (app {}, user {}) has expired (its refresh token ran out); log in again with: {}",
            app.host,
            app.client_id,
            login.user,
            app.login_command()
        )));
    }
    match oauth::refresh(post, &app.web(), &app.host, &app.client_id, refresh, now) {
        Ok(tokens) => {
            let renewed = Login {
                access: tokens.access,
                expires_at: tokens.expires_at,
                refresh: tokens.refresh.or_else(|| Some(Secret::clone(refresh))),
                refresh_expires_at: tokens.refresh_expires_at.or(login.refresh_expires_at),
                ..login.clone()
            };
            store.save(&app.key(), &renewed).map_err(|e| {
                anyhow::anyhow!(
                    "refreshed the token of {}, but could not store the new refresh token ({e:#}); log in again with: {}",
                    app.host,
                    app.login_command()
                )
            })?;
            Ok(Renewed::Login(renewed))
        }
        Err(OAuthError::BadRefreshToken) => {
            // Another process may have rotated the tokens meanwhile (it took the lock over from
            // this one, stopped or slow): then the stored login is newer and still good.
            if let Some((stored, _)) = store.load(&app.key())
                && stored.refresh.as_ref() != Some(refresh)
            {
                crate::trace!("the refresh token was rotated by another process; using its login");
                return Ok(Renewed::Login(stored));
            }
            // Compare-and-delete: a login stored since that reload is kept.
            store.remove_refused(&app.key(), refresh);
            Ok(Renewed::Gone(
                OAuthError::BadRefreshToken.explain(&app.client_id, &app.host),
            ))
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot refresh the user token of {}: {}",
            app.host,
            e.explain(&app.client_id, &app.host)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::oauth::tests::Scripted;
    use super::*;
    use crate::config::CacheMode;
    use crate::state::State;
    use std::time::Instant;

    fn app() -> UserApp {
        UserApp {
            client_id: "Iv23liX".into(),
            host: "github.com".into(),
            api_url: "https://api.github.com".into(),
        }
    }

    fn stored(dir: &std::path::Path) -> Store {
        Store::new(
            CacheMode::File,
            State::at(dir.to_path_buf()),
            Instant::now() + Duration::from_secs(5),
        )
    }

    fn login() -> Login {
        Login {
            web: "https://github.com".into(),
            client_id: "Iv23liX".into(),
            user: "octo".into(),
            access: Secret::new("ghu_old"),
            expires_at: Some(100),
            refresh: Some(Secret::new("ghr_old")),
            refresh_expires_at: Some(10_000),
            logged_in_at: 1,
        }
    }

    #[test]
    fn renew_stores_the_rotated_tokens_and_bad_refresh_token_drops_the_login() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path());
        store.save(&app().key(), &login()).unwrap();
        let post = Scripted::new(vec![
            (
                200,
                r#"{"access_token":"ghu_new","expires_in":28800,"refresh_token":"ghr_new","refresh_token_expires_in":15897600}"#,
            ),
            (200, r#"{"error":"bad_refresh_token"}"#),
        ]);
        let Renewed::Login(l) = renew(&app(), &store, &login(), &post, 200).unwrap() else {
            panic!()
        };
        assert_eq!((l.access.expose(), l.expires_at), ("ghu_new", Some(29_000)));
        let (back, _) = store.load(&app().key()).unwrap();
        assert_eq!(back.refresh.unwrap().expose(), "ghr_new");
        assert_eq!(back.user, "octo");
        let Renewed::Gone(text) = renew(&app(), &store, &l, &post, 300).unwrap() else {
            panic!()
        };
        assert!(text.contains("bad_refresh_token"), "{text}");
        assert!(store.load(&app().key()).is_none(), "dropped");
        // Refused because another process rotated it meanwhile: its newer login is used, kept.
        let newer = Login {
            access: Secret::new("ghu_other"),
            refresh: Some(Secret::new("ghr_other")),
            ..login()
        };
        store.save(&app().key(), &newer).unwrap();
        let post = Scripted::new(vec![(200, r#"{"error":"bad_refresh_token"}"#)]);
        let Renewed::Login(l) = renew(&app(), &store, &login(), &post, 300).unwrap() else {
            panic!()
        };
        assert_eq!(l.access.expose(), "ghu_other");
        assert!(store.load(&app().key()).is_some(), "kept");
        // A dead login is dropped without asking GitHub.
        store.save(&app().key(), &login()).unwrap();
        let quiet = Scripted::new(vec![]);
        let Renewed::Gone(text) = renew(&app(), &store, &login(), &quiet, 10_000).unwrap() else {
            panic!()
        };
        assert!(text.contains("has expired"), "{text}");
        assert!(quiet.sent.borrow().is_empty());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(approx(28_800), "8h");
        assert_eq!(approx(28_799), "8h");
        assert_eq!(approx(15_897_600), "184 days");
        assert_eq!(approx(59), "59s");
        let l = Login {
            expires_at: Some(3_700),
            ..login()
        };
        assert_eq!(
            lifetimes(&l, 100),
            "the token expires in 1h, the refresh token in 2h 45m"
        );
    }

    #[test]
    fn the_login_command_names_the_host_unless_it_is_github_com() {
        assert_eq!(
            app().login_command(),
            "git-credential-github-app login --app-id Iv23liX"
        );
        let ghes = UserApp {
            host: "ghe.example.com".into(),
            ..app()
        };
        assert!(ghes.login_command().ends_with("--host ghe.example.com"));
    }

    /// git's erase marks the login spent only if it still holds the rejected token, and never
    /// while a refresh holds the lock (it would write the old refresh token over the new one).
    #[test]
    fn a_rejected_token_is_marked_spent_only_if_still_stored_and_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(&dir.path().join("logins"));
        let state = State::at(dir.path().join("cache"));
        let wait = Duration::from_millis(200);
        store.save(&app().key(), &login()).unwrap();
        // A refresh elsewhere holds the lock: nothing is written.
        let held = state.lock(&flight(&app()), wait).unwrap();
        assert!(!mark_spent(
            &app(),
            &store,
            &state,
            wait,
            &Secret::new("ghu_old")
        ));
        assert_eq!(store.load(&app().key()).unwrap().0.expires_at, Some(100));
        drop(held);
        // Rotated meanwhile: the rejected token is not the stored one; the newer login is kept.
        let newer = Login {
            access: Secret::new("ghu_new"),
            refresh: Some(Secret::new("ghr_new")),
            expires_at: Some(50_000),
            ..login()
        };
        store.save(&app().key(), &newer).unwrap();
        assert!(!mark_spent(
            &app(),
            &store,
            &state,
            wait,
            &Secret::new("ghu_old")
        ));
        let (back, _) = store.load(&app().key()).unwrap();
        assert_eq!(
            (back.refresh.unwrap().expose(), back.expires_at),
            ("ghr_new", Some(50_000))
        );
        // Still the stored one: marked spent, the refresh token kept.
        assert!(mark_spent(
            &app(),
            &store,
            &state,
            wait,
            &Secret::new("ghu_new")
        ));
        let (back, _) = store.load(&app().key()).unwrap();
        assert_eq!(
            (back.refresh.unwrap().expose(), back.expires_at),
            ("ghr_new", Some(0))
        );
    }
}

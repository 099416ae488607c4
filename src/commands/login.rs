//! `login` and `logout`: a person logs in to a GitHub App with the device flow, so that git gets
//! their user access token (apps with user tokens: a client ID without a key, or
//! `--user-tokens`); `logout` forgets the login and its cached token.

use super::{Args, Command, Context, Opt, Output, resolve};
use crate::cache::Cache;
use crate::cache::index;
use crate::config::{Config, SourceSpec};
use crate::source::user::{self, LoginFailed, UserApp, login::RealClock, oauth::Http, store};
use crate::state::State;
use crate::trace;
use anyhow::{Result, anyhow, bail};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const LOGIN: Command = Command {
    name: "login",
    summary: "log in to a GitHub App with the device flow, for user tokens",
    usage: "login [--open]",
    help: "\
Logs you in to a GitHub App (given by its client ID: --app-id Iv23…, or the one app configured
with user tokens) on its host, with GitHub's device flow: it shows a one-time code and a page
(https://HOST/login/device) on stderr; you open the page, sign in, enter the code and authorize
the app. The access token, the refresh token and their expiries are kept in the keyring, or in a
0600 file where there is none; git then gets your token (8 hours, refreshed when it runs out)
for repositories both you and the app can reach. The app needs \"Enable Device Flow\" ticked in
its settings. git never starts a login by itself: without one, it asks its next helper.

OPTIONS:
    --open      open the page in a browser ($BROWSER, else the system's)
",
    options: &[Opt::flag("open")],
    max_positional: 0,
    trailing: false,
    run: run_login,
};

pub const LOGOUT: Command = Command {
    name: "logout",
    summary: "forget the login to a GitHub App (and its cached token)",
    usage: "logout",
    help: "\
Removes the login made with `login` (access token, refresh token) from the keyring or file, and
the token cached for git. GitHub keeps the app authorized for you: revoke it in your settings
(Applications → Authorized GitHub Apps) to end it there too.
",
    options: &[],
    max_positional: 0,
    trailing: false,
    run: run_logout,
};

/// Set by the Ctrl-C handler while `login` waits.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// The app a person logs in to: the configured entry with user tokens for the host (the command
/// line's `--app-id` first; else the environment, the config file, or git's helper line for the
/// host, as every command resolves them); exactly one.
fn user_app(ctx: &Context, config: &Config, host: &crate::config::Host) -> Result<UserApp> {
    let host = Some(host);
    let candidates: Vec<&crate::config::App> = config
        .apps
        .iter()
        .filter(|a| matches!(a.source, SourceSpec::User(_)))
        .filter(|a| host.is_none_or(|h| *h == a.host))
        .collect();
    let app = match candidates.as_slice() {
        [one] => *one,
        [] => bail!(
            "no app with user tokens is configured{}: pass the app's client ID, as in: git-credential-github-app login --app-id Iv23… [--host HOST]",
            host.map_or(String::new(), |h| format!(" for {}", h.as_str()))
        ),
        [first, ..] if ctx.flags.app_id.is_some() => first,
        several => bail!(
            "several apps with user tokens are configured ({}); choose one with --app-id",
            several
                .iter()
                .map(|a| a.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let SourceSpec::User(spec) = &app.source else {
        bail!("{} does not use user tokens", app.describe());
    };
    Ok(UserApp {
        client_id: spec.client_id.clone(),
        host: app.host.as_str().to_owned(),
        api_url: app.api_url(app.git_protocol()),
    })
}

/// Drop the token cached for git under the login's key and the owners remembered for the app
/// (a new login, or none: another person may reach other owners).
fn forget_cached(config: &Config, app: &UserApp, state: &State) {
    let key = user::cache_key(app);
    Cache::new(config.cache, state)
        .with_deadline(Instant::now() + config.timeout)
        .remove(&key);
    index::forget(state, &key);
    user::forget_installations(app, state);
}

/// `login --app-id 123456`: the numeric App ID cannot run the device flow; say what can.
fn check_app_id(ctx: &Context) -> Result<()> {
    if let Some(id) = &ctx.flags.app_id
        && matches!(
            crate::config::AppId::parse(id),
            Ok(crate::config::AppId::Numeric(_))
        )
        && ctx.flags.private_key.is_none()
    {
        bail!(
            "login needs the app's client ID (Iv…, at the top of the app's settings page), not its numeric App ID {}",
            id.trim()
        );
    }
    Ok(())
}

fn run_login(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    check_app_id(ctx)?;
    let resolved = resolve::resolve(ctx)?;
    let config = resolved.config;
    let app = user_app(ctx, &config, &resolved.host)?;
    let store = store::Store::new(
        config.cache,
        store::default_state(),
        Instant::now() + config.timeout,
    );
    if let Err(e) = ctrlc::set_handler(|| CANCELLED.store(true, Ordering::SeqCst)) {
        trace!("no Ctrl-C handler ({e}); Ctrl-C ends login without a message");
    }
    let http = Http::new(config.timeout.min(Duration::from_secs(30)));
    let opener = |url: &str| user::browser::open(url);
    let open: Option<user::login::Opener<'_>> = args.flag("open").then_some(&opener);
    match user::log_in(
        &app,
        &store,
        &http,
        &mut RealClock,
        &CANCELLED,
        open,
        out.err,
    ) {
        Ok((login, _)) => {
            let state = State::open();
            forget_cached(&config, &app, &state);
            // Which owners the person reaches through the app, so that the first git request
            // needs no lookup (a failure here only means a lookup at the first request).
            if let Err(e) = user::remember_installations(&app, &state, &http, &login.access) {
                trace!("installations not looked up at login: {e:#}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoginFailed::Cancelled) => {
            let _ = writeln!(
                out.err,
                "git-credential-github-app: login stopped (Ctrl-C); nothing was stored"
            );
            Ok(ExitCode::from(130))
        }
        Err(LoginFailed::OAuth(text)) => Err(anyhow!(text)),
        Err(LoginFailed::Store(e)) => Err(e.context("logged in, but the login could not be kept")),
    }
}

fn run_logout(ctx: &Context, _args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    check_app_id(ctx)?;
    let resolved = resolve::resolve(ctx)?;
    let config = resolved.config;
    let app = user_app(ctx, &config, &resolved.host)?;
    let store = store::Store::new(
        config.cache,
        store::default_state(),
        Instant::now() + config.timeout,
    );
    let who = store.load(&app.key()).map(|(login, _)| login.user);
    let removed = store.remove(&app.key());
    forget_cached(&config, &app, &State::open());
    match (removed, who) {
        (true, Some(user)) => writeln!(
            out.err,
            "git-credential-github-app: logged out of {} (app {}, user {user})",
            app.host, app.client_id
        )?,
        _ => writeln!(
            out.err,
            "git-credential-github-app: not logged in to {} with app {}; nothing to forget",
            app.host, app.client_id
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

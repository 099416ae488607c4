//! The helper's operations, in order: request → route → cache → (lock → look up → mint) → answer.
//!
//! This is the only module that knows that order. Obtaining a token ([`obtain`], used by `get` and
//! by the `token`, `exec` and `doctor` commands) is separate from answering git, which only `get`
//! does. It takes its input and output as parameters, so the whole `get` path can be driven from
//! tests, and it returns errors instead of printing them: `cli` prints the one stderr line.

use crate::cache::{Cache, CacheKey};
use crate::config::{AppId, Config};
use crate::github::{ApiError, Client, Deadline, Minted, Token, unix_now};
use crate::jwt::Signer;
use crate::protocol::{Answer, Operation, Request};
use crate::route::{Decision, Route};
use crate::state::{NOT_INSTALLED_TTL, Remembered, State, digest};
use crate::{index, protocol, route, signer, trace};
use anyhow::{Result, anyhow};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A cached token with less than this left is never handed out, not even as a fallback.
const MIN_FALLBACK_LIFETIME: u64 = 60;

/// What a run did, for the exit status and for tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `get` printed a credential.
    Answered { minted: bool },
    /// Not ours (host, owner, protocol, or an owner without installation): nothing printed.
    Passed,
    /// `store`, `erase`, or an operation we ignore.
    Done,
}

/// Where the run writes: stdout for protocol lines, stderr for the user.
pub struct Io<'a> {
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl Io<'_> {
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.stderr, "git-credential-github-app: {line}");
    }
}

/// Run one operation on the request bytes `input`.
pub fn run(
    op: Operation,
    input: &[u8],
    config: &Config,
    state: &State,
    io: &mut Io<'_>,
) -> Result<Outcome> {
    if op == Operation::Store {
        // Tokens are minted, never stored from git: nothing to do, and nothing to say.
        return Ok(Outcome::Done);
    }
    // The time budget (--timeout) of the whole run starts now.
    let deadline = Deadline::after(config.timeout);
    let request = protocol::parse(input)?;
    trace!(
        "{op:?} protocol={} host={} path={} username={} password={}",
        protocol::printable(&request.protocol),
        protocol::printable(&request.host),
        request
            .path
            .as_deref()
            .map_or("(none)".into(), protocol::printable),
        request
            .username
            .as_deref()
            .map_or("(none)".into(), protocol::printable),
        request
            .password
            .as_ref()
            .map_or("(none)".into(), |p| p.fingerprint()),
    );
    let route = match route::route(&request, config) {
        Decision::Serve(route) => route,
        Decision::NotMine(hint) => {
            trace!(
                "not ours: {}",
                hint.clone()
                    .unwrap_or_else(|| route::not_ours_reason(&request, config))
            );
            if let (Some(hint), Operation::Get) = (hint, op) {
                io.say(&hint);
            }
            return Ok(Outcome::Passed);
        }
        Decision::Refuse(why) => return Err(anyhow!(why)),
    };
    trace!(
        "served by app {} ({}) via {}",
        route.app.id, route.app.origin, route.api_url
    );
    match op {
        Operation::Get => {
            let public = route::public_fallback(&request, &route, config);
            get(&route, public.as_ref(), config, state, deadline, io)
        }
        Operation::Erase => {
            erase(&request, &route, config, state, io);
            // A rejected public-fallback token is dropped too (it is cached under its own app).
            if let Some(public) = route::public_fallback(&request, &route, config) {
                erase(&request, &public, config, state, io);
            }
            Ok(Outcome::Done)
        }
        Operation::Store => Ok(Outcome::Done),
    }
}

fn installation_known(route: &Route<'_>, state: &State) -> Option<u64> {
    let app = route.app;
    app.installation_id.or_else(|| {
        route
            .owner
            .as_deref()
            .and_then(|o| state.installation(&route.api_url, &app.id, o))
    })
}

/// The cache key of `route`'s token from `installation`: API, app, installation and scope
/// (permissions, and the repository for a repository-scoped app).
pub fn cache_key(route: &Route<'_>, installation: u64) -> CacheKey {
    CacheKey::new(&route.api_url, &route.app.id, installation, &route.scope())
}

/// A token ready for use, and what is known about it.
#[derive(Debug, Clone)]
pub struct Obtained {
    pub token: Token,
    pub installation: u64,
    /// The account the installation belongs to, when known (looked up now, or the owner asked for).
    pub account: Option<String>,
    /// The token's permissions as GitHub granted them, when known (minted now, or remembered
    /// from when it was minted).
    pub permissions: Option<BTreeMap<String, String>>,
    /// Minted by this run (else: from the cache).
    pub minted: bool,
    /// The app that holds the installation.
    pub app: AppId,
    pub api_url: String,
    pub cache_key: CacheKey,
}

/// No candidate app is installed for the owner: the request is not ours. Returned (inside
/// `anyhow::Error`) by [`obtain`]; `get` passes the request on, commands report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInstalled {
    pub owner: String,
    pub host: String,
    /// The apps that were asked, and since when (Unix seconds) each is remembered as not
    /// installed; `None`: GitHub was asked just now.
    pub apps: Vec<(AppId, Option<u64>)>,
}

impl NotInstalled {
    /// True when at least one app was looked up on GitHub in this run.
    pub fn asked_github(&self) -> bool {
        self.apps.iter().any(|(_, since)| since.is_none())
    }

    /// `app 1 is` or `apps 1, 2 are`.
    fn app_list(&self) -> String {
        let ids = self
            .apps
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if self.apps.len() == 1 {
            format!("app {ids} is")
        } else {
            format!("apps {ids} are")
        }
    }

    /// The stderr line for an owner remembered as "not installed" (item: say so, and how to
    /// retry now).
    pub fn remembered_message(&self, now: u64) -> String {
        let since = self
            .apps
            .iter()
            .filter_map(|(_, s)| *s)
            .min()
            .unwrap_or(now);
        let age = humantime::format_duration(Duration::from_secs(now.saturating_sub(since)));
        format!(
            "{} not installed on '{}' ({}), as remembered since {} ({age} ago); leaving this request to other helpers. If the app was installed since, run: git-credential-github-app forget {}",
            self.app_list(),
            self.owner,
            self.host,
            local_time(since),
            self.owner,
        )
    }
}

impl std::fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} not installed on '{}' ({})",
            self.app_list(),
            self.owner,
            self.host
        )
    }
}

impl std::error::Error for NotInstalled {}

/// `HH:MM:SS` in the local time zone (UTC where the zone is unknown).
pub fn local_time(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix);
    let local: chrono::DateTime<chrono::Local> = t.into();
    local.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// A cached token if it has at least the refresh margin left; else the still-valid one as fallback.
enum Cached {
    Fresh(u64, Token),
    Fallback(Option<(u64, Token)>),
}

fn lookup_cache(route: &Route<'_>, config: &Config, state: &State, cache: &Cache) -> Cached {
    let Some(id) = installation_known(route, state) else {
        return Cached::Fallback(None);
    };
    let Some(token) = cache.load(&cache_key(route, id)) else {
        return Cached::Fallback(None);
    };
    let now = unix_now();
    if token.expires_at >= now + config.refresh_margin.as_secs() {
        return Cached::Fresh(id, token);
    }
    trace!(
        "cached token {} has {} s left, inside the refresh margin",
        token.secret.fingerprint(),
        token.expires_at.saturating_sub(now)
    );
    Cached::Fallback((token.expires_at > now + MIN_FALLBACK_LIFETIME).then_some((id, token)))
}

fn from_cache(route: &Route<'_>, installation: u64, token: Token) -> Obtained {
    Obtained {
        token,
        installation,
        account: route.owner.clone(),
        permissions: None,
        minted: false,
        app: route.app.id.clone(),
        api_url: route.api_url.clone(),
        cache_key: cache_key(route, installation),
    }
}

/// Obtain a token for `route`: from the cache, else (under the cross-process lock) by looking up
/// the installation and minting, trying each candidate app in order. Everything ends by
/// `deadline`. `say` gets the warnings a person should see (one line each). An owner no
/// candidate is installed on is an error holding [`NotInstalled`].
pub fn obtain(
    route: &Route<'_>,
    config: &Config,
    state: &State,
    deadline: Deadline,
    say: &mut dyn FnMut(&str),
) -> Result<Obtained> {
    let cache = Cache::new(config.cache, state).with_deadline(deadline.at());
    let candidates = route.candidates();
    for candidate in &candidates {
        if let Cached::Fresh(id, token) = lookup_cache(candidate, config, state, &cache) {
            return Ok(from_cache(candidate, id, token));
        }
    }
    // Cold: the apps in order; one that is not installed for the owner hands over to the next.
    let mut not_installed = NotInstalled {
        owner: route.owner.clone().unwrap_or_default(),
        host: route.app.host.as_str().to_owned(),
        apps: Vec::new(),
    };
    for candidate in &candidates {
        match obtain_cold(candidate, config, state, &cache, deadline, say)? {
            Cold::Got(obtained) => return Ok(obtained),
            Cold::NotInstalled { since } => {
                not_installed.apps.push((candidate.app.id.clone(), since))
            }
        }
    }
    Err(not_installed.into())
}

enum Cold {
    Got(Obtained),
    /// `since`: remembered from a lookup at that time; `None`: GitHub said so just now.
    NotInstalled {
        since: Option<u64>,
    },
}

/// Take the mint lock `name` within the deadline. Half of what is left goes to waiting for the
/// process that holds it; if that process is stopped (Ctrl-Z) or hung, one waiter takes over
/// under a second lock while the others wait for it, so a stuck holder costs one extra token at
/// worst, not one per waiter.
fn take_mint_lock(state: &State, name: &str, deadline: Deadline) -> Option<std::fs::File> {
    if let Some(lock) = state.lock(name, deadline.remaining() / 2) {
        return Some(lock);
    }
    trace!("the process holding lock {name} is slow or stopped; taking over");
    state.lock(&format!("{name}-takeover"), deadline.remaining())
}

fn obtain_cold(
    route: &Route<'_>,
    config: &Config,
    state: &State,
    cache: &Cache,
    deadline: Deadline,
    say: &mut dyn FnMut(&str),
) -> Result<Cold> {
    if route.app.repo_scoped && route.repo.is_none() {
        return Err(anyhow!(
            "app {} mints repository-scoped tokens (repo_scoped), and no repository was named for {}; give OWNER/REPO",
            route.app.id,
            route.describe()
        ));
    }
    if let (None, Some(owner)) = (route.app.installation_id, &route.owner)
        && let Some((Remembered::NotInstalled, checked_at)) =
            state.lookup_record_at(&route.api_url, &route.app.id, owner)
    {
        trace!(
            "app {} is not installed on '{owner}' (remembered for {} s)",
            route.app.id, NOT_INSTALLED_TTL
        );
        return Ok(Cold::NotInstalled {
            since: Some(checked_at),
        });
    }
    // One process per (API, app, installation or owner) looks up and mints; the others wait, then
    // find the token in the cache. A fixed installation may serve several owners.
    let who = match (route.app.installation_id, &route.owner) {
        (Some(id), _) => format!("installation {id}"),
        (None, owner) => format!("owner {}", owner.as_deref().unwrap_or_default()),
    };
    let _lock = take_mint_lock(
        state,
        &digest(&[&route.api_url, &route.app.id.iss(), &who]),
        deadline,
    );
    let fallback = match lookup_cache(route, config, state, cache) {
        Cached::Fresh(id, token) => {
            trace!("another process minted while we waited");
            return Ok(Cold::Got(from_cache(route, id, token)));
        }
        Cached::Fallback(token) => token,
    };
    if deadline.passed() {
        let e = anyhow!(
            "another git-credential-github-app process was getting the token for {} and did not finish within the time budget (--timeout {})",
            route.describe(),
            humantime::format_duration(config.timeout)
        );
        return use_fallback(route, fallback, e, say);
    }

    match mint(route, state, deadline, config.stateless_tokens, say) {
        Ok(Some((installation, account, minted))) => {
            let key = cache_key(route, installation);
            let stores = cache.save(&key, &minted.token);
            index::remember(
                state,
                &index::TokenRecord::new(route, &key, installation, &account, &minted, &stores),
            );
            Ok(Cold::Got(Obtained {
                token: minted.token,
                installation,
                account: Some(account),
                permissions: Some(minted.permissions),
                minted: true,
                app: route.app.id.clone(),
                api_url: route.api_url.clone(),
                cache_key: key,
            }))
        }
        Ok(None) => Ok(Cold::NotInstalled { since: None }),
        Err(e) => use_fallback(route, fallback, e, say),
    }
}

/// After a failure: the cached token that is still valid, with a warning, else the error.
fn use_fallback(
    route: &Route<'_>,
    fallback: Option<(u64, Token)>,
    e: anyhow::Error,
    say: &mut dyn FnMut(&str),
) -> Result<Cold> {
    match fallback {
        Some((id, token)) => {
            let left = token.expires_at.saturating_sub(unix_now());
            say(&format!(
                "warning: {}; answering with the cached token, which expires in {}",
                one_line(&e),
                humantime::format_duration(Duration::from_secs(left))
            ));
            Ok(Cold::Got(from_cache(route, id, token)))
        }
        None => Err(e),
    }
}

/// Load the app's key and make a JWT signer for `route`'s API (with GitHub's clock offset as last
/// learnt). Key warnings go to `say` once per user.
pub fn signer(
    route: &Route<'_>,
    state: &State,
    deadline: Deadline,
    say: &mut dyn FnMut(&str),
) -> Result<Signer> {
    let app = route.app;
    let started = std::time::Instant::now();
    let key = signer::open(&app.key, deadline.at(), &mut |warning| {
        if state.first_time(&warning) {
            say(&warning);
        }
    })?;
    trace!(
        "signer ({}) ready in {:.2} ms",
        key.describe(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(Signer::new(
        key,
        app.id.iss(),
        state.clock_offset(&route.api_url),
    ))
}

/// Remember GitHub's clock offset if the signer learnt a new one.
pub fn keep_clock_offset(route: &Route<'_>, state: &State, signer: &Signer, initial: i64) {
    if signer.offset != initial {
        trace!(
            "remembering GitHub's clock offset {:+} s for {}",
            signer.offset, route.api_url
        );
        state.remember_clock_offset(&route.api_url, signer.offset);
    }
}

/// Find the installation (unless known) and mint a token. `None`: the app is not installed for
/// this owner, so the request is not ours.
fn mint(
    route: &Route<'_>,
    state: &State,
    deadline: Deadline,
    stateless_tokens: crate::config::StatelessTokens,
    say: &mut dyn FnMut(&str),
) -> Result<Option<(u64, String, Minted)>> {
    let app = route.app;
    let api = &route.api_url;
    let host = app.host.as_str();
    let mut signer = signer(route, state, deadline, say)?;
    let initial_offset = signer.offset;
    let client = Client::new(api, host, deadline).with_stateless_tokens(stateless_tokens);
    let repositories: Vec<String> = match (&route.repo, app.repo_scoped) {
        (Some(repo), true) => vec![repo.clone()],
        _ => Vec::new(),
    };

    let result = (|| -> Result<Option<(u64, String, Minted)>> {
        let mut remembered = installation_known(route, state);
        for attempt in 0..2 {
            let (id, account) = match remembered {
                Some(id) => (id, route.owner.clone().unwrap_or_default()),
                None => match lookup(route, &client, &mut signer, state)? {
                    Some(found) => found,
                    None => return Ok(None),
                },
            };
            match client.create_token(&mut signer, id, &app.permissions, &repositories) {
                Ok(minted) => {
                    trace!(
                        "minted token {} for installation {id}, expires at {}",
                        minted.token.secret.fingerprint(),
                        minted.token.expires_at
                    );
                    return Ok(Some((id, account, minted)));
                }
                Err(ApiError::InstallationGone { status, message })
                    if attempt == 0 && app.installation_id.is_none() && remembered.is_some() =>
                {
                    trace!(
                        "remembered installation {id} answered {status} {message}; looking it up again"
                    );
                    if let Some(owner) = &route.owner {
                        state.forget_installation(api, &app.id, owner);
                    }
                    remembered = None;
                }
                Err(ApiError::InstallationGone { status, message }) => {
                    let what = if app.installation_id.is_some() {
                        "check --installation-id"
                    } else {
                        "the installation may have been removed just now; try again"
                    };
                    return Err(anyhow!(
                        "{host} answered {status} ({message}) for installation {id} of app {}: it does not exist for this app or the app lost access; {what}",
                        app.id
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(anyhow!(
            "the installation for {} keeps disappearing; try again",
            route.describe()
        ))
    })();
    keep_clock_offset(route, state, &signer, initial_offset);
    result
}

fn lookup(
    route: &Route<'_>,
    client: &Client,
    signer: &mut Signer,
    state: &State,
) -> Result<Option<(u64, String)>> {
    let app = route.app;
    let Some(owner) = route.owner.as_deref() else {
        return Err(anyhow!(
            "no installation id and no owner for {}",
            route.describe()
        ));
    };
    match client.find_installation(signer, owner, route.repo.as_deref())? {
        Some(installation) => {
            trace!(
                "owner '{owner}' → installation {} (account {})",
                installation.id, installation.account
            );
            state.remember_installation(&route.api_url, &app.id, owner, installation.id);
            Ok(Some((installation.id, installation.account)))
        }
        None => {
            trace!("app {} is not installed on '{owner}'", app.id);
            state.remember_not_installed(&route.api_url, &app.id, owner);
            Ok(None)
        }
    }
}

/// `get`: obtain, then answer git. An owner no app is installed on is passed on to the next
/// helper, with one line on stderr (for a remembered "not installed", at most once a minute per
/// owner).
fn get(
    route: &Route<'_>,
    public_fallback: Option<&Route<'_>>,
    config: &Config,
    state: &State,
    deadline: Deadline,
    io: &mut Io<'_>,
) -> Result<Outcome> {
    let obtained = {
        let mut say = |line: &str| io.say(line);
        obtain(route, config, state, deadline, &mut say)
    };
    match obtained {
        Ok(obtained) => {
            answer(&obtained.token, config, io)?;
            Ok(Outcome::Answered {
                minted: obtained.minted,
            })
        }
        Err(e) => match e.downcast::<NotInstalled>() {
            Ok(not_installed) if public_fallback.is_some() => {
                trace!("{not_installed}; answering with the public fallback app's token");
                answer_public_fallback(public_fallback, config, state, deadline, io)
            }
            Ok(not_installed) => {
                // Said when GitHub was asked; when remembered, reminded at most once a minute.
                let due = state.at_most_every(
                    &format!(
                        "not-installed {} {}",
                        not_installed.host, not_installed.owner
                    ),
                    NOT_INSTALLED_NOTICE_EVERY,
                );
                if not_installed.asked_github() {
                    io.say(&format!(
                        "{not_installed}; leaving this request to other helpers"
                    ));
                } else if due {
                    io.say(&not_installed.remembered_message(unix_now()));
                }
                Ok(Outcome::Passed)
            }
            Err(e) => Err(e),
        },
    }
}

/// Answer with the token of `[public_fallback]`'s installation (no route: nothing to answer).
fn answer_public_fallback(
    fallback: Option<&Route<'_>>,
    config: &Config,
    state: &State,
    deadline: Deadline,
    io: &mut Io<'_>,
) -> Result<Outcome> {
    let Some(fallback) = fallback else {
        return Ok(Outcome::Passed);
    };
    let obtained = {
        let mut say = |line: &str| io.say(line);
        obtain(fallback, config, state, deadline, &mut say)?
    };
    answer(&obtained.token, config, io)?;
    Ok(Outcome::Answered {
        minted: obtained.minted,
    })
}

/// The "not installed" reminder for one owner is shown at most this often.
pub const NOT_INSTALLED_NOTICE_EVERY: Duration = Duration::from_secs(60);

fn answer(token: &Token, config: &Config, io: &mut Io<'_>) -> Result<()> {
    let answer = Answer {
        username: config.username.clone(),
        password: token.secret.clone(),
        expiry: token.expires_at,
    };
    answer
        .write_to(io.stdout)
        .map_err(|e| anyhow!("cannot answer git: {e}"))
}

/// git rejected a credential. With a password: drop our cached token if it is the one git
/// rejected (a concurrent process may already have cached a newer one), and say so. Without one
/// (`git credential reject` with a URL): drop the owner's cached token. Never revoke: git also
/// erases after a transient 401.
fn erase(request: &Request, route: &Route<'_>, config: &Config, state: &State, io: &mut Io<'_>) {
    let cache = Cache::new(config.cache, state).with_deadline(Instant::now() + config.timeout);
    for candidate in route.candidates() {
        let Some(id) = installation_known(&candidate, state) else {
            continue;
        };
        let key = cache_key(&candidate, id);
        let Some(password) = &request.password else {
            trace!(
                "erase without a password: dropping the cached token of {}",
                candidate.describe()
            );
            cache.remove(&key);
            index::forget(state, &key);
            continue;
        };
        match cache.load(&key) {
            Some(token) if token.secret == *password => {
                trace!(
                    "erase: dropping cached token {}",
                    token.secret.fingerprint()
                );
                cache.remove(&key);
                index::forget(state, &key);
                io.say(&format!(
                    "git rejected token {} for {}; dropped it from the cache, so the next attempt mints a new one",
                    token.secret.fingerprint(),
                    candidate.describe()
                ));
                return;
            }
            Some(token) => trace!(
                "erase: cached token {} is not the rejected {}; kept",
                token.secret.fingerprint(),
                password.fingerprint()
            ),
            None => trace!("erase: nothing cached for app {}", candidate.app.id),
        }
    }
}

pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace(['\n', '\r'], " ")
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_stuck_lock_holder_is_waited_for_half_the_budget_then_one_waiter_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().to_path_buf());
        let held = state.lock("mint", Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let deadline = Deadline::after(Duration::from_millis(400));
        let takeover = take_mint_lock(&state, "mint", deadline);
        let waited = started.elapsed();
        assert!(takeover.is_some(), "the first waiter takes over");
        assert!(
            waited >= Duration::from_millis(180) && waited < Duration::from_millis(400),
            "waited {waited:?}: about half of the budget"
        );
        // A second waiter finds both taken and gives up at the deadline, not later.
        let started = Instant::now();
        let second = take_mint_lock(&state, "mint", Deadline::after(Duration::from_millis(300)));
        assert!(second.is_none());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(280) && waited < Duration::from_millis(600),
            "{waited:?}"
        );
        drop((held, takeover));
    }

    #[test]
    fn not_installed_messages_name_the_apps_the_owner_and_how_to_retry() {
        let n = NotInstalled {
            owner: "acme".into(),
            host: "github.com".into(),
            apps: vec![
                (AppId::Numeric(1), Some(1_000)),
                (AppId::Numeric(2), Some(1_030)),
            ],
        };
        assert!(!n.asked_github());
        assert_eq!(
            n.to_string(),
            "apps 1, 2 are not installed on 'acme' (github.com)"
        );
        let text = n.remembered_message(1_000 + 150);
        assert!(
            text.starts_with(&format!(
                "apps 1, 2 are not installed on 'acme' (github.com), as remembered since {} (2m 30s ago);",
                local_time(1_000)
            )),
            "{text}"
        );
        assert!(
            text.ends_with("run: git-credential-github-app forget acme"),
            "{text}"
        );
        let asked = NotInstalled {
            apps: vec![(AppId::Numeric(1), None)],
            ..n
        };
        assert!(asked.asked_github());
    }
}

//! The helper's operations, in order: request → route → cache → (lock → look up → mint) → answer.
//!
//! This is the only module that knows that order. It takes its input and output as parameters, so
//! the whole `get` path can be driven from tests, and it returns errors instead of printing them:
//! `cli` prints the one stderr line.

use crate::cache::{Cache, CacheKey};
use crate::config::Config;
use crate::github::{ApiError, Client, Token, unix_now};
use crate::jwt::Signer;
use crate::protocol::{Answer, Operation, Request};
use crate::route::{Decision, Route};
use crate::state::{NOT_INSTALLED_TTL, Remembered, State, digest};
use crate::{key, protocol, route, trace};
use anyhow::{Result, anyhow};
use std::io::Write;
use std::time::Duration;

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
    fn say(&mut self, line: &str) {
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
                hint.as_deref()
                    .unwrap_or("no app serves this host, owner or protocol")
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
        Operation::Get => get(&route, config, state, io),
        Operation::Erase => {
            erase(&request, &route, config, state);
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

fn cache_key(route: &Route<'_>, installation: u64) -> CacheKey {
    CacheKey::new(
        &route.api_url,
        &route.app.id,
        installation,
        &route.app.scope(),
    )
}

/// A cached token if it has at least the refresh margin left; else the still-valid one as fallback.
enum Cached {
    Fresh(Token),
    Fallback(Option<Token>),
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
        return Cached::Fresh(token);
    }
    trace!(
        "cached token {} has {} s left, inside the refresh margin",
        token.secret.fingerprint(),
        token.expires_at.saturating_sub(now)
    );
    Cached::Fallback((token.expires_at > now + MIN_FALLBACK_LIFETIME).then_some(token))
}

fn get(route: &Route<'_>, config: &Config, state: &State, io: &mut Io<'_>) -> Result<Outcome> {
    let cache = Cache::new(config.cache, state);
    let candidates = route.candidates();
    for candidate in &candidates {
        if let Cached::Fresh(token) = lookup_cache(candidate, config, state, &cache) {
            answer(&token, config, io)?;
            return Ok(Outcome::Answered { minted: false });
        }
    }
    // Cold: the apps in order; one that is not installed for the owner hands over to the next.
    let mut asked = Vec::new();
    for candidate in &candidates {
        match get_cold(candidate, config, state, &cache, io)? {
            Cold::Answered(outcome) => return Ok(outcome),
            Cold::NotInstalled { asked_github: true } => asked.push(candidate.app.id.to_string()),
            Cold::NotInstalled {
                asked_github: false,
            } => {}
        }
    }
    if !asked.is_empty() {
        io.say(&format!(
            "app {} is not installed on '{}' ({}); leaving this request to other helpers",
            asked.join(", "),
            route.owner.as_deref().unwrap_or_default(),
            route.app.host.as_str()
        ));
    }
    Ok(Outcome::Passed)
}

enum Cold {
    Answered(Outcome),
    /// `asked_github`: false when it was remembered from a recent lookup.
    NotInstalled {
        asked_github: bool,
    },
}

fn get_cold(
    route: &Route<'_>,
    config: &Config,
    state: &State,
    cache: &Cache,
    io: &mut Io<'_>,
) -> Result<Cold> {
    if let (None, Some(owner)) = (route.app.installation_id, &route.owner)
        && state.lookup_record(&route.api_url, &route.app.id, owner)
            == Some(Remembered::NotInstalled)
    {
        trace!(
            "app {} is not installed on '{owner}' (remembered for {} s)",
            route.app.id, NOT_INSTALLED_TTL
        );
        return Ok(Cold::NotInstalled {
            asked_github: false,
        });
    }
    // One process per (API, app, installation or owner) looks up and mints; the others wait, then
    // find the token in the cache. A fixed installation may serve several owners.
    let who = match (route.app.installation_id, &route.owner) {
        (Some(id), _) => format!("installation {id}"),
        (None, owner) => format!("owner {}", owner.as_deref().unwrap_or_default()),
    };
    let _lock = state.lock(
        &digest(&[&route.api_url, &route.app.id.iss(), &who]),
        config.timeout + Duration::from_secs(5),
    );
    let fallback = match lookup_cache(route, config, state, cache) {
        Cached::Fresh(token) => {
            trace!("another process minted while we waited");
            answer(&token, config, io)?;
            return Ok(Cold::Answered(Outcome::Answered { minted: false }));
        }
        Cached::Fallback(token) => token,
    };

    match mint(route, config, state, io) {
        Ok(Some((installation, token))) => {
            cache.save(&cache_key(route, installation), &token);
            answer(&token, config, io)?;
            Ok(Cold::Answered(Outcome::Answered { minted: true }))
        }
        Ok(None) => Ok(Cold::NotInstalled { asked_github: true }),
        Err(e) => match fallback {
            Some(token) => {
                let left = token.expires_at.saturating_sub(unix_now());
                io.say(&format!(
                    "warning: {}; answering with the cached token, which expires in {}",
                    one_line(&e),
                    humantime::format_duration(Duration::from_secs(left))
                ));
                answer(&token, config, io)?;
                Ok(Cold::Answered(Outcome::Answered { minted: false }))
            }
            None => Err(e),
        },
    }
}

/// Find the installation (unless known) and mint a token. `None`: the app is not installed for
/// this owner, so the request is not ours.
fn mint(
    route: &Route<'_>,
    config: &Config,
    state: &State,
    io: &mut Io<'_>,
) -> Result<Option<(u64, Token)>> {
    let app = route.app;
    let api = &route.api_url;
    let host = app.host.as_str();
    let started = std::time::Instant::now();
    let key = key::load(&app.key, &mut |warning| {
        if state.first_time(&warning) {
            io.say(&warning);
        }
    })?;
    trace!(
        "key loaded in {:.2} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let initial_offset = state.clock_offset(api);
    let mut signer = Signer::new(key, app.id.iss(), initial_offset);
    let client =
        Client::new(api, host, config.timeout).with_stateless_tokens(config.stateless_tokens);

    let result = (|| -> Result<Option<(u64, Token)>> {
        let mut remembered = installation_known(route, state);
        for attempt in 0..2 {
            let id = match remembered {
                Some(id) => id,
                None => match lookup(route, &client, &mut signer, state)? {
                    Some(id) => id,
                    None => return Ok(None),
                },
            };
            match client.create_token(&mut signer, id, &app.permissions) {
                Ok(token) => {
                    trace!(
                        "minted token {} for installation {id}, expires at {}",
                        token.secret.fingerprint(),
                        token.expires_at
                    );
                    return Ok(Some((id, token)));
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
                Err(ApiError::Failed(text)) => return Err(anyhow!(text)),
            }
        }
        Err(anyhow!(
            "the installation for {} keeps disappearing; try again",
            route.describe()
        ))
    })();

    if signer.offset != initial_offset {
        trace!(
            "remembering GitHub's clock offset {:+} s for {api}",
            signer.offset
        );
        state.remember_clock_offset(api, signer.offset);
    }
    result
}

fn lookup(
    route: &Route<'_>,
    client: &Client,
    signer: &mut Signer,
    state: &State,
) -> Result<Option<u64>> {
    let app = route.app;
    let Some(owner) = route.owner.as_deref() else {
        return Err(anyhow!(
            "no installation id and no owner for {}",
            route.describe()
        ));
    };
    match client
        .find_installation(signer, owner, route.repo.as_deref())
        .map_err(|e| anyhow!(e.to_string()))?
    {
        Some(installation) => {
            trace!(
                "owner '{owner}' → installation {} (account {})",
                installation.id, installation.account
            );
            state.remember_installation(&route.api_url, &app.id, owner, installation.id);
            Ok(Some(installation.id))
        }
        None => {
            trace!("app {} is not installed on '{owner}'", app.id);
            state.remember_not_installed(&route.api_url, &app.id, owner);
            Ok(None)
        }
    }
}

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

/// git rejected a credential: drop our cached token, but only if it is the one git rejected (a
/// concurrent process may already have cached a newer one). Never revoke: git also erases after a
/// transient 401.
fn erase(request: &Request, route: &Route<'_>, config: &Config, state: &State) {
    let Some(password) = &request.password else {
        return;
    };
    let cache = Cache::new(config.cache, state);
    for candidate in route.candidates() {
        let Some(id) = installation_known(&candidate, state) else {
            continue;
        };
        let key = cache_key(&candidate, id);
        match cache.load(&key) {
            Some(token) if token.secret == *password => {
                trace!(
                    "erase: dropping cached token {}",
                    token.secret.fingerprint()
                );
                cache.remove(&key);
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

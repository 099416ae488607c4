//! The helper's operations, in order: request → route → cache → (lock → fetch) → answer.
//!
//! This is the only module that knows that order, and it knows no kind of token: the route's
//! candidate entries become token sources ([`source::open`]), and the cache lookup, the refresh
//! margin, the fallback to a still-valid token, the single-flight lock with its takeover, the
//! index of minted tokens and `erase` work through the [`TokenSource`] trait alone. Obtaining a
//! token ([`obtain`], used by `get` and by the `token` and `exec` commands) is separate from
//! answering git, which only `get` does. It takes its input and output as parameters, so the
//! whole `get` path can be driven from tests, and it returns errors instead of printing them:
//! `cli` prints the one stderr line.

use crate::cache::index;
use crate::cache::{Cache, CacheKey};
use crate::config::Config;
use crate::github::{Deadline, unix_now};
use crate::protocol::{Answer, Operation, Request};
use crate::route::{Decision, Route};
use crate::secret::Expiring;
use crate::source::{self, Cx, Fetched, Known, NotMine, Target, Token, TokenSource};
use crate::state::{NOT_INSTALLED_TTL, State};
use crate::{protocol, route, trace};
use anyhow::{Result, anyhow};
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
    let erase = match op {
        // Tokens are minted, never stored from git: nothing to do, and nothing to say.
        Operation::Store => return Ok(Outcome::Done),
        Operation::Get => false,
        Operation::Erase => true,
    };
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
        "served by {} ({}) via {}",
        route.app.describe(),
        route.app.origin,
        route.api_url
    );
    if erase {
        drop_rejected(&request, &route, config, state, io);
        // A rejected public-fallback token is dropped too (it is cached under its own app).
        if let Some(public) = route::public_fallback(&request, &route, config) {
            drop_rejected(&request, &public, config, state, io);
        }
        return Ok(Outcome::Done);
    }
    let public = route::public_fallback(&request, &route, config);
    get(&route, public.as_ref(), config, state, deadline, io)
}

/// A token ready for use, and where it came from.
#[derive(Debug, Clone)]
pub struct Obtained {
    pub token: Token,
    /// Fetched by this run (else: from the cache).
    pub minted: bool,
    /// The installation, for an installation token fetched now (for a cached one, the index
    /// record says).
    pub installation: Option<u64>,
    /// The source's identity (the app's `iss`).
    pub source_id: String,
    /// The source's REST API base.
    pub api_url: String,
    pub cache_key: CacheKey,
}

/// No candidate source serves the owner: the request is not ours. `get` passes it on to git's
/// next helper; commands report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed {
    pub owner: String,
    pub host: String,
    /// Why each candidate said no, in order.
    pub reasons: Vec<NotMine>,
}

impl NotServed {
    /// True when at least one source asked upstream in this run (else: all remembered).
    pub fn asked_now(&self) -> bool {
        self.reasons.iter().any(NotMine::asked_now)
    }

    /// `app 1 is` or `apps 1, 2 are` (the apps not installed on the owner).
    fn app_list(&self) -> String {
        let apps: Vec<String> = self
            .reasons
            .iter()
            .filter_map(|r| match r {
                NotMine::NotInstalled { app, .. } => Some(app.to_string()),
                NotMine::NotLoggedIn { .. } => None,
                NotMine::Broker { .. } => None,
            })
            .collect();
        if apps.len() == 1 {
            format!("app {} is", apps[0])
        } else {
            format!("apps {} are", apps.join(", "))
        }
    }

    /// Whether every reason was already explained to the person by its source in this run.
    pub fn all_said(&self) -> bool {
        self.reasons
            .iter()
            .all(|r| matches!(r, NotMine::NotLoggedIn { said: true, .. }))
    }

    /// What the person can do about it, as sentences after the message (how to log in).
    pub fn advice(&self) -> String {
        self.reasons
            .iter()
            .filter_map(|r| match r {
                NotMine::NotLoggedIn {
                    login, said: false, ..
                } => Some(format!(". To log in, run: {login}")),
                _ => None,
            })
            .collect()
    }

    /// The stderr line when the sources were just asked: say so, for how long "not installed" is
    /// remembered, and how to retry at once (an app installed a minute later would otherwise go
    /// unused); for a missing login, how to log in.
    pub fn first_message(&self) -> String {
        let not_installed = self
            .reasons
            .iter()
            .any(|r| matches!(r, NotMine::NotInstalled { .. }));
        if !not_installed {
            return format!(
                "{self}; leaving this request to other helpers{}",
                self.advice()
            );
        }
        format!(
            "{self}; leaving this request to other helpers (remembered for {} min). If you install the app now, run: git-credential-github-app forget {}{}",
            NOT_INSTALLED_TTL / 60,
            self.owner,
            self.advice()
        )
    }

    /// The stderr line for an owner remembered as "not installed": say so, and how to retry now.
    pub fn remembered_message(&self, now: u64) -> String {
        let since = self
            .reasons
            .iter()
            .filter_map(NotMine::since)
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

impl std::fmt::Display for NotServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self
            .reasons
            .iter()
            .any(|r| matches!(r, NotMine::NotInstalled { .. }))
        {
            parts.push(format!(
                "{} not installed on '{}' ({})",
                self.app_list(),
                self.owner,
                self.host
            ));
        }
        for r in &self.reasons {
            match r {
                NotMine::NotLoggedIn { app, host, .. } => {
                    parts.push(format!("not logged in to {host} with app {app}"))
                }
                // A broker's refusal says it all, in its own words.
                NotMine::Broker { message } => parts.push(message.clone()),
                NotMine::NotInstalled { .. } => {}
            }
        }
        f.write_str(&parts.join("; "))
    }
}

/// What [`obtain`] got: a token, or the reasons no source serves the target.
#[derive(Debug)]
pub enum Obtain {
    Token(Obtained),
    NotServed(NotServed),
}

/// `HH:MM:SS` in the local time zone (UTC where the zone is unknown).
pub fn local_time(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix);
    let local: chrono::DateTime<chrono::Local> = t.into();
    local.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// A cached token if it has at least the refresh margin left; else the still-valid one as
/// fallback (with its key).
enum Cached {
    Fresh(CacheKey, Expiring),
    Fallback(Option<(CacheKey, Expiring)>),
}

fn lookup_cache(key: Option<&CacheKey>, config: &Config, cache: &Cache) -> Cached {
    let Some(key) = key else {
        return Cached::Fallback(None);
    };
    let Some(token) = cache.load(key) else {
        return Cached::Fallback(None);
    };
    let now = unix_now();
    if token.expires_at >= now + config.refresh_margin.as_secs() {
        return Cached::Fresh(key.clone(), token);
    }
    trace!(
        "cached token {} has {} s left, inside the refresh margin",
        token.secret.fingerprint(),
        token.expires_at.saturating_sub(now)
    );
    Cached::Fallback((token.expires_at > now + MIN_FALLBACK_LIFETIME).then(|| (key.clone(), token)))
}

fn from_cache(
    source: &dyn TokenSource,
    target: &Target,
    key: CacheKey,
    token: Expiring,
) -> Obtained {
    Obtained {
        token: Token {
            secret: token.secret,
            expires_at: token.expires_at,
            kind: source.kind(),
            account: target.owner.clone(),
            permissions: None,
        },
        minted: false,
        installation: None,
        source_id: source.id(),
        api_url: source.api_url().to_owned(),
        cache_key: key,
    }
}

/// The token sources of `route`'s candidates, in order.
fn sources<'a>(route: &Route<'a>, config: &Config) -> Vec<Box<dyn TokenSource + 'a>> {
    route
        .candidates()
        .map(|(app, api_url)| source::open(app, api_url.to_owned(), config))
        .collect()
}

/// Obtain a token for `route`: from the cache, else (under the cross-process lock) from the
/// token source, trying each candidate in order. Everything ends by `deadline`. `say` gets the
/// warnings a person should see (one line each).
pub fn obtain(
    route: &Route<'_>,
    config: &Config,
    state: &State,
    deadline: Deadline,
    say: &mut dyn FnMut(&str),
) -> Result<Obtain> {
    let cache = Cache::new(config.cache, state).with_deadline(deadline.at());
    let target = route.target();
    let sources = sources(route, config);
    let mut known = Vec::with_capacity(sources.len());
    for source in &sources {
        let k = source.key(&target, state);
        if let Known::Key(key) = &k
            && let Cached::Fresh(key, token) = lookup_cache(Some(key), config, &cache)
        {
            return Ok(Obtain::Token(from_cache(
                source.as_ref(),
                &target,
                key,
                token,
            )));
        }
        known.push(k);
    }
    // Cold: the sources in order; one that does not serve the target hands over to the next.
    let mut not_served = NotServed {
        owner: route.owner.clone().unwrap_or_default(),
        host: route.app.host.as_str().to_owned(),
        reasons: Vec::new(),
    };
    for (source, known) in sources.iter().zip(known) {
        let key = match known {
            Known::NotMine(reason) => {
                not_served.reasons.push(reason);
                continue;
            }
            Known::Key(key) => Some(key),
            Known::Unknown => None,
        };
        let mut cx = Cx {
            state,
            deadline,
            say: &mut *say,
        };
        match obtain_cold(source.as_ref(), &target, key, config, &cache, &mut cx)? {
            Cold::Got(obtained) => return Ok(Obtain::Token(obtained)),
            Cold::NotMine(reason) => not_served.reasons.push(reason),
        }
    }
    Ok(Obtain::NotServed(not_served))
}

enum Cold {
    Got(Obtained),
    NotMine(NotMine),
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

/// The cold path for one source: under its single-flight lock, look at the cache again (another
/// process may have fetched meanwhile), then fetch, cache and record. `key`: where the token is
/// cached, if known before fetching.
fn obtain_cold(
    source: &dyn TokenSource,
    target: &Target,
    key: Option<CacheKey>,
    config: &Config,
    cache: &Cache,
    cx: &mut Cx<'_>,
) -> Result<Cold> {
    let _lock = take_mint_lock(cx.state, &source.flight(target), cx.deadline);
    // Known now if another process fetched (or found the target is not the source's) while we
    // waited.
    let key = match key {
        Some(key) => Some(key),
        None => match source.key(target, cx.state) {
            Known::Key(key) => Some(key),
            Known::NotMine(reason) => return Ok(Cold::NotMine(reason)),
            Known::Unknown => None,
        },
    };
    let fallback = match lookup_cache(key.as_ref(), config, cache) {
        Cached::Fresh(key, token) => {
            trace!("another process minted while we waited");
            return Ok(Cold::Got(from_cache(source, target, key, token)));
        }
        Cached::Fallback(token) => token,
    };
    if cx.deadline.passed() {
        let e = anyhow!(
            "another git-credential-github-app process was getting the token for {} and did not finish within the time budget (--timeout {})",
            target.describe(),
            humantime::format_duration(config.timeout)
        );
        return use_fallback(source, target, fallback, e, cx.say);
    }

    match source.fetch(target, cx) {
        Ok(Fetched::Token { token, key, about }) => {
            let stores = cache.save(
                &key,
                &Expiring {
                    secret: token.secret.clone(),
                    expires_at: token.expires_at,
                },
            );
            index::remember(
                cx.state,
                &source::Record::new(source, target, &key, &token, &about, &stores),
            );
            Ok(Cold::Got(Obtained {
                token,
                minted: true,
                installation: about.installation,
                source_id: source.id(),
                api_url: source.api_url().to_owned(),
                cache_key: key,
            }))
        }
        Ok(Fetched::NotMine(reason)) => Ok(Cold::NotMine(reason)),
        Err(e) => use_fallback(source, target, fallback, e, cx.say),
    }
}

/// After a failure: the cached token that is still valid, with a warning, else the error.
fn use_fallback(
    source: &dyn TokenSource,
    target: &Target,
    fallback: Option<(CacheKey, Expiring)>,
    e: anyhow::Error,
    say: &mut dyn FnMut(&str),
) -> Result<Cold> {
    match fallback {
        Some((key, token)) => {
            let left = token.expires_at.saturating_sub(unix_now());
            say(&format!(
                "warning: {}; answering with the cached token, which expires in {}",
                one_line(&e),
                humantime::format_duration(Duration::from_secs(left))
            ));
            Ok(Cold::Got(from_cache(source, target, key, token)))
        }
        None => Err(e),
    }
}

/// `get`: obtain, then answer git. An owner no source serves is passed on to the next helper,
/// with one line on stderr (for a remembered "not installed", at most once a minute per owner).
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
        obtain(route, config, state, deadline, &mut say)?
    };
    match obtained {
        Obtain::Token(obtained) => {
            answer(&obtained.token, config, io)?;
            Ok(Outcome::Answered {
                minted: obtained.minted,
            })
        }
        Obtain::NotServed(not_served) if let Some(fallback) = public_fallback => {
            trace!("{not_served}; answering with the public fallback app's token");
            answer_public_fallback(fallback, config, state, deadline, io)
        }
        Obtain::NotServed(not_served) => {
            // Said when GitHub was asked; when remembered, reminded at most once a minute.
            let due = state.at_most_every(
                &format!("not-installed {} {}", not_served.host, not_served.owner),
                NOT_INSTALLED_NOTICE_EVERY,
            );
            if not_served.all_said() {
                trace!("{not_served}; leaving this request to other helpers");
            } else if not_served.asked_now() {
                io.say(&not_served.first_message());
            } else if due {
                io.say(&not_served.remembered_message(unix_now()));
            }
            Ok(Outcome::Passed)
        }
    }
}

/// Answer with the token of `[public_fallback]`'s installation.
fn answer_public_fallback(
    fallback: &Route<'_>,
    config: &Config,
    state: &State,
    deadline: Deadline,
    io: &mut Io<'_>,
) -> Result<Outcome> {
    let obtained = {
        let mut say = |line: &str| io.say(line);
        obtain(fallback, config, state, deadline, &mut say)?
    };
    match obtained {
        Obtain::Token(obtained) => {
            answer(&obtained.token, config, io)?;
            Ok(Outcome::Answered {
                minted: obtained.minted,
            })
        }
        Obtain::NotServed(not_served) => Err(anyhow!("{not_served}")),
    }
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
fn drop_rejected(
    request: &Request,
    route: &Route<'_>,
    config: &Config,
    state: &State,
    io: &mut Io<'_>,
) {
    let cache = Cache::new(config.cache, state).with_deadline(Instant::now() + config.timeout);
    let target = route.target();
    for source in sources(route, config) {
        let Known::Key(key) = source.key(&target, state) else {
            continue;
        };
        let Some(password) = &request.password else {
            trace!(
                "erase without a password: dropping the cached token of {} for {}",
                source.describe(),
                target.describe()
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
                source.rejected(password, state);
                io.say(&format!(
                    "git rejected token {} for {}; dropped it from the cache, so the next attempt mints a new one",
                    token.secret.fingerprint(),
                    target.describe()
                ));
                return;
            }
            Some(token) => trace!(
                "erase: cached token {} is not the rejected {}; kept",
                token.secret.fingerprint(),
                password.fingerprint()
            ),
            None => trace!("erase: nothing cached for {}", source.describe()),
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
    use crate::config::AppId;
    use std::time::Instant;

    /// Only what holds however slowly the machine runs: no waiter takes over or gives up early,
    /// and the one that takes over holds the second lock. (How late is not asserted: a loaded
    /// machine can always be later.)
    #[test]
    fn a_stuck_lock_holder_is_waited_for_half_the_budget_then_one_waiter_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().to_path_buf());
        let held = state.lock("mint", Duration::from_secs(1)).unwrap();
        let deadline = Deadline::after(Duration::from_millis(400));
        let half_spent = deadline.at() - Duration::from_millis(200);
        let takeover = take_mint_lock(&state, "mint", deadline);
        assert!(takeover.is_some(), "the first waiter takes over");
        assert!(
            Instant::now() >= half_spent,
            "it took over before half of the budget was spent on the holder"
        );
        assert!(
            state.lock("mint-takeover", Duration::ZERO).is_none(),
            "the takeover holds the second lock"
        );
        // A second waiter finds both taken and gives up, not before its deadline.
        let deadline = Deadline::after(Duration::from_millis(300));
        assert!(take_mint_lock(&state, "mint", deadline).is_none());
        assert!(deadline.passed(), "gave up before the deadline");
        drop((held, takeover));
    }

    #[test]
    fn not_installed_messages_name_the_apps_the_owner_and_how_to_retry() {
        let n = NotServed {
            owner: "acme".into(),
            host: "github.com".into(),
            reasons: vec![
                NotMine::NotInstalled {
                    app: AppId::Numeric(1),
                    since: Some(1_000),
                },
                NotMine::NotInstalled {
                    app: AppId::Numeric(2),
                    since: Some(1_030),
                },
            ],
        };
        assert!(!n.asked_now());
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
        let asked = NotServed {
            reasons: vec![NotMine::NotInstalled {
                app: AppId::Numeric(1),
                since: None,
            }],
            ..n
        };
        assert!(asked.asked_now());
        assert_eq!(
            asked.first_message(),
            "app 1 is not installed on 'acme' (github.com); leaving this request to other helpers (remembered for 5 min). If you install the app now, run: git-credential-github-app forget acme"
        );
    }
}

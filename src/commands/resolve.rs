//! How the commands resolve what they work on, one way for all: the app(s) and the host
//! ([`resolve`]: flags, environment, config file, then the helper line git runs), a route for
//! `OWNER[/REPO]` typed by a person exactly as git's request for that repository would be routed
//! (so `token` and git share one cache entry and one mint), and the cache entries `status`,
//! `revoke` and `forget` look through.

use super::Context;
use crate::cache::index;
use crate::config::{self, App, CacheMode, Config, Flags, Host};
use crate::github::Deadline;
use crate::protocol::{Request, printable};
use crate::route::{self, Decision, Route};
use crate::state::State;
use crate::{gitconfig, source};
use anyhow::{Result, anyhow, bail};

/// The app(s) and the host a command works on, resolved the one way every command shares.
#[derive(Debug)]
pub struct Resolved {
    pub config: Config,
    pub host: Host,
    /// Where the apps came from: "the command line", "the environment", "the config file" or
    /// "the helper line in file:/home/me/.gitconfig".
    pub from: String,
}

/// Resolve the configuration and the host for a command: flags, then the environment, then the
/// config file; when these name no app, the helper line git runs for the host (the one `setup`
/// wrote). The host is `--host`, else `GITHUB_APP_HOST`, else the one host the apps serve (else
/// github.com for finding the helper line).
pub fn resolve(ctx: &Context) -> Result<Resolved> {
    let host_given = ctx
        .flags
        .host
        .clone()
        .or_else(|| ctx.env(config::env::HOST).filter(|v| !v.trim().is_empty()))
        .map(|text| Host::parse(&text))
        .transpose()?;
    let config = config::resolve(&ctx.flags, &|name| ctx.env(name))?;
    let serves =
        |c: &Config, host: Option<&Host>| c.apps.iter().any(|a| host.is_none_or(|h| a.host == *h));
    if serves(&config, host_given.as_ref()) {
        let from = if ctx.flags.app_id.is_some() {
            "the command line"
        } else if ctx.env(config::env::APP_ID).is_some() {
            "the environment"
        } else {
            "the config file"
        };
        let host = match host_given {
            Some(host) => host,
            None => only_host(&config)?,
        };
        return Ok(Resolved {
            config,
            host,
            from: from.to_owned(),
        });
    }
    let host = match host_given {
        Some(host) => host,
        None => Host::parse("github.com")?,
    };
    if let Some((flags, origin)) = helper_line_flags(ctx, &host) {
        let config = config::resolve(&flags, &|name| ctx.env(name))?;
        if serves(&config, Some(&host)) {
            return Ok(Resolved {
                config,
                host,
                from: format!("the helper line in {origin}"),
            });
        }
    }
    bail!(
        "no GitHub App configured for {}: pass --app-id and --private-key, set GITHUB_APP_ID, list apps in {}, or run setup",
        host.as_str(),
        config::default_config_path().map_or("the config file".into(), |p| p.display().to_string())
    )
}

/// The flags of our helper line among the helpers git runs for `host`, and where it is written.
/// The command's own `--verbose`, `--timeout`, `--cache` and `--refresh-margin` are kept.
pub fn helper_line_flags(ctx: &Context, host: &Host) -> Option<(Flags, String)> {
    let entries = gitconfig::helper_entries(None).ok()?;
    let effective = gitconfig::effective_helpers(&entries, protocol(host), host.as_str());
    let ours = effective
        .into_iter()
        .find(|e| e.value.as_deref().is_some_and(gitconfig::is_ours))?;
    let words = gitconfig::shell_words(ours.value.as_deref()?.trim_start_matches('!'))?;
    let mut flags = Flags::from_words(words.into_iter().skip(1)).ok()?;
    flags.verbose |= ctx.flags.verbose;
    // The helper line is the last source: how the command itself was told to behave (its own
    // --timeout, --cache, --refresh-margin, or their variables) wins over what the line says.
    let own = |flag: &Option<String>, var: &str| flag.clone().or_else(|| ctx.env(var));
    if let Some(v) = own(&ctx.flags.timeout, config::env::TIMEOUT) {
        flags.timeout = Some(v);
    }
    if let Some(v) = own(&ctx.flags.cache, config::env::CACHE) {
        flags.cache = Some(v);
    }
    if let Some(v) = own(&ctx.flags.refresh_margin, config::env::REFRESH_MARGIN) {
        flags.refresh_margin = Some(v);
    }
    Some((flags, ours.origin.clone()))
}

/// The one host the configured apps serve.
fn only_host(config: &Config) -> Result<Host> {
    let mut names: Vec<&str> = config.apps.iter().map(|a| a.host.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] => Host::parse(one),
        _ => bail!(
            "the configured apps serve several hosts ({}); choose one with --host",
            names.join(", ")
        ),
    }
}

/// The protocol git uses for `host` when no configured app says (see [`App::git_protocol`]):
/// https, or http for the loopback hosts (the local test GitHub).
pub fn protocol(host: &Host) -> &'static str {
    if host.is_loopback() { "http" } else { "https" }
}

/// The protocol git uses for `host`, as the first app configured for it says.
fn protocol_in(config: &Config, host: &Host) -> &'static str {
    config
        .apps
        .iter()
        .find(|a| a.host == *host)
        .map_or_else(|| protocol(host), App::git_protocol)
}

/// `OWNER` or `OWNER/REPO` (a trailing `.git` is fine), as git's request for it with `protocol`.
pub fn request(protocol: &str, host: &Host, target: &str) -> Request {
    let path = target.trim().trim_matches('/');
    Request {
        protocol: protocol.to_owned(),
        host: host.as_str().to_owned(),
        path: Some(path.to_owned()),
        ..Request::default()
    }
}

/// The route git's request for `target` would take.
pub fn route<'a>(config: &'a Config, host: &Host, target: &str) -> Result<Route<'a>> {
    let request = request(protocol_in(config, host), host, target);
    match route::route(&request, config) {
        Decision::Serve(route) => Ok(route),
        Decision::NotMine(_) => Err(anyhow!(
            "no configured app serves '{}' on {}: {}",
            printable(target),
            host.as_str(),
            route::not_ours_reason(&request, config)
        )),
        Decision::Refuse(why) => Err(anyhow!(why)),
    }
}

/// The one required `OWNER[/REPO]` word.
pub fn owner_repo_arg<'a>(args: &'a super::Args, usage: &str) -> Result<&'a str> {
    args.positional.first().map(String::as_str).ok_or_else(|| {
        anyhow!("give the owner (or OWNER/REPO); usage: git-credential-github-app {usage}")
    })
}

/// What `status`, `revoke` and `forget` look through: the configuration if it resolves (none is
/// needed to look), its cache mode, and a deadline so that a frozen keyring holds the command up
/// no longer than a get.
pub fn local(ctx: &Context) -> (Option<Config>, CacheMode, Deadline) {
    let config = resolve(ctx).ok().map(|r| r.config);
    let (mode, timeout) = config
        .as_ref()
        .map_or((CacheMode::Auto, config::DEFAULT_TIMEOUT), |c| {
            (c.cache, c.timeout)
        });
    (config, mode, Deadline::after(timeout))
}

/// The optional `OWNER` of `revoke` and `forget`, as compared (lower case).
pub fn owner_arg(args: &super::Args) -> Option<String> {
    args.positional
        .first()
        .map(|o| o.trim().to_ascii_lowercase())
}

/// Every cache entry the helper may hold: the index of minted tokens, plus the entries each
/// configured source knows it may hold without a record (for installation tokens: the entry of
/// each installation it has, fixed or remembered for an owner) — so tokens whose index record
/// could not be written (or was deleted) are still found. Entries without a record have no
/// fingerprint, expiry or stores yet: the caller loads the token to see whether it is there.
pub fn cache_entries(state: &State, config: Option<&Config>) -> Vec<source::Record> {
    let mut entries = index::all(state);
    let Some(config) = config else {
        return entries;
    };
    for app in &config.apps {
        let source = source::open(app, app.api_url(app.git_protocol()), config);
        for entry in source.unrecorded_entries(state) {
            if !entries.iter().any(|e| e.key == entry.key) {
                entries.push(entry);
            }
        }
    }
    entries
}

/// "in 42 min", "in 1h 3m", "5 min ago", "just now" (whole minutes, rounded up into the future
/// and down into the past).
pub fn relative(unix: u64, now: u64) -> String {
    let hours = |m: u64| {
        if m >= 60 {
            format!("{}h {}m", m / 60, m % 60)
        } else {
            format!("{m} min")
        }
    };
    if unix > now {
        format!("in {}", hours((unix - now).div_ceil(60)))
    } else if now - unix < 60 {
        "just now".to_owned()
    } else {
        format!("{} ago", hours((now - unix) / 60))
    }
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(1000 + 42 * 60, 1000), "in 42 min");
        assert_eq!(relative(1000 + 41 * 60 + 1, 1000), "in 42 min");
        assert_eq!(relative(1000 + 63 * 60, 1000), "in 1h 3m");
        assert_eq!(relative(1000, 1000 + 300), "5 min ago");
        assert_eq!(relative(1000, 1000 + 59), "just now");
        assert_eq!(relative(1000, 1000), "just now");
        assert_eq!(rfc3339(1468275250), "2016-07-11T22:14:10Z");
    }
}

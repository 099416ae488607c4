//! `status [--json]`: what the helper holds for this user — cached tokens (by fingerprint, never
//! the token), remembered installations and "not installed" owners. No GitHub call.

use super::{Args, Command, Context, Opt, Output, resolve};
use crate::cache::Cache;
use crate::cache::index;
use crate::github::unix_now;
use crate::source::user;
use crate::state::{NOT_INSTALLED_TTL, State};
use crate::{app, source};
use anyhow::Result;
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "status",
    summary: "show cached tokens (fingerprints only) and remembered installations",
    usage: "status [--json]",
    help: "\
Shows what the helper keeps for you, per host, app, owner and installation: each cached token's
fingerprint (never the token), when it expires (local time and \"in 42 min\") and where it is
cached; the installations remembered for owners; and the owners remembered as \"not installed\"
(they are looked up again after 5 minutes, or at once after `forget OWNER`). Nothing is asked
of GitHub.

OPTIONS:
    --json      the same as a JSON object
",
    options: &[Opt::flag("json")],
    max_positional: 0,
    trailing: false,
    run,
};

/// One cached token, described.
struct Cached {
    record: source::Record,
    fingerprint: String,
    expires_at: u64,
}

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let (config, mode, deadline) = resolve::local(ctx);
    let state = State::open();
    let cache = Cache::new(mode, &state).with_deadline(deadline.at());
    let now = unix_now();
    let mut tokens = Vec::new();
    for record in resolve::cache_entries(&state, config.as_ref()) {
        let key = record.cache_key();
        match cache.load(&key) {
            Some(token) if token.expires_at > now => tokens.push(Cached {
                fingerprint: token.secret.fingerprint(),
                expires_at: token.expires_at,
                record,
            }),
            _ => index::forget_key(&state, &record.key),
        }
    }
    let logins = config
        .as_ref()
        .map(|c| user::logins(c, deadline.at()))
        .unwrap_or_default();
    let records = state.installation_records();
    let cache_dir = state
        .root()
        .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());

    if args.flag("json") {
        let value = serde_json::json!({
            "cache_dir": cache_dir,
            "tokens": tokens.iter().map(|t| serde_json::json!({
                "host": t.record.host,
                "api_url": t.record.api,
                "app_id": t.record.app,
                "owner": t.record.owner,
                "installation_id": t.record.installation,
                "account": t.record.account,
                "scope": t.record.scope,
                "fingerprint": t.fingerprint,
                "expires_at": resolve::rfc3339(t.expires_at),
                "expires_in_seconds": t.expires_at.saturating_sub(now),
                "backends": t.record.stores,
                "permissions": t.record.permissions,
            })).collect::<Vec<_>>(),
            "logins": logins.iter().map(|l| serde_json::json!({
                "host": l.app.host,
                "app_id": l.app.client_id,
                "user": l.login.as_ref().map(|(login, _)| login.user.clone()),
                "expires_at": l.login.as_ref().and_then(|(login, _)| login.expires_at).map(resolve::rfc3339),
                "refresh_token_expires_at": l.login.as_ref().and_then(|(login, _)| login.refresh_expires_at).map(resolve::rfc3339),
                "kept_in": l.login.as_ref().map(|(_, place)| place.describe()),
            })).collect::<Vec<_>>(),
            "installations": records.iter().filter_map(|r| r.installation.map(|id| serde_json::json!({
                "api_url": r.api,
                "app_id": r.app,
                "owner": r.owner,
                "installation_id": id,
                "remembered_since": resolve::rfc3339(r.checked_at),
            }))).collect::<Vec<_>>(),
            "not_installed": records.iter().filter(|r| r.installation.is_none()).map(|r| serde_json::json!({
                "api_url": r.api,
                "app_id": r.app,
                "owner": r.owner,
                "remembered_since": resolve::rfc3339(r.checked_at),
                "asked_again_at": resolve::rfc3339(r.checked_at + NOT_INSTALLED_TTL),
            })).collect::<Vec<_>>(),
        });
        writeln!(out.out, "{value:#}")?;
        return Ok(ExitCode::SUCCESS);
    }

    let o = &mut *out.out;
    writeln!(o, "Cached tokens:")?;
    if tokens.is_empty() {
        writeln!(o, "  none")?;
    }
    for t in &tokens {
        let r = &t.record;
        if r.kind == source::Kind::User {
            writeln!(
                o,
                "  {} app {} user token of {}: token {}, expires {} ({}), {}",
                r.host,
                r.app,
                r.account,
                t.fingerprint,
                app::local_time(t.expires_at),
                resolve::relative(t.expires_at, now),
                if r.stores.is_empty() {
                    "cached".to_owned()
                } else {
                    format!("cached in {}", r.stores.join(", "))
                },
            )?;
            continue;
        }
        // An installation token minted here names its app and installation; a brokered one its
        // broker (kind and URL or command).
        let from = match r.kind {
            source::Kind::Installation => {
                format!(
                    "app {} owner '{}' installation {}",
                    r.app, r.owner, r.installation
                )
            }
            kind => format!("{} {} owner '{}'", kind.as_str(), r.app, r.owner),
        };
        writeln!(
            o,
            "  {} {from}: token {}, expires {} ({}), {}{}",
            r.host,
            t.fingerprint,
            app::local_time(t.expires_at),
            resolve::relative(t.expires_at, now),
            if r.stores.is_empty() {
                "cached".to_owned()
            } else {
                format!("cached in {}", r.stores.join(", "))
            },
            if r.scope.is_empty() {
                String::new()
            } else {
                format!("; narrowed to {}", r.scope)
            }
        )?;
    }
    if !logins.is_empty() {
        writeln!(o, "Logins (user tokens):")?;
    }
    for l in &logins {
        match &l.login {
            Some((login, place)) => {
                let expiry = |at: Option<u64>| match at {
                    Some(at) if at > now => format!(
                        "expires {} (in {})",
                        app::local_time(at),
                        user::approx(at - now)
                    ),
                    Some(at) => format!("expired {}", app::local_time(at)),
                    None => "does not expire".to_owned(),
                };
                writeln!(
                    o,
                    "  {} app {}: logged in as {} since {}; token {}; refresh token {}; kept in {}",
                    l.app.host,
                    l.app.client_id,
                    login.user,
                    app::local_time(login.logged_in_at),
                    expiry(login.expires_at),
                    match login.refresh {
                        Some(_) => expiry(login.refresh_expires_at),
                        None => "none".to_owned(),
                    },
                    place.describe()
                )?;
            }
            None => writeln!(
                o,
                "  {} app {}: not logged in (run: {})",
                l.app.host,
                l.app.client_id,
                l.app.login_command()
            )?,
        }
    }
    writeln!(o, "Remembered installations:")?;
    let installed: Vec<_> = records
        .iter()
        .filter(|r| r.installation.is_some())
        .collect();
    if installed.is_empty() {
        writeln!(o, "  none")?;
    }
    for r in installed {
        writeln!(
            o,
            "  {} app {} owner '{}': installation {} (looked up {})",
            r.api,
            r.app,
            r.owner,
            r.installation.unwrap_or_default(),
            resolve::relative(r.checked_at, now)
        )?;
    }
    writeln!(
        o,
        "Not installed (asked again after 5 min, or now after `forget OWNER`):"
    )?;
    let missing: Vec<_> = records
        .iter()
        .filter(|r| r.installation.is_none())
        .collect();
    if missing.is_empty() {
        writeln!(o, "  none")?;
    }
    for r in missing {
        writeln!(
            o,
            "  {} app {} owner '{}': since {} ({})",
            r.api,
            r.app,
            r.owner,
            app::local_time(r.checked_at),
            resolve::relative(r.checked_at, now)
        )?;
    }
    writeln!(o, "Cache directory: {cache_dir}")?;
    Ok(ExitCode::SUCCESS)
}

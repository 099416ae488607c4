//! `token OWNER[/REPO] [--json]`: print the installation token git would get for that owner —
//! the same cache entry, the same single mint under the same lock — for curl, gh and scripts.

use super::{Args, Command, Context, Opt, Output, resolve};
use crate::app::{self, Obtain, Obtained};
use crate::cache::index;
use crate::github::Deadline;
use crate::state::State;
use crate::{source, trace};
use anyhow::{Result, bail};
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "token",
    summary: "print the installation token for an owner (for curl, gh, scripts)",
    usage: "token OWNER[/REPO] [--json]",
    help: "\
Prints the installation token git gets for OWNER (or OWNER/REPO): the same cached token, minted
once when none is cached, so that

    GH_TOKEN=$(git-credential-github-app token acme) gh pr list
    curl -H \"Authorization: Bearer $(git-credential-github-app token acme)\" https://api.github.com/...

work as the app. The token is the only thing on stdout. With --repo-scoped or --permissions the
token is narrowed as git's would be.

OPTIONS:
    --json      an object instead: token, expires_at (RFC 3339), kind, installation_id,
                account, permissions (when known), app_id, api_url, minted
",
    options: &[Opt::flag("json")],
    max_positional: 1,
    trailing: false,
    run,
};

/// Obtain the token for the command's `OWNER[/REPO]` as `get` would, with what the index of
/// minted tokens knows about it (for a cached token).
pub fn obtain_for(
    ctx: &Context,
    args: &Args,
    usage: &str,
    out: &mut Output<'_>,
) -> Result<(Obtained, Option<source::Record>)> {
    let which = resolve::owner_repo_arg(args, usage)?;
    let resolve::Resolved { config, host, from } = resolve::resolve(ctx)?;
    trace!("the app comes from {from}");
    let deadline = Deadline::after(config.timeout);
    let route = resolve::route(&config, &host, which)?;
    let state = State::open();
    let mut say = |line: &str| {
        let _ = writeln!(out.err, "git-credential-github-app: {line}");
    };
    let mut obtained = match app::obtain(&route, &config, &state, deadline, &mut say)? {
        Obtain::Token(obtained) => obtained,
        // Remembered from an earlier lookup: say how to ask GitHub again now.
        Obtain::NotServed(n) if !n.asked_now() => bail!(
            "{n} (remembered for 5 minutes; to ask GitHub again now, run: git-credential-github-app forget {})",
            n.owner
        ),
        Obtain::NotServed(n) => bail!("{n}"),
    };
    let record = index::find(&state, &obtained.cache_key);
    if let Some(record) = &record {
        if obtained.token.permissions.is_none() {
            obtained.token.permissions = Some(record.permissions.clone());
        }
        if !record.account.is_empty() && !obtained.minted {
            obtained.token.account = Some(record.account.clone());
        }
    }
    Ok((obtained, record))
}

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let (obtained, record) = obtain_for(ctx, args, COMMAND.usage, out)?;
    if args.flag("json") {
        let value = serde_json::json!({
            "token": obtained.token.secret.expose(),
            "expires_at": resolve::rfc3339(obtained.token.expires_at),
            "kind": obtained.token.kind.as_str(),
            "installation_id": obtained
                .installation
                .or_else(|| record.as_ref().map(|r| r.installation).filter(|i| *i != 0)),
            "account": obtained.token.account,
            "permissions": obtained.token.permissions,
            "app_id": obtained.source_id,
            "api_url": obtained.api_url,
            "minted": obtained.minted,
        });
        writeln!(out.out, "{value:#}")?;
    } else {
        writeln!(out.out, "{}", obtained.token.secret.expose())?;
    }
    Ok(ExitCode::SUCCESS)
}

//! `revoke [OWNER]`: revoke the cached tokens on GitHub (`DELETE /installation/token`) and drop
//! them from every cache tier.

use super::{Args, Command, Context, Output, resolve};
use crate::cache::Cache;
use crate::cache::index;
use crate::github::Revoked;
use crate::source;
use crate::state::State;
use anyhow::Result;
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "revoke",
    summary: "revoke cached tokens on GitHub and drop them from the cache",
    usage: "revoke [OWNER]",
    help: "\
Revokes every cached token (or OWNER's) on GitHub, so it stops working at once, and drops it
from every cache tier (kernel keyring, Secret Service/Keychain/Credential Manager, file). The
next git command mints a new token. A token GitHub cannot be reached to revoke stays cached, so
that `revoke` can be run again; the command then exits 1.
",
    options: &[],
    max_positional: 1,
    trailing: false,
    run,
};

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let owner = resolve::owner_arg(args);
    let (config, mode, deadline) = resolve::local(ctx);
    let state = State::open();
    let cache = Cache::new(mode, &state).with_deadline(deadline.at());
    let mut failed = 0;
    let mut revoked = 0;
    for record in resolve::cache_entries(&state, config.as_ref()) {
        if owner
            .as_deref()
            .is_some_and(|o| o != record.owner && o != record.account.to_ascii_lowercase())
        {
            continue;
        }
        let key = record.cache_key();
        let Some(token) = cache.load(&key) else {
            index::forget_key(&state, &record.key);
            continue;
        };
        let what = format!(
            "token {} (app {}, owner '{}', installation {})",
            token.secret.fingerprint(),
            record.app,
            record.owner,
            record.installation
        );
        match source::revoke(&record, &token.secret, deadline) {
            Ok(done) => {
                cache.remove(&key);
                index::forget(&state, &key);
                revoked += 1;
                match done {
                    Revoked::Revoked => writeln!(out.out, "revoked {what}")?,
                    Revoked::AlreadyInvalid => {
                        writeln!(out.out, "dropped {what}: it was already invalid")?
                    }
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(
                    out.err,
                    "git-credential-github-app: could not revoke {what}: {e}; kept in the cache so that revoke can be run again"
                )?;
            }
        }
    }
    if revoked == 0 && failed == 0 {
        match &owner {
            Some(o) => writeln!(out.out, "no cached token for '{o}'")?,
            None => writeln!(out.out, "no cached token")?,
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

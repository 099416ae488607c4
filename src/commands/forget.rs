//! `forget [OWNER]`: drop what the helper remembers — installations, "not installed" owners and
//! cached tokens — without asking GitHub. The next get looks everything up again.

use super::{Args, Command, Context, Output, resolve};
use crate::cache::Cache;
use crate::cache::index;
use crate::config::AppId;
use crate::state::State;
use anyhow::Result;
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "forget",
    summary: "drop remembered installations, \"not installed\" owners and cached tokens",
    usage: "forget [OWNER]",
    help: "\
Drops what the helper remembers for every owner (or OWNER): the installation found for it, the
memory that the app is not installed there (so an app installed a minute ago answers at once),
and the cached tokens (from every cache tier). GitHub is not asked; the tokens stay valid until
they expire (use `revoke` to end them).
",
    options: &[],
    max_positional: 1,
    trailing: false,
    run,
};

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let owner = resolve::owner_arg(args);
    let matches = |o: &str| owner.as_deref().is_none_or(|want| want == o);
    let (config, mode, deadline) = resolve::local(ctx);
    let state = State::open();
    let cache = Cache::new(mode, &state).with_deadline(deadline.at());
    let (mut tokens, mut installations, mut not_installed) = (0, 0, 0);
    for record in resolve::cache_entries(&state, config.as_ref()) {
        if !matches(&record.owner) && !matches(&record.account.to_ascii_lowercase()) {
            continue;
        }
        let key = record.cache_key();
        if cache.load(&key).is_some() {
            cache.remove(&key);
            tokens += 1;
        }
        index::forget_key(&state, &record.key);
    }
    for record in state.installation_records() {
        if !matches(&record.owner) {
            continue;
        }
        let Ok(app_id) = AppId::parse(&record.app) else {
            continue;
        };
        state.forget_installation(&record.api, &app_id, &record.owner);
        match record.installation {
            Some(_) => installations += 1,
            None => not_installed += 1,
        }
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    writeln!(
        out.out,
        "forgot {}, {} and {} \"not installed\" record{}{}",
        plural(tokens, "cached token"),
        plural(installations, "remembered installation"),
        not_installed,
        if not_installed == 1 { "" } else { "s" },
        owner.map_or_else(String::new, |o| format!(" for '{o}'"))
    )?;
    Ok(ExitCode::SUCCESS)
}

//! `installations`: the app's installations on GitHub (every page), for each configured app.

use super::{Args, Command, Context, Opt, Output, resolve};
use crate::github::{Client, Deadline};
use crate::source::installation;
use crate::state::State;
use anyhow::{Context as _, Result};
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "installations",
    summary: "list the app's installations on GitHub",
    usage: "installations [--json]",
    help: "\
Lists the installations of each configured app (or the app given with --app-id): installation
id, account, account type and repository selection (all, or selected repositories). Every page
is read; enterprise installations are left out, since they cannot read repositories.

OPTIONS:
    --json      the same as a JSON array, one object per app
",
    options: &[Opt::flag("json")],
    max_positional: 0,
    trailing: false,
    run,
};

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let config = resolve::resolve(ctx)?.config;
    let deadline = Deadline::after(config.timeout);
    let state = State::open();
    let mut listed = Vec::new();
    let mut seen = Vec::new();
    for app in &config.apps {
        let Some(spec) = app.installation() else {
            continue;
        };
        let api_url = app.api_url(app.git_protocol());
        if seen.contains(&(api_url.clone(), spec.id.iss())) {
            continue;
        }
        seen.push((api_url.clone(), spec.id.iss()));
        let mut say = |line: &str| {
            let _ = writeln!(out.err, "git-credential-github-app: {line}");
        };
        let mut signer = installation::jwt_signer(spec, &api_url, &state, deadline, &mut say)?;
        let initial = signer.offset;
        let client = Client::new(&api_url, app.host.as_str(), deadline);
        let result = client.installations(&mut signer);
        installation::keep_clock_offset(&api_url, &state, &signer, initial);
        let installations =
            result.with_context(|| format!("app {} on {}", spec.id, app.host.as_str()))?;
        listed.push((app, spec, installations));
    }

    if args.flag("json") {
        let value: Vec<_> = listed
            .iter()
            .map(|(app, spec, list)| {
                serde_json::json!({
                    "app_id": spec.id.iss(),
                    "host": app.host.as_str(),
                    "installations": list.iter().map(|i| serde_json::json!({
                        "id": i.id,
                        "account": i.account,
                        "type": i.account_type,
                        "repository_selection": i.repository_selection,
                        "suspended": i.suspended,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out.out, "{:#}", serde_json::Value::Array(value))?;
        return Ok(ExitCode::SUCCESS);
    }
    for (app, spec, list) in &listed {
        writeln!(
            out.out,
            "app {} on {}: {} installation{}",
            spec.id,
            app.host.as_str(),
            list.len(),
            if list.len() == 1 { "" } else { "s" }
        )?;
        if list.is_empty() {
            continue;
        }
        let width = list
            .iter()
            .map(|i| i.account.len())
            .max()
            .unwrap_or(0)
            .max(7);
        writeln!(
            out.out,
            "  {:<12} {:<width$} {:<12} REPOSITORIES",
            "ID", "ACCOUNT", "TYPE"
        )?;
        for i in list {
            writeln!(
                out.out,
                "  {:<12} {:<width$} {:<12} {}{}",
                i.id,
                i.account,
                i.account_type,
                i.repository_selection,
                if i.suspended { " (suspended)" } else { "" }
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `doctor`: every check between "git asks" and "GitHub answers", one line each, in the style of
//! Git Credential Manager's `diagnose`: `[ OK ]`, `[FAIL]` or `[SKIP]`, a summary, and the number
//! of failed checks as the exit status. `--json` gives the same as one object.

mod broker_checks;
mod cache;
mod git;
mod github_checks;
mod report;

use super::setup::Target;
use super::{Args, Command, Context, Opt, Output};
use crate::config;
use anyhow::{Result, bail};
use report::{Report, Status};
use serde_json::json;
use std::process::ExitCode;

pub static DOCTOR: Command = Command {
    name: "doctor",
    summary: "check the key, the app, its installations, git's config and the cache; exit status = failures",
    usage: "doctor [--repo OWNER/REPO] [--json] [--host HOST] [HELPER OPTIONS]",
    help: "\
Checks everything between git asking and GitHub answering, one line each ([ OK ], [FAIL],
[SKIP]), then a summary; the exit status is the number of failed checks. It never prints a token.

The app checked is the one given with --app-id/--private-key (or --config, or GITHUB_APP_*);
without them, the one in the helper line git runs for the host (default github.com).

Checks: git's version; the helpers git runs for the host, in order, with where each is
configured (the empty reset before ours, useHttpPath, helpers that store tokens,
http.<url>.extraheader, which bypasses every helper); GH_TOKEN/GITHUB_TOKEN; remote URLs with a
user name (not ours by design); the private key (format, file mode, its SHA256 fingerprint as
GitHub shows it on the app's settings page); the API host over TLS/proxy; the clock against
GitHub's; GET /app (the key belongs to the app); the installations; with --repo, which
installation serves the repository and whether it is among the installation's repositories;
narrowed permissions without workflows; a write/read/delete round trip in each cache backend.

OPTIONS:
    --repo OWNER/REPO   also check the installation that serves this repository
    --json              the same as one JSON object on stdout
",
    options: &[Opt::value("repo", "OWNER/REPO"), Opt::flag("json")],
    max_positional: 0,
    trailing: false,
    run,
};

fn run(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let repo = match args.value("repo") {
        None => None,
        Some(text) => match text.trim_end_matches(".git").split_once('/') {
            _ if config::secret_kind(text).is_some()
                || text
                    .split('/')
                    .any(|part| config::secret_kind(part).is_some()) =>
            {
                bail!("--repo takes OWNER/REPO, not {}", config::quoted(text))
            }
            Some((owner, repo)) if !owner.is_empty() && !repo.is_empty() && !repo.contains('/') => {
                Some((owner.to_ascii_lowercase(), repo.to_owned()))
            }
            _ => bail!("--repo takes OWNER/REPO, not {}", config::quoted(text)),
        },
    };
    // The app and the host, resolved as every command resolves them (flags, environment, config
    // file, then the helper line git runs for the host).
    let resolved = super::resolve::resolve(ctx);
    let target = match &resolved {
        Ok(r) => Target::of(r),
        Err(_) => Target::from_context(ctx)?,
    };
    let mut report = Report::default();
    let app_source = diagnose(ctx, &target, resolved, repo.as_ref(), &mut report);
    let failed = report.count(Status::Fail);
    let warned = report.count(Status::Warn);
    let summary = format!(
        "{} passed, {}{} skipped, {} failed",
        report.count(Status::Ok),
        if warned > 0 {
            format!("{warned} warned, ")
        } else {
            String::new()
        },
        report.count(Status::Skip),
        failed
    );
    if args.flag("json") {
        let value = json!({
            "host": target.host.as_str(),
            "url": target.section_url(),
            "app_from": app_source,
            "checks": report.checks.iter().map(|c| json!({
                "id": c.id,
                "status": c.status.word(),
                "detail": c.detail,
                "data": c.data,
            })).collect::<Vec<_>>(),
            "summary": {
                "passed": report.count(Status::Ok),
                "warned": warned,
                "skipped": report.count(Status::Skip),
                "failed": failed,
            },
        });
        writeln!(o.out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            o.out,
            "git-credential-github-app doctor for {} (app from {app_source})",
            target.section_url()
        )?;
        for c in &report.checks {
            let mut lines = c.detail.lines();
            writeln!(
                o.out,
                "{} {}: {}",
                c.status.tag(),
                c.id,
                lines.next().unwrap_or("")
            )?;
            for line in lines {
                writeln!(o.out, "       {line}")?;
            }
        }
        writeln!(o.out, "Summary: {summary}")?;
    }
    Ok(ExitCode::from(u8::try_from(failed).unwrap_or(u8::MAX)))
}
/// Run every check into `report`; returns where the app's settings came from.
fn diagnose(
    ctx: &Context,
    target: &Target,
    resolved: Result<super::resolve::Resolved>,
    repo: Option<&(String, String)>,
    report: &mut Report,
) -> String {
    let host = target.host.as_str();
    git::check(ctx, target, report);
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            let line = crate::app::one_line(&e);
            let id = if line.starts_with("no GitHub App configured") {
                "app"
            } else {
                "config"
            };
            report.add(id, Status::Fail, line);
            return "nowhere".to_owned();
        }
    };
    let config = resolved.config;
    git::remote_check(&config, target, report);
    let Some(app) = config.apps.iter().find(|a| a.host == target.host) else {
        report.add(
            "app",
            Status::Fail,
            format!(
                "no GitHub App configured for {host}: pass --app-id and --private-key, run setup, or list the app in the config file"
            ),
        );
        return resolved.from;
    };
    // One budget for every check that waits (the API, the cache): --timeout.
    let deadline = crate::github::Deadline::after(config.timeout);
    github_checks::check_user_app(app, config.cache, deadline, target, report);
    github_checks::check_app(app, deadline, target, repo, report);
    broker_checks::check_broker(app, deadline, target, repo, report);
    cache::check(&config, app, deadline, report);
    resolved.from
}

pub(super) fn host_option(target: &Target) -> String {
    if target.host.as_str() == "github.com" {
        String::new()
    } else {
        format!(" --host {}", target.host.as_str())
    }
}

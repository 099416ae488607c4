//! `doctor`: every check between "git asks" and "GitHub answers", one line each, in the style of
//! Git Credential Manager's `diagnose`: `[ OK ]`, `[FAIL]` or `[SKIP]`, a summary, and the number
//! of failed checks as the exit status. `--json` gives the same as one object.

use super::setup::Target;
use super::{Args, Command, Context, Opt, Output};
use crate::cache::{Cache, CacheKey};
use crate::config::{self, App, CacheMode, Config, Flags, InstallationSpec};
use crate::gitconfig::{self, Entry, UrlMatch};
use crate::github::{self, ApiError, Client, Deadline, JwtProblem};
use crate::keyref::KeyRef;
use crate::protocol;
use crate::secret::Expiring;
use crate::secret::Secret;
use crate::source::broker;
use crate::state::State;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

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

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    Skip,
}

impl Status {
    fn tag(self) -> &'static str {
        match self {
            Status::Ok => "[ OK ]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[SKIP]",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

struct Check {
    /// A stable identifier (JSON `id`).
    id: &'static str,
    status: Status,
    /// One line (more lines are indented under it).
    detail: String,
    /// Machine-readable facts for `--json`.
    data: Value,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, id: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            id,
            status,
            detail: detail.into(),
            data: Value::Null,
        });
    }

    fn add_data(&mut self, id: &'static str, status: Status, detail: String, data: Value) {
        self.checks.push(Check {
            id,
            status,
            detail,
            data,
        });
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

fn run(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let repo = match args.value("repo") {
        None => None,
        Some(text) => match text.trim_end_matches(".git").split_once('/') {
            Some((owner, repo)) if !owner.is_empty() && !repo.is_empty() && !repo.contains('/') => {
                Some((owner.to_ascii_lowercase(), repo.to_owned()))
            }
            _ => bail!(
                "--repo takes OWNER/REPO, not '{}'",
                crate::protocol::printable(text)
            ),
        },
    };
    let target = Target::from_flags(&ctx.flags)?;
    let mut report = Report::default();
    let app_source = diagnose(ctx, &target, repo.as_ref(), &mut report);
    let failed = report.count(Status::Fail);
    let summary = format!(
        "{} passed, {} skipped, {} failed",
        report.count(Status::Ok),
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
    repo: Option<&(String, String)>,
    report: &mut Report,
) -> String {
    let scheme = target.scheme;
    let host = target.host.as_str();
    let url = target.section_url();

    // git
    match gitconfig::version() {
        Ok((text, version)) => {
            let note = if version < (2, 46) {
                " (setup --proactive needs 2.46 or later)"
            } else {
                ""
            };
            report.add_data(
                "git",
                Status::Ok,
                format!("git {text}{note}"),
                json!({ "version": text }),
            );
        }
        Err(e) => report.add("git", Status::Fail, crate::app::one_line(&e)),
    }

    // The helpers git runs for the host.
    let entries = gitconfig::helper_entries(None).unwrap_or_else(|e| {
        report.add("git-config", Status::Fail, crate::app::one_line(&e));
        Vec::new()
    });
    let effective = gitconfig::effective_helpers(&entries, scheme, host);
    let ours_at = effective
        .iter()
        .position(|e| e.value.as_deref().is_some_and(gitconfig::is_ours));
    let listing = effective
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "{}. {} ({})",
                i + 1,
                gitconfig::mask_pin_values(e.value.as_deref().unwrap_or("")),
                e.origin
            )
        })
        .collect::<Vec<_>>();
    let helpers_json = effective
        .iter()
        .map(|e| {
            json!({
                "helper": e.value.as_deref().map(gitconfig::mask_pin_values),
                "origin": e.origin,
                "scope": e.scope.name()
            })
        })
        .collect::<Vec<_>>();
    match ours_at {
        Some(_) => report.add_data(
            "helper",
            Status::Ok,
            format!("git runs these helpers for {url}, in order:\n{}", listing.join("\n")),
            json!({ "helpers": helpers_json }),
        ),
        None => report.add_data(
            "helper",
            Status::Fail,
            format!(
                "git runs no git-credential-github-app helper for {url}; run: git-credential-github-app setup{}{}",
                host_option(target),
                if listing.is_empty() {
                    String::new()
                } else {
                    format!("\nit runs:\n{}", listing.join("\n"))
                }
            ),
            json!({ "helpers": helpers_json }),
        ),
    }
    match ours_at {
        None => report.add("reset", Status::Skip, "no helper of ours to check"),
        Some(0) => report.add(
            "reset",
            Status::Ok,
            "an empty 'helper =' comes before ours: no other helper answers first",
        ),
        Some(_) => {
            let first = effective[0];
            report.add(
                "reset",
                Status::Fail,
                format!(
                    "helper '{}' ({}) runs before ours and answers first: put an empty 'helper =' before ours (setup does)",
                    first.value.as_deref().unwrap_or(""),
                    first.origin
                ),
            );
        }
    }
    match gitconfig::git(&[
        "config",
        "--type=bool",
        "--get-urlmatch",
        "credential.useHttpPath",
        &url,
    ]) {
        Ok(v) if v.trim() == "true" => report.add(
            "useHttpPath",
            Status::Ok,
            "credential.useHttpPath is true: git sends the repository path, so the helper sees the owner",
        ),
        _ => report.add(
            "useHttpPath",
            Status::Fail,
            format!(
                "credential.useHttpPath is not true for {url}: git sends no path, so the helper cannot tell the owner; run setup, or: git config --global credential.{url}.useHttpPath true"
            ),
        ),
    }
    let storing: Vec<String> = effective
        .iter()
        .skip(ours_at.map_or(0, |i| i + 1))
        .filter_map(|e| {
            let value = e.value.as_deref()?;
            gitconfig::stores(value).map(|how| format!("'{value}' ({}) {how}", e.origin))
        })
        .collect();
    if ours_at.is_none() {
        report.add("storing-helper", Status::Skip, "no helper of ours to check");
    } else if storing.is_empty() {
        report.add(
            "storing-helper",
            Status::Ok,
            "no helper after ours keeps the tokens git hands it",
        );
    } else {
        report.add_data(
            "storing-helper",
            Status::Fail,
            format!(
                "git hands every token that worked to the helpers after ours, and these keep them:\n{}\nremove them for {url} unless you need them",
                storing.join("\n")
            ),
            json!({ "helpers": storing }),
        );
    }
    extraheader_check(target, report);
    env_token_check(ctx, &effective, report);

    // The app: from the command line / environment / config file, else from git's helper line.
    let (flags, source) = app_flags(ctx, ours_at.map(|i| effective[i]));
    let config = match config::resolve(&flags, &|n| ctx.env(n)) {
        Ok(c) => c,
        Err(e) => {
            report.add("config", Status::Fail, crate::app::one_line(&e));
            return source;
        }
    };
    remote_check(&config, target, report);
    let Some(app) = config.apps.iter().find(|a| a.host == target.host) else {
        report.add(
            "app",
            Status::Fail,
            format!(
                "no GitHub App configured for {host}: pass --app-id and --private-key, run setup, or list the app in the config file"
            ),
        );
        return source;
    };
    check_app(app, &config, target, repo, report);
    cache_check(&config, app, report);
    source
}

fn host_option(target: &Target) -> String {
    if target.host.as_str() == "github.com" {
        String::new()
    } else {
        format!(" --host {}", target.host.as_str())
    }
}

/// The helper flags to check: given ones, else those of the helper line git runs.
fn app_flags(ctx: &Context, ours: Option<&Entry>) -> (Flags, String) {
    let given = ctx.flags.app_id.is_some()
        || ctx.flags.config.is_some()
        || ctx.env(config::env::APP_ID).is_some()
        || ctx.env(config::env::CONFIG).is_some();
    if !given
        && let Some(entry) = ours
        && let Some(words) = entry
            .value
            .as_deref()
            .and_then(|v| gitconfig::shell_words(v.trim_start_matches('!')))
        && let Ok(mut flags) = Flags::from_words(words.into_iter().skip(1))
    {
        // --host on doctor's own command line chose the helper line; keep what it says.
        flags.verbose = ctx.flags.verbose;
        return (flags, format!("the helper line in {}", entry.origin));
    }
    let source = if ctx.flags.app_id.is_some() {
        "the command line"
    } else if ctx.env(config::env::APP_ID).is_some() {
        "the environment"
    } else {
        "the config file"
    };
    (ctx.flags.clone(), source.to_owned())
}

/// `http.<url>.extraheader`: git sends it with every request, so no helper is ever asked.
fn extraheader_check(target: &Target, report: &mut Report) {
    let found: Vec<String> = gitconfig::entries(r"^http\.(.*\.)?extraheader$", None)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.value.as_deref().is_some_and(|v| !v.is_empty())
                && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                    != UrlMatch::No
        })
        .map(|e| {
            let auth = e
                .value
                .as_deref()
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("authorization"));
            format!(
                "{} in {}{}",
                e.key,
                e.origin,
                if auth {
                    " (an Authorization header: actions/checkout persists GITHUB_TOKEN this way)"
                } else {
                    ""
                }
            )
        })
        .collect();
    if found.is_empty() {
        report.add(
            "extraheader",
            Status::Ok,
            "no http.<url>.extraheader for this host",
        );
    } else {
        report.add_data(
            "extraheader",
            Status::Fail,
            format!(
                "git sends these headers itself, so it never asks a helper:\n{}\nremove them (git config --unset-all KEY), or use actions/checkout with persist-credentials: false",
                found.join("\n")
            ),
            json!({ "entries": found }),
        );
    }
}

/// GH_TOKEN / GITHUB_TOKEN: gh (and `gh auth git-credential`) use them before anything else.
fn env_token_check(ctx: &Context, effective: &[&Entry], report: &mut Report) {
    let set: Vec<&str> = ["GH_TOKEN", "GITHUB_TOKEN"]
        .into_iter()
        .filter(|n| ctx.env(n).is_some_and(|v| !v.is_empty()))
        .collect();
    let gh_helper = effective.iter().find(|e| {
        e.value
            .as_deref()
            .is_some_and(|v| v.contains("gh auth git-credential"))
    });
    match (set.is_empty(), gh_helper) {
        (true, _) => report.add("env-token", Status::Ok, "GH_TOKEN and GITHUB_TOKEN are not set"),
        (false, Some(gh)) => report.add(
            "env-token",
            Status::Fail,
            format!(
                "{} set: the gh helper ({}) answers with it instead of your gh login for owners the app does not serve",
                set.join(" and ") + if set.len() == 1 { " is" } else { " are" },
                gh.origin
            ),
        ),
        (false, None) => report.add(
            "env-token",
            Status::Ok,
            format!(
                "{} set: gh and API tools use it; git does not (it asks the helpers)",
                set.join(" and ") + if set.len() == 1 { " is" } else { " are" }
            ),
        ),
    }
}

/// Remote URLs of the current repository on this host with a user name: git sends it, and a
/// request with a user name other than ours is not ours by design.
fn remote_check(config: &Config, target: &Target, report: &mut Report) {
    if gitconfig::git(&["rev-parse", "--git-dir"]).is_err() {
        report.add(
            "remote-username",
            Status::Skip,
            "not inside a git repository",
        );
        return;
    }
    let mut found = Vec::new();
    for e in gitconfig::entries(r"^remote\..*\.(push)?url$", None).unwrap_or_default() {
        let Some(url) = e.value.as_deref() else {
            continue;
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            continue;
        };
        let authority = rest.split('/').next().unwrap_or("");
        let Some((user, host)) = authority.rsplit_once('@') else {
            continue;
        };
        let (user, password) = match user.split_once(':') {
            Some((user, _)) => (user, ":[masked]"),
            None => (user, ""),
        };
        if config::Host::normalize(scheme, host) == target.host && user != config.username {
            // A password in the URL (a token pasted by a CI script) is never shown.
            let path = &rest[authority.len()..];
            let shown = protocol::printable(&format!("{scheme}://{user}{password}@{host}{path}"));
            found.push(format!(
                "{} = {shown} (user '{}')",
                e.key,
                protocol::printable(user)
            ));
        }
    }
    if found.is_empty() {
        report.add(
            "remote-username",
            Status::Ok,
            "no remote URL for this host carries a user name",
        );
    } else {
        report.add(
            "remote-username",
            Status::Fail,
            format!(
                "git sends the user name in these URLs, and the helper leaves a request with a user name other than '{}' to other helpers (not ours by design):\n{}\ndrop the 'user@' part: git remote set-url NAME https://{}/OWNER/REPO.git",
                config.username,
                found.join("\n"),
                target.host.as_str()
            ),
        );
    }
}

/// The key, the API host, the clock, the app, its installations, the repository.
fn check_app(
    app: &App,
    config: &Config,
    target: &Target,
    repo: Option<&(String, String)>,
    report: &mut Report,
) {
    let Some(spec) = app.installation() else {
        if let crate::config::SourceSpec::Broker(broker) = &app.source {
            let repo = repo.map(|(o, r)| (o.as_str(), r.as_str()));
            let deadline = Deadline::after(config.timeout);
            let api_url = app.api_url(target.scheme);
            let state = State::open();
            for f in broker::checks::diagnose(broker, &app.host, api_url, repo, &state, deadline) {
                let status = match f.ok {
                    Some(true) => Status::Ok,
                    Some(false) => Status::Fail,
                    None => Status::Skip,
                };
                report.add(f.id, status, f.detail);
            }
        }
        return;
    };
    let api_url = app.api_url(target.scheme);
    let deadline = Deadline::after(config.timeout);
    let mut warnings = Vec::new();
    let opened = crate::signer::open(&spec.key, deadline.at(), &mut |w| warnings.push(w));
    let key = opened
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{}", crate::app::one_line(e)))
        .and_then(|s| {
            let der = s.public_key_der()?;
            Ok((s.describe(), crate::signer::fingerprint(&der)))
        });
    match &key {
        Ok((describe, fingerprint)) => {
            let status = if warnings.is_empty() {
                Status::Ok
            } else {
                Status::Fail
            };
            let mut detail = match key_format(&spec.key) {
                Some(form) => format!("{describe} ({form}): fingerprint {fingerprint}"),
                None => format!("{describe}: fingerprint {fingerprint}"),
            };
            for w in &warnings {
                detail.push('\n');
                detail.push_str(w.trim_start_matches("warning: "));
            }
            report.add_data(
                "key",
                status,
                detail,
                json!({ "fingerprint": fingerprint, "key": describe }),
            );
        }
        Err(e) => report.add("key", Status::Fail, crate::app::one_line(e)),
    }

    // The API host, without credentials: TLS, proxy, and GitHub's clock.
    let reachable = match ping(&api_url, config.timeout.min(Duration::from_secs(10))) {
        Ok((status, date)) => {
            let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()));
            report.add_data(
                "api",
                Status::Ok,
                format!(
                    "{api_url} answered (HTTP {status}{}{})",
                    if api_url.starts_with("https:") {
                        ", TLS verified"
                    } else {
                        ""
                    },
                    proxy.map_or(String::new(), |p| format!(
                        ", through the proxy in the environment ({})",
                        redact_userinfo(&p)
                    ))
                ),
                json!({ "api_url": api_url, "status": status }),
            );
            match date {
                Some(server) => {
                    let offset = signed_secs(server, SystemTime::now());
                    let (status, detail) = if offset.abs() <= 30 {
                        (
                            Status::Ok,
                            format!(
                                "this machine's clock is within {}s of GitHub's",
                                offset.abs()
                            ),
                        )
                    } else {
                        (
                            Status::Fail,
                            format!(
                                "this machine's clock is {}s {} GitHub's: GitHub refuses app JWTs dated in the future or expired; set the clock (NTP)",
                                offset.abs(),
                                if offset > 0 { "behind" } else { "ahead of" }
                            ),
                        )
                    };
                    report.add_data("clock", status, detail, json!({ "offset_seconds": offset }));
                }
                None => report.add("clock", Status::Skip, "the API sent no Date header"),
            }
            true
        }
        Err(e) => {
            report.add("api", Status::Fail, format!("{api_url}: {e}"));
            report.add("clock", Status::Skip, "the API host is not reachable");
            false
        }
    };
    if !reachable || opened.is_err() {
        for id in ["app-auth", "installations"] {
            report.add(id, Status::Skip, "needs the key and the API host");
        }
        if repo.is_some() {
            report.add("repo", Status::Skip, "needs the key and the API host");
        }
        permissions_check(spec, report);
        return;
    }

    let Ok(opened) = opened else {
        return;
    };
    let state = State::open();
    let mut signer =
        crate::jwt::JwtIssuer::new(opened, spec.id.iss(), state.clock_offset(&api_url));
    let client = Client::new(&api_url, target.host.as_str(), deadline);
    let key_name = match &key {
        Ok((describe, fingerprint)) => format!("{describe} ({fingerprint})"),
        Err(_) => signer.key().describe(),
    };
    let slug = match client.app(&mut signer) {
        Ok(info) => {
            report.add_data(
                "app-auth",
                Status::Ok,
                format!(
                    "GitHub accepts the key for app {} '{}' (slug {})",
                    info.id, info.name, info.slug
                ),
                json!({ "id": info.id, "name": info.name, "slug": info.slug }),
            );
            Some(info.slug)
        }
        Err(ApiError::JwtRejected {
            problem: JwtProblem::WrongKey,
            ..
        }) => {
            report.add(
                "app-auth",
                Status::Fail,
                format!(
                    "GitHub refused {key_name} for app {}: the key does not belong to this app, or was deleted from it; the app's settings page lists its keys' fingerprints",
                    spec.id.iss()
                ),
            );
            None
        }
        Err(e) => {
            report.add("app-auth", Status::Fail, e.to_string());
            None
        }
    };
    if slug.is_none() {
        report.add(
            "installations",
            Status::Skip,
            "GitHub did not accept the app's key",
        );
        if repo.is_some() {
            report.add("repo", Status::Skip, "GitHub did not accept the app's key");
        }
        permissions_check(spec, report);
        return;
    }
    match client.installations(&mut signer) {
        Ok(list) if list.is_empty() => report.add(
            "installations",
            Status::Fail,
            format!(
                "the app is installed nowhere: install it on an account ({})",
                install_url(target, slug.as_deref().unwrap_or(""))
            ),
        ),
        Ok(list) => {
            let lines: Vec<String> = list
                .iter()
                .map(|i| {
                    format!(
                        "{} ({}): installation {}, {} repositories{}",
                        i.account,
                        i.account_type,
                        i.id,
                        i.repository_selection,
                        if i.suspended { ", SUSPENDED" } else { "" }
                    )
                })
                .collect();
            report.add_data(
                "installations",
                Status::Ok,
                format!("{} installation(s):\n{}", list.len(), lines.join("\n")),
                json!(
                    list.iter()
                        .map(|i| json!({
                            "id": i.id,
                            "account": i.account,
                            "type": i.account_type,
                            "repository_selection": i.repository_selection,
                            "suspended": i.suspended,
                        }))
                        .collect::<Vec<_>>()
                ),
            );
        }
        Err(e) => report.add("installations", Status::Fail, e.to_string()),
    }
    if let Some((owner, name)) = repo {
        repo_check(&client, &mut signer, target, app, owner, name, report);
    }
    permissions_check(spec, report);
}

/// "PKCS#1, mode 600" for a PEM key in a file or in the environment.
fn key_format(source: &KeyRef) -> Option<String> {
    let (text, mode) = match source {
        KeyRef::File(path) => {
            let text = Secret::new(std::fs::read_to_string(path).ok()?);
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(path)
                    .ok()
                    .map(|m| format!(", mode {:03o}", m.permissions().mode() & 0o777))
            };
            #[cfg(not(unix))]
            let mode = None;
            (text, mode)
        }
        KeyRef::Env(text) => (text.clone(), None),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    let form = if text.expose().contains("BEGIN RSA PRIVATE KEY") {
        "PKCS#1"
    } else if text.expose().contains("BEGIN PRIVATE KEY") {
        "PKCS#8"
    } else {
        return None;
    };
    Some(format!("{form}{}", mode.unwrap_or_default()))
}

fn repo_check(
    client: &Client,
    signer: &mut crate::jwt::JwtIssuer,
    target: &Target,
    app: &App,
    owner: &str,
    name: &str,
    report: &mut Report,
) {
    let full = format!("{owner}/{name}");
    if !app.owners.is_empty() && !app.owners.iter().any(|o| o == owner) {
        report.add(
            "repo",
            Status::Fail,
            format!(
                "the helper is limited to owners {} (--owner), so it leaves {full} to other helpers",
                app.owners.join(", ")
            ),
        );
        return;
    }
    let installation = match app.installation().and_then(|s| s.installation_id) {
        Some(id) => Ok(Some(github::Installation {
            id,
            account: owner.to_owned(),
        })),
        None => client.find_installation(signer, owner, None),
    };
    match installation {
        Err(e) => report.add("repo", Status::Fail, e.to_string()),
        Ok(None) => report.add(
            "repo",
            Status::Fail,
            format!("the app is not installed on '{owner}': nothing serves {full}; install it on that account"),
        ),
        Ok(Some(inst)) => match client.repo_installation(signer, owner, name) {
            Ok(Some(id)) if id == inst.id => report.add_data(
                "repo",
                Status::Ok,
                format!("installation {} ({}) serves {full}, and it is among the installation's repositories", inst.id, inst.account),
                json!({ "installation": inst.id, "account": inst.account, "in_selection": true }),
            ),
            Ok(Some(id)) => report.add_data(
                "repo",
                Status::Fail,
                format!("installation {} is configured, but {full} belongs to installation {id}", inst.id),
                json!({ "installation": inst.id, "serving_installation": id }),
            ),
            Ok(None) => report.add_data(
                "repo",
                Status::Fail,
                format!(
                    "installation {} ({}) serves '{owner}', but {full} is not among its repositories (or does not exist): add it in the installation's settings ({})",
                    inst.id,
                    inst.account,
                    installation_settings_url(target, owner, inst.id)
                ),
                json!({ "installation": inst.id, "account": inst.account, "in_selection": false }),
            ),
            Err(e) => report.add("repo", Status::Fail, e.to_string()),
        },
    }
}

/// Narrowed permissions without `workflows`: GitHub refuses pushes that touch workflow files.
fn permissions_check(app: &InstallationSpec, report: &mut Report) {
    if app.permissions.is_empty() {
        report.add(
            "permissions",
            Status::Ok,
            "tokens get every permission the installation has",
        );
        return;
    }
    let list = app.scope();
    if app.permissions.contains_key("workflows") {
        report.add(
            "permissions",
            Status::Ok,
            format!("tokens are narrowed to {list}"),
        );
    } else {
        report.add(
            "permissions",
            Status::Ok,
            format!(
                "tokens are narrowed to {list}; without workflows, GitHub refuses pushes that touch .github/workflows/ (add workflows:write if you push those)"
            ),
        );
    }
}

/// A write/read/delete round trip in each cache backend the configured mode uses.
fn cache_check(config: &Config, app: &App, report: &mut Report) {
    let modes: &[(CacheMode, &str)] = match config.cache {
        CacheMode::None => {
            report.add(
                "cache",
                Status::Skip,
                "the cache is off (--cache none): every get mints",
            );
            return;
        }
        CacheMode::Auto => &[(CacheMode::Keyring, "keyring"), (CacheMode::File, "file")],
        CacheMode::Keyring => &[(CacheMode::Keyring, "keyring")],
        CacheMode::File => &[(CacheMode::File, "file")],
    };
    let state = State::open();
    let mut lines = Vec::new();
    let mut working = Vec::new();
    for (mode, name) in modes {
        let cache = Cache::new(*mode, &state);
        let key = CacheKey::new(format!("doctor://round-trip|{}", app.describe()));
        let value = format!("doctor-round-trip-{}", std::process::id());
        let token = Expiring {
            secret: Secret::new(value.clone()),
            expires_at: github::unix_now() + 3600,
        };
        let saved = cache.save(&key, &token);
        let read = cache.load(&key).is_some_and(|t| t.secret.expose() == value);
        cache.remove(&key);
        let deleted = cache.load(&key).is_none();
        if !saved.is_empty() && read && deleted {
            lines.push(if saved == [*name] {
                format!("{name} backend: write, read and delete work")
            } else {
                format!(
                    "{name} backend ({}): write, read and delete work",
                    saved.join(" + ")
                )
            });
            working.push(json!({ "mode": name, "stores": saved }));
        } else {
            lines.push(format!(
                "{name} backend: unusable here (write {}, read {}, delete {})",
                if saved.is_empty() { "failed" } else { "ok" },
                if read { "ok" } else { "failed" },
                if deleted { "ok" } else { "failed" }
            ));
        }
    }
    let status = if working.is_empty() {
        Status::Fail
    } else {
        Status::Ok
    };
    report.add_data(
        "cache",
        status,
        lines.join("\n"),
        json!({ "working": working }),
    );
}

/// `GET API_URL/` without credentials: (HTTP status, the `Date` header).
fn ping(api_url: &str, timeout: Duration) -> Result<(u16, Option<SystemTime>), String> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!(
            "git-credential-github-app/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .into();
    let reply = agent
        .get(format!("{api_url}/"))
        .call()
        .map_err(|e| format!("not reachable: {e}"))?;
    let date = reply
        .headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    Ok((reply.status().as_u16(), date))
}

/// `a - b` in whole seconds, negative when `a` is earlier.
fn signed_secs(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A proxy URL without its password.
fn redact_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn web_base(target: &Target) -> String {
    format!("{}://{}", target.scheme, target.host.as_str())
}

fn install_url(target: &Target, slug: &str) -> String {
    if target.host.as_str() == "github.com" {
        format!("https://github.com/apps/{slug}/installations/new")
    } else {
        format!("{}/github-apps/{slug}/installations/new", web_base(target))
    }
}

fn installation_settings_url(target: &Target, owner: &str, id: u64) -> String {
    format!(
        "{}/organizations/{owner}/settings/installations/{id}, or {}/settings/installations/{id} for your own account",
        web_base(target),
        web_base(target)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_example_key_shows_githubs_fingerprint() {
        // GitHub's published example app key, and the fingerprint GitHub's documented openssl
        // pipeline gives for it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.pem");
        std::fs::write(&path, include_str!("../signer/github-example-key.pem")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let source = KeyRef::File(path);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut warnings = Vec::new();
        let signer = crate::signer::open(&source, deadline, &mut |w| warnings.push(w)).unwrap();
        assert_eq!(
            crate::signer::fingerprint(&signer.public_key_der().unwrap()),
            "SHA256:jruIcxbAqxv7oiBc/IHGkkTvdF54gOGRqvUEns1IZDc="
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        #[cfg(unix)]
        assert_eq!(key_format(&source).as_deref(), Some("PKCS#1, mode 600"));
    }

    #[test]
    fn proxies_lose_their_password() {
        assert_eq!(
            redact_userinfo("http://me:secret@proxy:3128"),
            "http://…@proxy:3128"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn offsets_have_a_sign() {
        let now = SystemTime::now();
        assert_eq!(signed_secs(now + Duration::from_secs(90), now), 90);
        assert_eq!(signed_secs(now, now + Duration::from_secs(90)), -90);
    }
}

//! The checks of git's side: its version, the helpers it runs for the host (and how it runs
//! ours), useHttpPath, helpers that store tokens, extraheader, GH_TOKEN, remote user names.

use super::Target;
use super::report::{Report, Status};
use crate::commands::Context;
use crate::config::{self, Config};
use crate::gitconfig::{self, Entry, UrlMatch};
use crate::protocol;
use serde_json::json;

/// git's version and the helpers git runs for the host.
pub(super) fn check(ctx: &Context, target: &Target, report: &mut Report) {
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
                gitconfig::mask_secrets(e.value.as_deref().unwrap_or("")),
                e.origin
            )
        })
        .collect::<Vec<_>>();
    let helpers_json = effective
        .iter()
        .map(|e| {
            json!({
                "helper": e.value.as_deref().map(gitconfig::mask_secrets),
                "origin": e.origin,
                "scope": e.scope.name()
            })
        })
        .collect::<Vec<_>>();
    let runs = ours_at.map(|i| how_git_runs(effective[i].value.as_deref().unwrap_or("")));
    match (ours_at, runs) {
        (Some(_), Some(Err(problem))) => report.add_data(
            "helper",
            Status::Fail,
            format!(
                "{problem}\ngit runs these helpers for {url}, in order:\n{}",
                listing.join("\n")
            ),
            json!({ "helpers": helpers_json }),
        ),
        (Some(_), Some(Ok(program))) => report.add_data(
            "helper",
            Status::Ok,
            format!(
                "git runs these helpers for {url}, in order (ours runs {program}):\n{}",
                listing.join("\n")
            ),
            json!({ "helpers": helpers_json, "program": program }),
        ),
        (None, _) | (_, None) => report.add_data(
            "helper",
            Status::Fail,
            format!(
                "git runs no git-credential-github-app helper for {url}; run: git-credential-github-app setup{}{}",
                super::host_option(target),
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
                    gitconfig::mask_secrets(first.value.as_deref().unwrap_or("")),
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
            gitconfig::stores(value)
                .map(|how| format!("'{}' ({}) {how}", gitconfig::mask_secrets(value), e.origin))
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
    #[cfg(target_os = "macos")]
    {
        let (status, text) = keychain_note(&entries, &effective, ours_at, &url);
        report.add("keychain", status, text);
    }
    extraheader_check(target, report);
    env_token_check(ctx, &effective, report);
}

/// macOS: where the app's tokens are in the Keychain, and the `osxkeychain` helper Git for macOS
/// configures system-wide, which keeps what git hands it in the same keychain.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn keychain_note(
    entries: &[Entry],
    effective: &[&Entry],
    ours_at: Option<usize>,
    url: &str,
) -> (Status, String) {
    let ours = "the app's tokens are in your login keychain as generic passwords, service 'git-credential-github-app'";
    let is_osxkeychain = |e: &&Entry| e.value.as_deref().map(str::trim) == Some("osxkeychain");
    let Some(configured) = entries.iter().find(is_osxkeychain) else {
        return (
            Status::Ok,
            format!("{ours}; git's osxkeychain helper is not configured"),
        );
    };
    match effective.iter().position(is_osxkeychain) {
        Some(at) if ours_at.is_some_and(|ours_at| at > ours_at) => (
            Status::Warn,
            format!(
                "{ours}; osxkeychain ({}, as Git for macOS sets it) runs after ours for {url} and keeps the tokens git hands it as internet passwords for the host, beside ours (see storing-helper)",
                configured.origin
            ),
        ),
        Some(_) => (
            Status::Ok,
            format!(
                "{ours}; osxkeychain ({}) runs for {url} before ours (see reset)",
                configured.origin
            ),
        ),
        None => (
            Status::Ok,
            format!(
                "{ours}; osxkeychain ({}) does not run for {url}",
                configured.origin
            ),
        ),
    }
}

/// What git runs for our helper line, found as git finds it (nothing is run): the program, or
/// why git cannot run it as meant.
fn how_git_runs(line: &str) -> Result<String, String> {
    let exec_path = gitconfig::git(&["--exec-path"])
        .ok()
        .map(|p| std::path::PathBuf::from(p.trim()));
    let path = std::env::var_os("PATH");
    let command = gitconfig::invocation(line).command();
    match gitconfig::program(line, path.as_deref(), exec_path.as_deref()) {
        gitconfig::Program::File(p) if p.is_file() => Ok(p.display().to_string()),
        gitconfig::Program::File(p) => Err(format!(
            "git runs {}, which does not exist; run setup again",
            gitconfig::shown(&p.display().to_string())
        )),
        gitconfig::Program::InWorkTree(name) => Err(format!(
            "git runs this line as `{}`: it looks for '{}' relative to the working tree of the repository it runs in, so a file a repository commits there runs instead of this helper. Run setup again: it writes the line as !'…', which git runs as written",
            gitconfig::shown(&gitconfig::mask_secrets(&command)),
            gitconfig::shown(&name)
        )),
        gitconfig::Program::NotFound(name) => Err(format!(
            "git runs `{}`, and finds no '{}' in its exec path or PATH",
            gitconfig::shown(&gitconfig::mask_secrets(&command)),
            gitconfig::shown(&name)
        )),
        gitconfig::Program::Unparsable => Err(
            "the helper line does not split into words as the shell splits it (a quote is not closed): git cannot run it".to_owned(),
        ),
    }
}

/// `http.<url>.extraheader`: git sends it with every request, so no helper is ever asked.
pub(super) fn extraheader_check(target: &Target, report: &mut Report) {
    // git's config unreadable (git missing or refusing): nothing can be said about headers.
    let entries = match gitconfig::entries(r"^http\.(.*\.)?extraheader$", None) {
        Ok(entries) => entries,
        Err(e) => {
            report.add(
                "extraheader",
                Status::Skip,
                format!(
                    "git's config could not be read: {}",
                    crate::app::one_line(&e)
                ),
            );
            return;
        }
    };
    let found: Vec<String> = entries
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
pub(super) fn remote_check(config: &Config, target: &Target, report: &mut Report) {
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
        // A token as the user name (`https://TOKEN@github.com/…`, a form GitHub documents) is
        // never shown either.
        let user_shown = if config::secret_kind(user).is_some() {
            "[masked]"
        } else {
            user
        };
        if config::Host::normalize(scheme, host) == target.host && user != config.username {
            // A password in the URL (a token pasted by a CI script) is never shown.
            let path = &rest[authority.len()..];
            let shown =
                protocol::printable(&format!("{scheme}://{user_shown}{password}@{host}{path}"));
            found.push(format!(
                "{} = {shown} (user '{}')",
                e.key,
                protocol::printable(user_shown)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitconfig::Scope;

    fn helper(scope: Scope, origin: &str, section: &str, value: &str) -> Entry {
        Entry {
            scope,
            origin: origin.into(),
            key: format!("credential{section}.helper"),
            value: Some(value.into()),
        }
    }

    #[test]
    fn the_keychain_note_says_where_osxkeychain_sits() {
        let url = "https://github.com/";
        let system = helper(
            Scope::System,
            "file:/Library/Developer/CommandLineTools/usr/share/git-core/gitconfig",
            "",
            "osxkeychain",
        );
        let reset = helper(
            Scope::Global,
            "file:/Users/me/.gitconfig",
            ".https://github.com/",
            "",
        );
        let ours = helper(
            Scope::Global,
            "file:/Users/me/.gitconfig",
            ".https://github.com/",
            "/usr/local/bin/git-credential-github-app --app-id 1",
        );
        let again = helper(
            Scope::Global,
            "file:/Users/me/.gitconfig",
            ".https://github.com/",
            "osxkeychain",
        );
        let ours_text = "the app's tokens are in your login keychain as generic passwords, service 'git-credential-github-app'";
        // As setup leaves it: the system's osxkeychain listed again after ours.
        let entries = [system.clone(), reset.clone(), ours.clone(), again.clone()];
        assert_eq!(
            keychain_note(&entries, &[&ours, &again], Some(0), url),
            (
                Status::Warn,
                format!(
                    "{ours_text}; osxkeychain (file:/Library/Developer/CommandLineTools/usr/share/git-core/gitconfig, as Git for macOS sets it) runs after ours for https://github.com/ and keeps the tokens git hands it as internet passwords for the host, beside ours (see storing-helper)"
                )
            )
        );
        // Dropped for the host.
        let entries = [system.clone(), reset, ours.clone()];
        assert_eq!(
            keychain_note(&entries, &[&ours], Some(0), url),
            (
                Status::Ok,
                format!(
                    "{ours_text}; osxkeychain (file:/Library/Developer/CommandLineTools/usr/share/git-core/gitconfig) does not run for https://github.com/"
                )
            )
        );
        // Not configured at all.
        assert_eq!(
            keychain_note(std::slice::from_ref(&ours), &[&ours], Some(0), url),
            (
                Status::Ok,
                format!("{ours_text}; git's osxkeychain helper is not configured")
            )
        );
    }
}

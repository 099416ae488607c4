//! The checks of GitHub's side: the key, the API host (TLS, proxy, clock), GET /app, the
//! installations, the repository, narrowed permissions.

use super::Target;
use super::report::{Report, Status};
use crate::config::{App, InstallationSpec};
use crate::github::{self, ApiError, Client, Deadline, JwtProblem, Transport};
use crate::keyref::KeyRef;
use crate::secret::Secret;
use crate::state::State;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// The key, the API host, the clock, the app, its installations, the repository.
pub(super) fn check_app(
    app: &App,
    deadline: Deadline,
    target: &Target,
    repo: Option<&(String, String)>,
    report: &mut Report,
) {
    let Some(spec) = app.installation() else {
        return;
    };
    let api_url = app.api_url(target.scheme);
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
    let mut measured = None;
    let reachable = match ping(
        &api_url,
        deadline
            .remaining()
            .clamp(Duration::from_millis(100), Duration::from_secs(10)),
    ) {
        Ok((status, date)) => {
            let proxy = crate::net::proxy::for_url(&api_url);
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
                    match &proxy {
                        Some(p) => format!(", through the proxy in {} ({})", p.from, p.shown()),
                        None => ", directly".to_owned(),
                    }
                ),
                json!({ "api_url": api_url, "status": status }),
            );
            match date {
                Some(server) => {
                    let offset = signed_secs(server, SystemTime::now());
                    measured = Some(offset);
                    let (status, detail) = if offset.abs() <= 30 {
                        (
                            Status::Ok,
                            format!(
                                "this machine's clock is within {} of GitHub's",
                                duration(offset.unsigned_abs())
                            ),
                        )
                    } else {
                        (
                            Status::Warn,
                            format!(
                                "this machine's clock is {} {} GitHub's: the helper dates its JWTs by GitHub's clock, so it works; other tools may not: set the clock (NTP)",
                                duration(offset.unsigned_abs()),
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
    // GitHub's clock as just measured, else as last learnt: what the helper signs with.
    let offset = measured.unwrap_or_else(|| state.clock_offset(&api_url));
    let mut signer = crate::jwt::JwtIssuer::new(opened, spec.id.iss(), offset);
    let client = Client::new(&api_url, target.host.as_str(), deadline);
    let key_name = match &key {
        Ok((describe, fingerprint)) => format!("{describe} ({fingerprint})"),
        Err(_) => signer.key().describe(),
    };
    let mut skipped = "GitHub did not accept the app's key";
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
            // No answer in time is not a refusal: say which it was.
            skipped = match &e {
                ApiError::Transport {
                    cause: Some(Transport::Timeout(_)),
                    ..
                } => "GitHub did not answer GET /app in time (--timeout)",
                _ if deadline.passed() => "GitHub did not answer GET /app in time (--timeout)",
                ApiError::Transport { .. } => "GitHub could not be reached for GET /app",
                _ => "GET /app failed",
            };
            report.add("app-auth", Status::Fail, e.to_string());
            None
        }
    };
    if slug.is_none() {
        report.add("installations", Status::Skip, skipped);
        if repo.is_some() {
            report.add("repo", Status::Skip, skipped);
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
            let contents = crate::private_file::read(path, crate::private_file::MAX_KEY).ok()?;
            let mode = contents.mode.map(|m| format!(", mode {:03o}", m & 0o777));
            (Secret::new(String::from_utf8(contents.bytes).ok()?), mode)
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
        .proxy(crate::net::proxy::ureq_proxy(api_url))
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

/// A duration as people write it: `2h`, `15m 3s`, `40s`.
pub(super) fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// `a - b` in whole seconds, negative when `a` is earlier.
fn signed_secs(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
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
        std::fs::write(&path, include_str!("../../signer/github-example-key.pem")).unwrap();
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
    fn offsets_have_a_sign() {
        let now = SystemTime::now();
        assert_eq!(signed_secs(now + Duration::from_secs(90), now), 90);
        assert_eq!(signed_secs(now, now + Duration::from_secs(90)), -90);
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(903), "15m 3s");
        assert_eq!(duration(0), "0s");
    }
}

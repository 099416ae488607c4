//! The CI job's OIDC token, from wherever the job runs. Fetched fresh for every exchange (an
//! Actions token lives five minutes; some brokers refuse a replayed `jti`), never cached, never
//! printed, never put in an argv.
//!
//! - GitHub Actions: `GET $ACTIONS_ID_TOKEN_REQUEST_URL` with `audience=` added to its query and
//!   `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer's `value`. The workflow
//!   needs `permissions: id-token: write`.
//! - GitLab CI: the variable an `id_tokens:` entry of `.gitlab-ci.yml` fills (its `aud` is set
//!   there, not here).
//! - Buildkite: `buildkite-agent oidc request-token --audience A` (the token on stdout).
//! - A file, read at every use: a Kubernetes projected service-account token (the kubelet
//!   rotates it), `$AWS_WEB_IDENTITY_TOKEN_FILE`, …
//! - A command printing the token (`oidc_command = ["prog", …]`); it gets `audience=A` on stdin.
//! - `auto`: the first of GitHub Actions (`GITHUB_ACTIONS=true`), GitLab (`GITLAB_CI=true`, the
//!   variable `<AUDIENCE>_ID_TOKEN`, upper case, other characters `_`), Buildkite
//!   (`BUILDKITE=true`).

use super::{BrokerError, Reply, Request, query_value};
use crate::config::Host;
pub use crate::config::broker::OidcSource;
use crate::github::{Deadline, printable_message};
use crate::private_file;
use crate::secret::Secret;
use base64::Engine;

pub const ACTIONS_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const ACTIONS_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// The largest OIDC token accepted (Kubernetes and Actions tokens are 1–3 KB).
const MAX_TOKEN: usize = 64 * 1024;

impl OidcSource {
    /// The concrete source `auto` stands for here, or which environments were looked for.
    pub fn resolve(
        &self,
        audience: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OidcSource, BrokerError> {
        if *self != OidcSource::Auto {
            return Ok(self.clone());
        }
        let is_true = |name: &str| env(name).is_some_and(|v| v == "true");
        if is_true("GITHUB_ACTIONS") || env(ACTIONS_URL).is_some() {
            return Ok(OidcSource::GithubActions);
        }
        if is_true("GITLAB_CI") {
            return Ok(OidcSource::Gitlab {
                variable: gitlab_variable(audience),
            });
        }
        if is_true("BUILDKITE") {
            return Ok(OidcSource::Buildkite);
        }
        Err(BrokerError::Oidc(format!(
            "no OIDC token: looked for GitHub Actions ({ACTIONS_URL}), GitLab CI (GITLAB_CI and {}) and Buildkite (BUILDKITE); set oidc = github-actions | gitlab:VARIABLE | buildkite | file:PATH, or oidc_command",
            gitlab_variable(audience)
        )))
    }

    /// A fresh OIDC token for `audience`.
    pub fn fetch(
        &self,
        audience: &str,
        env: &dyn Fn(&str) -> Option<String>,
        deadline: Deadline,
    ) -> Result<Secret, BrokerError> {
        let token = match self.resolve(audience, env)? {
            OidcSource::Auto => {
                return Err(BrokerError::Oidc("no OIDC token: no source detected".into()));
            }
            OidcSource::GithubActions => github_actions(audience, env, deadline)?,
            OidcSource::Gitlab { variable } => env(&variable)
                .filter(|v| !v.trim().is_empty())
                .map(Secret::new)
                .ok_or_else(|| {
                    BrokerError::Oidc(format!(
                        "no OIDC token: GitLab variable {variable} is not set; add it to the job's id_tokens: ({variable}: {{aud: {audience}}})"
                    ))
                })?,
            OidcSource::Buildkite => {
                let argv: Vec<String> = ["buildkite-agent", "oidc", "request-token", "--audience", audience]
                    .map(str::to_owned)
                    .to_vec();
                from_command(&argv, b"", deadline, "buildkite-agent oidc request-token")?
            }
            OidcSource::File(path) => {
                // Bounded and never blocking: a FIFO or a device is refused, not waited on.
                let contents = private_file::read(&path, MAX_TOKEN as u64).map_err(|e| {
                    BrokerError::Oidc(format!(
                        "no OIDC token: cannot read {} ({e})",
                        printable_message(&path.to_string_lossy())
                    ))
                })?;
                Secret::new(String::from_utf8_lossy(&contents.bytes).trim())
            }
            OidcSource::Command(argv) => {
                let what = OidcSource::Command(argv.clone()).describe();
                from_command(&argv, format!("audience={audience}\n").as_bytes(), deadline, &what)?
            }
        };
        check_shape(&token)?;
        Ok(token)
    }
}

/// ambient-id's convention for GitLab: `octo-sts.dev` → `OCTO_STS_DEV_ID_TOKEN`.
pub fn gitlab_variable(audience: &str) -> String {
    let mut name: String = audience
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_ID_TOKEN");
    name
}

/// `ACTIONS_ID_TOKEN_REQUEST_URL` with `audience=` added to the query it already has.
pub fn actions_url(base: &str, audience: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}audience={}", query_value(audience))
}

fn github_actions(
    audience: &str,
    env: &dyn Fn(&str) -> Option<String>,
    deadline: Deadline,
) -> Result<Secret, BrokerError> {
    let (Some(url), Some(request_token)) = (env(ACTIONS_URL), env(ACTIONS_TOKEN)) else {
        return Err(BrokerError::Oidc(format!(
            "no OIDC token: {ACTIONS_URL} and {ACTIONS_TOKEN} are not set; the workflow job needs `permissions: id-token: write`"
        )));
    };
    check_actions_url(&url)?;
    let request = Request {
        method: "GET",
        url: actions_url(&url, audience),
        body: None,
    };
    let bearer = Secret::new(request_token);
    let reply: Reply = super::exchange::exchange(
        "GitHub Actions' ID-token endpoint",
        deadline,
        &mut || Ok(Some(bearer.clone())),
        &request,
        &super::json_message,
    )
    .map_err(|e| BrokerError::Oidc(format!("no OIDC token: {e}")))?;
    serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["value"].as_str().map(Secret::new))
        .ok_or_else(|| {
            BrokerError::Oidc(format!(
                "no OIDC token: GitHub Actions' ID-token endpoint answered {} without a value",
                reply.status
            ))
        })
}

/// The request token is a bearer credential: https, or plain http only to a loopback host; and
/// no user name or password in the URL (`http://127.0.0.1:1@evil.example/` goes to evil.example).
fn check_actions_url(url: &str) -> Result<(), BrokerError> {
    let refuse = |why: &str| {
        Err(BrokerError::Oidc(format!(
            "no OIDC token: {ACTIONS_URL} {why}; not sending the request token there"
        )))
    };
    let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return refuse("is not an https URL"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return refuse("contains a user name or password (…@)");
    }
    let Ok(host) = Host::parse(authority) else {
        return refuse("does not have a valid host name");
    };
    if !https && !host.is_loopback() {
        return refuse("is not an https URL");
    }
    Ok(())
}

fn from_command(
    argv: &[String],
    input: &[u8],
    deadline: Deadline,
    what: &str,
) -> Result<Secret, BrokerError> {
    let out = crate::signer::command::run(argv, input, deadline.at(), what)
        .map_err(|e| BrokerError::Oidc(format!("no OIDC token: {e:#}")))?;
    if out.len() > MAX_TOKEN {
        return Err(BrokerError::Oidc(format!(
            "no OIDC token: {what} printed too much"
        )));
    }
    Ok(Secret::new(String::from_utf8_lossy(&out).trim()))
}

/// A JWT: three base64url parts, nothing else (so a wrong file or a prompt is named as such,
/// and no stray text goes into a header).
fn check_shape(token: &Secret) -> Result<(), BrokerError> {
    let t = token.expose();
    let ok = t.len() <= MAX_TOKEN
        && t.split('.').count() == 3
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(BrokerError::Oidc(
            "no OIDC token: what the OIDC source gave is not a JWT".into(),
        )),
    }
}

/// The `aud` claim of a token (unverified), as a list.
pub fn audiences(token: &Secret) -> Vec<String> {
    let claims = claims(token);
    match &claims["aud"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn claims(token: &Secret) -> serde_json::Value {
    token
        .expose()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default()
}

/// The unverified claims `doctor` shows: `iss`, `sub`, `aud`, and seconds left (never the token).
pub fn describe_claims(token: &Secret, now: u64) -> String {
    let claims = token
        .expose()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    let text = |k: &str| match &claims[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => "?".into(),
    };
    let left = claims["exp"]
        .as_u64()
        .map_or("?".into(), |exp| format!("{} s", exp as i64 - now as i64));
    printable_message(&format!(
        "iss {}, sub {}, aud {}, expires in {left}",
        text("iss"),
        text("sub"),
        text("aud")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_detects_the_ci_or_says_what_it_looked_for() {
        let s = OidcSource::Auto;
        assert_eq!(
            s.resolve("a", &env(&[("GITHUB_ACTIONS", "true")])),
            Ok(OidcSource::GithubActions)
        );
        assert_eq!(
            s.resolve("octo-sts.dev", &env(&[("GITLAB_CI", "true")])),
            Ok(OidcSource::Gitlab {
                variable: "OCTO_STS_DEV_ID_TOKEN".into()
            })
        );
        assert_eq!(
            s.resolve("a", &env(&[("BUILDKITE", "true")])),
            Ok(OidcSource::Buildkite)
        );
        let Err(BrokerError::Oidc(m)) = s.resolve("octo-sts.dev", &env(&[])) else {
            panic!("detected something")
        };
        assert!(
            m.contains("ACTIONS_ID_TOKEN_REQUEST_URL")
                && m.contains("OCTO_STS_DEV_ID_TOKEN")
                && m.contains("BUILDKITE"),
            "{m}"
        );
    }

    #[test]
    fn missing_actions_environment_names_what_is_needed() {
        let Err(BrokerError::Oidc(m)) = OidcSource::GithubActions.fetch(
            "x",
            &env(&[]),
            Deadline::after(std::time::Duration::from_secs(1)),
        ) else {
            panic!("fetched")
        };
        assert!(
            m.contains("ACTIONS_ID_TOKEN_REQUEST_URL") && m.contains("id-token: write"),
            "{m}"
        );
        let Err(BrokerError::Oidc(m)) = (OidcSource::Gitlab {
            variable: "V_ID_TOKEN".into(),
        })
        .fetch(
            "aud",
            &env(&[]),
            Deadline::after(std::time::Duration::from_secs(1)),
        ) else {
            panic!("fetched")
        };
        assert!(m.contains("V_ID_TOKEN"), "{m}");
    }

    #[test]
    fn the_request_token_goes_only_to_https_or_loopback() {
        let deadline = Deadline::after(std::time::Duration::from_secs(1));
        let Err(BrokerError::Oidc(m)) = OidcSource::GithubActions.fetch(
            "x",
            &env(&[
                (ACTIONS_URL, "http://evil.example/idtoken"),
                (ACTIONS_TOKEN, "t"),
            ]),
            deadline,
        ) else {
            panic!("sent")
        };
        assert!(m.contains("not an https URL"), "{m}");
        for url in [
            "http://127.0.0.1:1@evil.example/idtoken",
            "http://localhost@evil.example/idtoken",
            "https://user:pw@pipelines.example/idtoken",
        ] {
            let Err(BrokerError::Oidc(m)) = check_actions_url(url) else {
                panic!("{url} accepted")
            };
            assert!(m.contains("user name or password"), "{m}");
        }
        for url in [
            "http://127.0.0.1.evil.example/idtoken",
            "http://[::1]evil.example/idtoken",
            "http://evil.example?127.0.0.1/",
        ] {
            assert!(check_actions_url(url).is_err(), "{url} accepted");
        }
        for url in [
            "https://pipelines.example/idtoken?api-version=2.0",
            "http://127.0.0.1:8080/idtoken?api-version=2.0",
            "http://[::1]:8080/idtoken",
            "http://localhost/idtoken",
        ] {
            assert_eq!(check_actions_url(url), Ok(()), "{url}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_as_the_token_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // No writer ever opens the FIFO: a blocking read would hang this test.
        let Err(BrokerError::Oidc(m)) = OidcSource::File(fifo).fetch(
            "x",
            &env(&[]),
            Deadline::after(std::time::Duration::from_secs(1)),
        ) else {
            panic!("read a FIFO")
        };
        assert!(m.contains("a FIFO, not a regular file"), "{m}");
    }

    #[test]
    fn the_audience_is_added_to_the_actions_url() {
        assert_eq!(
            actions_url("https://x/idtoken?api-version=2.0", "octo-sts.dev"),
            "https://x/idtoken?api-version=2.0&audience=octo-sts.dev"
        );
        assert_eq!(
            actions_url("https://x/t", "a b"),
            "https://x/t?audience=a%20b"
        );
    }

    #[test]
    fn only_jwts_are_accepted() {
        assert!(check_shape(&Secret::new("a.b.c")).is_ok());
        assert!(check_shape(&Secret::new("Password: ")).is_err());
        assert!(check_shape(&Secret::new("a.b.c\nX-Evil: 1")).is_err());
    }
}

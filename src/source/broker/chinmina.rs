//! chinmina-bridge (github.com/chinmina/chinmina-bridge), for Buildkite: the job's Buildkite OIDC
//! token buys a token for its pipeline's repository.
//!
//! - `POST URL/git-credentials[/PROFILE]` (the default, `mode = git-credentials`): git's own
//!   credential format over HTTP — git's `protocol`, `host` and `path` go in, `password` and
//!   `password_expiry_utc` come back. **A 200 with an empty body means "not mine"**: the
//!   repository is not the pipeline's.
//! - `POST URL/token[/PROFILE]` (`mode = token`): JSON with `token`, `expiry` (RFC 3339) and the
//!   `repositoryUrl`/`repositories` it is for; a repository other than git's is not mine.
//!
//! chinmina caches what it vends for 45 minutes, so a token may have only 15 left: its expiry is
//! always used. A refusal carries the reason in a `Chinmina-Denied` header, shown to the person.

use super::{Reply, Request, json_message};
use crate::github::printable_message;
use crate::secret::Secret;

pub use crate::config::broker::ChinminaMode as Mode;

/// A token and its expiry (Unix seconds) as chinmina gave them.
#[derive(Debug)]
pub struct Vended {
    pub secret: Secret,
    pub expires_at: Option<u64>,
}

/// The request for git's `protocol`, `host` and `path` (`owner/repo[.git]`).
pub fn request(
    url: &str,
    mode: Mode,
    profile: Option<&str>,
    protocol: &str,
    host: &str,
    path: &str,
) -> Request {
    let endpoint = match mode {
        Mode::GitCredentials => "git-credentials",
        Mode::Token => "token",
    };
    let url = match profile {
        Some(p) => format!("{url}/{endpoint}/{}", super::query_value(p)),
        None => format!("{url}/{endpoint}"),
    };
    let body = match mode {
        Mode::GitCredentials => Some((
            "text/plain",
            format!("protocol={protocol}\nhost={host}\npath={path}\n\n").into_bytes(),
        )),
        Mode::Token => Some(("application/json", b"{}".to_vec())),
    };
    Request {
        method: "POST",
        url,
        body,
    }
}

/// The reason chinmina gave for a refusal: its `Chinmina-Denied` header, else its body.
pub fn denied(reply: &Reply) -> String {
    match reply.header("chinmina-denied") {
        Some(reason) => printable_message(reason),
        None => json_message(reply),
    }
}

/// What a 2xx answer holds: a token, or None for "not mine" (an empty body; a 204; a token for
/// another repository than `owner/repo`).
pub fn vended(
    reply: &Reply,
    mode: Mode,
    owner: &str,
    repo: &str,
) -> Result<Option<Vended>, String> {
    if reply.status == 204 || reply.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match mode {
        Mode::GitCredentials => git_credentials(&reply.body),
        Mode::Token => token(&reply.body, owner, repo),
    }
}

fn git_credentials(body: &[u8]) -> Result<Option<Vended>, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "chinmina answered with bytes that are not text".to_owned())?;
    let mut password = None;
    let mut expiry = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "password" => password = Some(v),
            "password_expiry_utc" => {
                let at = v.trim().parse::<u64>().map_err(|_| {
                    "chinmina answered a password_expiry_utc that is not Unix seconds".to_owned()
                })?;
                expiry = Some(at).filter(|&e| e > 0);
            }
            _ => {}
        }
    }
    match password {
        Some(p) if !p.is_empty() && !p.contains(['\r', '\0']) => Ok(Some(Vended {
            secret: Secret::new(p),
            expires_at: expiry,
        })),
        _ => Err("chinmina answered git-credentials without a password".to_owned()),
    }
}

fn token(body: &[u8], owner: &str, repo: &str) -> Result<Option<Vended>, String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| "chinmina answered /token with no JSON".to_owned())?;
    let for_repo = match (v["repositoryUrl"].as_str(), v["repositories"].as_array()) {
        (Some(url), _) => {
            let url = url
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase();
            url.ends_with(&format!("/{owner}/{repo}").to_ascii_lowercase())
        }
        (None, Some(names)) => names
            .iter()
            .filter_map(|n| n.as_str())
            .any(|n| n.eq_ignore_ascii_case(repo)),
        (None, None) => false,
    };
    if !for_repo {
        return Ok(None);
    }
    let secret = match v["token"].as_str() {
        Some(t) if !t.is_empty() && !t.contains(['\r', '\n', '\0']) => Secret::new(t),
        _ => return Err("chinmina answered /token without a token".to_owned()),
    };
    // A present expiry the helper cannot read is an error, not "no expiry" (which would become
    // the one-hour cap, later than a chinmina token's real expiry).
    let expires_at = match &v["expiry"] {
        serde_json::Value::Null => None,
        e => Some(e.as_str().and_then(super::unix_time).ok_or_else(|| {
            "chinmina answered /token with an expiry that is not an RFC 3339 time".to_owned()
        })?),
    };
    Ok(Some(Vended { secret, expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            body: body.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn git_credentials_speak_gits_format() {
        let r = request(
            "https://chinmina.example",
            Mode::GitCredentials,
            Some("release"),
            "https",
            "github.com",
            "acme/widgets.git",
        );
        assert_eq!(r.url, "https://chinmina.example/git-credentials/release");
        assert_eq!(
            r.body.unwrap().1,
            b"protocol=https\nhost=github.com\npath=acme/widgets.git\n\n"
        );
        let v = vended(
            &reply(200, "protocol=https\nhost=github.com\npath=acme/widgets.git\nusername=x-access-token\npassword=ghs_x\npassword_expiry_utc=1900000000\n\n", &[]),
            Mode::GitCredentials, "acme", "widgets",
        ).unwrap().unwrap();
        assert_eq!(
            (v.secret.expose(), v.expires_at),
            ("ghs_x", Some(1_900_000_000))
        );
    }

    #[test]
    fn an_empty_answer_is_not_mine() {
        assert!(
            vended(&reply(200, "", &[]), Mode::GitCredentials, "a", "b")
                .unwrap()
                .is_none()
        );
        assert!(
            vended(&reply(204, "", &[]), Mode::Token, "a", "b")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn token_answers_are_checked_against_the_repository() {
        let body = r#"{"repositoryUrl":"https://github.com/acme/widgets.git","repositories":["widgets"],"token":"ghs_y","expiry":"2030-01-01T00:00:00Z"}"#;
        let v = vended(&reply(200, body, &[]), Mode::Token, "acme", "widgets")
            .unwrap()
            .unwrap();
        assert_eq!(
            (v.secret.expose(), v.expires_at),
            ("ghs_y", Some(1_893_456_000))
        );
        assert!(
            vended(&reply(200, body, &[]), Mode::Token, "acme", "secret")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_denied_header_is_shown() {
        assert_eq!(
            denied(&reply(
                403,
                "Forbidden\n",
                &[("Chinmina-Denied", "profile release not found")]
            )),
            "profile release not found"
        );
        assert_eq!(
            denied(&reply(403, r#"{"error":"Forbidden"}"#, &[])),
            "Forbidden"
        );
    }

    #[test]
    fn an_expiry_with_an_offset_is_read_and_an_unreadable_one_refused() {
        let body = |expiry: &str| {
            format!(r#"{{"repositories":["widgets"],"token":"ghs_z","expiry":{expiry}}}"#)
        };
        let v = vended(
            &reply(200, &body(r#""2026-12-02T15:00:00+02:00""#), &[]),
            Mode::Token,
            "acme",
            "widgets",
        )
        .unwrap()
        .unwrap();
        assert_eq!(v.expires_at, Some(1_796_216_400));
        for expiry in [r#""soon""#, "1796216400"] {
            let e = vended(
                &reply(200, &body(expiry), &[]),
                Mode::Token,
                "acme",
                "widgets",
            )
            .unwrap_err();
            assert_eq!(
                e,
                "chinmina answered /token with an expiry that is not an RFC 3339 time"
            );
        }
        let e = vended(
            &reply(200, "password=ghs_z\npassword_expiry_utc=soon\n", &[]),
            Mode::GitCredentials,
            "acme",
            "widgets",
        )
        .unwrap_err();
        assert!(
            e.contains("password_expiry_utc") && !e.contains("ghs_z"),
            "{e}"
        );
    }
}

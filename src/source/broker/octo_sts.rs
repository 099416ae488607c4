//! octo-sts (github.com/octo-sts/app): `GET URL/sts/exchange?scope=S&scopes=S&identity=NAME` with
//! `Authorization: Bearer <OIDC token>`; the answer's `token` (octo-sts never sends an expiry);
//! errors `{"code","message"}`.
//!
//! Both `scope` and `scopes` are sent: octo-sts moved from one to the other in 2025, and a
//! regression in between refused clients that sent only one. The scope is `OWNER/REPO` from
//! git's path (a repository trust policy in that repository), or `OWNER` alone when an
//! organisation policy is configured (`org = true`: the policy in `OWNER/.github`, one token for
//! the repositories it lists).

use super::{Reply, Request, query_value};
use crate::secret::Secret;

/// The scope to ask for: `owner/repo`, or `owner` for an organisation policy. None when git sent
/// no path (a repository policy needs the repository).
pub fn scope(owner: Option<&str>, repo: Option<&str>, org: bool) -> Option<String> {
    let owner = owner?;
    if org {
        return Some(owner.to_owned());
    }
    Some(format!("{owner}/{}", repo?))
}

/// The exchange request.
pub fn request(url: &str, scope: &str, identity: &str) -> Request {
    let s = query_value(scope);
    Request {
        method: "GET",
        url: format!(
            "{url}/sts/exchange?scope={s}&scopes={s}&identity={}",
            query_value(identity)
        ),
        body: None,
    }
}

/// The token from a 200 answer (`{"token":"…", "refreshToken":"", "expiry":null}`).
pub fn token(reply: &Reply) -> Result<Secret, String> {
    let value: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|_| format!("octo-sts answered {} with no JSON", reply.status))?;
    match value["token"].as_str() {
        Some(t) if !t.is_empty() && !t.contains(['\r', '\n', '\0']) => Ok(Secret::new(t)),
        _ => Err(format!(
            "octo-sts answered {} without a token",
            reply.status
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_git_path_or_the_owner() {
        assert_eq!(
            scope(Some("acme"), Some("widgets"), false).as_deref(),
            Some("acme/widgets")
        );
        assert_eq!(
            scope(Some("acme"), Some("widgets"), true).as_deref(),
            Some("acme")
        );
        assert_eq!(scope(Some("acme"), None, false), None);
        assert_eq!(scope(None, None, true), None);
    }

    #[test]
    fn both_scope_and_scopes_are_sent() {
        assert_eq!(
            request("https://octo-sts.dev", "acme/widgets", "ci").url,
            "https://octo-sts.dev/sts/exchange?scope=acme/widgets&scopes=acme/widgets&identity=ci"
        );
    }

    #[test]
    fn the_token_is_read_and_nothing_else() {
        let reply = |body: &str| Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            headers: vec![],
        };
        assert_eq!(
            token(&reply(
                r#"{"token":"ghs_abc","refreshToken":"","expiry":null}"#
            ))
            .unwrap()
            .expose(),
            "ghs_abc"
        );
        assert!(token(&reply(r#"{"token":""}"#)).is_err());
        assert!(token(&reply(r#"{"token":"a\nb"}"#)).is_err());
        assert!(token(&reply("<html>")).is_err());
    }
}

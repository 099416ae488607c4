//! `doctor` for a broker entry: is the OIDC source found, is its token's audience the one the
//! broker expects, and (for a repository) does one exchange work.

use super::{Brokered, Fetched, NotMine, Target, TokenSource, oidc};
use crate::config::Host;
use crate::config::broker::BrokerSpec;
use crate::github::{Deadline, printable_message, unix_now};
use crate::source::Cx;
use crate::state::State;

/// One `doctor` finding about a broker entry: `ok` None means skipped.
#[derive(Debug)]
pub struct Finding {
    pub id: &'static str,
    pub ok: Option<bool>,
    pub detail: String,
}

/// `doctor` for a broker entry: the OIDC source is found and gives a token (its `iss`, `sub`,
/// `aud` and lifetime shown, never the token), for the audience the broker expects; then, for
/// `repo` (`owner`, `name`), one exchange, whose token is revoked again.
pub fn diagnose(
    spec: &BrokerSpec,
    host: &Host,
    api_url: String,
    repo: Option<(&str, &str)>,
    state: &State,
    deadline: Deadline,
) -> Vec<Finding> {
    let source = Brokered::new(spec, host, api_url.clone());
    let audience = source.audience();
    let env = |name: &str| std::env::var(name).ok();
    let mut out = Vec::new();
    match &spec.oidc {
        None => out.push(Finding {
            id: "oidc",
            ok: None,
            detail: format!("{} is configured without an OIDC source", spec.describe()),
        }),
        Some(oidc) => match oidc
            .resolve(&audience, &env)
            .and_then(|resolved| Ok((resolved.fetch(&audience, &env, deadline)?, resolved)))
        {
            Ok((token, resolved)) => {
                let claims = oidc::describe_claims(&token, unix_now());
                out.push(Finding {
                    id: "oidc",
                    ok: Some(true),
                    detail: format!("OIDC token from {}: {claims}", resolved.describe()),
                });
                let has_audience = oidc::audiences(&token).contains(&audience);
                out.push(Finding {
                    id: "audience",
                    ok: Some(has_audience),
                    detail: match has_audience {
                        true => format!("the OIDC token's audience is {audience}, as {} expects", source.describe()),
                        false => format!(
                            "the OIDC token's audience is not {audience}, which {} expects by default; request it with that audience, or set --audience / audience = to what the broker's policy names",
                            source.describe()
                        ),
                    },
                });
            }
            Err(e) => out.push(Finding {
                id: "oidc",
                ok: Some(false),
                detail: e.to_string(),
            }),
        },
    }
    let Some((owner, name)) = repo else {
        out.push(Finding {
            id: "exchange",
            ok: None,
            detail: "give --repo OWNER/REPO to try one exchange".into(),
        });
        return out;
    };
    let target = Target {
        host: host.clone(),
        owner: Some(owner.to_ascii_lowercase()),
        repo: Some(name.to_owned()),
    };
    let mut said = Vec::new();
    let mut say = |line: &str| said.push(line.to_owned());
    let mut cx = Cx {
        state,
        deadline,
        say: &mut say,
    };
    let finding = match source.fetch(&target, &mut cx) {
        Ok(Fetched::Token { token, .. }) => {
            let revoked = crate::github::Client::new(&api_url, host.as_str(), deadline)
                .revoke(&token.secret)
                .is_ok();
            Finding {
                id: "exchange",
                ok: Some(true),
                detail: format!(
                    "one exchange with {} for {owner}/{name}: token {}, expires in {} s{}",
                    source.describe(),
                    token.secret.fingerprint(),
                    token.expires_at.saturating_sub(unix_now()),
                    if revoked { " (revoked again)" } else { "" }
                ),
            }
        }
        Ok(Fetched::NotMine(NotMine::Broker { message })) => Finding {
            id: "exchange",
            ok: Some(false),
            detail: message,
        },
        Ok(Fetched::NotMine(other)) => Finding {
            id: "exchange",
            ok: Some(false),
            detail: format!("{other:?}"),
        },
        Err(e) => Finding {
            id: "exchange",
            ok: Some(false),
            detail: printable_message(&format!("{e:#}")),
        },
    };
    out.push(finding);
    out
}

//! Tokens from a broker: a service that holds the GitHub App key and trades a CI job's OIDC token
//! for an installation token (octo-sts, chinmina-bridge), or any program that prints a token
//! (`token_command`). The runner holds no key.
//!
//! - [`oidc`]: the OIDC token, from wherever the job runs, fetched fresh for every exchange and
//!   never cached or shown.
//! - [`octo_sts`], [`chinmina`], [`command`]: each broker's request and answer.
//! - [`mod@exchange`]: the HTTP exchange every broker shares, with its retry and expiry rules.
//! - [`checks`]: what `doctor` checks for a broker entry.
//! - here: the [`TokenSource`] of a broker entry — its cache key (broker URL, git host, identity
//!   or profile or command, scope), the single-flight lock's name, and a fetch: OIDC token →
//!   exchange → token with an expiry.

pub mod checks;
pub mod chinmina;
pub mod command;
pub mod exchange;
pub mod octo_sts;
pub mod oidc;

pub use exchange::{
    BrokerError, Reply, Request, default_audience, expiry, json_message, query_value, unix_time,
};

use super::{About, Cx, Fetched, Kind, Known, NotMine, Target, Token, TokenSource};
use crate::cache::CacheKey;
use crate::config::Host;
use crate::config::broker::{Broker, BrokerSpec};
use crate::github::unix_now;
use crate::secret::Secret;
use crate::state::{State, digest};
use crate::trace;
use anyhow::{Result, anyhow};
use exchange::exchange;

/// The token source of a broker entry.
pub struct Brokered<'a> {
    spec: &'a BrokerSpec,
    host: &'a Host,
    /// GitHub's REST API for this host (where a brokered token is revoked).
    api_url: String,
}

impl<'a> Brokered<'a> {
    pub fn new(spec: &'a BrokerSpec, host: &'a Host, api_url: String) -> Brokered<'a> {
        Brokered {
            spec,
            host,
            api_url,
        }
    }

    /// What the token is for, as part of the cache key: octo-sts' scope (`owner/repo`, or the
    /// owner for an organisation policy), else the repository. None: git sent too little.
    fn scope(&self, target: &Target) -> Option<String> {
        let owner = target.owner.as_deref();
        let repo = target.repo.as_deref().map(str::to_ascii_lowercase);
        match &self.spec.broker {
            Broker::OctoSts { org_scope, .. } => {
                octo_sts::scope(owner, repo.as_deref(), *org_scope)
            }
            Broker::Chinmina { .. } | Broker::Command { .. } => {
                Some(format!("{}/{}", owner?, repo?))
            }
        }
    }

    /// Broker URL + the git host + what is asked of it + scope: two targets with the same key
    /// share a token.
    fn key_text(&self, scope: &str) -> String {
        let asked = match &self.spec.broker {
            Broker::OctoSts { identity, .. } => format!("identity={identity}"),
            Broker::Chinmina { profile, mode } => {
                format!("profile={}|mode={mode:?}", profile.as_deref().unwrap_or(""))
            }
            Broker::Command { argv } => format!("command={}", digest(&[&argv.join("\0")])),
        };
        format!(
            "broker|{}|{}|host={}|{asked}|scope={scope}",
            self.kind().as_str(),
            self.spec.url,
            self.host.as_str()
        )
    }

    pub(super) fn audience(&self) -> String {
        self.spec
            .audience
            .clone()
            .unwrap_or_else(|| default_audience(&self.spec.url))
    }

    /// The protocol git used (`http` only for the local test GitHub on loopback).
    fn protocol(&self) -> &str {
        self.api_url.split_once("://").map_or("https", |(p, _)| p)
    }
}

impl TokenSource for Brokered<'_> {
    fn kind(&self) -> Kind {
        match self.spec.broker {
            Broker::OctoSts { .. } => Kind::OctoSts,
            Broker::Chinmina { .. } => Kind::Chinmina,
            Broker::Command { .. } => Kind::Command,
        }
    }

    fn describe(&self) -> String {
        self.spec.describe()
    }

    fn id(&self) -> String {
        match &self.spec.broker {
            Broker::Command { argv } => argv.first().cloned().unwrap_or_default(),
            _ => self.spec.url.clone(),
        }
    }

    fn api_url(&self) -> &str {
        &self.api_url
    }

    fn key(&self, target: &Target, _state: &State) -> Known {
        match self.scope(target) {
            Some(scope) => Known::Key(CacheKey::new(self.key_text(&scope))),
            None => Known::Unknown,
        }
    }

    fn flight(&self, target: &Target) -> String {
        let scope = self.scope(target).unwrap_or_default();
        digest(&[&self.key_text(&scope)])
    }

    fn fetch(&self, target: &Target, cx: &mut Cx<'_>) -> Result<Fetched> {
        let scope = self.scope(target).ok_or_else(|| {
            anyhow!(
                "{} needs the repository for {}: set credential.useHttpPath = true for {} (setup does)",
                self.describe(),
                target.describe(),
                self.host.as_str()
            )
        })?;
        let (owner, repo) = (
            target.owner.clone().unwrap_or_default(),
            target.repo.clone().unwrap_or_default(),
        );
        let deadline = cx.deadline;
        let audience = self.audience();
        let env = |name: &str| std::env::var(name).ok();
        let mut oidc = || -> Result<Option<Secret>, BrokerError> {
            match &self.spec.oidc {
                Some(source) => {
                    let token = source.fetch(&audience, &env, deadline)?;
                    trace!(
                        "OIDC token {} from {}",
                        token.fingerprint(),
                        source.describe()
                    );
                    Ok(Some(token))
                }
                None => Ok(None),
            }
        };
        let sent = unix_now();
        let name = self.describe();
        let outcome: Result<Option<(Secret, Option<u64>)>, BrokerError> = match &self.spec.broker {
            Broker::OctoSts { identity, .. } => {
                let request = octo_sts::request(&self.spec.url, &scope, identity);
                exchange(&name, deadline, &mut oidc, &request, &json_message).and_then(|reply| {
                    octo_sts::token(&reply)
                        .map(|t| Some((t, None)))
                        .map_err(BrokerError::Invalid)
                })
            }
            Broker::Chinmina { profile, mode } => {
                let path = format!("{owner}/{}.git", target.repo.as_deref().unwrap_or_default());
                let request = chinmina::request(
                    &self.spec.url,
                    *mode,
                    profile.as_deref(),
                    self.protocol(),
                    self.host.as_str(),
                    &path,
                );
                exchange(&name, deadline, &mut oidc, &request, &chinmina::denied).and_then(
                    |reply| {
                        chinmina::vended(&reply, *mode, &owner, &repo)
                            .map(|v| v.map(|v| (v.secret, v.expires_at)))
                            .map_err(BrokerError::Invalid)
                    },
                )
            }
            Broker::Command { argv } => (|| {
                let oidc = oidc()?;
                let path = format!("{owner}/{repo}.git");
                let input = command::input(
                    self.protocol(),
                    self.host.as_str(),
                    Some(&path),
                    Some(&owner),
                    Some(&repo),
                    oidc.as_ref(),
                );
                let what = self.describe();
                let out = crate::signer::command::run(argv, &input, deadline.at(), &what)
                    .map_err(|e| BrokerError::Unavailable(format!("{e:#}")))?;
                command::parse(&out, unix_now())
                    .map(|p| p.map(|p| (p.secret, p.expires_at)))
                    .map_err(|e| BrokerError::Invalid(format!("{what} {e}")))
            })(),
        };
        match outcome {
            Ok(Some((secret, returned))) => {
                let expires_at = expiry(returned, sent);
                trace!(
                    "{name} gave token {} for {scope}, expires in {} s{}",
                    secret.fingerprint(),
                    expires_at.saturating_sub(unix_now()),
                    if returned.is_none() {
                        " (assumed: no expiry given)"
                    } else {
                        ""
                    }
                );
                let token = Token {
                    secret,
                    expires_at,
                    kind: self.kind(),
                    account: Some(owner),
                    permissions: None,
                };
                Ok(Fetched::Token {
                    token,
                    key: CacheKey::new(self.key_text(&scope)),
                    about: About {
                        installation: None,
                        scope,
                    },
                })
            }
            Ok(None) => Ok(Fetched::NotMine(NotMine::Broker {
                message: format!("{name} has no token for {}", target.describe()),
            })),
            Err(BrokerError::Refused { message, .. }) => {
                Ok(Fetched::NotMine(NotMine::Broker { message }))
            }
            Err(e) => Err(anyhow!(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_broker_host_identity_and_scope() {
        use crate::config::broker::{Broker, BrokerSpec};
        let spec = |identity: &str, org_scope: bool| BrokerSpec {
            broker: Broker::OctoSts {
                identity: identity.into(),
                org_scope,
            },
            url: "https://octo-sts.dev".into(),
            oidc: None,
            audience: None,
        };
        let host = Host::parse("github.com").unwrap();
        let target = |repo: &str| Target {
            host: host.clone(),
            owner: Some("acme".into()),
            repo: Some(repo.into()),
        };
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let key = |s: &BrokerSpec, repo: &str| match Brokered::new(
            s,
            &host,
            "https://api.github.com".into(),
        )
        .key(&target(repo), &state)
        {
            Known::Key(k) => k.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        let (ci, fleet) = (spec("ci", false), spec("fleet", true));
        assert_eq!(
            key(&ci, "widgets"),
            "broker|octo-sts|https://octo-sts.dev|host=github.com|identity=ci|scope=acme/widgets"
        );
        assert_ne!(key(&ci, "widgets"), key(&ci, "gadgets"));
        assert_ne!(key(&ci, "widgets"), key(&spec("deploy", false), "widgets"));
        assert_eq!(
            key(&fleet, "widgets"),
            key(&fleet, "gadgets"),
            "an org policy: one token"
        );
    }
}

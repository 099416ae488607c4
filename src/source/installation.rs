//! Installation tokens, the first [`TokenSource`]: a JWT signed by the app's key (wherever it
//! lives: a [`KeySigner`](crate::signer::KeySigner)) → the installation for the owner (looked up
//! once, then remembered; or fixed in the configuration) → `POST
//! /app/installations/{id}/access_tokens`.
//!
//! The cache key is (API, app, installation, scope): owners served by one installation share a
//! token. An owner the app is not installed on is remembered for [`NOT_INSTALLED_TTL`] and is
//! [`NotMine::NotInstalled`], not an error.

use super::{About, Cx, Fetched, Kind, Known, NotMine, Record, Target, Token, TokenSource};
use crate::cache::CacheKey;
use crate::config::{AppId, Host, InstallationSpec, StatelessTokens};
use crate::github::{ApiError, Client, Deadline, Minted, Revoked};
use crate::jwt::JwtIssuer;
use crate::secret::Secret;
use crate::state::{NOT_INSTALLED_TTL, Remembered, State, digest};
use crate::{signer, trace};
use anyhow::{Result, anyhow};

/// Installation tokens of one configured app, from one API.
pub struct Installation<'a> {
    spec: &'a InstallationSpec,
    host: &'a Host,
    api_url: String,
    stateless_tokens: StatelessTokens,
}

/// The cache key of an installation token: API, app, installation and scope.
pub fn cache_key(api_url: &str, app: &AppId, installation: u64, scope: &str) -> CacheKey {
    CacheKey::new(format!(
        "{api_url}|app={}|installation={installation}|scope={scope}",
        app.iss()
    ))
}

impl<'a> Installation<'a> {
    pub fn new(
        spec: &'a InstallationSpec,
        host: &'a Host,
        api_url: String,
        stateless_tokens: StatelessTokens,
    ) -> Installation<'a> {
        Installation {
            spec,
            host,
            api_url,
            stateless_tokens,
        }
    }

    /// What the token for `target` is narrowed to, as part of its cache key: the app's
    /// permissions, and for a repository-scoped app the repository. Scoped and unscoped tokens
    /// never share an entry.
    fn scope(&self, target: &Target) -> String {
        let mut scope = self.spec.scope();
        if self.spec.repo_scoped {
            let owner = target.owner.as_deref().unwrap_or_default();
            let repo = target.repo.as_deref().unwrap_or_default();
            scope.push_str(&format!("|repo={owner}/{}", repo.to_ascii_lowercase()));
        }
        scope
    }

    fn key_for(&self, target: &Target, installation: u64) -> CacheKey {
        cache_key(
            &self.api_url,
            &self.spec.id,
            installation,
            &self.scope(target),
        )
    }

    /// The installation, when fixed or remembered for the owner.
    fn installation_known(&self, target: &Target, state: &State) -> Option<u64> {
        self.spec.installation_id.or_else(|| {
            target
                .owner
                .as_deref()
                .and_then(|o| state.installation(&self.api_url, &self.spec.id, o))
        })
    }

    /// Find the installation (unless known) and mint a token. `None`: the app is not installed
    /// for this owner.
    fn mint(&self, target: &Target, cx: &mut Cx<'_>) -> Result<Option<(u64, String, Minted)>> {
        let spec = self.spec;
        let api = &self.api_url;
        let host = self.host.as_str();
        let mut signer = jwt_signer(spec, api, cx.state, cx.deadline, cx.say)?;
        let initial_offset = signer.offset;
        let client =
            Client::new(api, host, cx.deadline).with_stateless_tokens(self.stateless_tokens);
        let repositories: Vec<String> = match (&target.repo, spec.repo_scoped) {
            (Some(repo), true) => vec![repo.clone()],
            _ => Vec::new(),
        };

        let result = (|| -> Result<Option<(u64, String, Minted)>> {
            let mut remembered = self.installation_known(target, cx.state);
            for attempt in 0..2 {
                let (id, account) = match remembered {
                    Some(id) => (id, target.owner.clone().unwrap_or_default()),
                    None => match self.lookup(target, &client, &mut signer, cx.state)? {
                        Some(found) => found,
                        None => return Ok(None),
                    },
                };
                match client.create_token(&mut signer, id, &spec.permissions, &repositories) {
                    Ok(minted) => {
                        trace!(
                            "minted token {} for installation {id}, expires at {}",
                            minted.token.secret.fingerprint(),
                            minted.token.expires_at
                        );
                        return Ok(Some((id, account, minted)));
                    }
                    Err(ApiError::InstallationGone { status, message })
                        if attempt == 0
                            && spec.installation_id.is_none()
                            && remembered.is_some() =>
                    {
                        trace!(
                            "remembered installation {id} answered {status} {message}; looking it up again"
                        );
                        if let Some(owner) = &target.owner {
                            cx.state.forget_installation(api, &spec.id, owner);
                        }
                        remembered = None;
                    }
                    Err(ApiError::InstallationGone { status, message }) => {
                        let what = if spec.installation_id.is_some() {
                            "check --installation-id"
                        } else {
                            "the installation may have been removed just now; try again"
                        };
                        return Err(anyhow!(
                            "{host} answered {status} ({message}) for installation {id} of app {}: it does not exist for this app or the app lost access; {what}",
                            spec.id
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(anyhow!(
                "the installation for {} keeps disappearing; try again",
                target.describe()
            ))
        })();
        keep_clock_offset(api, cx.state, &signer, initial_offset);
        result
    }

    fn lookup(
        &self,
        target: &Target,
        client: &Client,
        signer: &mut JwtIssuer,
        state: &State,
    ) -> Result<Option<(u64, String)>> {
        let app = &self.spec.id;
        let Some(owner) = target.owner.as_deref() else {
            return Err(anyhow!(
                "no installation id and no owner for {}",
                target.describe()
            ));
        };
        match client.find_installation(signer, owner, target.repo.as_deref())? {
            Some(installation) => {
                trace!(
                    "owner '{owner}' → installation {} (account {})",
                    installation.id, installation.account
                );
                state.remember_installation(&self.api_url, app, owner, installation.id);
                Ok(Some((installation.id, installation.account)))
            }
            None => {
                trace!("app {app} is not installed on '{owner}'");
                state.remember_not_installed(&self.api_url, app, owner);
                Ok(None)
            }
        }
    }
}

impl TokenSource for Installation<'_> {
    fn kind(&self) -> Kind {
        Kind::Installation
    }

    fn describe(&self) -> String {
        format!("app {}", self.spec.id)
    }

    fn id(&self) -> String {
        self.spec.id.iss()
    }

    fn api_url(&self) -> &str {
        &self.api_url
    }

    fn key(&self, target: &Target, state: &State) -> Known {
        if let Some(id) = self.spec.installation_id {
            return Known::Key(self.key_for(target, id));
        }
        let Some(owner) = target.owner.as_deref() else {
            return Known::Unknown;
        };
        match state.lookup_record(&self.api_url, &self.spec.id, owner) {
            Some((Remembered::Installation(id), _)) => Known::Key(self.key_for(target, id)),
            Some((Remembered::NotInstalled, checked_at)) => {
                trace!(
                    "app {} is not installed on '{owner}' (remembered for {NOT_INSTALLED_TTL} s)",
                    self.spec.id
                );
                Known::NotMine(NotMine::NotInstalled {
                    app: self.spec.id.clone(),
                    since: Some(checked_at),
                })
            }
            None => Known::Unknown,
        }
    }

    /// One process per (API, app, installation or owner) looks up and mints; a fixed
    /// installation may serve several owners.
    fn flight(&self, target: &Target) -> String {
        let who = match (self.spec.installation_id, &target.owner) {
            (Some(id), _) => format!("installation {id}"),
            (None, owner) => format!("owner {}", owner.as_deref().unwrap_or_default()),
        };
        digest(&[&self.api_url, &self.spec.id.iss(), &who])
    }

    fn fetch(&self, target: &Target, cx: &mut Cx<'_>) -> Result<Fetched> {
        if self.spec.repo_scoped && target.repo.is_none() {
            return Err(anyhow!(
                "app {} mints repository-scoped tokens (repo_scoped), and no repository was named for {}; give OWNER/REPO",
                self.spec.id,
                target.describe()
            ));
        }
        match self.mint(target, cx)? {
            Some((installation, account, minted)) => Ok(Fetched::Token {
                key: self.key_for(target, installation),
                about: About {
                    installation: Some(installation),
                    scope: self.scope(target),
                },
                token: Token {
                    secret: minted.token.secret,
                    expires_at: minted.token.expires_at,
                    kind: Kind::Installation,
                    account: Some(account),
                    permissions: Some(minted.permissions),
                },
            }),
            None => Ok(Fetched::NotMine(NotMine::NotInstalled {
                app: self.spec.id.clone(),
                since: None,
            })),
        }
    }

    /// The entry of each installation the app has (fixed, or remembered for an owner), unless
    /// it is repository-scoped (one entry per repository: only the index knows them).
    fn unrecorded_entries(&self, state: &State) -> Vec<Record> {
        if self.spec.repo_scoped {
            return Vec::new();
        }
        let installations: Vec<(u64, String)> = match self.spec.installation_id {
            Some(id) => vec![(id, String::new())],
            None => state
                .installation_records()
                .into_iter()
                .filter(|r| r.api == self.api_url && r.app == self.spec.id.iss())
                .filter_map(|r| r.installation.map(|id| (id, r.owner)))
                .collect(),
        };
        installations
            .into_iter()
            .map(|(installation, owner)| Record {
                key: cache_key(
                    &self.api_url,
                    &self.spec.id,
                    installation,
                    &self.spec.scope(),
                )
                .as_str()
                .to_owned(),
                kind: Kind::Installation,
                host: self.host.as_str().to_owned(),
                api: self.api_url.clone(),
                app: self.spec.id.iss(),
                account: owner.clone(),
                owner,
                installation,
                scope: self.spec.scope(),
                fingerprint: String::new(),
                expires_at: 0,
                minted_at: 0,
                permissions: Default::default(),
                stores: Vec::new(),
            })
            .collect()
    }
}

/// Load the app's key and make a JWT signer for `api_url` (with GitHub's clock offset as last
/// learnt). Key warnings go to `say` once per user.
pub fn jwt_signer(
    spec: &InstallationSpec,
    api_url: &str,
    state: &State,
    deadline: Deadline,
    say: &mut dyn FnMut(&str),
) -> Result<JwtIssuer> {
    let started = std::time::Instant::now();
    let key = signer::open(&spec.key, deadline.at(), &mut |warning| {
        if state.first_time(&warning) {
            say(&warning);
        }
    })?;
    trace!(
        "signer ({}) ready in {:.2} ms",
        key.describe(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(JwtIssuer::new(
        key,
        spec.id.iss(),
        state.clock_offset(api_url),
    ))
}

/// Remember GitHub's clock offset if the signer learnt a new one.
pub fn keep_clock_offset(api_url: &str, state: &State, signer: &JwtIssuer, initial: i64) {
    if signer.offset != initial {
        trace!(
            "remembering GitHub's clock offset {:+} s for {api_url}",
            signer.offset
        );
        state.remember_clock_offset(api_url, signer.offset);
    }
}

/// `DELETE /installation/token`, with the token itself.
pub fn revoke(record: &Record, token: &Secret, deadline: Deadline) -> Result<Revoked> {
    Ok(Client::new(&record.api, &record.host, deadline).revoke(token)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyref::KeyRef;

    fn spec(installation_id: Option<u64>, repo_scoped: bool) -> InstallationSpec {
        InstallationSpec {
            id: AppId::Numeric(1),
            key: KeyRef::File("/k".into()),
            installation_id,
            permissions: crate::config::Permissions::parse("contents:read").unwrap(),
            repo_scoped,
        }
    }

    fn target(owner: Option<&str>, repo: Option<&str>) -> Target {
        Target {
            host: Host::parse("github.com").unwrap(),
            owner: owner.map(Into::into),
            repo: repo.map(Into::into),
        }
    }

    #[test]
    fn the_key_holds_api_app_installation_permissions_and_a_scoped_apps_repository() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let host = Host::parse("github.com").unwrap();
        let api = "https://api.github.com".to_owned();
        let t = target(Some("acme"), Some("Widgets"));
        let plain = spec(Some(7), false);
        let source = Installation::new(&plain, &host, api.clone(), StatelessTokens::Default);
        assert_eq!(
            source.key(&t, &state),
            Known::Key(CacheKey::new(
                "https://api.github.com|app=1|installation=7|scope=contents:read"
            ))
        );
        let scoped = spec(Some(7), true);
        let source = Installation::new(&scoped, &host, api.clone(), StatelessTokens::Default);
        assert_eq!(
            source.key(&t, &state),
            Known::Key(CacheKey::new(
                "https://api.github.com|app=1|installation=7|scope=contents:read|repo=acme/widgets"
            ))
        );
    }

    #[test]
    fn an_owner_is_unknown_until_looked_up_then_remembered_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let host = Host::parse("github.com").unwrap();
        let api = "https://api.github.com";
        let s = spec(None, false);
        let source = Installation::new(&s, &host, api.to_owned(), StatelessTokens::Default);
        let acme = target(Some("acme"), None);
        assert_eq!(source.key(&acme, &state), Known::Unknown);
        assert_eq!(source.key(&target(None, None), &state), Known::Unknown);
        state.remember_installation(api, &s.id, "acme", 12);
        assert_eq!(
            source.key(&acme, &state),
            Known::Key(cache_key(api, &s.id, 12, "contents:read"))
        );
        state.remember_not_installed(api, &s.id, "acme");
        assert!(matches!(
            source.key(&acme, &state),
            Known::NotMine(NotMine::NotInstalled { since: Some(_), .. })
        ));
        // One lock per owner; a fixed installation shares one across owners.
        assert_ne!(
            source.flight(&acme),
            source.flight(&target(Some("b"), None))
        );
        let fixed = spec(Some(7), false);
        let fixed = Installation::new(&fixed, &host, api.to_owned(), StatelessTokens::Default);
        assert_eq!(fixed.flight(&acme), fixed.flight(&target(Some("b"), None)));
    }
}

//! The emulated world: accounts, repositories, installations, issued tokens.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use rand::Rng;

use crate::model::{AccountType, App, Installation, IssuedToken, RepositorySelection, TokenFormat};

#[derive(Clone, Debug)]
pub(crate) struct AccountRec {
    pub login: String,
    pub id: u64,
    pub kind: AccountType,
}

#[derive(Clone, Debug)]
pub(crate) struct RepoRec {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub created_at: i64,
}

impl RepoRec {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct InstRec {
    pub id: u64,
    pub app_id: u64,
    /// Canonical login of the account.
    pub account: String,
    pub selection: RepositorySelection,
    /// Canonical repository names (selected installations).
    pub repositories: Vec<String>,
    pub permissions: BTreeMap<String, String>,
    pub suspended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Why an installation token is not usable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Unknown,
    Expired,
    Revoked,
    /// The installation was deleted (or replaced).
    Uninstalled,
    Suspended,
}

#[derive(Default)]
pub(crate) struct World {
    pub apps: BTreeMap<u64, App>,
    /// Keyed by lower-cased login.
    pub accounts: BTreeMap<String, AccountRec>,
    /// Keyed by lower-cased "owner/name".
    pub repos: BTreeMap<String, RepoRec>,
    pub installations: BTreeMap<u64, InstRec>,
    pub tokens: HashMap<String, IssuedToken>,
    pub next_account_id: u64,
    pub next_repo_id: u64,
}

pub(crate) fn key(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Permission levels: read < write < admin.
pub(crate) fn level(v: &str) -> u8 {
    match v {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

impl World {
    pub fn new() -> World {
        World {
            next_account_id: 5000,
            next_repo_id: 700_000,
            ..Default::default()
        }
    }

    pub fn account(&self, login: &str) -> Option<&AccountRec> {
        self.accounts.get(&key(login))
    }

    pub fn ensure_account(&mut self, login: &str, kind: AccountType, id: Option<u64>) -> String {
        if let Some(a) = self.accounts.get(&key(login)) {
            return a.login.clone();
        }
        let id = id.unwrap_or_else(|| {
            while self.accounts.values().any(|a| a.id == self.next_account_id) {
                self.next_account_id += 1;
            }
            self.next_account_id += 1;
            self.next_account_id - 1
        });
        self.accounts.insert(
            key(login),
            AccountRec {
                login: login.to_string(),
                id,
                kind,
            },
        );
        login.to_string()
    }

    pub fn repo(&self, owner: &str, name: &str) -> Option<&RepoRec> {
        self.repos.get(&key(&format!("{owner}/{name}")))
    }

    /// Registers a repository record (the bare repository is created by the caller).
    pub fn add_repo(&mut self, owner: &str, name: &str, now: i64) -> RepoRec {
        if let Some(r) = self.repo(owner, name) {
            return r.clone();
        }
        let owner = self.ensure_account(owner, AccountType::User, None);
        let id = self.next_repo_id;
        self.next_repo_id += 1;
        let rec = RepoRec {
            id,
            owner: owner.clone(),
            name: name.to_string(),
            created_at: now,
        };
        self.repos
            .insert(key(&format!("{owner}/{name}")), rec.clone());
        rec
    }

    pub fn add_installation(&mut self, inst: &Installation, now: i64) {
        let account = self
            .account(&inst.account)
            .map(|a| a.login.clone())
            .unwrap_or_else(|| self.ensure_account(&inst.account, AccountType::User, None));
        let repositories = inst
            .repositories
            .iter()
            .map(|n| {
                self.repo(&account, n)
                    .map(|r| r.name.clone())
                    .unwrap_or_else(|| n.clone())
            })
            .collect();
        self.installations.insert(
            inst.id,
            InstRec {
                id: inst.id,
                app_id: inst.app_id,
                account,
                selection: inst.selection,
                repositories,
                permissions: inst.permissions.clone(),
                suspended_at: inst.suspended.then_some(now),
                created_at: now,
                updated_at: now,
            },
        );
    }

    /// The installation of `app_id` on account `login`, if any.
    pub fn installation_on(&self, app_id: u64, login: &str) -> Option<&InstRec> {
        self.installations
            .values()
            .find(|i| i.app_id == app_id && i.account.eq_ignore_ascii_case(login))
    }

    /// Repositories an installation can access, sorted by name.
    pub fn installation_repos(&self, inst: &InstRec) -> Vec<&RepoRec> {
        let mut v: Vec<&RepoRec> = match inst.selection {
            RepositorySelection::All => self
                .repos
                .values()
                .filter(|r| r.owner.eq_ignore_ascii_case(&inst.account))
                .collect(),
            RepositorySelection::Selected => inst
                .repositories
                .iter()
                .filter_map(|n| self.repo(&inst.account, n))
                .collect(),
        };
        v.sort_by_key(|r| key(&r.name));
        v
    }

    pub fn installation_covers(&self, inst: &InstRec, repo_name: &str) -> bool {
        if self.repo(&inst.account, repo_name).is_none() {
            return false;
        }
        match inst.selection {
            RepositorySelection::All => true,
            RepositorySelection::Selected => inst
                .repositories
                .iter()
                .any(|n| n.eq_ignore_ascii_case(repo_name)),
        }
    }

    /// Repositories a token can access (always within its installation's current access).
    pub fn token_repos(&self, token: &IssuedToken, inst: &InstRec) -> Vec<&RepoRec> {
        self.installation_repos(inst)
            .into_iter()
            .filter(|r| match token.repository_selection {
                RepositorySelection::All => true,
                RepositorySelection::Selected => token
                    .repositories
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&r.name)),
            })
            .collect()
    }

    pub fn token_covers(
        &self,
        token: &IssuedToken,
        inst: &InstRec,
        owner: &str,
        name: &str,
    ) -> bool {
        inst.account.eq_ignore_ascii_case(owner)
            && self
                .token_repos(token, inst)
                .iter()
                .any(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// Looks a token up and checks it can be used at server time `now`.
    pub fn check_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(&IssuedToken, &InstRec), TokenProblem> {
        let t = self.tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if t.revoked {
            return Err(TokenProblem::Revoked);
        }
        if now >= t.expires_at {
            return Err(TokenProblem::Expired);
        }
        let inst = self
            .installations
            .get(&t.installation_id)
            .filter(|i| i.app_id == t.app_id)
            .ok_or(TokenProblem::Uninstalled)?;
        if inst.suspended_at.is_some() {
            return Err(TokenProblem::Suspended);
        }
        Ok((t, inst))
    }

    /// Creates and records a token (validation of the request is the caller's job).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_token(
        &mut self,
        inst_id: u64,
        permissions: BTreeMap<String, String>,
        selection: RepositorySelection,
        repositories: Vec<String>,
        now: i64,
        lifetime: u64,
        format: TokenFormat,
        secret: &[u8],
    ) -> IssuedToken {
        let inst = &self.installations[&inst_id];
        let expires_at = now + lifetime as i64;
        let token = loop {
            let t = match format {
                TokenFormat::Classic => classic_token(),
                TokenFormat::Stateless => stateless_token(
                    inst.app_id,
                    inst_id,
                    &permissions,
                    &repositories,
                    now,
                    expires_at,
                    secret,
                ),
            };
            if !self.tokens.contains_key(&t) {
                break t;
            }
        };
        let issued = IssuedToken {
            token: token.clone(),
            installation_id: inst_id,
            app_id: inst.app_id,
            expires_at,
            expires_at_rfc3339: rfc3339(expires_at),
            permissions,
            repository_selection: selection,
            repositories,
            revoked: false,
        };
        self.tokens.insert(token, issued.clone());
        issued
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn classic_token() -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (0..36)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect();
    format!("ghs_{tail}")
}

/// `ghs_{app_id}_{JWT}`: an HS256 JWT carrying the token's scope (GitHub's
/// stateless format, rolled out from 2026-04-27 per the POST access_tokens
/// description in GitHub's OpenAPI description; Sources in the crate's README).
fn stateless_token(
    app_id: u64,
    inst_id: u64,
    permissions: &BTreeMap<String, String>,
    repositories: &[String],
    now: i64,
    exp: i64,
    secret: &[u8],
) -> String {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill(&mut nonce);
    let claims = serde_json::json!({
        "iss": "local-github",
        "aud": "ghs",
        "sub": format!("installation:{inst_id}"),
        "app_id": app_id,
        "installation_id": inst_id,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "permissions": permissions,
        "repositories": repositories,
        "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce),
    });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 encoding");
    format!("ghs_{app_id}_{jwt}")
}

/// "YYYY-MM-DDTHH:MM:SSZ" for a unix time.
pub(crate) fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

//! GitHub App user access tokens: who may reach which repository, the device flow's grants, and
//! the `ghu_` access tokens and `ghr_` refresh tokens issued through it.
//!
//! What a user token may do is what the user may do **and** what the app may do (GitHub docs,
//! "Authenticating with a GitHub App on behalf of a user"): a repository the user can reach, of an
//! account the app is installed on, in the installation's selection; pushing needs `contents:
//! write` from both.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rand::Rng;

use crate::model::RepositorySelection;
use crate::state::{InstRec, RepoRec, World, key, level};

/// GitHub's default lifetimes (docs: user access tokens expire after eight hours; refresh
/// tokens after six months — 15811200 s in the docs, 15897600 s in captured answers).
pub const DEFAULT_USER_TOKEN_LIFETIME: u64 = 28_800;
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: u64 = 15_897_600;
/// A device code lives 15 minutes; poll no more often than every 5 s (docs, device flow).
pub const DEFAULT_DEVICE_CODE_LIFETIME: u64 = 900;
pub const DEFAULT_DEVICE_INTERVAL: u64 = 5;

/// Lifetimes and pacing of the device flow and user tokens.
#[derive(Debug, Clone)]
pub(crate) struct OAuthSettings {
    pub user_token_lifetime: u64,
    pub refresh_token_lifetime: u64,
    pub device_code_lifetime: u64,
    pub device_interval: u64,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            user_token_lifetime: DEFAULT_USER_TOKEN_LIFETIME,
            refresh_token_lifetime: DEFAULT_REFRESH_TOKEN_LIFETIME,
            device_code_lifetime: DEFAULT_DEVICE_CODE_LIFETIME,
            device_interval: DEFAULT_DEVICE_INTERVAL,
        }
    }
}

/// Where a device authorisation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrantState {
    Pending,
    /// The user (login) entered the code and authorised the app.
    Approved(String),
    Denied,
    /// Tokens were handed out for it; the code cannot be used again.
    Redeemed,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub app_id: u64,
    pub user_code: String,
    /// Server time the code stops working.
    pub expires_at: i64,
    /// Current minimum seconds between polls (raised by 5 at each `slow_down`).
    pub interval: u64,
    pub last_poll: Option<Instant>,
    pub state: GrantState,
}

/// A `ghu_` token.
#[derive(Debug, Clone)]
pub struct UserToken {
    pub token: String,
    pub app_id: u64,
    pub login: String,
    /// Server time; `None` when the app opted out of expiring user tokens.
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// A `ghr_` refresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub app_id: u64,
    pub login: String,
    pub expires_at: i64,
    /// Used once (rotation) or revoked.
    pub spent: bool,
    /// The access token issued with it, revoked when it is used.
    pub access_token: String,
}

/// Counters for tests and figures.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct OAuthStats {
    /// `POST /login/device/code` that issued a code.
    pub device_codes: u64,
    /// Device-code polls of the token endpoint, and how many got `slow_down`.
    pub polls: u64,
    pub slow_downs: u64,
    /// Refresh-token grants, and how many succeeded.
    pub refreshes: u64,
    pub refreshed: u64,
}

#[derive(Default)]
pub(crate) struct Users {
    pub settings: OAuthSettings,
    /// Organisation (lower case) → member (lower case) → permission on its repositories.
    pub members: BTreeMap<String, BTreeMap<String, String>>,
    /// "owner/name" (lower case) → collaborator (lower case) → permission.
    pub collaborators: BTreeMap<String, BTreeMap<String, String>>,
    /// By device code.
    pub grants: HashMap<String, DeviceGrant>,
    pub tokens: HashMap<String, UserToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub stats: OAuthStats,
}

/// Why a user token cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UserTokenProblem {
    Unknown,
    Expired,
    Revoked,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// User codes avoid letters and digits that read alike (GitHub's look like `WDJB-MJHT`).
const USER_CODE_CHARS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ0123456789";

fn random(chars: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| chars[rng.gen_range(0..chars.len())] as char)
        .collect()
}

impl Users {
    /// A new device grant for `app_id`: (device_code, user_code).
    pub fn new_grant(&mut self, app_id: u64, now: i64) -> (String, DeviceGrant) {
        let device_code = loop {
            let hex: String = random(b"0123456789abcdef", 40);
            if !self.grants.contains_key(&hex) {
                break hex;
            }
        };
        let user_code = loop {
            let c = format!(
                "{}-{}",
                random(USER_CODE_CHARS, 4),
                random(USER_CODE_CHARS, 4)
            );
            if !self.grants.values().any(|g| g.user_code == c) {
                break c;
            }
        };
        let grant = DeviceGrant {
            app_id,
            user_code,
            expires_at: now + self.settings.device_code_lifetime as i64,
            interval: self.settings.device_interval,
            last_poll: None,
            state: GrantState::Pending,
        };
        self.grants.insert(device_code.clone(), grant.clone());
        self.stats.device_codes += 1;
        (device_code, grant)
    }

    /// The pending, unexpired grant with this user code (case-insensitive, hyphen optional).
    pub fn grant_by_user_code(&mut self, user_code: &str, now: i64) -> Option<&mut DeviceGrant> {
        let wanted: String = user_code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        self.grants.values_mut().find(|g| {
            g.state == GrantState::Pending
                && now < g.expires_at
                && g.user_code.replace('-', "") == wanted
        })
    }

    /// Issues an access token and a refresh token for `login` through app `app_id`.
    /// `expiring`: whether the app opted in to expiring user tokens.
    pub fn issue(
        &mut self,
        app_id: u64,
        login: &str,
        expiring: bool,
        now: i64,
    ) -> (UserToken, Option<(String, i64)>) {
        let token = format!("ghu_{}", random(ALNUM, 36));
        let expires_at = expiring.then(|| now + self.settings.user_token_lifetime as i64);
        let issued = UserToken {
            token: token.clone(),
            app_id,
            login: login.to_string(),
            expires_at,
            revoked: false,
        };
        self.tokens.insert(token.clone(), issued.clone());
        let refresh = expiring.then(|| {
            let r = format!("ghr_{}", random(ALNUM, 76));
            let exp = now + self.settings.refresh_token_lifetime as i64;
            self.refresh_tokens.insert(
                r.clone(),
                RefreshToken {
                    app_id,
                    login: login.to_string(),
                    expires_at: exp,
                    spent: false,
                    access_token: token,
                },
            );
            (r, exp)
        });
        (issued, refresh)
    }

    pub fn check(&self, token: &str, now: i64) -> Result<&UserToken, UserTokenProblem> {
        let t = self.tokens.get(token).ok_or(UserTokenProblem::Unknown)?;
        if t.revoked {
            return Err(UserTokenProblem::Revoked);
        }
        if t.expires_at.is_some_and(|e| now >= e) {
            return Err(UserTokenProblem::Expired);
        }
        Ok(t)
    }
}

impl World {
    /// The permission `login` has on `repo` by itself (without any app): its own repositories
    /// (admin), an organisation's through membership, a collaborator's, or `read` on a public one.
    pub fn user_permission(&self, login: &str, repo: &RepoRec, public: bool) -> Option<String> {
        if repo.owner.eq_ignore_ascii_case(login) {
            return Some("admin".into());
        }
        let mut best: Option<String> = public.then(|| "read".into());
        let mut consider = |p: Option<&String>| {
            if let Some(p) = p
                && best.as_deref().is_none_or(|b| level(p) > level(b))
            {
                best = Some(p.clone());
            }
        };
        consider(
            self.users
                .members
                .get(&key(&repo.owner))
                .and_then(|m| m.get(&key(login))),
        );
        consider(
            self.users
                .collaborators
                .get(&key(&repo.full_name()))
                .and_then(|m| m.get(&key(login))),
        );
        best
    }

    /// The installation of `app_id` that covers `repo`, if it is not suspended.
    pub fn app_installation_for(&self, app_id: u64, repo: &RepoRec) -> Option<&InstRec> {
        let inst = self.installation_on(app_id, &repo.owner)?;
        let covered = match inst.selection {
            RepositorySelection::All => true,
            RepositorySelection::Selected => inst
                .repositories
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&repo.name)),
        };
        (covered && inst.suspended_at.is_none()).then_some(inst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_look_like_githubs_and_are_found_loosely() {
        let mut u = Users::default();
        let (device, grant) = u.new_grant(1, 100);
        assert_eq!(device.len(), 40);
        assert_eq!(grant.user_code.len(), 9);
        assert_eq!(&grant.user_code[4..5], "-");
        let loose = grant.user_code.replace('-', "").to_ascii_lowercase();
        assert!(u.grant_by_user_code(&loose, 100).is_some());
        assert!(
            u.grant_by_user_code(&grant.user_code, 100 + 900).is_none(),
            "expired"
        );
    }

    #[test]
    fn tokens_expire_and_non_expiring_apps_get_no_refresh_token() {
        let mut u = Users::default();
        let (t, r) = u.issue(1, "octo", true, 1000);
        assert!(t.token.starts_with("ghu_") && t.token.len() == 40);
        let (r, exp) = r.unwrap();
        assert!(r.starts_with("ghr_"));
        assert_eq!(exp, 1000 + DEFAULT_REFRESH_TOKEN_LIFETIME as i64);
        assert!(u.check(&t.token, 1000 + 28_799).is_ok());
        assert_eq!(
            u.check(&t.token, 1000 + 28_800).unwrap_err(),
            UserTokenProblem::Expired
        );
        let (t2, r2) = u.issue(1, "octo", false, 1000);
        assert!(r2.is_none());
        assert!(u.check(&t2.token, i64::MAX / 2).is_ok());
    }
}

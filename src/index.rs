//! What the helper minted and cached, without the tokens: one small 0600 record per cache entry
//! (`<cache dir>/minted/`), written when a token is minted and dropped with it. The keyrings
//! cannot be listed by what they hold, so `status`, `revoke` and `forget` read this index to find
//! the cache entries (and, for entries without a record, work them out from the configured apps
//! and the remembered installations); a record whose entry is gone, or whose token expired, is
//! simply skipped.

use crate::cache::CacheKey;
use crate::github::{Minted, unix_now};
use crate::route::Route;
use crate::state::{State, digest, read_private};
use crate::trace;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const DIR: &str = "minted";

/// One minted token, described (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The cache key, as [`CacheKey::as_str`].
    pub key: String,
    pub host: String,
    pub api: String,
    /// The app's `iss` (App ID or client ID).
    pub app: String,
    /// The owner it was minted for (empty for an installation given by id without a path).
    pub owner: String,
    pub installation: u64,
    /// The account the installation belongs to, as GitHub wrote it.
    pub account: String,
    /// Permissions and repository the token is narrowed to ("" for all).
    pub scope: String,
    /// `sha256:` + 8 hex digits of the token: enough to recognise it, useless to use it.
    pub fingerprint: String,
    pub expires_at: u64,
    pub minted_at: u64,
    /// The permissions GitHub granted.
    pub permissions: BTreeMap<String, String>,
    /// The cache stores that took it.
    pub stores: Vec<String>,
}

impl TokenRecord {
    pub fn new(
        route: &Route<'_>,
        key: &CacheKey,
        installation: u64,
        account: &str,
        minted: &Minted,
        stores: &[&str],
    ) -> TokenRecord {
        TokenRecord {
            key: key.as_str().to_owned(),
            host: route.app.host.as_str().to_owned(),
            api: route.api_url.clone(),
            app: route.app.id.iss(),
            owner: route.owner.clone().unwrap_or_default(),
            installation,
            account: account.to_owned(),
            scope: route.scope(),
            fingerprint: minted.token.secret.fingerprint(),
            expires_at: minted.token.expires_at,
            minted_at: unix_now(),
            permissions: minted.permissions.clone(),
            stores: stores.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

fn name(key: &str) -> String {
    format!("{}.json", digest(&[key]))
}

/// Record a token that was just cached. Nothing is recorded when the cache took it nowhere.
pub fn remember(state: &State, record: &TokenRecord) {
    if record.stores.is_empty() {
        return;
    }
    let result = state.private_dir(DIR).and_then(|dir| {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        crate::state::write_private(&dir, &name(&record.key), &bytes)
    });
    if let Err(e) = result {
        trace!("cannot record the minted token: {e}");
    }
}

/// The record of the entry `key`, if any.
pub fn find(state: &State, key: &CacheKey) -> Option<TokenRecord> {
    let path = state.root()?.join(DIR).join(name(key.as_str()));
    read_private(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<TokenRecord>(&b).ok())
        .filter(|r| r.key == key.as_str())
}

/// Drop the record of the entry `key`.
pub fn forget(state: &State, key: &CacheKey) {
    forget_key(state, key.as_str());
}

pub fn forget_key(state: &State, key: &str) {
    if let Some(root) = state.root() {
        let _ = std::fs::remove_file(root.join(DIR).join(name(key)));
    }
}

/// Every record, expired ones dropped on the way, oldest first.
pub fn all(state: &State) -> Vec<TokenRecord> {
    let Some(dir) = state.root().map(|r| r.join(DIR)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let now = unix_now();
    let mut records = Vec::new();
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Some(record) = read_private(&entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<TokenRecord>(&b).ok())
        else {
            continue;
        };
        if record.expires_at <= now {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        records.push(record);
    }
    records.sort_by(|a, b| (a.minted_at, &a.key).cmp(&(b.minted_at, &b.key)));
    records
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    fn record(key: &str, expires_at: u64) -> TokenRecord {
        TokenRecord {
            key: key.into(),
            host: "github.com".into(),
            api: "https://api.github.com".into(),
            app: "1".into(),
            owner: "acme".into(),
            installation: 7,
            account: "Acme".into(),
            scope: String::new(),
            fingerprint: "sha256:00000000".into(),
            expires_at,
            minted_at: 1,
            permissions: BTreeMap::new(),
            stores: vec!["file".into()],
        }
    }

    #[test]
    fn records_round_trip_and_expired_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let key = CacheKey::new(
            "https://api.github.com",
            &crate::config::AppId::Numeric(1),
            7,
            "",
        );
        let live = TokenRecord {
            key: key.as_str().into(),
            ..record("", unix_now() + 3600)
        };
        remember(&state, &live);
        remember(&state, &record("old", 5));
        assert_eq!(find(&state, &key), Some(live.clone()));
        assert_eq!(all(&state), vec![live]);
        forget(&state, &key);
        assert!(all(&state).is_empty());
        let mut nowhere = record("k", unix_now() + 60);
        nowhere.stores.clear();
        remember(&state, &nowhere);
        assert!(all(&state).is_empty(), "not cached anywhere: not recorded");
    }
}

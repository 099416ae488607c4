//! What the helper minted and cached, without the tokens: one small 0600 record per cache entry
//! (`<cache dir>/minted/`), written when a token is minted and dropped with it. The keyrings
//! cannot be listed by what they hold, so `status`, `revoke` and `forget` read this index to find
//! the cache entries (and, for entries without a record, work them out from the configured apps
//! and the remembered installations); a record whose entry is gone, or whose token expired, is
//! simply skipped.

use crate::cache::CacheKey;
use crate::github::unix_now;
use crate::source::Record;
use crate::state::{State, digest, read_private};
use crate::trace;

const DIR: &str = "minted";

fn name(key: &str) -> String {
    format!("{}.json", digest(&[key]))
}

/// Record a token that was just cached. Nothing is recorded when the cache took it nowhere.
pub fn remember(state: &State, record: &Record) {
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
pub fn find(state: &State, key: &CacheKey) -> Option<Record> {
    let path = state.dir(DIR)?.join(name(key.as_str()));
    read_private(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
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
pub fn all(state: &State) -> Vec<Record> {
    let Some(dir) = state.dir(DIR) else {
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
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
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
    use crate::source::Kind;
    use std::collections::BTreeMap;

    fn record(key: &str, expires_at: u64) -> Record {
        Record {
            key: key.into(),
            kind: Kind::Installation,
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
        let key = CacheKey::new("https://api.github.com|app=1|installation=7|scope=");
        let live = Record {
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

//! The token cache, shared by every process of the user: the OS keyring where it really works, a
//! 0600 file otherwise. Keyed by (API URL, app, installation, scope).
//!
//! A backend that fails (no D-Bus, a locked keyring, keyctl blocked by seccomp, a corrupt or
//! foreign entry) never fails a `get`: it is traced and the next backend is tried; a bad entry reads
//! as a miss and is replaced by the next save. The freshness policy is not here but in `app`.

mod file;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod keyring;
#[cfg(target_os = "linux")]
mod keyutils;

use crate::config::{AppId, CacheMode};
use crate::github::Token;
use crate::secret::Secret;
use crate::state::{State, digest};
use crate::trace;
use serde::{Deserialize, Serialize};
use std::cell::Cell;

/// Which token a cache entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(api_url: &str, app: &AppId, installation: u64, scope: &str) -> CacheKey {
        CacheKey(format!(
            "{api_url}|app={}|installation={installation}|scope={scope}",
            app.iss()
        ))
    }

    /// Readable form, used as the keyring account name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A file-name-safe digest of the key.
    pub fn digest(&self) -> String {
        digest(&[&self.0])
    }
}

/// One storage backend.
trait Store {
    fn name(&self) -> &'static str;
    /// `Ok(None)`: this backend works and has no (usable) entry.
    fn load(&self, key: &CacheKey) -> anyhow::Result<Option<Vec<u8>>>;
    fn save(&self, key: &CacheKey, entry: &[u8], expires_at: u64) -> anyhow::Result<()>;
    fn remove(&self, key: &CacheKey) -> anyhow::Result<()>;
}

/// What is stored: the token and its expiry, as JSON.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    v: u8,
    token: &'a str,
    expires_at: u64,
}

fn encode(token: &Token) -> Secret {
    let entry = Entry {
        v: 1,
        token: token.secret.expose(),
        expires_at: token.expires_at,
    };
    Secret::new(serde_json::to_string(&entry).unwrap_or_default())
}

fn decode(bytes: &[u8]) -> Option<Token> {
    let entry: Entry<'_> = serde_json::from_slice(bytes).ok()?;
    let valid = entry.v == 1
        && !entry.token.is_empty()
        && entry.token.bytes().all(|b| b.is_ascii_graphic());
    valid.then(|| Token {
        secret: Secret::new(entry.token),
        expires_at: entry.expires_at,
    })
}

/// The cache for one run.
///
/// Keyring-class stores come first, fastest first: on Linux the kernel's user keyring (a system
/// call) in front of the Secret Service (a D-Bus round trip of a few milliseconds), so that a
/// cached get on a desktop never waits for D-Bus while the Secret Service still holds every
/// token. A hit in a later store is copied into the earlier ones. The file store is used only
/// when no keyring-class store takes a token.
pub struct Cache {
    stores: Vec<Box<dyn Store>>,
    /// How many of `stores` are keyring-class (the rest is the file store).
    keyrings: usize,
    /// Stores that failed in this run (bit per index): not tried again.
    broken: Cell<u32>,
    mode: CacheMode,
}

impl Cache {
    pub fn new(mode: CacheMode, state: &State) -> Cache {
        let mut stores: Vec<Box<dyn Store>> = Vec::new();
        if matches!(mode, CacheMode::Auto | CacheMode::Keyring) {
            #[cfg(target_os = "linux")]
            {
                stores.push(Box::new(keyutils::Keyutils));
                // Secret Service only where a session bus is announced: without one, libdbus would
                // try to autolaunch a bus, which fails anyway.
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty()) {
                    stores.push(Box::new(keyring::OsKeyring::new("secret-service")));
                }
            }
            #[cfg(any(target_os = "macos", target_os = "windows"))]
            stores.push(Box::new(keyring::OsKeyring::new(
                if cfg!(target_os = "macos") {
                    "keychain"
                } else {
                    "credential-manager"
                },
            )));
        }
        let keyrings = stores.len();
        if matches!(mode, CacheMode::Auto | CacheMode::File) {
            stores.push(Box::new(file::FileStore::new(state.clone())));
        }
        Cache {
            stores,
            keyrings,
            broken: Cell::new(0),
            mode,
        }
    }

    fn usable(&self) -> impl Iterator<Item = (usize, &dyn Store)> {
        let broken = self.broken.get();
        self.stores
            .iter()
            .enumerate()
            .filter(move |(i, _)| broken & (1 << i) == 0)
            .map(|(i, s)| (i, s.as_ref()))
    }

    fn mark_broken(&self, i: usize, what: &str, e: &anyhow::Error) {
        trace!(
            "cache backend {} unusable ({what}): {}",
            self.stores[i].name(),
            one_line(e)
        );
        self.broken.set(self.broken.get() | (1 << i));
    }

    /// The cached token, from the first store that holds a readable one.
    pub fn load(&self, key: &CacheKey) -> Option<Token> {
        let mut missed = Vec::new();
        for (i, store) in self.usable() {
            match store.load(key) {
                Ok(Some(bytes)) => match decode(&bytes) {
                    Some(token) => {
                        trace!(
                            "cache hit in {}: token {} expires at {}",
                            store.name(),
                            token.secret.fingerprint(),
                            token.expires_at
                        );
                        self.backfill(&missed, key, &token);
                        return Some(token);
                    }
                    None => {
                        trace!(
                            "ignoring a corrupt or foreign entry in {}; it will be replaced",
                            store.name()
                        );
                        missed.push(i);
                    }
                },
                Ok(None) => {
                    trace!("cache miss in {}", store.name());
                    missed.push(i);
                }
                Err(e) => self.mark_broken(i, "load", &e),
            }
        }
        None
    }

    /// Copy a token found in a slower store into the faster keyring-class stores that missed it.
    fn backfill(&self, missed: &[usize], key: &CacheKey, token: &Token) {
        let entry = encode(token);
        for &i in missed.iter().filter(|&&i| i < self.keyrings) {
            // A process holding the mint lock may have put a newer token there meanwhile.
            let newer = self.stores[i]
                .load(key)
                .ok()
                .flatten()
                .and_then(|b| decode(&b));
            if newer.is_some_and(|t| t.expires_at >= token.expires_at) {
                continue;
            }
            match self.stores[i].save(key, entry.expose().as_bytes(), token.expires_at) {
                Ok(()) => trace!(
                    "copied token {} into {}",
                    token.secret.fingerprint(),
                    self.stores[i].name()
                ),
                Err(e) => self.mark_broken(i, "save", &e),
            }
        }
    }

    /// Save a token in every keyring-class store that takes it, else in the file. Returns the
    /// stores that took it.
    pub fn save(&self, key: &CacheKey, token: &Token) -> Vec<&'static str> {
        let entry = encode(token);
        let mut took = Vec::new();
        for (i, store) in self.usable() {
            if i >= self.keyrings && !took.is_empty() {
                break; // a keyring holds it: no file copy
            }
            match store.save(key, entry.expose().as_bytes(), token.expires_at) {
                Ok(()) => {
                    trace!(
                        "cached token {} in {}",
                        token.secret.fingerprint(),
                        store.name()
                    );
                    took.push(store.name());
                }
                Err(e) => {
                    trace!("cannot cache in {}: {}", store.name(), one_line(&e));
                    self.broken.set(self.broken.get() | (1 << i));
                }
            }
        }
        if took.is_empty() && self.mode == CacheMode::Keyring {
            eprintln!(
                "git-credential-github-app: warning: no keyring works here, so the token was not cached; use --cache auto or --cache file"
            );
        }
        took
    }

    /// Drop the entry from every store that has it.
    pub fn remove(&self, key: &CacheKey) {
        for store in &self.stores {
            if let Err(e) = store.remove(key) {
                trace!("cannot remove from {}: {}", store.name(), one_line(&e));
            }
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_junk_is_a_miss() {
        let token = Token {
            secret: Secret::new("ghs_abc"),
            expires_at: 99,
        };
        let back = decode(encode(&token).expose().as_bytes()).unwrap();
        assert_eq!((back.secret.expose(), back.expires_at), ("ghs_abc", 99));
        for junk in [
            &b""[..],
            b"{",
            b"null",
            br#"{"v":2,"token":"t","expires_at":1}"#,
            br#"{"v":1,"token":"a b","expires_at":1}"#,
            b"\xff\xfe",
        ] {
            assert!(decode(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn file_mode_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(CacheMode::File, &State::at(dir.path().to_path_buf()));
        let key = CacheKey::new("https://api.github.com", &AppId::Numeric(1), 2, "");
        assert!(cache.load(&key).is_none());
        let token = Token {
            secret: Secret::new("ghs_x"),
            expires_at: 5,
        };
        assert_eq!(cache.save(&key, &token), ["file"]);
        assert_eq!(cache.load(&key).unwrap().secret.expose(), "ghs_x");
        cache.remove(&key);
        assert!(cache.load(&key).is_none());
    }

    #[test]
    fn none_mode_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(CacheMode::None, &State::at(dir.path().to_path_buf()));
        let key = CacheKey::new("a", &AppId::Numeric(1), 2, "");
        let token = Token {
            secret: Secret::new("t"),
            expires_at: 5,
        };
        assert!(cache.save(&key, &token).is_empty());
        assert!(cache.load(&key).is_none());
    }
}

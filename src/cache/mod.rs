//! The token cache, shared by every process of the user: the OS keyring where it really works, a
//! 0600 file otherwise. Keyed by a [`CacheKey`] the token source builds; [`index`] records what
//! each entry holds (never the token), since keyrings cannot be listed.
//!
//! A backend that fails (no D-Bus, a locked keyring, keyctl blocked by seccomp, a corrupt or
//! foreign entry) never fails a `get`: it is traced and the next backend is tried; a bad entry reads
//! as a miss and is replaced by the next save. The freshness policy is not here but in `app`.
//!
//! A store that talks to another process (the Secret Service over D-Bus, the Keychain, Credential
//! Manager) may never answer: a stopped `dbus-daemon`, a wedged keyring daemon, a keyring waiting
//! for an unlock prompt. Its calls run on a worker thread and are abandoned well before the get's
//! deadline (each waits at most a third of the time left, so minting and answering keep the
//! rest); a store that did not answer is not asked again in this run. A token found meanwhile in a store that cannot hang
//! is answered without waiting for it.

mod file;
pub mod index;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod keyring;
#[cfg(target_os = "linux")]
mod keyutils;

use crate::config::CacheMode;
use crate::secret::Expiring;
use crate::secret::Secret;
use crate::state::{State, digest};
use crate::trace;
use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The deadline when the caller gives none (see [`Cache::with_deadline`]).
const DEFAULT_BUDGET: Duration = crate::config::DEFAULT_TIMEOUT;

/// Which token a cache entry holds: a text that names everything that makes two tokens differ,
/// built by the token source (see `source::TokenSource::key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(text: impl Into<String>) -> CacheKey {
        CacheKey(text.into())
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
trait Store: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether a call can wait on another process indefinitely (D-Bus, a keychain prompt): such
    /// calls run on a worker thread, bounded by the deadline.
    fn may_hang(&self) -> bool {
        false
    }
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

fn encode(token: &Expiring) -> Secret {
    let entry = Entry {
        v: 1,
        token: token.secret.expose(),
        expires_at: token.expires_at,
    };
    Secret::new(serde_json::to_string(&entry).unwrap_or_default())
}

fn decode(bytes: &[u8]) -> Option<Expiring> {
    let entry: Entry<'_> = serde_json::from_slice(bytes).ok()?;
    let valid = entry.v == 1
        && !entry.token.is_empty()
        && entry.token.bytes().all(|b| b.is_ascii_graphic());
    valid.then(|| Expiring {
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
    stores: Vec<Arc<dyn Store>>,
    /// No store call is waited for past this instant.
    deadline: Instant,
    /// How many of `stores` are keyring-class (the rest is the file store).
    keyrings: usize,
    /// Stores that failed in this run (bit per index): not tried again.
    broken: Cell<u32>,
    mode: CacheMode,
}

impl Cache {
    pub fn new(mode: CacheMode, state: &State) -> Cache {
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        if matches!(mode, CacheMode::Auto | CacheMode::Keyring) {
            #[cfg(target_os = "linux")]
            {
                // `auto` in a container leaves out the kernel keyring: it is per uid on the host
                // kernel, shared with other containers of that uid (src/container.rs).
                if mode == CacheMode::Keyring || crate::container::detected().is_none() {
                    stores.push(Arc::new(keyutils::Keyutils));
                }
                // Secret Service only where a session bus is announced: without one, libdbus would
                // try to autolaunch a bus, which fails anyway.
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty()) {
                    stores.push(Arc::new(keyring::OsKeyring::new("secret-service")));
                }
            }
            #[cfg(any(target_os = "macos", target_os = "windows"))]
            stores.push(Arc::new(keyring::OsKeyring::new(
                if cfg!(target_os = "macos") {
                    "keychain"
                } else {
                    "credential-manager"
                },
            )));
        }
        let keyrings = stores.len();
        if matches!(mode, CacheMode::Auto | CacheMode::File) {
            stores.push(Arc::new(file::FileStore::new(state.clone())));
        }
        Cache {
            stores,
            deadline: Instant::now() + DEFAULT_BUDGET,
            keyrings,
            broken: Cell::new(0),
            mode,
        }
    }

    /// Never wait for a store past `deadline` (the get's).
    pub fn with_deadline(mut self, deadline: Instant) -> Cache {
        self.deadline = deadline;
        self
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

    /// Start `f` on store `i`: inline for a store that cannot hang, else on a worker thread.
    fn start<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce(&dyn Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Pending<T> {
        let store = Arc::clone(&self.stores[i]);
        if !store.may_hang() {
            return Pending::Done(f(store.as_ref()));
        }
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("cache-{}", store.name()))
            .spawn(move || {
                let _ = tx.send(f(store.as_ref()));
            });
        match spawned {
            Ok(_) => Pending::Running(rx),
            Err(e) => Pending::Done(Err(anyhow!("cannot start a worker thread: {e}"))),
        }
    }

    /// The result of a started call, waiting at most until `until` (and the deadline).
    fn finish<T>(&self, pending: Pending<T>, until: Instant) -> anyhow::Result<T> {
        match pending {
            Pending::Done(result) => result,
            Pending::Running(rx) => {
                let wait = until
                    .min(self.deadline)
                    .saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(result) => result,
                    Err(mpsc::RecvTimeoutError::Timeout) => Err(anyhow!(
                        "no answer within {} ms (a frozen D-Bus, or a keyring waiting to be unlocked?); not waiting longer",
                        wait.as_millis()
                    )),
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        Err(anyhow!("the worker thread ended without an answer"))
                    }
                }
            }
        }
    }

    /// A call to a store that may hang waits at most a third of the time left, so that minting
    /// and answering keep the rest.
    fn patience(&self) -> Instant {
        let now = Instant::now();
        now + self.deadline.saturating_duration_since(now) / 3
    }

    fn call<T: Send + 'static>(
        &self,
        i: usize,
        until: Instant,
        f: impl FnOnce(&dyn Store) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let pending = self.start(i, f);
        self.finish(pending, until)
    }

    /// The cached token, from the first store that holds a readable one. Stores that may hang
    /// are asked in the background while the next ones are tried; a token found in one of those
    /// is answered at once.
    pub fn load(&self, key: &CacheKey) -> Option<Expiring> {
        let mut missed = Vec::new();
        let mut waiting = Vec::new();
        let until = self.patience();
        for (i, store) in self.usable() {
            let k = key.clone();
            let pending = self.start(i, move |s| s.load(&k));
            if store.may_hang() && matches!(pending, Pending::Running(_)) {
                waiting.push((i, pending));
                continue;
            }
            if let Some(token) = self.loaded(i, self.finish(pending, until), &mut missed) {
                self.backfill(&missed, key, &token);
                return Some(token);
            }
        }
        for (i, pending) in waiting {
            if let Some(token) = self.loaded(i, self.finish(pending, until), &mut missed) {
                self.backfill(&missed, key, &token);
                return Some(token);
            }
        }
        None
    }

    /// What store `i` answered to a load: a token, or a miss (noted in `missed`).
    fn loaded(
        &self,
        i: usize,
        result: anyhow::Result<Option<Vec<u8>>>,
        missed: &mut Vec<usize>,
    ) -> Option<Expiring> {
        let name = self.stores[i].name();
        match result {
            Ok(Some(bytes)) => match decode(&bytes) {
                Some(token) => {
                    trace!(
                        "cache hit in {name}: token {} expires at {}",
                        token.secret.fingerprint(),
                        token.expires_at
                    );
                    return Some(token);
                }
                None => {
                    trace!("ignoring a corrupt or foreign entry in {name}; it will be replaced");
                    missed.push(i);
                }
            },
            Ok(None) => {
                trace!("cache miss in {name}");
                missed.push(i);
            }
            Err(e) => self.mark_broken(i, "load", &e),
        }
        None
    }

    /// Copy a token found in a slower store into the faster keyring-class stores that missed it.
    fn backfill(&self, missed: &[usize], key: &CacheKey, token: &Expiring) {
        let entry = encode(token);
        let until = self.patience();
        for &i in missed.iter().filter(|&&i| i < self.keyrings) {
            // A process holding the mint lock may have put a newer token there meanwhile.
            let k = key.clone();
            let newer = self
                .call(i, until, move |s| s.load(&k))
                .ok()
                .flatten()
                .and_then(|b| decode(&b));
            if newer.is_some_and(|t| t.expires_at >= token.expires_at) {
                continue;
            }
            let (k, e, expires_at) = (key.clone(), entry.clone(), token.expires_at);
            match self.call(i, until, move |s| {
                s.save(&k, e.expose().as_bytes(), expires_at)
            }) {
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
    /// stores that took it. Bounded by the deadline: a store that does not answer in time is
    /// skipped, and the caller answers git with the token anyway.
    pub fn save(&self, key: &CacheKey, token: &Expiring) -> Vec<&'static str> {
        let entry = encode(token);
        let mut took = Vec::new();
        let usable: Vec<(usize, &'static str)> =
            self.usable().map(|(i, s)| (i, s.name())).collect();
        for (i, name) in usable {
            if i >= self.keyrings && !took.is_empty() {
                break; // a keyring holds it: no file copy
            }
            let (k, e, expires_at) = (key.clone(), entry.clone(), token.expires_at);
            match self.call(i, self.patience(), move |s| {
                s.save(&k, e.expose().as_bytes(), expires_at)
            }) {
                Ok(()) => {
                    trace!("cached token {} in {name}", token.secret.fingerprint());
                    took.push(name);
                }
                Err(e) => {
                    trace!("cannot cache in {name}: {}", one_line(&e));
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
        for i in 0..self.stores.len() {
            let k = key.clone();
            if let Err(e) = self.call(i, self.patience(), move |s| s.remove(&k)) {
                trace!(
                    "cannot remove from {}: {}",
                    self.stores[i].name(),
                    one_line(&e)
                );
            }
        }
    }
}

/// A store call: finished (inline), or running on a worker thread.
enum Pending<T> {
    Done(anyhow::Result<T>),
    Running(mpsc::Receiver<anyhow::Result<T>>),
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_junk_is_a_miss() {
        let token = Expiring {
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
        let key = CacheKey::new("https://api.github.com|app=1|installation=2|scope=");
        assert!(cache.load(&key).is_none());
        let token = Expiring {
            secret: Secret::new("ghs_x"),
            expires_at: 5,
        };
        assert_eq!(cache.save(&key, &token), ["file"]);
        assert_eq!(cache.load(&key).unwrap().secret.expose(), "ghs_x");
        cache.remove(&key);
        assert!(cache.load(&key).is_none());
    }

    /// A store whose every call waits forever, like the Secret Service behind a stopped bus.
    struct Frozen;

    impl Store for Frozen {
        fn name(&self) -> &'static str {
            "frozen"
        }
        fn may_hang(&self) -> bool {
            true
        }
        fn load(&self, _: &CacheKey) -> anyhow::Result<Option<Vec<u8>>> {
            loop {
                std::thread::park();
            }
        }
        fn save(&self, _: &CacheKey, _: &[u8], _: u64) -> anyhow::Result<()> {
            loop {
                std::thread::park();
            }
        }
        fn remove(&self, _: &CacheKey) -> anyhow::Result<()> {
            loop {
                std::thread::park();
            }
        }
    }

    fn frozen_then_file(state: &State, budget: Duration) -> Cache {
        Cache {
            stores: vec![
                Arc::new(Frozen),
                Arc::new(file::FileStore::new(state.clone())),
            ],
            deadline: Instant::now() + budget,
            keyrings: 1,
            broken: Cell::new(0),
            mode: CacheMode::Auto,
        }
    }

    #[test]
    fn a_store_that_never_answers_is_bounded_by_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("c"));
        let key = CacheKey::new("https://api.github.com|app=1|installation=2|scope=");
        let token = Expiring {
            secret: Secret::new("ghs_x"),
            expires_at: 5,
        };
        // A miss everywhere: the load gives up after a third of the budget, the save (a minted
        // token) skips the frozen store and lands in the file.
        let started = Instant::now();
        let cache = frozen_then_file(&state, Duration::from_millis(900));
        assert!(cache.load(&key).is_none());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_millis(900), "{waited:?}");
        assert_eq!(cache.save(&key, &token), ["file"]);
        assert!(started.elapsed() < Duration::from_secs(5));
        let cache = frozen_then_file(&state, Duration::from_millis(300));
        assert_eq!(cache.save(&key, &token), ["file"]);
        // A token in a store that cannot hang is answered without waiting for the frozen one.
        let cache = frozen_then_file(&state, Duration::from_secs(3600));
        let started = Instant::now();
        assert_eq!(cache.load(&key).unwrap().secret.expose(), "ghs_x");
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn none_mode_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(CacheMode::None, &State::at(dir.path().to_path_buf()));
        let key = CacheKey::new("a|app=1|installation=2|scope=");
        let token = Expiring {
            secret: Secret::new("t"),
            expires_at: 5,
        };
        assert!(cache.save(&key, &token).is_empty());
        assert!(cache.load(&key).is_none());
    }
}

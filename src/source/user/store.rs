//! Stored logins: for one (host, app client ID), the user's access token, refresh token, both
//! expiries and who logged in. Kept in the OS keyring (Secret Service, Keychain, Credential
//! Manager) where one works, else in a 0600 file under the helper's state directory
//! (`$XDG_STATE_HOME/git-credential-github-app/logins/`, 0700). Not in the kernel keyring nor in
//! the cache directory: a login must survive a reboot and a cache clean-up, because the refresh
//! token is the only way to a new access token without a new login.
//!
//! A keyring call may never return (a frozen D-Bus, an unlock prompt): each runs on a worker
//! thread and is given up at the caller's deadline; a save gets at least [`SAVE_BUDGET`] of its
//! own, because after a refresh it holds the only copy of the rotated refresh token. A save the
//! keyring did not take goes to the file and may leave an older login in the keyring: each entry
//! records when it was saved, and [`Store::load`] answers the newer of the two.

use crate::config::CacheMode;
use crate::secret::Secret;
use crate::state::{State, Unusable, write_private};
use crate::trace;
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The least time a save is given, whatever is left of the caller's deadline.
pub const SAVE_BUDGET: Duration = Duration::from_secs(3);

const SERVICE: &str = "git-credential-github-app";

/// One stored login.
#[derive(Debug, Clone)]
pub struct Login {
    /// The web base (`https://github.com`).
    pub web: String,
    pub client_id: String,
    /// The GitHub login of the person.
    pub user: String,
    pub access: Secret,
    /// Unix seconds; `None`: never expires.
    pub expires_at: Option<u64>,
    pub refresh: Option<Secret>,
    pub refresh_expires_at: Option<u64>,
    /// When the person logged in (Unix seconds).
    pub logged_in_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    v: u8,
    web: String,
    client_id: String,
    user: String,
    access: String,
    expires_at: Option<u64>,
    refresh: Option<String>,
    refresh_expires_at: Option<u64>,
    logged_in_at: u64,
    /// When this entry was saved (Unix milliseconds; 0 in entries written before it was kept).
    #[serde(default)]
    saved_at: u128,
}

/// Unix milliseconds now.
fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Of a login found in the keyring and one found in the file (each with when it was saved), the
/// newer; the keyring's when both were saved at the same time.
fn newest(keyring: Option<(Login, u128)>, file: Option<(Login, u128)>) -> Option<(Login, Place)> {
    match (keyring, file) {
        (Some((_, k)), Some((f, at))) if at > k => Some((f, Place::File)),
        (Some((k, _)), _) => Some((k, Place::Keyring)),
        (None, Some((f, _))) => Some((f, Place::File)),
        (None, None) => None,
    }
}

impl Login {
    fn encode(&self, saved_at: u128) -> Secret {
        let entry = Entry {
            v: 1,
            web: self.web.clone(),
            client_id: self.client_id.clone(),
            user: self.user.clone(),
            access: self.access.expose().to_owned(),
            expires_at: self.expires_at,
            refresh: self.refresh.as_ref().map(|r| r.expose().to_owned()),
            refresh_expires_at: self.refresh_expires_at,
            logged_in_at: self.logged_in_at,
            saved_at,
        };
        let text = serde_json::to_string(&entry).unwrap_or_default();
        let mut entry = entry;
        zeroize::Zeroize::zeroize(&mut entry.access);
        if let Some(r) = entry.refresh.as_mut() {
            zeroize::Zeroize::zeroize(r);
        }
        Secret::new(text)
    }

    fn decode(bytes: &[u8]) -> Option<(Login, u128)> {
        let e: Entry = serde_json::from_slice(bytes).ok()?;
        let token_ok = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
        let ok = e.v == 1 && token_ok(&e.access) && e.refresh.as_deref().is_none_or(token_ok);
        let saved_at = e.saved_at;
        ok.then(|| Login {
            web: e.web,
            client_id: e.client_id,
            user: e.user,
            access: Secret::new(e.access),
            expires_at: e.expires_at,
            refresh: e.refresh.map(Secret::new),
            refresh_expires_at: e.refresh_expires_at,
            logged_in_at: e.logged_in_at,
        })
        .map(|l| (l, saved_at))
    }

    /// Whether the refresh token (or, without one, the access token) has run out: nothing but a
    /// new login can help.
    pub fn is_dead(&self, now: u64) -> bool {
        match (&self.refresh, self.refresh_expires_at, self.expires_at) {
            (Some(_), Some(r), _) => r <= now,
            (Some(_), None, _) => false,
            (None, _, Some(e)) => e <= now,
            (None, _, None) => false,
        }
    }
}

/// Which login: a (web base, client ID) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginKey {
    pub web: String,
    pub client_id: String,
}

impl LoginKey {
    /// The keyring account name.
    fn account(&self) -> String {
        format!("login|{}|client={}", self.web, self.client_id)
    }
    fn file_name(&self) -> String {
        format!(
            "{}.json",
            crate::state::digest(&[&self.web, &self.client_id])
        )
    }
}

/// The directory for logins: the state directory, not the cache.
pub fn default_state() -> State {
    let base = dirs::state_dir().or_else(dirs::data_local_dir);
    match base {
        Some(dir) => State::at(dir.join("git-credential-github-app")),
        None => State::open(),
    }
}

/// Where logins are kept.
pub struct Store {
    keyring: bool,
    file: Option<State>,
    /// No keyring call is waited for past this.
    deadline: Instant,
}

/// Where a login was found or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Keyring,
    File,
}

impl Place {
    pub fn describe(self) -> &'static str {
        match self {
            Place::Keyring => "the keyring",
            Place::File => "a 0600 file",
        }
    }
}

impl Store {
    /// `mode` as for the token cache: `keyring`, `file`, or `auto` (the keyring where one is
    /// available, the file otherwise).
    pub fn new(mode: CacheMode, state: State, deadline: Instant) -> Store {
        Store {
            keyring: matches!(mode, CacheMode::Auto | CacheMode::Keyring) && keyring_available(),
            file: matches!(mode, CacheMode::Auto | CacheMode::File).then_some(state),
            deadline,
        }
    }

    /// The stored login, if any (a corrupt entry reads as none): of the keyring's and the file's,
    /// the one saved last.
    pub fn load(&self, key: &LoginKey) -> Option<(Login, Place)> {
        let mut in_keyring = None;
        if self.keyring {
            let account = key.account();
            match self.keyring_call(self.deadline, move || {
                match keyring::Entry::new(SERVICE, &account).and_then(|e| e.get_password()) {
                    Ok(text) => Ok(Some(text)),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(err) => Err(anyhow!(err)),
                }
            }) {
                Ok(Some(text)) => match Login::decode(text.as_bytes()) {
                    Some(found) => in_keyring = Some(found),
                    None => trace!("ignoring an unreadable login in the keyring"),
                },
                Ok(None) => {}
                Err(e) => trace!("keyring unusable for logins: {e:#}"),
            }
        }
        newest(in_keyring, self.load_file(key))
    }

    fn load_file(&self, key: &LoginKey) -> Option<(Login, u128)> {
        let state = self.file.as_ref()?;
        match state.read("logins", &key.file_name()) {
            Ok(bytes) => match Login::decode(&bytes) {
                Some(found) => Some(found),
                None => {
                    trace!("ignoring an unreadable login file");
                    None
                }
            },
            Err(Unusable::Missing) => None,
            Err(Unusable::Unsafe(why)) => {
                trace!("ignoring the login file: {why}");
                None
            }
            Err(Unusable::Io(e)) => {
                trace!("cannot read the login file: {e}");
                None
            }
        }
    }

    /// Store `login` in the keyring, or the file when no keyring takes it (within
    /// [`SAVE_BUDGET`] at least, whatever is left of the caller's deadline). A login moved to the
    /// keyring is removed from the file; one the keyring did not take is newer in the file than
    /// whatever the keyring still holds, and [`Store::load`] prefers it.
    pub fn save(&self, key: &LoginKey, login: &Login) -> Result<Place> {
        let entry = login.encode(now_millis());
        if self.keyring {
            let (account, text) = (key.account(), entry.clone());
            match self.keyring_call(self.save_deadline(), move || {
                keyring::Entry::new(SERVICE, &account)
                    .and_then(|e| e.set_password(text.expose()))
                    .map_err(|e| anyhow!(e))
            }) {
                Ok(()) => {
                    self.remove_file(key);
                    return Ok(Place::Keyring);
                }
                Err(e) => trace!("cannot keep the login in the keyring: {e:#}"),
            }
        }
        let state = self.file.as_ref().ok_or_else(|| {
            anyhow!("no keyring works here to keep the login; use --cache auto or --cache file")
        })?;
        let dir = state
            .private_dir("logins")
            .context("cannot create the directory for logins")?;
        write_private(&dir, &key.file_name(), entry.expose().as_bytes())
            .context("cannot write the login file")?;
        Ok(Place::File)
    }

    /// Remove the login from everywhere. Returns whether one was there.
    pub fn remove(&self, key: &LoginKey) -> bool {
        let mut found = false;
        if self.keyring {
            let account = key.account();
            match self.keyring_call(self.deadline, move || {
                match keyring::Entry::new(SERVICE, &account).and_then(|e| e.delete_credential()) {
                    Ok(()) => Ok(true),
                    Err(keyring::Error::NoEntry) => Ok(false),
                    Err(e) => Err(anyhow!(e)),
                }
            }) {
                Ok(f) => found |= f,
                Err(e) => trace!("cannot remove the login from the keyring: {e:#}"),
            }
        }
        found | self.remove_file(key)
    }

    /// Remove each stored copy of the login that still holds the refresh token `refused`, and
    /// none other (another process may have stored a newer login meanwhile). Returns whether one
    /// was removed.
    pub fn remove_refused(&self, key: &LoginKey, refused: &Secret) -> bool {
        let holds = |l: &Login| l.refresh.as_ref() == Some(refused);
        let mut removed = false;
        if self.keyring {
            let account = key.account();
            let refused = refused.clone();
            match self.keyring_call(self.deadline, move || {
                let entry = keyring::Entry::new(SERVICE, &account).map_err(|e| anyhow!(e))?;
                let stored = match entry.get_password() {
                    Ok(text) => Login::decode(text.as_bytes()),
                    Err(keyring::Error::NoEntry) => return Ok(false),
                    Err(e) => return Err(anyhow!(e)),
                };
                if stored.is_some_and(|(l, _)| l.refresh.as_ref() != Some(&refused)) {
                    return Ok(false);
                }
                match entry.delete_credential() {
                    Ok(()) => Ok(true),
                    Err(keyring::Error::NoEntry) => Ok(false),
                    Err(e) => Err(anyhow!(e)),
                }
            }) {
                Ok(r) => removed |= r,
                Err(e) => trace!("cannot remove the login from the keyring: {e:#}"),
            }
        }
        if self.load_file(key).is_some_and(|(l, _)| holds(&l)) {
            removed |= self.remove_file(key);
        }
        removed
    }

    fn remove_file(&self, key: &LoginKey) -> bool {
        let Some(root) = self.file.as_ref().and_then(|s| s.root()) else {
            return false;
        };
        std::fs::remove_file(root.join("logins").join(key.file_name())).is_ok()
    }

    /// Until when a save may wait for the keyring.
    fn save_deadline(&self) -> Instant {
        self.deadline.max(Instant::now() + SAVE_BUDGET)
    }

    fn keyring_call<T: Send + 'static>(
        &self,
        deadline: Instant,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("login-keyring".into())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .map_err(|e| anyhow!("cannot start a worker thread: {e}"))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(wait).map_err(|_| {
            anyhow!(
                "the keyring did not answer within {} ms (a frozen D-Bus, or a keyring waiting to be unlocked?)",
                wait.as_millis()
            )
        })?
    }
}

/// Whether an OS keyring that keeps secrets across reboots may be asked.
fn keyring_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
    }
    #[cfg(any(target_os = "macos", target_os = "windows"))]
    {
        true
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            web: "https://github.com".into(),
            client_id: "Iv23liX".into(),
            user: "octo".into(),
            access: Secret::new("ghu_a"),
            expires_at: Some(100),
            refresh: Some(Secret::new("ghr_b")),
            refresh_expires_at: Some(1000),
            logged_in_at: 1,
        }
    }

    #[test]
    fn a_login_round_trips_in_a_0600_file_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(
            CacheMode::File,
            State::at(dir.path().join("s")),
            Instant::now() + Duration::from_secs(5),
        );
        let key = LoginKey {
            web: "https://github.com".into(),
            client_id: "Iv23liX".into(),
        };
        assert!(store.load(&key).is_none());
        assert_eq!(store.save(&key, &login()).unwrap(), Place::File);
        let (back, place) = store.load(&key).unwrap();
        assert_eq!(place, Place::File);
        assert_eq!(
            (
                back.access.expose(),
                back.refresh.as_ref().map(Secret::expose)
            ),
            ("ghu_a", Some("ghr_b"))
        );
        assert_eq!(
            (back.expires_at, back.refresh_expires_at),
            (Some(100), Some(1000))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("s/logins").join(key.file_name());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(dir.path().join("s/logins"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        let other = LoginKey {
            client_id: "Iv23liY".into(),
            ..key.clone()
        };
        assert!(store.load(&other).is_none());
        assert!(store.remove(&key));
        assert!(store.load(&key).is_none());
        assert!(!store.remove(&key));
    }

    #[test]
    fn a_login_dies_with_its_refresh_token() {
        let l = login();
        assert!(!l.is_dead(999));
        assert!(l.is_dead(1000));
        let never = Login {
            refresh: None,
            refresh_expires_at: None,
            expires_at: None,
            ..login()
        };
        assert!(!never.is_dead(u64::MAX));
        assert!(Login::decode(b"{}").is_none());
        let (old, saved_at) = Login::decode(br#"{"v":1,"web":"w","client_id":"c","user":"u","access":"a","expires_at":null,"refresh":null,"refresh_expires_at":null,"logged_in_at":0}"#).unwrap();
        assert_eq!((old.access.expose(), saved_at), ("a", 0));
        assert!(Login::decode(br#"{"v":1,"web":"w","client_id":"c","user":"u","access":"a b","expires_at":null,"refresh":null,"refresh_expires_at":null,"logged_in_at":0}"#).is_none());
    }

    /// A save the keyring did not take (timed out) left the old login there and the refreshed
    /// one in the file: the file's, saved later, is the one loaded, never the rotated-away one.
    #[test]
    fn the_login_saved_last_wins_over_an_older_one_left_in_the_keyring() {
        let old = login();
        let new = Login {
            access: Secret::new("ghu_new"),
            refresh: Some(Secret::new("ghr_new")),
            ..login()
        };
        let (old, _) = Login::decode(old.encode(1_000).expose().as_bytes()).unwrap();
        let (new, at) = Login::decode(new.encode(2_000).expose().as_bytes()).unwrap();
        assert_eq!(at, 2_000);
        let (got, place) = newest(Some((old.clone(), 1_000)), Some((new.clone(), 2_000))).unwrap();
        assert_eq!(
            (got.refresh.unwrap().expose(), place),
            ("ghr_new", Place::File)
        );
        let (got, place) = newest(Some((new.clone(), 2_000)), Some((old.clone(), 1_000))).unwrap();
        assert_eq!(
            (got.refresh.unwrap().expose(), place),
            ("ghr_new", Place::Keyring)
        );
        let (_, place) = newest(Some((old.clone(), 0)), Some((new, 0))).unwrap();
        assert_eq!(
            place,
            Place::Keyring,
            "a tie (entries without a time) keeps the keyring's"
        );
        assert_eq!(newest(None, Some((old, 5))).unwrap().1, Place::File);
        assert!(newest(None, None).is_none());
    }

    /// The save after a refresh is not cut short by a get's deadline that has (nearly) passed.
    #[test]
    fn a_save_gets_its_own_budget_past_the_callers_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let spent = Instant::now();
        let store = Store::new(CacheMode::File, State::at(dir.path().join("s")), spent);
        assert!(store.save_deadline() >= Instant::now() + SAVE_BUDGET - Duration::from_millis(50));
        let later = Instant::now() + Duration::from_secs(60);
        let store = Store::new(CacheMode::File, State::at(dir.path().join("s")), later);
        assert_eq!(store.save_deadline(), later);
    }

    /// A refused refresh token drops only the copies that hold it, not a newer login.
    #[test]
    fn only_a_login_holding_the_refused_refresh_token_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(
            CacheMode::File,
            State::at(dir.path().join("s")),
            Instant::now() + Duration::from_secs(5),
        );
        let key = LoginKey {
            web: "https://github.com".into(),
            client_id: "Iv23liX".into(),
        };
        let newer = Login {
            refresh: Some(Secret::new("ghr_newer")),
            ..login()
        };
        store.save(&key, &newer).unwrap();
        assert!(!store.remove_refused(&key, &Secret::new("ghr_b")));
        assert_eq!(
            store.load(&key).unwrap().0.refresh.unwrap().expose(),
            "ghr_newer"
        );
        store.save(&key, &login()).unwrap();
        assert!(store.remove_refused(&key, &Secret::new("ghr_b")));
        assert!(store.load(&key).is_none());
    }
}

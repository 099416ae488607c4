//! The helper's private directory (`$XDG_CACHE_HOME/git-credential-github-app/`, mode 0700) and what
//! it remembers besides tokens: which installation serves an owner, how far GitHub's clock is from
//! ours, and the lock files that make concurrent gets mint once.
//!
//! Every file is 0600, written to a temporary file and renamed into place, and read back only if it
//! is a regular file that only we can read. Anything else is ignored (and traced), never trusted.

use crate::config::AppId;
use crate::secret::hex;
use crate::trace;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest state or cache file we read.
const MAX_FILE: u64 = 64 * 1024;

/// The helper's directory. Paths are computed eagerly; the directory is created on first write.
#[derive(Debug, Clone)]
pub struct State {
    root: Option<PathBuf>,
}

/// Why a private file could not be used.
#[derive(Debug)]
pub enum Unusable {
    Missing,
    /// Readable by others, a symlink, not a regular file, or too large: ignored and replaced.
    Unsafe(String),
    Io(io::Error),
}

impl State {
    /// The default location, from `dirs::cache_dir()`.
    pub fn open() -> State {
        State {
            root: dirs::cache_dir().map(|d| d.join("git-credential-github-app")),
        }
    }

    pub fn at(root: PathBuf) -> State {
        State { root: Some(root) }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// `root/sub`, created 0700 if needed.
    pub fn private_dir(&self, sub: &str) -> io::Result<PathBuf> {
        let root = self
            .root
            .as_ref()
            .ok_or_else(|| io::Error::other("no cache directory (HOME unset?)"))?;
        ensure_private_dir(root)?;
        let dir = root.join(sub);
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    fn file(&self, sub: &str, name: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(sub).join(name))
    }

    /// The installation remembered for `owner`, if any.
    pub fn installation(&self, api: &str, app: &AppId, owner: &str) -> Option<u64> {
        match self.lookup_record(api, app, owner)? {
            Remembered::Installation(id) => Some(id),
            Remembered::NotInstalled => None,
        }
    }

    /// What is remembered of the app on `owner`: its installation, or (for
    /// [`NOT_INSTALLED_TTL`]) that it is not installed there.
    pub fn lookup_record(&self, api: &str, app: &AppId, owner: &str) -> Option<Remembered> {
        let path = self.file("installations", &digest(&[api, &app.iss(), owner]))?;
        match read_private(&path) {
            Ok(bytes) => match serde_json::from_slice::<InstallationRecord>(&bytes) {
                Ok(r) if r.api == api && r.owner == owner && r.app == app.iss() => match r.id {
                    0 if crate::github::unix_now().saturating_sub(r.checked_at)
                        < NOT_INSTALLED_TTL =>
                    {
                        Some(Remembered::NotInstalled)
                    }
                    0 => None,
                    id => Some(Remembered::Installation(id)),
                },
                _ => {
                    trace!("ignoring unreadable installation record {}", path.display());
                    None
                }
            },
            Err(Unusable::Missing) => None,
            Err(e) => {
                trace!("ignoring installation record {}: {e:?}", path.display());
                None
            }
        }
    }

    /// Remember that the app is not installed on `owner`, so the next gets within
    /// [`NOT_INSTALLED_TTL`] fall through without asking GitHub.
    pub fn remember_not_installed(&self, api: &str, app: &AppId, owner: &str) {
        self.remember_installation(api, app, owner, 0);
    }

    pub fn remember_installation(&self, api: &str, app: &AppId, owner: &str, id: u64) {
        let record = InstallationRecord {
            checked_at: crate::github::unix_now(),
            api: api.to_owned(),
            app: app.iss(),
            owner: owner.to_owned(),
            id,
        };
        self.write_json("installations", &digest(&[api, &app.iss(), owner]), &record);
    }

    pub fn forget_installation(&self, api: &str, app: &AppId, owner: &str) {
        if let Some(path) = self.file("installations", &digest(&[api, &app.iss(), owner])) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Seconds to add to our clock to get GitHub's, as last learnt for this API.
    pub fn clock_offset(&self, api: &str) -> i64 {
        let Some(path) = self.file("clock", &digest(&[api])) else {
            return 0;
        };
        read_private(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ClockRecord>(&b).ok())
            .filter(|r| r.api == api)
            .map_or(0, |r| r.offset)
    }

    pub fn remember_clock_offset(&self, api: &str, offset: i64) {
        self.write_json(
            "clock",
            &digest(&[api]),
            &ClockRecord {
                api: api.to_owned(),
                offset,
            },
        );
    }

    fn write_json(&self, sub: &str, name: &str, value: &impl Serialize) {
        let result = self.private_dir(sub).and_then(|dir| {
            write_private(
                &dir,
                name,
                &serde_json::to_vec(value).map_err(io::Error::other)?,
            )
        });
        if let Err(e) = result {
            trace!("cannot write {sub}/{name}: {e}");
        }
    }

    /// True the first time `notice` is asked about (per user), so a warning is shown once, not on
    /// every mint. True as well when nothing can be remembered.
    pub fn first_time(&self, notice: &str) -> bool {
        let name = digest(&["notice", notice]);
        let Some(path) = self.file("notices", &name) else {
            return true;
        };
        if path.exists() {
            return false;
        }
        self.write_json("notices", &name, &notice);
        true
    }

    /// Like [`State::lookup_record`], with the time (Unix seconds) it was recorded.
    pub fn lookup_record_at(
        &self,
        api: &str,
        app: &AppId,
        owner: &str,
    ) -> Option<(Remembered, u64)> {
        let remembered = self.lookup_record(api, app, owner)?;
        let path = self.file("installations", &digest(&[api, &app.iss(), owner]))?;
        let checked_at = read_private(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<InstallationRecord>(&b).ok())
            .map_or(0, |r| r.checked_at);
        Some((remembered, checked_at))
    }

    /// Every remembered installation and "not installed" record that is still believed, for
    /// `status` and `forget`.
    pub fn installation_records(&self) -> Vec<InstallationEntry> {
        let Some(dir) = self.root.as_ref().map(|r| r.join("installations")) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let now = crate::github::unix_now();
        let mut out: Vec<InstallationEntry> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| read_private(&e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<InstallationRecord>(&b).ok())
            .filter(|r| r.id != 0 || now.saturating_sub(r.checked_at) < NOT_INSTALLED_TTL)
            .map(|r| InstallationEntry {
                api: r.api,
                app: r.app,
                owner: r.owner,
                installation: (r.id != 0).then_some(r.id),
                checked_at: r.checked_at,
            })
            .collect();
        out.sort_by(|a, b| (&a.api, &a.app, &a.owner).cmp(&(&b.api, &b.app, &b.owner)));
        out
    }

    /// True at most once per `every` for `notice` (per user), so a reminder does not flood
    /// stderr. True as well when nothing can be remembered.
    pub fn at_most_every(&self, notice: &str, every: Duration) -> bool {
        let name = digest(&["every", notice]);
        if let Some(path) = self.file("notices", &name)
            && let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age < every)
        {
            return false;
        }
        self.write_json("notices", &name, &notice);
        true
    }

    /// Take the cross-process lock `name`, waiting at most `wait`. `None` if locking is impossible
    /// (no directory) or timed out: the caller goes on without it, at worst minting twice.
    pub fn lock(&self, name: &str, wait: Duration) -> Option<File> {
        let dir = match self.private_dir("locks") {
            Ok(d) => d,
            Err(e) => {
                trace!("no lock directory: {e}");
                return None;
            }
        };
        let path = dir.join(format!("{name}.lock"));
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                trace!("cannot open lock {}: {e}", path.display());
                return None;
            }
        };
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    trace!(
                        "lock {name} taken after {} ms",
                        started.elapsed().as_millis()
                    );
                    return Some(file);
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    trace!("lock {name} not taken ({e}); going on without it");
                    return None;
                }
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct InstallationRecord {
    api: String,
    app: String,
    owner: String,
    /// 0: not installed (as of `checked_at`).
    id: u64,
    #[serde(default)]
    checked_at: u64,
}

/// A remembered installation record, as listed by [`State::installation_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEntry {
    pub api: String,
    /// The app's `iss` (App ID or client ID).
    pub app: String,
    pub owner: String,
    /// `None`: the app is not installed there (as of `checked_at`).
    pub installation: Option<u64>,
    pub checked_at: u64,
}

/// What [`State::lookup_record`] knows of an app on an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    Installation(u64),
    NotInstalled,
}

/// How long "the app is not installed on this owner" is believed without asking again.
pub const NOT_INSTALLED_TTL: u64 = 5 * 60;

#[derive(Serialize, Deserialize)]
struct ClockRecord {
    api: String,
    offset: i64,
}

/// First 128 bits of SHA-256 over the parts, as hex: a file name that reveals nothing.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize()[..16])
}

/// Create `dir` (mode 0700) or make an existing one private. Fails if that is impossible, e.g. the
/// directory belongs to someone else.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
                    trace!(
                        "made {} private (it was mode {:03o})",
                        dir.display(),
                        meta.permissions().mode() & 0o777
                    );
                }
                Ok(())
            }
            Ok(_) => Err(io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_private_dir(dir),
                    other => other,
                }
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Write `bytes` to `dir/name` atomically, mode 0600.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// Read a file only if it is a regular file no one else can read and is small.
pub fn read_private(path: &Path) -> Result<Vec<u8>, Unusable> {
    // Open first (never following a symlink), then check what was opened: no window between the
    // check and the read.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) if is_symlink_refusal(&e) => return Err(Unusable::Unsafe("a symbolic link".into())),
        Err(e) => return Err(Unusable::Io(e)),
    };
    let meta = file.metadata().map_err(Unusable::Io)?;
    if !meta.is_file() {
        return Err(Unusable::Unsafe("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Unusable::Unsafe(format!(
                "mode {mode:03o}, readable by others"
            )));
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(Unusable::Unsafe(format!(
                "owned by uid {}, not by us",
                meta.uid()
            )));
        }
    }
    if meta.len() > MAX_FILE {
        return Err(Unusable::Unsafe(format!(
            "{} bytes is too large",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(MAX_FILE)
        .read_to_end(&mut bytes)
        .map_err(Unusable::Io)?;
    Ok(bytes)
}

/// `open(O_NOFOLLOW)` on a symlink fails with ELOOP.
fn is_symlink_refusal(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remembers_installations_per_api_app_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let app = AppId::Numeric(1);
        assert_eq!(
            state.installation("https://api.github.com", &app, "acme"),
            None
        );
        state.remember_installation("https://api.github.com", &app, "acme", 42);
        assert_eq!(
            state.installation("https://api.github.com", &app, "acme"),
            Some(42)
        );
        assert_eq!(
            state.installation("https://api.github.com", &AppId::Numeric(2), "acme"),
            None
        );
        assert_eq!(
            state.installation("https://ghe.example.com/api/v3", &app, "acme"),
            None
        );
        state.remember_not_installed("https://api.github.com", &app, "acme");
        assert_eq!(
            state.installation("https://api.github.com", &app, "acme"),
            None
        );
        assert_eq!(
            state.lookup_record("https://api.github.com", &app, "acme"),
            Some(Remembered::NotInstalled)
        );
        state.forget_installation("https://api.github.com", &app, "acme");
        assert_eq!(
            state.installation("https://api.github.com", &app, "acme"),
            None
        );
        let mode = std::fs::metadata(dir.path().join("gcga"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn files_readable_by_others_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        write_private(dir.path(), "f", b"x").unwrap();
        let path = dir.path().join("f");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private(&path).unwrap(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_private(&path), Err(Unusable::Unsafe(_))));
        std::os::unix::fs::symlink(&path, dir.path().join("link")).unwrap();
        assert!(matches!(
            read_private(&dir.path().join("link")),
            Err(Unusable::Unsafe(_))
        ));
    }

    #[test]
    fn loose_directories_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("loose");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn notices_are_given_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().to_path_buf());
        assert!(state.first_time("key is loose"));
        assert!(!state.first_time("key is loose"));
        assert!(state.first_time("another"));
    }

    #[test]
    fn clock_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().to_path_buf());
        assert_eq!(state.clock_offset("https://api.github.com"), 0);
        state.remember_clock_offset("https://api.github.com", -900);
        assert_eq!(state.clock_offset("https://api.github.com"), -900);
    }

    #[test]
    fn locks_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().to_path_buf());
        let held = state.lock("k", Duration::from_secs(1)).unwrap();
        assert!(state.lock("k", Duration::from_millis(50)).is_none());
        drop(held);
        assert!(state.lock("k", Duration::from_millis(50)).is_some());
    }
}

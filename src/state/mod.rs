//! The helper's private directory (`$XDG_CACHE_HOME/git-credential-github-app/`, mode 0700) and what
//! it remembers besides tokens: which installation serves an owner ([`installations`]), how far
//! GitHub's clock is from ours ([`clock`]), notices already shown ([`notices`]), and the lock
//! files that make concurrent gets mint once ([`locks`]). This file holds the directory and the
//! safe reading and writing every one of them goes through.
//!
//! Every file is 0600, written to a temporary file and renamed into place, and read back only if it
//! is a regular file that only we can read. Anything else is ignored (and traced), never trusted.
//! Files are opened without following symlinks and without blocking (a FIFO planted where a file
//! is expected is refused, not waited on). Directories are created 0700 whatever the umask, and a
//! directory another user owns is never used: running as root with a user's HOME (`sudo -E`), or
//! with a cache root another user controls, the helper goes on without this directory (no file
//! cache, no locks, nothing remembered) and says why in the trace.

use crate::secret::hex;
use crate::trace;
use serde::Serialize;
use sha2::{Digest, Sha256};

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Largest state or cache file we read.
const MAX_FILE: u64 = 64 * 1024;

pub mod clock;
pub mod installations;
pub mod locks;
pub mod notices;

pub use installations::{InstallationEntry, NOT_INSTALLED_TTL, Remembered};

/// The helper's directory. Paths are computed eagerly; the directory is created on first write.
#[derive(Debug, Clone)]
pub struct State {
    root: Option<PathBuf>,
    /// Whether `root` may be used, checked once per process (see [`check_root`]).
    usable: Arc<OnceLock<Result<(), String>>>,
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
            usable: Arc::default(),
        }
    }

    pub fn at(root: PathBuf) -> State {
        State {
            root: Some(root),
            usable: Arc::default(),
        }
    }

    /// The root if it may be used: ours, or not there yet with a parent we may create it in.
    fn usable_root(&self) -> io::Result<&Path> {
        let root = self
            .root
            .as_deref()
            .ok_or_else(|| io::Error::other("no cache directory (HOME unset?)"))?;
        let verdict = self.usable.get_or_init(|| {
            let verdict = check_root(root);
            if let Err(why) = &verdict {
                trace!(
                    "not using {}: {why}; going on without the file cache, locks and remembered installations",
                    root.display()
                );
            }
            verdict
        });
        match verdict {
            Ok(()) => Ok(root),
            Err(why) => Err(io::Error::other(why.clone())),
        }
    }

    /// Read `root/sub/name` if the directories on the way are ours and private (see
    /// [`read_private`] for the file itself).
    pub fn read(&self, sub: &str, name: &str) -> Result<Vec<u8>, Unusable> {
        read_private(&self.checked_dir(sub)?.join(name))
    }

    /// `root/sub` if it and the root are ours and private: what a listing of the directory goes
    /// through.
    pub fn dir(&self, sub: &str) -> Option<PathBuf> {
        self.checked_dir(sub).ok()
    }

    fn checked_dir(&self, sub: &str) -> Result<PathBuf, Unusable> {
        // The root itself was checked once by `usable_root`.
        let dir = self.usable_root().map_err(Unusable::Io)?.join(sub);
        match std::fs::symlink_metadata(&dir) {
            // Not ours: not read, and nothing in it removed (as an unsafe file would be).
            Ok(meta) => {
                check_dir_meta(&dir, &meta).map_err(|e| Unusable::Io(io::Error::other(e)))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Io(e)),
        }
        Ok(dir)
    }

    /// The directory, if it may be used (see `check_root`): everything that reads or removes
    /// files under it goes through here, so a directory of another user is never touched.
    pub fn root(&self) -> Option<&Path> {
        self.usable_root().ok()
    }

    /// `root/sub`, created 0700 if needed.
    pub fn private_dir(&self, sub: &str) -> io::Result<PathBuf> {
        let root = self.usable_root()?;
        ensure_private_dir(root)?;
        let dir = root.join(sub);
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    fn file(&self, sub: &str, name: &str) -> Option<PathBuf> {
        self.root().map(|r| r.join(sub).join(name))
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

/// Our effective uid (asked once: it is on the hot path).
#[cfg(unix)]
fn euid() -> u32 {
    static EUID: OnceLock<u32> = OnceLock::new();
    *EUID.get_or_init(|| rustix::process::geteuid().as_raw())
}

/// Whether the cache root may be used: an existing root must be a directory of ours; a missing
/// one will be created (0700, with any missing parents) in the nearest existing ancestor, which
/// must be ours too, or sticky like `/tmp` (where no one else can replace what we create). So a
/// root running with another user's HOME never creates anything there.
fn check_root(root: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let euid = euid();
        let mut dir = root;
        loop {
            match std::fs::symlink_metadata(dir) {
                Ok(meta) if dir == root => return check_dir_meta(dir, &meta),
                Ok(meta) if !meta.is_dir() => {
                    return Err(format!("{} is not a directory", dir.display()));
                }
                Ok(meta) if meta.uid() == euid || meta.permissions().mode() & 0o1000 != 0 => {
                    return Ok(());
                }
                Ok(meta) => {
                    return Err(format!(
                        "it would be created in {}, which belongs to uid {}, not to us (uid {euid}): another user's HOME (sudo -E?)",
                        dir.display(),
                        meta.uid()
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", dir.display())),
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => return Err("no existing parent directory".into()),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = root;
        Ok(())
    }
}

/// A directory we use must be a real directory (not a symlink) that we own, and private; one of
/// ours that is not private is made private.
fn check_dir_meta(dir: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory (a symlink or a file)",
            dir.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let euid = euid();
        if meta.uid() != euid {
            return Err(format!(
                "{} belongs to uid {}, not to us (uid {euid})",
                dir.display(),
                meta.uid()
            ));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
            trace!("made {} private (it was mode {mode:03o})", dir.display());
        }
    }
    Ok(())
}

/// Create `dir` (mode 0700, and 0700 for any missing parent, whatever the umask) or check an
/// existing one (see `check_dir_meta`). Fails if that is impossible, e.g. the directory belongs
/// to someone else.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir)?;
            std::fs::symlink_metadata(dir)?
        }
        Err(e) => return Err(e),
    };
    check_dir_meta(dir, &meta).map_err(io::Error::other)
}

/// A private file must be a regular file of ours that no one else can read or write.
fn check_private_file(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!("mode {mode:03o}, open to others"));
        }
        if meta.uid() != euid() {
            return Err(format!("owned by uid {}, not by us", meta.uid()));
        }
    }
    Ok(())
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
    // On disk before the rename: the file may hold the only copy of a rotated refresh token.
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// Read a file only if it is a regular file no one else can read and is small.
pub fn read_private(path: &Path) -> Result<Vec<u8>, Unusable> {
    // Open first (never following a symlink, never waiting for a FIFO's writer), then check what
    // was opened: no window between the check and the read.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
        );
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) if is_symlink_refusal(&e) => return Err(Unusable::Unsafe("a symbolic link".into())),
        Err(e) => return Err(Unusable::Io(e)),
    };
    let meta = file.metadata().map_err(Unusable::Io)?;
    check_private_file(&meta).map_err(Unusable::Unsafe)?;
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
    use crate::config::AppId;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

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
            state
                .lookup_record("https://api.github.com", &app, "acme")
                .map(|(r, _)| r),
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

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let app = AppId::Numeric(1);
        state.remember_installation("a", &app, "o", 7);
        let name = digest(&["a", &app.iss(), "o"]);
        let path = dir.path().join("gcga/installations").join(&name);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        // Would block forever in open() without O_NONBLOCK.
        assert!(matches!(
            state.read("installations", &name),
            Err(Unusable::Unsafe(_))
        ));
        assert_eq!(state.installation("a", &app, "o"), None);
        state.remember_installation("a", &app, "o", 8);
        assert_eq!(state.installation("a", &app, "o"), Some(8));
        // A FIFO (with no reader) or a symlink where a lock file belongs is replaced.
        let locks = state.private_dir("locks").unwrap();
        mkfifo(&locks.join("k.lock"));
        let held = state.lock("k", Duration::from_secs(1)).unwrap();
        assert!(held.metadata().unwrap().is_file());
        drop(held);
        std::fs::remove_file(locks.join("k.lock")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), locks.join("k.lock")).unwrap();
        assert!(state.lock("k", Duration::from_secs(1)).is_some());
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn lock_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("gcga"));
        let locks = state.private_dir("locks").unwrap();
        // One left by an older version, readable by everyone: made private on use.
        std::fs::write(locks.join("old.lock"), b"").unwrap();
        std::fs::set_permissions(
            locks.join("old.lock"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        for name in ["new", "old"] {
            let held = state.lock(name, Duration::from_secs(1)).unwrap();
            let mode = held.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn directories_of_another_user_are_never_used() {
        if euid() != 0 {
            crate::test_skip::skip("needs root to create another user's directory");
            return;
        }
        let other = 65534;
        let chown = |p: &Path| {
            std::os::unix::fs::chown(p, Some(other), Some(other)).unwrap();
        };
        // Someone else's HOME, without a cache yet: nothing is created there.
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        chown(&home);
        let state = State::at(home.join(".cache/gcga"));
        state.remember_installation("a", &AppId::Numeric(1), "o", 7);
        assert!(state.lock("k", Duration::from_millis(10)).is_none());
        assert!(state.private_dir("tokens").is_err());
        assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
        // Their cache root exists: not read, not written.
        let root = home.join("cache");
        std::fs::create_dir(&root).unwrap();
        let theirs = State::at(root.join("gcga"));
        theirs.remember_installation("a", &AppId::Numeric(1), "o", 7);
        chown(&root);
        let theirs = State::at(root.join("gcga"));
        std::os::unix::fs::chown(root.join("gcga"), Some(other), Some(other)).unwrap();
        assert_eq!(theirs.installation("a", &AppId::Numeric(1), "o"), None);
        assert!(theirs.installation_records().is_empty(), "listed too");
        assert!(theirs.private_dir("tokens").is_err());
        // A subdirectory of ours that belongs to someone else is not used either.
        let mine = State::at(dir.path().join("mine"));
        mine.remember_installation("a", &AppId::Numeric(1), "o", 7);
        std::os::unix::fs::chown(dir.path().join("mine/installations"), Some(other), None).unwrap();
        assert_eq!(mine.installation("a", &AppId::Numeric(1), "o"), None);
        assert!(mine.installation_records().is_empty(), "listed too");
        // A sticky directory like /tmp is fine to create the root in.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        chown(&tmp);
        let sticky = State::at(tmp.join("gcga"));
        sticky.remember_installation("a", &AppId::Numeric(1), "o", 7);
        assert_eq!(sticky.installation("a", &AppId::Numeric(1), "o"), Some(7));
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

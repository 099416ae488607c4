//! Editing one git config file the way git does: take `FILE.lock` (created exclusively, so a
//! concurrent `setup`, or git itself, waits or fails instead of interleaving), copy the file into
//! it, let `git config --file FILE.lock` make the changes, then rename it over the file. A
//! symbolic link (a dotfiles repository) is followed, so the link stays and its target changes;
//! the file keeps its mode, and under `sudo -E` its owner.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Scope;

/// How long to wait for another writer's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The file `git config SCOPE` writes. `None` for a scope setup does not edit.
pub fn file_of(scope: Scope) -> Result<PathBuf> {
    match scope {
        Scope::Global => {
            if let Some(p) = std::env::var_os("GIT_CONFIG_GLOBAL") {
                return Ok(PathBuf::from(p));
            }
            let home = dirs::home_dir().context("cannot tell the home directory")?;
            let dot = home.join(".gitconfig");
            let xdg = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map_or_else(|| home.join(".config"), PathBuf::from)
                .join("git/config");
            // git writes ~/.gitconfig unless only the XDG file exists.
            Ok(if !dot.exists() && xdg.exists() {
                xdg
            } else {
                dot
            })
        }
        Scope::System => {
            if let Some(p) = std::env::var_os("GIT_CONFIG_SYSTEM") {
                return Ok(PathBuf::from(p));
            }
            let text = super::git(&["var", "GIT_CONFIG_SYSTEM"])?;
            Ok(PathBuf::from(text.trim()))
        }
        Scope::Local => {
            let text = super::git(&[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "config",
            ])
            .map_err(|e| anyhow::anyhow!("--local works inside a git repository only ({e})"))?;
            Ok(PathBuf::from(text.trim()))
        }
        Scope::Worktree | Scope::Command => {
            bail!("setup edits the global, local or system config only")
        }
    }
}

/// Windows' canonical paths are `\\?\C:\...`, which git does not take: the plain form.
fn plain(path: PathBuf) -> PathBuf {
    #[cfg(windows)]
    {
        let text = path.to_string_lossy();
        if let Some(rest) = text.strip_prefix(r"\\?\")
            && !rest.starts_with("UNC\\")
        {
            return PathBuf::from(rest);
        }
    }
    path
}

/// A config file held under its lock; changes go into the lock file until [`Edit::commit`].
pub struct Edit {
    /// The file git reads (symbolic links resolved).
    pub path: PathBuf,
    /// `path.lock`: the working copy.
    pub lock: PathBuf,
    existed: bool,
    committed: bool,
}

impl Edit {
    /// Lock `path` (waiting up to 10 s for another writer) and copy it into the lock file.
    pub fn open(path: &Path) -> Result<Edit> {
        let path = match std::fs::canonicalize(path) {
            Ok(p) => plain(p),
            // A missing file (or a link to one) is created where the link points.
            Err(_) => match std::fs::read_link(path) {
                Ok(target) => path.parent().unwrap_or(Path::new("/")).join(target),
                Err(_) => std::path::absolute(path)?,
            },
        };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut lock = path.clone().into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let started = Instant::now();
        let mut wait = Duration::from_millis(5);
        let mut file = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if started.elapsed() >= LOCK_WAIT {
                        bail!(
                            "{} exists: another git config change is running, or one was killed (remove the file if no git is running)",
                            lock.display()
                        );
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(e) => bail!("cannot lock {}: {e}", path.display()),
            }
        };
        let mut edit = Edit {
            path,
            lock,
            existed: false,
            committed: false,
        };
        match std::fs::read(&edit.path) {
            Ok(bytes) => {
                use std::io::Write as _;
                edit.existed = true;
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", edit.lock.display()))?;
                let meta = std::fs::metadata(&edit.path)?;
                file.set_permissions(meta.permissions())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot read {}: {e}", edit.path.display()),
        }
        Ok(edit)
    }

    /// `git config --file LOCK ARGS`.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        let lock = self.lock.to_string_lossy();
        let mut all = vec!["config", "--file", &lock];
        all.extend_from_slice(args);
        super::git(&all)
    }

    /// Entries of the working copy whose key matches `regex`.
    pub fn entries(&self, regex: &str) -> Result<Vec<super::Entry>> {
        super::entries_of_file(&self.lock, regex)
    }

    /// Replace the file with the working copy.
    pub fn commit(mut self) -> Result<PathBuf> {
        if !self.lock.exists() {
            // git config on an empty copy that stays empty creates nothing.
            std::fs::write(&self.lock, b"")?;
        }
        self.keep_owner()?;
        std::fs::rename(&self.lock, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        self.committed = true;
        Ok(self.path.clone())
    }

    /// Running as root for someone else's file (`sudo -E` with the user's HOME): the file stays
    /// theirs, as git's config would not be readable or writable by them otherwise.
    fn keep_owner(&self) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if rustix::process::geteuid().as_raw() != 0 {
                return Ok(());
            }
            let owner = if self.existed {
                std::fs::metadata(&self.path).ok()
            } else {
                self.path.parent().and_then(|d| std::fs::metadata(d).ok())
            };
            if let Some(meta) = owner
                && meta.uid() != 0
            {
                std::os::unix::fs::chown(&self.lock, Some(meta.uid()), Some(meta.gid()))
                    .with_context(|| {
                        format!(
                            "cannot give {} back to uid {}",
                            self.lock.display(),
                            meta.uid()
                        )
                    })?;
            }
        }
        Ok(())
    }
}

impl Drop for Edit {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.lock);
        }
    }
}

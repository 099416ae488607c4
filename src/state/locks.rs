//! The cross-process locks that make concurrent gets fetch once: one lock file per name under
//! `locks/`, opened as safely as private files are read.

use super::{State, check_private_file};
use crate::trace;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

impl State {
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
        let file = match open_lock_file(&path) {
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

/// Open (creating it 0600) a lock file the way private files are read: never following a
/// symlink, never blocking on a FIFO, and only if what was opened is a regular file of ours.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let open = || {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            );
        }
        let file = options.open(path)?;
        check_private_file(&file.metadata()?).map_err(io::Error::other)?;
        Ok::<File, io::Error>(file)
    };
    open().or_else(|e| {
        // Something else sits there (a symlink, a FIFO, another user's file): our directory is
        // private, so it is stale or planted; replace it once.
        trace!("lock file {} unusable ({e}); replacing it", path.display());
        std::fs::remove_file(path)?;
        open()
    })
}

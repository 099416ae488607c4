//! The file backend: one 0600 JSON file per key under `<cache dir>/tokens/`, written atomically.

use super::{CacheKey, Store};
use crate::state::{State, Unusable, write_private};
use crate::trace;
use anyhow::Result;

pub struct FileStore {
    state: State,
}

impl FileStore {
    pub fn new(state: State) -> FileStore {
        FileStore { state }
    }

    fn path(&self, key: &CacheKey) -> Option<std::path::PathBuf> {
        self.state
            .root()
            .map(|r| r.join("tokens").join(format!("{}.json", key.digest())))
    }
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn load(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.path(key) else {
            anyhow::bail!("no cache directory")
        };
        match self.state.read("tokens", &format!("{}.json", key.digest())) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Unusable::Missing) => Ok(None),
            Err(Unusable::Unsafe(why)) => {
                trace!(
                    "ignoring cache file {} ({why}); removing it",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
            Err(Unusable::Io(e)) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    fn save(&self, key: &CacheKey, entry: &[u8], _expires_at: u64) -> Result<()> {
        let dir = self.state.private_dir("tokens")?;
        write_private(&dir, &format!("{}.json", key.digest()), entry)?;
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> Result<()> {
        if let Some(path) = self.path(key) {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

//! The OS keyring through the `keyring` crate: Secret Service on Linux (over a vendored libdbus,
//! with a plain session: Cargo.toml says why no session encryption), the Keychain on macOS,
//! Credential Manager on Windows. Only those platform stores are compiled in, never keyring's
//! in-memory mock.

use super::{CacheKey, Store};
use anyhow::Result;

const SERVICE: &str = "git-credential-github-app";

pub struct OsKeyring {
    name: &'static str,
}

impl OsKeyring {
    pub fn new(name: &'static str) -> OsKeyring {
        OsKeyring { name }
    }
}

impl Store for OsKeyring {
    fn name(&self) -> &'static str {
        self.name
    }

    /// D-Bus (or a keychain prompt) can keep a call waiting forever.
    fn may_hang(&self) -> bool {
        true
    }

    fn load(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let entry = keyring::Entry::new(SERVICE, key.as_str())?;
        match entry.get_password() {
            Ok(text) => Ok(Some(text.into_bytes())),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::BadEncoding(_)) => Ok(Some(Vec::new())), // foreign entry: a miss, replaced on save
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, key: &CacheKey, entry: &[u8], _expires_at: u64) -> Result<()> {
        let text = std::str::from_utf8(entry)?;
        keyring::Entry::new(SERVICE, key.as_str())?.set_password(text)?;
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> Result<()> {
        match keyring::Entry::new(SERVICE, key.as_str())?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

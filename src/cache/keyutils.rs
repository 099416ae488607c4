//! Linux kernel keyutils, in the *user* keyring (`@u`).
//!
//! The `keyring` crate's keyutils store writes to the session keyring, which headless process trees
//! (CI steps, `docker exec`, cron) do not have; there its writes fail (see feasibility.md §2a). The
//! user keyring exists for every process of the user, so we use it directly: each key gets
//! possessor and user permissions (so our other processes can read it, nobody else) and a kernel
//! timeout at the token's expiry, so the kernel drops it by itself.

use super::{CacheKey, Store};
use anyhow::{Result, anyhow};
use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

pub struct Keyutils;

fn description(key: &CacheKey) -> String {
    format!("git-credential-github-app:{}", key.digest())
}

fn user_ring() -> Result<KeyRing> {
    KeyRing::from_special_id(KeyRingIdentifier::User, true)
        .map_err(|e| anyhow!("user keyring: {e:?}"))
}

impl Store for Keyutils {
    fn name(&self) -> &'static str {
        "keyutils"
    }

    fn load(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let ring = user_ring()?;
        match ring.search(&description(key)) {
            Ok(k) => Ok(Some(
                k.read_to_vec().map_err(|e| anyhow!("reading key: {e:?}"))?,
            )),
            Err(KeyError::KeyDoesNotExist)
            | Err(KeyError::KeyExpired)
            | Err(KeyError::KeyRevoked) => Ok(None),
            Err(e) => Err(anyhow!("searching the user keyring: {e:?}")),
        }
    }

    fn save(&self, key: &CacheKey, entry: &[u8], expires_at: u64) -> Result<()> {
        let ring = user_ring()?;
        let k = ring
            .add_key(&description(key), entry)
            .map_err(|e| anyhow!("adding key: {e:?}"))?;
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(Permission::ALL)
            .build();
        k.set_perms(perms)
            .map_err(|e| anyhow!("setting key permissions: {e:?}"))?;
        // The kernel takes an unsigned int; tokens live an hour, so a day is a generous cap.
        let ttl = expires_at
            .saturating_sub(crate::github::unix_now())
            .clamp(1, 24 * 3600);
        k.set_timeout(usize::try_from(ttl).unwrap_or(usize::MAX))
            .map_err(|e| anyhow!("setting key timeout: {e:?}"))?;
        Ok(())
    }

    fn remove(&self, key: &CacheKey) -> Result<()> {
        let ring = user_ring()?;
        match ring.search(&description(key)) {
            Ok(k) => k
                .invalidate()
                .map_err(|e| anyhow!("invalidating key: {e:?}")),
            Err(_) => Ok(()),
        }
    }
}

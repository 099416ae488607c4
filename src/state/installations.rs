//! What the helper remembers of an app on an owner: the installation that serves it, or (for
//! [`NOT_INSTALLED_TTL`]) that the app is not installed there. One small file per (API, app,
//! owner) under `installations/`.

use super::{State, Unusable, digest, read_private};
use crate::config::AppId;
use crate::trace;
use serde::{Deserialize, Serialize};

impl State {
    /// The installation remembered for `owner`, if any.
    pub fn installation(&self, api: &str, app: &AppId, owner: &str) -> Option<u64> {
        match self.lookup_record(api, app, owner)? {
            (Remembered::Installation(id), _) => Some(id),
            (Remembered::NotInstalled, _) => None,
        }
    }

    /// What is remembered of the app on `owner` — its installation, or (for
    /// [`NOT_INSTALLED_TTL`]) that it is not installed there — and when it was looked up (Unix
    /// seconds).
    pub fn lookup_record(&self, api: &str, app: &AppId, owner: &str) -> Option<(Remembered, u64)> {
        let name = digest(&[api, &app.iss(), owner]);
        match self.read("installations", &name) {
            Ok(bytes) => match serde_json::from_slice::<InstallationRecord>(&bytes) {
                Ok(r) if r.api == api && r.owner == owner && r.app == app.iss() => match r.id {
                    0 if crate::github::unix_now().saturating_sub(r.checked_at)
                        < NOT_INSTALLED_TTL =>
                    {
                        Some((Remembered::NotInstalled, r.checked_at))
                    }
                    0 => None,
                    id => Some((Remembered::Installation(id), r.checked_at)),
                },
                _ => {
                    trace!("ignoring unreadable installation record installations/{name}");
                    None
                }
            },
            Err(Unusable::Missing) => None,
            Err(e) => {
                trace!("ignoring installation record installations/{name}: {e:?}");
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

    /// Every remembered installation and "not installed" record that is still believed, for
    /// `status` and `forget`.
    pub fn installation_records(&self) -> Vec<InstallationEntry> {
        let Some(dir) = self.dir("installations") else {
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

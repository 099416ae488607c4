//! The JSON world description read by `local-github serve --world FILE`
//! (format documented in README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keys::AppKey;
use crate::model::{Account, App, Installation, TokenFormat};
use crate::{Builder, Error, GitHub, Result};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// `"owner/name"` strings.
    #[serde(default)]
    pub repos: Vec<String>,
    #[serde(default)]
    pub installations: Vec<InstallationSpec>,
    pub token_lifetime_secs: Option<u64>,
    /// `"classic"` (default) or `"stateless"`.
    pub token_format: Option<String>,
    pub clock_offset_secs: Option<i64>,
    pub iat_leeway_secs: Option<i64>,
    /// The device flow's polling `interval` (default 5).
    pub device_interval_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub id: u64,
    pub slug: String,
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub owner: Option<String>,
    pub permissions: Option<BTreeMap<String, String>>,
    /// Load the private key (PKCS#1 or PKCS#8 PEM) from here.
    pub private_key_path: Option<PathBuf>,
    /// Generate a fresh 2048-bit key and write it here (PKCS#1 PEM, mode 0600).
    pub generate_key_to: Option<PathBuf>,
    /// Trust only this public key (DER SubjectPublicKeyInfo), as for a key kept in a KMS.
    pub public_key_der_path: Option<PathBuf>,
    /// More keys (PEM files) that also verify this app's JWTs.
    #[serde(default)]
    pub additional_key_paths: Vec<PathBuf>,
    /// "Enable Device Flow" (default off, as on GitHub).
    #[serde(default)]
    pub device_flow: bool,
    /// Whether user tokens expire (default true).
    pub expiring_user_tokens: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub login: String,
    /// `"User"` (default) or `"Organization"`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<u64>,
    /// For an organisation: member login → permission on its repositories (`read`, `write`,
    /// `admin`), what the member may do with a user token.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallationSpec {
    pub id: u64,
    pub app_id: u64,
    pub account: String,
    /// `"all"` (default) or `"selected"`.
    pub repository_selection: Option<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
    pub permissions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub suspended: bool,
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Writes `contents` to `path` with mode 0600 (on Unix).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(contents.as_bytes())?;
    Ok(())
}

impl WorldFile {
    pub fn parse(json: &str) -> Result<WorldFile> {
        serde_json::from_str(json).map_err(|e| Error::new(format!("world file: {e}")))
    }

    pub fn load(path: &Path) -> Result<WorldFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
        WorldFile::parse(&text)
    }

    /// A builder for this world; relative key paths are resolved against `base_dir`.
    /// Generates and writes `generate_key_to` keys.
    pub fn into_builder(self, base_dir: &Path) -> Result<Builder> {
        let mut b = GitHub::builder();
        for a in self.apps {
            let key = match (
                &a.private_key_path,
                &a.generate_key_to,
                &a.public_key_der_path,
            ) {
                (None, None, Some(p)) => {
                    let p = resolve(base_dir, p);
                    let der = std::fs::read(&p)
                        .map_err(|e| Error::new(format!("{}: {e}", p.display())))?;
                    AppKey::from_public_der(&der)?
                }
                (Some(p), None, None) => {
                    let p = resolve(base_dir, p);
                    let pem = std::fs::read_to_string(&p)
                        .map_err(|e| Error::new(format!("{}: {e}", p.display())))?;
                    AppKey::from_pem(&pem)?
                }
                (None, Some(p), None) => {
                    let key = AppKey::generate();
                    write_private(&resolve(base_dir, p), key.private_key_pem())?;
                    key
                }
                _ => {
                    return Err(Error::new(format!(
                        "app {}: give exactly one of private_key_path, generate_key_to, public_key_der_path",
                        a.id
                    )));
                }
            };
            let mut app = App::with_key(a.id, &a.slug, key);
            if let Some(n) = &a.name {
                app = app.with_name(n);
            }
            if let Some(c) = &a.client_id {
                app = app.with_client_id(c);
            }
            if let Some(o) = &a.owner {
                app = app.with_owner(o);
            }
            if let Some(p) = a.permissions {
                app = app.with_permissions(p);
            }
            app = app.with_device_flow(a.device_flow);
            if let Some(e) = a.expiring_user_tokens {
                app = app.with_expiring_user_tokens(e);
            }
            for p in &a.additional_key_paths {
                let p = resolve(base_dir, p);
                let pem = std::fs::read_to_string(&p)
                    .map_err(|e| Error::new(format!("{}: {e}", p.display())))?;
                app = app.with_additional_key_pem(&pem)?;
            }
            b = b.app(app);
        }
        for a in self.accounts {
            let acc = match a.kind.as_deref() {
                None | Some("User") => Account::user(&a.login),
                Some("Organization") => Account::org(&a.login),
                Some(other) => {
                    return Err(Error::new(format!(
                        "account {}: type must be User or Organization, not {other}",
                        a.login
                    )));
                }
            };
            b = b.account(match a.id {
                Some(id) => acc.id(id),
                None => acc,
            });
            for (member, permission) in &a.members {
                b = b.member(&a.login, member, permission);
            }
        }
        for r in &self.repos {
            let (o, n) = r
                .split_once('/')
                .ok_or_else(|| Error::new(format!("repo {r:?}: want \"owner/name\"")))?;
            b = b.repo(o, n);
        }
        for i in self.installations {
            let mut inst = Installation::new(i.id, i.app_id, &i.account);
            inst = match i.repository_selection.as_deref() {
                None | Some("all") => inst.all(),
                Some("selected") => inst.selected(i.repositories),
                Some(other) => {
                    return Err(Error::new(format!(
                        "installation {}: repository_selection must be all or selected, not {other}",
                        i.id
                    )));
                }
            };
            if let Some(p) = i.permissions {
                inst = inst.permissions(p);
            }
            b = b.installation(inst.suspended(i.suspended));
        }
        if let Some(s) = self.token_lifetime_secs {
            b = b.token_lifetime(s);
        }
        match self.token_format.as_deref() {
            None | Some("classic") => {}
            Some("stateless") => b = b.token_format(TokenFormat::Stateless),
            Some(other) => {
                return Err(Error::new(format!(
                    "token_format must be classic or stateless, not {other}"
                )));
            }
        }
        if let Some(s) = self.clock_offset_secs {
            b = b.clock_offset(s);
        }
        if let Some(s) = self.iat_leeway_secs {
            b = b.iat_leeway(s);
        }
        if let Some(s) = self.device_interval_secs {
            b = b.device_flow_timing(s, crate::users::DEFAULT_DEVICE_CODE_LIFETIME);
        }
        Ok(b)
    }
}

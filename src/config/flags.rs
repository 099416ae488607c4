//! Flags: the global options on a command line or a helper line, in one table ([`GLOBAL`]) from
//! which the command line is parsed and `--help` is written, and the one app they describe
//! (with the environment).

use super::hosts::{Host, host_for};
use super::{
    App, AppId, InstallationSpec, SourceSpec, check_api_url, check_owner, env, first_named,
    key_reference, parse_installation_id, parse_permissions,
};
use crate::keyref::KeyRef;
use crate::secret::Secret;
use anyhow::{Context, Result, anyhow, bail};
use std::path::PathBuf;

/// Settings given as flags on the helper line. Every field is optional.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub app_id: Option<String>,
    pub private_key: Option<PathBuf>,
    pub installation_id: Option<String>,
    pub api_url: Option<String>,
    pub host: Option<String>,
    pub owners: Vec<String>,
    pub cache: Option<String>,
    pub refresh_margin: Option<String>,
    pub timeout: Option<String>,
    pub config: Option<PathBuf>,
    pub username: Option<String>,
    pub verbose: bool,
    /// `--repo-scoped`: tokens for just the repository.
    pub repo_scoped: bool,
    /// `--permissions contents:read,metadata:read`.
    pub permissions: Option<String>,
    /// `--broker …` and its options.
    pub broker: super::broker::BrokerFlags,
}

pub(super) fn app_from_flags_and_env(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<App>> {
    if flags.broker.any() {
        if flags.app_id.is_some() || flags.private_key.is_some() {
            bail!("--broker and --app-id/--private-key are two kinds of entry: give one");
        }
        let spec = super::broker::from_flags(&flags.broker, &super::broker::check_broker_url)
            .map_err(|e| anyhow!(e))?;
        let host = match first_named(&[(flags.host.clone(), "--host"), (env(env::HOST), env::HOST)])
        {
            Some((text, setting)) => Host::parse(&text).context(setting)?,
            None => host_for(flags.api_url.as_deref())?,
        };
        let api_url = flags
            .api_url
            .clone()
            .map(|u| check_api_url(&u, "--api-url"))
            .transpose()?;
        let owners = flags
            .owners
            .iter()
            .map(|o| check_owner(o).context("--owner"))
            .collect::<Result<_>>()?;
        return Ok(Some(App {
            origin: "command line".into(),
            host,
            api_url,
            owners,
            source: SourceSpec::Broker(spec),
        }));
    }
    let (id_text, origin) = match (&flags.app_id, env(env::APP_ID)) {
        (Some(id), _) => (id.clone(), "--app-id"),
        (None, Some(id)) => (id, env::APP_ID),
        (None, None) => {
            if flags.private_key.is_some() || flags.installation_id.is_some() {
                bail!(
                    "--private-key and --installation-id need --app-id (or {})",
                    env::APP_ID
                );
            }
            return Ok(None);
        }
    };
    let id = AppId::parse(&id_text).context(origin)?;
    let key = if let Some(path) = &flags.private_key {
        key_reference(&path.to_string_lossy(), "--private-key")?
    } else if let Some(pem) = env(env::PRIVATE_KEY) {
        KeyRef::Env(Secret::new(pem))
    } else if let Some(path) = env(env::PRIVATE_KEY_PATH) {
        key_reference(&path, env::PRIVATE_KEY_PATH)?
    } else {
        bail!(
            "app {id} has no private key: pass --private-key PATH, or set {} (the PEM text) or {}",
            env::PRIVATE_KEY,
            env::PRIVATE_KEY_PATH
        );
    };
    let installation_id = match first_named(&[
        (flags.installation_id.clone(), "--installation-id"),
        (env(env::INSTALLATION_ID), env::INSTALLATION_ID),
    ]) {
        Some((text, setting)) => Some(parse_installation_id(&text).context(setting)?),
        None => None,
    };
    let api_url = flags
        .api_url
        .clone()
        .map(|u| check_api_url(&u, "--api-url"))
        .or_else(|| env(env::API_URL).map(|u| check_api_url(&u, env::API_URL)))
        .transpose()?;
    let host = match first_named(&[(flags.host.clone(), "--host"), (env(env::HOST), env::HOST)]) {
        Some((text, setting)) => Host::parse(&text).context(setting)?,
        None => host_for(api_url.as_deref())?,
    };
    let permissions = flags
        .permissions
        .as_deref()
        .map(parse_permissions)
        .transpose()?
        .unwrap_or_default();
    let owners = flags
        .owners
        .iter()
        .map(|o| check_owner(o).context("--owner"))
        .collect::<Result<_>>()?;
    Ok(Some(App {
        origin: if flags.app_id.is_some() {
            "command line".into()
        } else {
            "environment".into()
        },
        host,
        api_url,
        owners,
        source: SourceSpec::Installation(InstallationSpec {
            id,
            key,
            installation_id,
            permissions,
            repo_scoped: flags.repo_scoped,
        }),
    }))
}

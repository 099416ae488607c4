//! Flags: the global options on a command line or a helper line, in one table ([`GLOBAL`]) from
//! which the command line is parsed and `--help` is written, and the one app they describe
//! (with the environment).

use super::hosts::{ApiBase, Host, check_api_url, host_for};
use super::{
    App, AppId, InstallationSpec, SourceSpec, check_owner, env, first_named, key_reference,
    parse_installation_id, user_spec,
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
    /// `--user-tokens`: the logged-in person's token instead of installation tokens.
    pub user_tokens: bool,
    /// `--permissions contents:read,metadata:read`.
    pub permissions: Option<String>,
    /// `--broker …` and its options.
    pub broker: super::broker::BrokerFlags,
}

/// Which global option (see [`GLOBAL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    AppId,
    PrivateKey,
    PrivateKeyPem,
    InstallationId,
    Host,
    ApiUrl,
    Owner,
    Cache,
    RefreshMargin,
    Timeout,
    Username,
    RepoScoped,
    UserTokens,
    Permissions,
    StatelessTokens,
    Config,
    Broker,
    BrokerUrl,
    Identity,
    OrgScope,
    Profile,
    Oidc,
    Audience,
    Verbose,
    Help,
    Version,
}

/// One global option: its flag (if it has one), environment variable and config-file key (if
/// any), and its `--help` line.
#[derive(Debug, Clone, Copy)]
pub struct GlobalOption {
    pub name: Name,
    /// `--long`, without the dashes; `None`: set only in the environment or the config file.
    pub long: Option<&'static str>,
    pub short: Option<char>,
    /// The value's name in `--help` (`ID`); `None` for a switch.
    pub value: Option<&'static str>,
    pub env: Option<&'static str>,
    /// The key in the config file (`[[app]]` keys for an app's settings).
    pub config_key: Option<&'static str>,
    /// What it does, for `--help` (continuation lines start with a newline).
    pub help: &'static str,
}

const fn opt(
    name: Name,
    long: Option<&'static str>,
    value: Option<&'static str>,
    env: Option<&'static str>,
    config_key: Option<&'static str>,
    help: &'static str,
) -> GlobalOption {
    GlobalOption {
        name,
        long,
        short: None,
        value,
        env,
        config_key,
        help,
    }
}

/// Every global option, in `--help` order: the one table the command line, `--help` and the
/// tests derive from.
pub const GLOBAL: &[GlobalOption] = &[
    opt(
        Name::AppId,
        Some("app-id"),
        Some("ID"),
        Some(env::APP_ID),
        Some("app_id"),
        "App ID or client ID (Iv…) of the GitHub App",
    ),
    opt(
        Name::PrivateKey,
        Some("private-key"),
        Some("PATH|URI|ARN"),
        Some(env::PRIVATE_KEY_PATH),
        Some("private_key"),
        "the app's private key (.pem), a pkcs11: URI or an AWS KMS key ARN",
    ),
    opt(
        Name::PrivateKeyPem,
        None,
        None,
        Some(env::PRIVATE_KEY),
        None,
        "the PEM text of the app's private key itself (for CI secrets)",
    ),
    opt(
        Name::InstallationId,
        Some("installation-id"),
        Some("ID"),
        Some(env::INSTALLATION_ID),
        Some("installation_id"),
        "use this installation instead of looking it up",
    ),
    opt(
        Name::Host,
        Some("host"),
        Some("HOST"),
        Some(env::HOST),
        Some("host"),
        "host the app serves (default github.com; a GHES or *.ghe.com host)",
    ),
    opt(
        Name::ApiUrl,
        Some("api-url"),
        Some("URL"),
        Some(env::API_URL),
        Some("api_url"),
        "REST API base (default derived from the host)",
    ),
    opt(
        Name::Owner,
        Some("owner"),
        Some("OWNER"),
        None,
        Some("owners"),
        "serve only this owner (repeatable; default: any owner with the app)",
    ),
    opt(
        Name::Cache,
        Some("cache"),
        Some("MODE"),
        Some(env::CACHE),
        Some("cache"),
        "auto (keyring, else file), keyring, file or none   (default auto)",
    ),
    opt(
        Name::RefreshMargin,
        Some("refresh-margin"),
        Some("DUR"),
        Some(env::REFRESH_MARGIN),
        Some("refresh_margin"),
        "mint a new token when the cached one has less left (default 10m)",
    ),
    opt(
        Name::Timeout,
        Some("timeout"),
        Some("DUR"),
        Some(env::TIMEOUT),
        Some("timeout"),
        "time budget of one get, start to answer: every app tried, lock\nwaits, API calls and retries (default 30s)",
    ),
    opt(
        Name::Username,
        Some("username"),
        Some("NAME"),
        None,
        Some("username"),
        "username to answer with (default x-access-token)",
    ),
    opt(
        Name::RepoScoped,
        Some("repo-scoped"),
        None,
        None,
        Some("repo_scoped"),
        "mint each token for just the repository git is accessing",
    ),
    opt(
        Name::UserTokens,
        Some("user-tokens"),
        None,
        None,
        Some("user_tokens"),
        "answer with the logged-in person's user token (see login); implied\nby a client ID without a private key",
    ),
    opt(
        Name::Permissions,
        Some("permissions"),
        Some("LIST"),
        None,
        Some("permissions"),
        "narrow the token's permissions: contents:read,metadata:read",
    ),
    opt(
        Name::StatelessTokens,
        None,
        None,
        Some(env::STATELESS_TOKENS),
        Some("stateless_tokens"),
        "token format to ask GitHub for: default, enabled or disabled",
    ),
    opt(
        Name::Config,
        Some("config"),
        Some("PATH"),
        Some(env::CONFIG),
        None,
        "config file for several apps\n(default ~/.config/git-credential-github-app/config.toml)",
    ),
    // A broker entry instead of an app (docs/brokers.md); in the config file, `[[broker]]` keys.
    opt(
        Name::Broker,
        Some("broker"),
        Some("KIND"),
        None,
        Some("kind"),
        "octo-sts or chinmina: a token for the CI job's OIDC token, no app key",
    ),
    opt(
        Name::BrokerUrl,
        Some("broker-url"),
        Some("URL"),
        None,
        Some("url"),
        "the broker (https; plain http only to loopback)",
    ),
    opt(
        Name::Identity,
        Some("identity"),
        Some("NAME"),
        None,
        Some("identity"),
        "octo-sts: the trust policy, .github/chainguard/NAME.sts.yaml",
    ),
    opt(
        Name::OrgScope,
        Some("org-scope"),
        None,
        None,
        Some("org_scope"),
        "octo-sts: ask for the owner (an organisation policy), not OWNER/REPO",
    ),
    opt(
        Name::Profile,
        Some("profile"),
        Some("NAME"),
        None,
        Some("profile"),
        "chinmina: the profile",
    ),
    opt(
        Name::Oidc,
        Some("oidc"),
        Some("SOURCE"),
        None,
        Some("oidc"),
        "the OIDC token: auto (default), github-actions, gitlab:VARIABLE,\nbuildkite or file:PATH",
    ),
    opt(
        Name::Audience,
        Some("audience"),
        Some("AUD"),
        None,
        Some("audience"),
        "the OIDC token's audience (default: the broker's host name)",
    ),
    GlobalOption {
        short: Some('v'),
        ..opt(
            Name::Verbose,
            Some("verbose"),
            None,
            Some(env::TRACE),
            None,
            "trace each step on stderr, tokens masked (env: =1 or =/path/to/log)",
        )
    },
    GlobalOption {
        short: Some('h'),
        ..opt(Name::Help, Some("help"), None, None, None, "this text")
    },
    GlobalOption {
        short: Some('V'),
        ..opt(
            Name::Version,
            Some("version"),
            None,
            None,
            None,
            "the version",
        )
    },
];

/// The global option spelt `--long`.
pub fn find_long(long: &str) -> Option<&'static GlobalOption> {
    GLOBAL.iter().find(|o| o.long == Some(long))
}

/// The global option spelt `-c`.
pub fn find_short(c: char) -> Option<&'static GlobalOption> {
    GLOBAL.iter().find(|o| o.short == Some(c))
}

impl Flags {
    /// Set option `name` (`value`: its value, `None` for a switch). `--help` and `--version` are
    /// the command line's, not settings: nothing to set.
    pub fn set(&mut self, name: Name, value: Option<String>) {
        let text = || value.clone().unwrap_or_default();
        match name {
            Name::AppId => self.app_id = Some(text()),
            Name::PrivateKey => self.private_key = Some(text().into()),
            Name::InstallationId => self.installation_id = Some(text()),
            Name::Host => self.host = Some(text()),
            Name::ApiUrl => self.api_url = Some(text()),
            Name::Owner => self.owners.push(text()),
            Name::Cache => self.cache = Some(text()),
            Name::RefreshMargin => self.refresh_margin = Some(text()),
            Name::Timeout => self.timeout = Some(text()),
            Name::Username => self.username = Some(text()),
            Name::RepoScoped => self.repo_scoped = true,
            Name::UserTokens => self.user_tokens = true,
            Name::Permissions => self.permissions = Some(text()),
            Name::Config => self.config = Some(text().into()),
            Name::Broker => self.broker.broker = Some(text()),
            Name::BrokerUrl => self.broker.url = Some(text()),
            Name::Identity => self.broker.identity = Some(text()),
            Name::OrgScope => self.broker.org_scope = true,
            Name::Profile => self.broker.profile = Some(text()),
            Name::Oidc => self.broker.oidc = Some(text()),
            Name::Audience => self.broker.audience = Some(text()),
            Name::Verbose => self.verbose = true,
            Name::PrivateKeyPem | Name::StatelessTokens | Name::Help | Name::Version => {}
        }
    }

    /// The flags in the words of a helper line after its program (`--app-id 1 --private-key
    /// …`), as the helper would parse them when git runs the line; other words are skipped.
    pub fn from_words(words: impl IntoIterator<Item = String>) -> Result<Flags, String> {
        use lexopt::prelude::*;
        let mut flags = Flags::default();
        let mut parser = lexopt::Parser::from_args(words);
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            let option = match arg {
                Long(name) => find_long(name).ok_or_else(|| format!("unknown option --{name}"))?,
                Short(c) => find_short(c).ok_or_else(|| format!("unknown option -{c}"))?,
                Value(_) => continue,
            };
            let value = match option.value {
                Some(_) => Some(option_text(&mut parser)?),
                None => None,
            };
            flags.set(option.name, value);
        }
        Ok(flags)
    }
}

/// An option's value, as UTF-8 text.
pub fn option_text(parser: &mut lexopt::Parser) -> Result<String, String> {
    let value = parser.value().map_err(|e| e.to_string())?;
    value
        .into_string()
        .map_err(|_| "an option value is not UTF-8".to_owned())
}

/// The OPTIONS part of `--help`, from [`GLOBAL`].
pub fn help() -> String {
    const WIDTH: usize = 28;
    let mut text = String::new();
    for o in GLOBAL.iter() {
        let Some(long) = o.long else { continue };
        let mut left = match o.short {
            Some(c) => format!("    -{c}, --{long}"),
            None => format!("    --{long}"),
        };
        if let Some(value) = o.value {
            left.push(' ');
            left.push_str(value);
        }
        let mut lines = o.help.split('\n');
        let first = lines.next().unwrap_or_default();
        if left.len() + 2 > WIDTH {
            text.push_str(&format!("{left}\n{:WIDTH$}{first}\n", ""));
        } else {
            text.push_str(&format!("{left:WIDTH$}{first}\n"));
        }
        for line in lines {
            text.push_str(&format!("{:WIDTH$}{line}\n", ""));
        }
        if let Some(env) = o.env {
            text.push_str(&format!("{:WIDTH$}[env {env}]\n", ""));
        }
    }
    text.push_str("\nSet only in the environment:\n");
    for o in GLOBAL.iter().filter(|o| o.long.is_none()) {
        if let Some(env) = o.env {
            text.push_str(&format!("    {env}\n{:WIDTH$}{}\n", "", o.help));
        }
    }
    text
}

pub(super) fn app_from_flags_and_env(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<App>> {
    if flags.broker.any() {
        if flags.app_id.is_some() || flags.private_key.is_some() {
            bail!(
                "{} is a broker option, and --app-id/--private-key an app's: one helper line is one kind of entry",
                flags.broker.first_given()
            );
        }
        let spec = super::broker::from_flags(&flags.broker, &super::broker::check_broker_url)
            .map_err(|e| anyhow!(e))?;
        let api_url = flags
            .api_url
            .clone()
            .map(|u| check_api_url(&u, "--api-url"))
            .or_else(|| env(env::API_URL).map(|u| check_api_url(&u, env::API_URL)))
            .transpose()?;
        let host = first_named(&[(flags.host.clone(), "--host"), (env(env::HOST), env::HOST)]);
        let (host, api_url) = super::broker::host_and_api(
            host.as_ref()
                .map(|(text, setting)| (text.as_str(), *setting)),
            api_url,
        )?;
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
    let has_key = flags.private_key.is_some()
        || env(env::PRIVATE_KEY).is_some()
        || env(env::PRIVATE_KEY_PATH).is_some();
    let user = user_spec(
        &id,
        flags.user_tokens,
        flags.private_key.is_some(),
        has_key,
        "--private-key",
    )?;
    if user.is_some()
        && (flags.installation_id.is_some() || flags.permissions.is_some() || flags.repo_scoped)
    {
        bail!(
            "--installation-id, --permissions and --repo-scoped are for installation tokens; a user token can do what the person and the app may"
        );
    }
    let key = if user.is_some() {
        None
    } else if let Some(path) = &flags.private_key {
        Some(key_reference(&path.to_string_lossy(), "--private-key")?)
    } else if let Some(pem) = env(env::PRIVATE_KEY) {
        Some(KeyRef::Env(Secret::new(pem)))
    } else if let Some(path) = env(env::PRIVATE_KEY_PATH) {
        Some(key_reference(&path, env::PRIVATE_KEY_PATH)?)
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
    let (host, api_url) =
        match first_named(&[(flags.host.clone(), "--host"), (env(env::HOST), env::HOST)]) {
            Some((text, setting)) => {
                let host = Host::parse(&text).context(setting)?;
                let api_url = match api_url {
                    Some(url) => Some(url),
                    None => ApiBase::of_host(&text, &host, setting)?,
                };
                (host, api_url)
            }
            None => (host_for(api_url.as_ref().map(ApiBase::as_str))?, api_url),
        };
    let permissions = flags
        .permissions
        .as_deref()
        .map(super::Permissions::parse)
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
        source: match (user, key) {
            (Some(spec), _) => SourceSpec::User(spec),
            (None, key) => SourceSpec::Installation(InstallationSpec {
                key: key.ok_or_else(|| anyhow!("app {id} has no private key"))?,
                id,
                installation_id,
                permissions,
                repo_scoped: flags.repo_scoped,
            }),
        },
    }))
}

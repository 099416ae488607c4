//! Configuration: which apps serve which hosts and owners, and how the helper behaves.
//!
//! Three sources, merged once per run with flags over environment over file:
//! - flags on the helper line (`helper = github-app --app-id 123 --private-key ~/app.pem`);
//! - environment (`GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY`, `GITHUB_APP_PRIVATE_KEY_PATH`, ...);
//! - a TOML file (`$XDG_CONFIG_HOME/git-credential-github-app/config.toml`) listing several apps.
//!
//! Flags and environment describe one app, which is tried before the file's apps. Values are parsed
//! into types here, so that every later stage works with an [`App`], never with raw strings.

use crate::keyref::kms_arn::KmsKey;
use crate::keyref::pkcs11_uri::Pkcs11Uri;
use crate::keyref::{KeyRef, Written};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod broker;
pub mod env;
pub mod file;
pub mod flags;
pub mod hosts;
pub mod permissions;

pub use file::default_config_path;
pub use flags::Flags;
pub use hosts::{ApiBase, Host, host_for};
pub use permissions::Permissions;

use file::{FileConfig, app_from_file, read_file};
use flags::app_from_flags_and_env;

/// The `iss` of the app's JWT: the numeric App ID or the client ID (`Iv1.…`, `Iv23li…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppId {
    Numeric(u64),
    ClientId(String),
}

impl AppId {
    pub fn parse(text: &str) -> Result<AppId> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u64>()
            && n > 0
        {
            return Ok(AppId::Numeric(n));
        }
        let looks_like_client_id = text.len() >= 8
            && text.len() <= 64
            && text.starts_with("Iv")
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        if looks_like_client_id {
            return Ok(AppId::ClientId(text.to_owned()));
        }
        if let Some(what) = secret_kind(text) {
            bail!(
                "the app id is {what} (not shown); give the numeric App ID or the client ID (Iv…) from the app's settings page"
            );
        }
        bail!(
            "app id {} is neither a numeric App ID nor a client ID (Iv…); both are on the app's settings page",
            quoted(text)
        )
    }

    /// The value sent as the JWT `iss` claim.
    pub fn iss(&self) -> String {
        match self {
            AppId::Numeric(n) => n.to_string(),
            AppId::ClientId(s) => s.clone(),
        }
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.iss())
    }
}

/// Where cached tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// The OS keyring when it really works, else the file cache.
    Auto,
    Keyring,
    File,
    None,
}

impl CacheMode {
    pub fn parse(text: &str) -> Result<CacheMode> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "auto" => CacheMode::Auto,
            "keyring" => CacheMode::Keyring,
            "file" => CacheMode::File,
            "none" | "off" => CacheMode::None,
            _ => bail!(
                "unknown cache mode {}: use auto, keyring, file or none",
                quoted(text)
            ),
        })
    }
}

/// One configured token source and what it serves: a host, optionally some owners, and where its
/// tokens come from ([`SourceSpec`]). `source::open` turns it into a token source.
#[derive(Debug, Clone)]
pub struct App {
    /// Where this entry was configured ("command line", "environment", "config.toml app #2").
    pub origin: String,
    pub host: Host,
    /// Explicit REST API base (`--api-url`, or `--host` given with a scheme); otherwise
    /// derived from the host and the protocol git uses.
    pub api_url: Option<ApiBase>,
    /// Owners (lower case) this entry answers for; empty means any owner its source serves.
    pub owners: Vec<String>,
    /// Where its tokens come from.
    pub source: SourceSpec,
}

/// Where an entry's tokens come from: one variant per kind of token source, holding that kind's
/// settings as parsed values. `source::open` has one arm per variant.
// A handful of entries per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Installation tokens minted with the GitHub App's private key.
    Installation(InstallationSpec),
    /// The logged-in person's user access token through the GitHub App (`source::user`).
    User(UserSpec),
    /// Tokens from a broker (octo-sts, chinmina) or a `token_command`.
    Broker(broker::BrokerSpec),
}

/// The settings of a user-token source: the GitHub App's client ID (no key: the person logs in
/// with the device flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub client_id: String,
}

/// The settings of an installation-token source: a GitHub App and its key.
#[derive(Debug, Clone)]
pub struct InstallationSpec {
    pub id: AppId,
    pub key: KeyRef,
    pub installation_id: Option<u64>,
    /// Permissions to ask for when minting (`contents = "read"`); empty means all the app has.
    pub permissions: Permissions,
    /// Mint each token for just the repository git is accessing (`repositories: [repo]`).
    pub repo_scoped: bool,
}

impl App {
    /// The REST API base URL without a trailing slash.
    pub fn api_url(&self, protocol: &str) -> String {
        match &self.api_url {
            Some(url) => url.as_str().to_owned(),
            None => self.host.default_api_url(protocol),
        }
    }

    /// The protocol git uses for this entry's host, for requests a command makes up: the API
    /// base's scheme when one was given (`--api-url`, or `--host https://…`), else https, except
    /// plain http for a loopback host (the local test GitHub).
    pub fn git_protocol(&self) -> &'static str {
        match &self.api_url {
            Some(url) => url.scheme(),
            None if self.host.is_loopback() => "http",
            None => "https",
        }
    }

    /// The installation settings, when this entry mints installation tokens.
    pub fn installation(&self) -> Option<&InstallationSpec> {
        match &self.source {
            SourceSpec::Installation(spec) => Some(spec),
            SourceSpec::User(_) => None,
            SourceSpec::Broker(_) => None,
        }
    }

    /// Whether this entry can answer a request that names no owner (git sent no path): only a
    /// source whose token does not depend on the owner (a fixed installation).
    pub fn serves_without_owner(&self) -> bool {
        match &self.source {
            SourceSpec::Installation(spec) => spec.installation_id.is_some(),
            // One login serves every owner the person and the app can reach.
            SourceSpec::User(_) => true,
            SourceSpec::Broker(_) => false,
        }
    }

    /// What to call this entry in messages: `app 123`.
    pub fn describe(&self) -> String {
        match &self.source {
            SourceSpec::Installation(spec) => format!("app {}", spec.id),
            SourceSpec::User(spec) => format!("app {} (user tokens)", spec.client_id),
            SourceSpec::Broker(spec) => spec.describe(),
        }
    }
}

impl InstallationSpec {
    /// A stable text for the token's permissions, part of the cache key.
    pub fn scope(&self) -> String {
        self.permissions.scope()
    }
}

/// Which installation-token format to ask GitHub for, with its temporary per-request override
/// header `X-GitHub-Stateless-S2S-Token` (changelog 2026-05-15): `default` sends no header and
/// takes what GitHub's rollout gives, `enabled` asks for the stateless `ghs_APPID_JWT` format,
/// `disabled` for the classic 40-character one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatelessTokens {
    #[default]
    Default,
    Enabled,
    Disabled,
}

impl StatelessTokens {
    pub fn parse(text: &str) -> Result<StatelessTokens> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "default" => StatelessTokens::Default,
            "enabled" => StatelessTokens::Enabled,
            "disabled" => StatelessTokens::Disabled,
            _ => bail!(
                "unknown token format {}: use default, enabled or disabled",
                quoted(text)
            ),
        })
    }

    /// The `X-GitHub-Stateless-S2S-Token` value to send, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            StatelessTokens::Default => None,
            StatelessTokens::Enabled => Some("enabled"),
            StatelessTokens::Disabled => Some("disabled"),
        }
    }
}

/// Resolved configuration for one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub apps: Vec<App>,
    pub cache: CacheMode,
    /// A cached token with less than this left is replaced.
    pub refresh_margin: Duration,
    /// Time budget of one get, from its start to its answer (a [`crate::github::Deadline`]):
    /// every candidate app, the wait for another process's lock, API calls and retries; a
    /// connection attempt gets a third of what is left, at most 10 s.
    pub timeout: Duration,
    pub username: String,
    /// `X-GitHub-Stateless-S2S-Token` on token requests.
    pub stateless_tokens: StatelessTokens,
    /// `[public_fallback]`: an app with a fixed installation that answers for owners none of
    /// `apps` is installed on (public repositories, with `http.<url>.proactiveAuth`).
    pub public_fallback: Option<App>,
}

pub const DEFAULT_MARGIN: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_USERNAME: &str = "x-access-token";

/// A user-token source, when asked for (`user_tokens`) or implied (a client ID and no key).
/// `explicit_key`: a key given in the same place as `user_tokens` (an error with it);
/// `has_key`: a key given anywhere for this app.
pub(crate) fn user_spec(
    id: &AppId,
    user_tokens: bool,
    explicit_key: bool,
    has_key: bool,
    key_setting: &str,
) -> Result<Option<UserSpec>> {
    match (id, user_tokens, has_key) {
        (AppId::ClientId(client_id), true, _) if !explicit_key => Ok(Some(UserSpec {
            client_id: client_id.clone(),
        })),
        (AppId::ClientId(_), true, _) => bail!(
            "app {id}: user tokens need no private key ({key_setting}): the person logs in with: git-credential-github-app login"
        ),
        (AppId::Numeric(_), true, _) => bail!(
            "user tokens need the app's client ID (Iv…, on the app's settings page), not its numeric App ID {id}"
        ),
        (AppId::ClientId(client_id), false, false) => Ok(Some(UserSpec {
            client_id: client_id.clone(),
        })),
        _ => Ok(None),
    }
}

/// Merge flags, environment (through `getenv`) and the config file into a [`Config`].
pub fn resolve(flags: &Flags, getenv: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let env = |name: &str| getenv(name).filter(|v| !v.trim().is_empty());
    let (file_path, explicit) = match first_named(&[
        (
            flags.config.clone().map(PathBuf::into_os_string),
            "--config",
        ),
        (env(env::CONFIG).map(Into::into), env::CONFIG),
    ]) {
        Some((p, setting)) => {
            let text = p.to_string_lossy();
            // A value that names no file and looks like a secret (a PEM, a base64 blob, a token:
            // pasted into the wrong variable) is never echoed.
            if let Some(what) = secret_kind(&text).filter(|_| !Path::new(&p).exists()) {
                bail!("{setting} is {what} (not shown), not the path of a config file");
            }
            (Some(expand_home(Path::new(&p))), true)
        }
        None => (default_config_path(), false),
    };
    let file = match &file_path {
        Some(path) => read_file(path, explicit)?,
        None => FileConfig::default(),
    };

    let mut apps = Vec::new();
    if let Some(app) = app_from_flags_and_env(flags, &env)? {
        apps.push(app);
    }
    let base = file_path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    for (i, fa) in file.apps.iter().enumerate() {
        let origin = format!(
            "{} app #{}",
            file_path
                .as_deref()
                .unwrap_or(Path::new("config"))
                .display(),
            i + 1
        );
        let app = app_from_file(fa, base.as_deref(), origin.clone()).with_context(|| origin)?;
        apps.push(app);
    }
    for (i, fb) in file.brokers.iter().enumerate() {
        let origin = format!(
            "{} broker #{}",
            file_path
                .as_deref()
                .unwrap_or(Path::new("config"))
                .display(),
            i + 1
        );
        let app = broker::broker_from_file(fb, base.as_deref(), origin.clone())
            .with_context(|| origin)?;
        apps.push(app);
    }
    let public_fallback = match &file.public_fallback {
        Some(fa) => {
            let origin = format!(
                "{} [public_fallback]",
                file_path
                    .as_deref()
                    .unwrap_or(Path::new("config"))
                    .display()
            );
            let app = app_from_file(fa, base.as_deref(), origin.clone())
                .with_context(|| origin.clone())?;
            if !app.serves_without_owner() {
                bail!(
                    "{origin}: installation_id is required (the installation whose tokens answer for owners without one of your apps)"
                );
            }
            if !app.owners.is_empty() || app.installation().is_some_and(|i| i.repo_scoped) {
                bail!("{origin}: owners and repo_scoped do not apply to the public fallback");
            }
            Some(app)
        }
        None => None,
    };

    let cache = first_named(&[
        (flags.cache.clone(), "--cache"),
        (env(env::CACHE), env::CACHE),
        (file.cache.clone(), "config file: cache"),
    ])
    .map(|(s, setting)| CacheMode::parse(&s).context(setting))
    .transpose()?
    .unwrap_or(CacheMode::Auto);
    let refresh_margin = first_named(&[
        (flags.refresh_margin.clone(), "--refresh-margin"),
        (env(env::REFRESH_MARGIN), env::REFRESH_MARGIN),
        (file.refresh_margin.clone(), "config file: refresh_margin"),
    ])
    .map(|(s, setting)| parse_duration(&s, "refresh margin").context(setting))
    .transpose()?
    .unwrap_or(DEFAULT_MARGIN);
    if refresh_margin >= Duration::from_secs(55 * 60) {
        bail!(
            "refresh margin {} is too long: installation tokens live one hour",
            humantime::format_duration(refresh_margin)
        );
    }
    let timeout = first_named(&[
        (flags.timeout.clone(), "--timeout"),
        (env(env::TIMEOUT), env::TIMEOUT),
        (file.timeout.clone(), "config file: timeout"),
    ])
    .map(|(s, setting)| parse_duration(&s, "timeout").context(setting))
    .transpose()?
    .unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        bail!(
            "timeout must be more than zero and at most {}",
            humantime::format_duration(MAX_TIMEOUT)
        );
    }
    let (username, setting) = first_named(&[
        (flags.username.clone(), "--username"),
        (file.username.clone(), "config file: username"),
    ])
    .unwrap_or_else(|| (DEFAULT_USERNAME.to_owned(), "username"));
    if let Some(what) = secret_kind(&username) {
        bail!(
            "{setting} is {what} (not shown), not a user name; the default x-access-token is what GitHub expects"
        );
    }
    if username.is_empty() || !username.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "{setting}: username {} must be printable ASCII without spaces",
            quoted(&username)
        );
    }
    let stateless_tokens = first_named(&[
        (env(env::STATELESS_TOKENS), env::STATELESS_TOKENS),
        (
            file.stateless_tokens.clone(),
            "config file: stateless_tokens",
        ),
    ])
    .map(|(s, setting)| StatelessTokens::parse(&s).context(setting))
    .transpose()?
    .unwrap_or_default();
    Ok(Config {
        apps,
        cache,
        refresh_margin,
        timeout,
        username,
        stateless_tokens,
        public_fallback,
    })
}

/// The first value given, with the name of the setting it came from (for messages).
fn first_named<T: Clone>(options: &[(Option<T>, &'static str)]) -> Option<(T, &'static str)> {
    options
        .iter()
        .find_map(|(value, name)| value.clone().map(|v| (v, *name)))
}

/// Whether `owner` is a GitHub login as routing accepts it from a repository path: letters, digits
/// and hyphens, no leading or trailing hyphen (39 at most; more with the `_shortcode` suffix of
/// Enterprise Managed Users, which is why `_` is allowed inside).
pub fn is_login(owner: &str) -> bool {
    (1..=64).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !owner.starts_with(['-', '_'])
        && !owner.ends_with('-')
}

/// An owner as configured: a GitHub login (see [`is_login`]: an owner routing could never match
/// is refused), compared in lower case.
fn check_owner(text: &str) -> Result<String> {
    let owner = text.trim();
    if let Some(what) = secret_kind(owner) {
        bail!("the owner is {what} (not shown), not a user or organisation name");
    }
    if !is_login(owner) {
        bail!(
            "owner {} is not a GitHub user or organisation name",
            quoted(owner)
        );
    }
    Ok(owner.to_ascii_lowercase())
}

fn parse_installation_id(text: &str) -> Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => match secret_kind(text) {
            Some(what) => bail!("the installation id is {what} (not shown), not a number"),
            None => bail!("installation id {} is not a positive number", quoted(text)),
        },
    }
}

/// `10m`, `90s`, `1h 5m`, or a bare number of seconds.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|_| anyhow!("{what} {} is not a duration like 10m or 90s", quoted(text)))
}

/// A key *path* setting: refuses PEM text (a common CI mix-up) without ever echoing it.
/// A key named by one string (`--private-key`, `private_key`, `GITHUB_APP_PRIVATE_KEY_PATH`): a
/// `pkcs11:` URI, an AWS KMS key ARN, or a PEM file path.
fn key_reference(text: &str, setting: &str) -> Result<KeyRef> {
    let text = text.trim();
    Ok(match Written::of(text) {
        Written::KmsArn => {
            KeyRef::AwsKms(KmsKey::parse(text).with_context(|| format!("in {setting}"))?)
        }
        Written::Pkcs11Uri => {
            KeyRef::Pkcs11(Pkcs11Uri::parse(text).with_context(|| format!("in {setting}"))?)
        }
        Written::Path => KeyRef::File(key_path(Path::new(text), setting)?),
    })
}

fn key_path(text: &Path, setting: &str) -> Result<PathBuf> {
    let raw = text.to_string_lossy();
    // A file name of a token's shape, without any directory, is a token pasted into a path.
    if let Some(what) = secret_kind(&raw).filter(|_| !raw.contains(['/', '-'])) {
        bail!("{setting} is {what} (not shown), not a path to a private key file");
    }
    if raw.contains("-----BEGIN") || raw.contains('\n') || raw.len() > 4096 {
        bail!(
            "{setting} holds the key itself, not a path to it; put the PEM text in {} instead",
            env::PRIVATE_KEY
        );
    }
    Ok(expand_home(text))
}

/// What a value a user gave looks like if it could be a secret pasted into the wrong place: a
/// PEM key, a GitHub token, a client secret or another long random string. Such values are never
/// echoed in a message, whatever the setting.
pub fn secret_kind(text: &str) -> Option<&'static str> {
    crate::secret::kind(text)
}

/// A value a user gave, as it may appear in a message: quoted with control characters escaped,
/// or `(not shown)` when it could be a secret (see [`secret_kind`]).
pub fn quoted(text: &str) -> String {
    match secret_kind(text) {
        Some(what) => format!("({what}, not shown)"),
        None if text.contains(['\n', '\r']) || text.chars().count() > 64 => {
            "(a long or multi-line value, not shown)".to_owned()
        }
        None => format!("'{}'", crate::protocol::printable(text)),
    }
}

fn expand_home(path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use file::hide_quoted_values;

    #[test]
    fn owners_routing_could_never_match_are_refused() {
        for bad in ["a.b", "-acme", "acme-", "_acme", "ac me", ""] {
            let f = Flags {
                owners: vec![bad.into()],
                ..flags("1", "/k.pem")
            };
            let e = format!("{:#}", resolve(&f, &no_env).unwrap_err());
            assert!(e.contains("--owner"), "{bad}: {e}");
        }
        let f = Flags {
            owners: vec!["Acme-Corp".into(), "octo_emu".into()],
            ..flags("1", "/k.pem")
        };
        assert_eq!(
            resolve(&f, &no_env).unwrap().apps[0].owners,
            ["acme-corp", "octo_emu"]
        );
    }

    fn inst(app: &App) -> &InstallationSpec {
        app.installation().expect("an installation-token app")
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn flags(app_id: &str, key: &str) -> Flags {
        Flags {
            app_id: Some(app_id.into()),
            private_key: Some(key.into()),
            config: Some("/dev/null".into()),
            ..Flags::default()
        }
    }

    #[test]
    fn the_host_comes_from_the_api_url_unless_given() {
        for (url, host) in [
            ("https://api.github.com", "github.com"),
            ("https://api.acme.ghe.com/", "acme.ghe.com"),
            ("https://ghe.example.com/api/v3", "ghe.example.com"),
            (
                "https://ghe.example.com:8443/api/v3",
                "ghe.example.com:8443",
            ),
            ("http://127.0.0.1:8080/api/v3", "127.0.0.1:8080"),
        ] {
            assert_eq!(host_for(Some(url)).unwrap().as_str(), host, "{url}");
            let f = Flags {
                api_url: Some(url.into()),
                ..flags("1", "/k.pem")
            };
            let c = resolve(&f, &no_env).unwrap();
            assert_eq!(c.apps[0].host.as_str(), host, "{url}");
        }
        assert_eq!(host_for(None).unwrap().as_str(), "github.com");
        let f = Flags {
            api_url: Some("https://ghe.example.com/api/v3".into()),
            host: Some("git.example.com".into()),
            ..flags("1", "/k.pem")
        };
        assert_eq!(
            resolve(&f, &no_env).unwrap().apps[0].host.as_str(),
            "git.example.com",
            "an explicit --host is honoured"
        );
    }

    #[test]
    fn app_ids() {
        assert_eq!(AppId::parse("123456").unwrap(), AppId::Numeric(123456));
        assert_eq!(
            AppId::parse("Iv23liAbCdEf012345").unwrap(),
            AppId::ClientId("Iv23liAbCdEf012345".into())
        );
        assert_eq!(
            AppId::parse("Iv1.ab1112223334445c").unwrap().iss(),
            "Iv1.ab1112223334445c"
        );
        assert!(
            AppId::parse("my-app")
                .unwrap_err()
                .to_string()
                .contains("neither a numeric App ID")
        );
        assert!(AppId::parse("0").is_err());
        let secret = "0123456789abcdef0123456789abcdef01234567";
        let e = AppId::parse(secret).unwrap_err().to_string();
        assert!(
            e.contains("client secret") && !e.contains(&secret[..8]),
            "the secret is not echoed: {e}"
        );
    }

    #[test]
    fn a_pem_in_a_path_setting_is_refused_without_echoing_it() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretbody\n-----END RSA PRIVATE KEY-----\n";
        let env = |name: &str| match name {
            env::APP_ID => Some("1".to_owned()),
            env::PRIVATE_KEY_PATH => Some(pem.to_owned()),
            _ => None,
        };
        let e = format!(
            "{:#}",
            resolve(
                &Flags {
                    config: Some("/dev/null".into()),
                    ..Flags::default()
                },
                &env
            )
            .unwrap_err()
        );
        assert!(
            e.contains("holds the key itself") && !e.contains("MIIE"),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_do_not_quote_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[[app]]\napp_id = 1\nprivate_key_pem = \"-----BEGIN RSA PRIVATE KEY-----MIIEsecretbody\"\n").unwrap();
        let e = format!(
            "{:#}",
            resolve(
                &Flags {
                    config: Some(path),
                    ..Flags::default()
                },
                &no_env
            )
            .unwrap_err()
        );
        assert!(e.contains("line 3") && !e.contains("MIIE"), "{e}");
    }

    #[test]
    fn hosts_and_api_urls() {
        let h = |s| Host::parse(s).unwrap();
        assert_eq!(h("GitHub.com:443"), h("github.com"));
        assert_eq!(h("https://github.com/").as_str(), "github.com");
        assert_eq!(
            h("github.com").default_api_url("https"),
            "https://api.github.com"
        );
        assert_eq!(
            h("octocorp.ghe.com").default_api_url("https"),
            "https://api.octocorp.ghe.com"
        );
        assert_eq!(
            h("ghe.example.com").default_api_url("https"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            h("127.0.0.1:8080").default_api_url("http"),
            "http://127.0.0.1:8080/api/v3"
        );
        assert!(h("127.0.0.1:8080").is_loopback());
        assert!(h("[::1]:8080").is_loopback());
        assert!(h("localhost").is_loopback());
        assert!(!h("github.com").is_loopback());
        assert!(!h("127.0.0.1.evil.com").is_loopback());
        assert!(Host::parse("a b").is_err());
        assert_eq!(
            Host::normalize("http", "LOCALHOST:80").as_str(),
            "localhost"
        );
    }

    #[test]
    fn a_host_given_with_a_scheme_keeps_it() {
        let with = |host: &str| Flags {
            host: Some(host.into()),
            ..flags("1", "/k.pem")
        };
        let c = resolve(&with("https://127.0.0.1:8443"), &no_env).unwrap();
        assert_eq!(c.apps[0].git_protocol(), "https");
        assert_eq!(c.apps[0].api_url("http"), "https://127.0.0.1:8443/api/v3");
        let c = resolve(&with("127.0.0.1:8080"), &no_env).unwrap();
        assert_eq!(
            c.apps[0].git_protocol(),
            "http",
            "loopback without a scheme"
        );
        assert_eq!(c.apps[0].api_url("http"), "http://127.0.0.1:8080/api/v3");
        let c = resolve(&with("https://GitHub.com/"), &no_env).unwrap();
        assert_eq!(c.apps[0].api_url("https"), "https://api.github.com");
        let e = format!(
            "{:#}",
            resolve(&with("http://ghe.example.com"), &no_env).unwrap_err()
        );
        assert!(e.contains("plain http"), "{e}");
    }

    #[test]
    fn api_url_must_be_https_except_loopback() {
        let ok = |u| {
            hosts::check_api_url(u, "--api-url")
                .unwrap()
                .as_str()
                .to_owned()
        };
        let err = |u| format!("{:#}", hosts::check_api_url(u, "--api-url").unwrap_err());
        assert_eq!(
            ok("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(ok("http://127.0.0.1:9/api/v3"), "http://127.0.0.1:9/api/v3");
        assert_eq!(ok("http://[::1]:9/api/v3"), "http://[::1]:9/api/v3");
        assert_eq!(ok("http://localhost/api/v3"), "http://localhost/api/v3");
        assert!(err("http://ghe.example.com/api/v3").contains("plain http"));
        assert!(err("ftp://x").contains("must start with https://"));
        // A query or fragment would end up in every request (and in the cache keys).
        for url in [
            "https://ghe.example.com/api/v3?x=1",
            "https://ghe.example.com/api/v3#frag",
            "https://ghe.example.com?/api/v3",
        ] {
            let e = err(url);
            assert!(
                e.starts_with("--api-url has a query or fragment"),
                "{url}: {e}"
            );
        }
        // Not loopback, and not a host at all.
        for url in [
            "http://[::1]evil.example/api/v3",
            "http://[::1]evil.example:80/api/v3",
            "https://[::1]evil.example/api/v3",
            "http://127.0.0.1:80:80/api/v3",
            "http://[nothex]/api/v3",
            "http:///api/v3",
        ] {
            let e = err(url);
            assert!(
                e.starts_with("--api-url does not have a valid host name"),
                "{url}: {e}"
            );
        }
        assert!(err("https://user:pw@ghe.example.com/api/v3").contains("user name or password"));
        assert!(err("https://ghe.example.com/api v3").contains("spaces"));
        assert!(!Host::normalize("http", "[::1]evil.example").is_loopback());
        assert!(!Host::normalize("http", "[::1]:x").is_loopback());
        assert!(Host::normalize("http", "[::1]:8080").is_loopback());
    }

    #[test]
    fn flags_win_over_environment() {
        let env = |name: &str| match name {
            env::APP_ID => Some("999".to_owned()),
            env::PRIVATE_KEY => Some("-----BEGIN RSA PRIVATE KEY-----".to_owned()),
            env::CACHE => Some("file".to_owned()),
            _ => None,
        };
        let mut f = flags("123", "/k.pem");
        f.cache = Some("none".into());
        let c = resolve(&f, &env).unwrap();
        assert_eq!(inst(&c.apps[0]).id, AppId::Numeric(123));
        assert!(matches!(&inst(&c.apps[0]).key, KeyRef::File(p) if p == Path::new("/k.pem")));
        assert_eq!(c.cache, CacheMode::None);
        let c = resolve(
            &Flags {
                config: f.config.clone(),
                ..Flags::default()
            },
            &env,
        )
        .unwrap();
        assert_eq!(inst(&c.apps[0]).id, AppId::Numeric(999));
        assert!(matches!(&inst(&c.apps[0]).key, KeyRef::Env(_)));
        assert_eq!(c.cache, CacheMode::File);
        assert_eq!(c.refresh_margin, DEFAULT_MARGIN);
    }

    #[test]
    fn an_app_without_a_key_is_an_error() {
        let f = Flags {
            app_id: Some("1".into()),
            config: Some("/dev/null".into()),
            ..Flags::default()
        };
        let err = resolve(&f, &no_env).unwrap_err().to_string();
        assert!(err.contains("no private key"), "{err}");
    }

    #[test]
    fn file_apps_follow_the_command_line_app() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
cache = "file"
refresh_margin = "15m"

[[app]]
app_id = 42
private_key_path = "keys/acme.pem"
owners = ["Acme"]
permissions = { contents = "read" }

[[app]]
app_id = "Iv23liAbCdEf012345"
private_key_path = "/abs/ghe.pem"
host = "ghe.example.com"
installation_id = 7
"#,
        )
        .unwrap();
        let f = Flags {
            config: Some(path.clone()),
            cache: Some("keyring".into()),
            ..flags("1", "/a.pem")
        };
        let c = resolve(&f, &no_env).unwrap();
        assert_eq!(c.apps.len(), 3);
        assert_eq!(c.cache, CacheMode::Keyring);
        assert_eq!(c.refresh_margin, Duration::from_secs(900));
        let acme = &c.apps[1];
        assert_eq!(acme.owners, vec!["acme"]);
        assert!(
            matches!(&inst(acme).key, KeyRef::File(p) if p == &dir.path().join("keys/acme.pem"))
        );
        assert_eq!(inst(acme).scope(), "contents:read");
        assert_eq!(c.apps[2].api_url("https"), "https://ghe.example.com/api/v3");
        assert_eq!(inst(&c.apps[2]).installation_id, Some(7));
    }

    fn resolve_file(toml: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        resolve(
            &Flags {
                config: Some(path),
                ..Flags::default()
            },
            &no_env,
        )
    }

    #[test]
    #[cfg_attr(not(unix), ignore = "Unix paths in the config file")]
    fn key_sources_in_the_file() {
        let c = resolve_file(
            "[[app]]\napp_id = 1\nsigner = [\"openssl\", \"dgst\"]\npublic_key = \"/k.pub\"\n\
             [[app]]\napp_id = 2\nprivate_key = \"/k.pem\"\n",
        )
        .unwrap();
        assert!(
            matches!(&inst(&c.apps[0]).key, KeyRef::Command { argv, public_key }
            if argv == &["openssl", "dgst"] && public_key.as_deref() == Some(Path::new("/k.pub")))
        );
        assert!(matches!(&inst(&c.apps[1]).key, KeyRef::File(p) if p == Path::new("/k.pem")));
        let c = resolve_file(
            "[[app]]\napp_id = 1\nprivate_key = \"arn:aws:kms:eu-west-1:123456789012:alias/gh\"\n\
             [[app]]\napp_id = 2\nprivate_key = \"pkcs11:object=gh?module-name=softhsm2\"\n",
        )
        .unwrap();
        assert!(matches!(&inst(&c.apps[0]).key, KeyRef::AwsKms(k) if k.region == "eu-west-1"));
        assert!(
            matches!(&inst(&c.apps[1]).key, KeyRef::Pkcs11(u) if u.object.as_deref() == Some("gh"))
        );
        let flags = Flags {
            app_id: Some("1".into()),
            private_key: Some("arn:aws:kms:us-east-1:123456789012:key/abc".into()),
            ..Flags::default()
        };
        assert!(matches!(
            &inst(&resolve(&flags, &no_env).unwrap().apps[0]).key,
            KeyRef::AwsKms(_)
        ));
        for (toml, expected) in [
            ("app_id = 1\n", "has no key"),
            ("app_id = 1\nsigner = []\n", "signer is empty"),
            (
                "app_id = 1\nprivate_key = \"/k\"\nsigner = [\"x\"]\n",
                "only one of",
            ),
            (
                "app_id = 1\nprivate_key_path = \"/k\"\npublic_key = \"/p\"\n",
                "public_key belongs beside signer",
            ),
        ] {
            let e = format!(
                "{:#}",
                resolve_file(&format!("[[app]]\n{toml}")).unwrap_err()
            );
            assert!(e.contains(expected), "{toml}: {e}");
        }
    }

    #[test]
    fn bad_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[[app]]\napp_id = 1\nprivate_key_pem = \"x\"\n").unwrap();
        let err = resolve(
            &Flags {
                config: Some(path),
                ..Flags::default()
            },
            &no_env,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("config.toml"), "{err:#}");
    }

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAzSECRETPEMBODY0123456789\n-----END RSA PRIVATE KEY-----\n";
    const PAT: &str = "ghp_SECRETpat0123456789abcdefghijklmnopq";
    const CLIENT_SECRET: &str = "c0ffee5ec7e7c0ffee5ec7e70123456789abcdef";

    /// Whether `message` shows any recognisable part of `secret`.
    fn echoes(message: &str, secret: &str) -> bool {
        let chars: Vec<char> = secret.chars().filter(|c| !c.is_whitespace()).collect();
        let flat: String = message.chars().filter(|c| !c.is_whitespace()).collect();
        chars
            .windows(8)
            .map(|w| w.iter().collect::<String>())
            .filter(|w| !w.starts_with("-----") && !w.contains("PRIVATE") && !w.contains("KEY-"))
            .any(|w| flat.contains(&w))
    }

    #[test]
    fn no_setting_echoes_a_secret_and_each_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        for secret in [PEM, PAT, CLIENT_SECRET] {
            // Flags: each one that takes a value (from the table of global options) set to the
            // secret on an otherwise valid command line.
            for option in flags::GLOBAL.iter().filter(|o| o.value.is_some()) {
                let Some(long) = option.long else { continue };
                let name = format!("--{long}");
                let mut f = flags("1", "/k.pem");
                if option.name == flags::Name::AppId {
                    f.app_id = None;
                }
                f.set(option.name, Some(secret.to_owned()));
                let e = format!("{:#}", resolve(&f, &no_env).unwrap_err());
                assert!(!echoes(&e, secret), "{name} echoes: {e}");
                assert!(e.contains(&name), "{name} not named: {e}");
            }
            // Environment variables.
            for name in [
                env::APP_ID,
                env::PRIVATE_KEY_PATH,
                env::INSTALLATION_ID,
                env::API_URL,
                env::HOST,
                env::CONFIG,
                env::CACHE,
                env::REFRESH_MARGIN,
                env::TIMEOUT,
            ] {
                let getenv = |n: &str| match n {
                    _ if n == name => Some(secret.to_owned()),
                    env::APP_ID => Some("1".to_owned()),
                    env::PRIVATE_KEY_PATH => Some("/k.pem".to_owned()),
                    env::CONFIG => Some("/dev/null".to_owned()),
                    _ => None,
                };
                let e = format!("{:#}", resolve(&Flags::default(), &getenv).unwrap_err());
                assert!(!echoes(&e, secret), "{name} echoes: {e}");
                assert!(e.contains(name), "{name} not named: {e}");
            }
            // Config file fields, as a string where a string belongs and where another type does.
            let q = serde_json::to_string(secret).unwrap(); // a valid TOML basic string
            let app = |field: &str| {
                let mut lines = vec![
                    "[[app]]".to_owned(),
                    "app_id = 1".to_owned(),
                    "private_key_path = \"/k.pem\"".to_owned(),
                ];
                lines.retain(|l| !l.starts_with(&format!("{field} ")));
                lines
            };
            let field_cases: Vec<(&str, Vec<String>)> = vec![
                (
                    "app_id",
                    [app("app_id"), vec![format!("app_id = {q}")]].concat(),
                ),
                (
                    "private_key_path",
                    [
                        app("private_key_path"),
                        vec![format!("private_key_path = {q}")],
                    ]
                    .concat(),
                ),
                ("host", [app(""), vec![format!("host = {q}")]].concat()),
                (
                    "api_url",
                    [app(""), vec![format!("api_url = {q}")]].concat(),
                ),
                (
                    "installation_id",
                    [app(""), vec![format!("installation_id = {q}")]].concat(),
                ),
                ("owners", [app(""), vec![format!("owners = {q}")]].concat()),
                (
                    "owners",
                    [app(""), vec![format!("owners = [{q}]")]].concat(),
                ),
                (
                    "permissions",
                    [app(""), vec![format!("permissions = {q}")]].concat(),
                ),
                (
                    "contents",
                    [app(""), vec![format!("permissions = {{ contents = {q} }}")]].concat(),
                ),
                ("cache", vec![format!("cache = {q}")]),
                ("refresh_margin", vec![format!("refresh_margin = {q}")]),
                ("timeout", vec![format!("timeout = {q}")]),
                ("username", vec![format!("username = {q}")]),
                ("timeout", vec![format!("timeout = [{q}]")]),
            ];
            for (name, lines) in field_cases {
                // Top-level keys go before the first table.
                let text = lines.join("\n") + "\n";
                let path = dir.path().join("config.toml");
                std::fs::write(&path, &text).unwrap();
                let f = Flags {
                    config: Some(path),
                    ..Flags::default()
                };
                let e = format!("{:#}", resolve(&f, &no_env).unwrap_err());
                assert!(!echoes(&e, secret), "{name} echoes: {e}\n{text}");
                assert!(e.contains(name), "{name} not named: {e}\n{text}");
            }
        }
    }

    #[test]
    fn harmless_values_are_still_shown() {
        let e = format!("{:#}", CacheMode::parse("fast").unwrap_err());
        assert!(e.contains("'fast'"), "{e}");
        let e = format!("{:#}", parse_duration("soon", "timeout").unwrap_err());
        assert!(e.contains("'soon'"), "{e}");
        assert_eq!(
            quoted(&"x".repeat(65)),
            "(a long or multi-line value, not shown)"
        );
        assert_eq!(
            hide_quoted_values("invalid type: string \"ghp_abc\", expected u64"),
            "invalid type: string (a GitHub token, not shown), expected u64"
        );
        assert_eq!(
            hide_quoted_values("unknown field `private_key`, expected `app_id`"),
            "unknown field `private_key`, expected `app_id`"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("600", "x").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(parse_duration("5m", "x").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon", "x").is_err());
        let f = Flags {
            refresh_margin: Some("2h".into()),
            ..flags("1", "/k")
        };
        assert!(resolve(&f, &no_env).is_err());
    }

    #[test]
    fn stateless_tokens_values() {
        assert_eq!(
            StatelessTokens::parse("enabled").unwrap().header(),
            Some("enabled")
        );
        assert_eq!(
            StatelessTokens::parse(" Disabled ").unwrap().header(),
            Some("disabled")
        );
        assert_eq!(StatelessTokens::parse("default").unwrap().header(), None);
        assert!(StatelessTokens::parse("on").is_err());
    }
}

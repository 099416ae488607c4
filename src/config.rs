//! Configuration: which apps serve which hosts and owners, and how the helper behaves.
//!
//! Three sources, merged once per run with flags over environment over file:
//! - flags on the helper line (`helper = github-app --app-id 123 --private-key ~/app.pem`);
//! - environment (`GITHUB_APP_ID`, `GITHUB_APP_PRIVATE_KEY`, `GITHUB_APP_PRIVATE_KEY_PATH`, ...);
//! - a TOML file (`$XDG_CONFIG_HOME/git-credential-github-app/config.toml`) listing several apps.
//!
//! Flags and environment describe one app, which is tried before the file's apps. Values are parsed
//! into types here, so that every later stage works with an [`App`], never with raw strings.

use crate::secret::Secret;
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variables read by the helper (besides `HOME`/`XDG_*`).
pub mod env {
    pub const APP_ID: &str = "GITHUB_APP_ID";
    pub const PRIVATE_KEY: &str = "GITHUB_APP_PRIVATE_KEY";
    pub const PRIVATE_KEY_PATH: &str = "GITHUB_APP_PRIVATE_KEY_PATH";
    pub const INSTALLATION_ID: &str = "GITHUB_APP_INSTALLATION_ID";
    pub const API_URL: &str = "GITHUB_APP_API_URL";
    pub const HOST: &str = "GITHUB_APP_HOST";
    pub const CONFIG: &str = "GIT_CREDENTIAL_GITHUB_APP_CONFIG";
    pub const CACHE: &str = "GIT_CREDENTIAL_GITHUB_APP_CACHE";
    pub const REFRESH_MARGIN: &str = "GIT_CREDENTIAL_GITHUB_APP_REFRESH_MARGIN";
    pub const TIMEOUT: &str = "GIT_CREDENTIAL_GITHUB_APP_TIMEOUT";
    pub const TRACE: &str = "GIT_CREDENTIAL_GITHUB_APP_TRACE";
    pub const STATELESS_TOKENS: &str = "GIT_CREDENTIAL_GITHUB_APP_STATELESS_TOKENS";
}

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
        let shown = crate::protocol::printable(text);
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "the app id looks like a client secret (not shown); give the numeric App ID or the client ID (Iv…) from the app's settings page"
            );
        }
        bail!(
            "app id '{shown}' is neither a numeric App ID nor a client ID (Iv…); both are on the app's settings page"
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

/// Where the app's private key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    /// The PEM text itself, from `GITHUB_APP_PRIVATE_KEY`.
    Env(Secret),
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
            other => bail!(
                "unknown cache mode '{}': use auto, keyring, file or none",
                crate::protocol::printable(other)
            ),
        })
    }
}

/// A host as compared in routing: lower case, without the protocol's default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    /// Accepts `github.com`, `GitHub.com:443`, `https://ghe.example.com/`, `127.0.0.1:8080`.
    pub fn parse(text: &str) -> Result<Host> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (Some(s), r),
            None => (None, text),
        };
        let host = rest.trim_end_matches('/');
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !valid {
            bail!("'{}' is not a host name", crate::protocol::printable(text));
        }
        Ok(Host::normalize(scheme.unwrap_or("https"), host))
    }

    /// The form used for comparison, for a host as git sends it with `protocol`.
    pub fn normalize(protocol: &str, host: &str) -> Host {
        let lower = host.to_ascii_lowercase();
        let default_port = if protocol == "http" { ":80" } else { ":443" };
        Host(
            lower
                .strip_suffix(default_port)
                .map(str::to_owned)
                .unwrap_or(lower),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without port or IPv6 brackets.
    pub fn name(&self) -> &str {
        let h = &self.0;
        if let Some(rest) = h.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        h.rsplit_once(':').map_or(h.as_str(), |(name, _)| name)
    }

    /// 127.0.0.0/8, `::1` and `localhost`: the only hosts plain http is allowed for.
    pub fn is_loopback(&self) -> bool {
        let name = self.name();
        if name == "localhost" {
            return true;
        }
        name.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }

    /// The REST API base for this host: github.com → api.github.com, `SUB.ghe.com` → api.SUB.ghe.com,
    /// anything else is GitHub Enterprise Server at `PROTOCOL://HOST/api/v3`.
    pub fn default_api_url(&self, protocol: &str) -> String {
        let name = self.name();
        if name == "github.com" && self.0 == "github.com" {
            "https://api.github.com".to_owned()
        } else if name.ends_with(".ghe.com") && self.0 == name {
            format!("https://api.{name}")
        } else {
            format!("{protocol}://{}/api/v3", self.0)
        }
    }
}

/// One GitHub App and what it serves.
#[derive(Debug, Clone)]
pub struct App {
    /// Where this app was configured ("command line", "environment", "config.toml app #2").
    pub origin: String,
    pub id: AppId,
    pub key: KeySource,
    pub host: Host,
    /// Explicit REST API base; otherwise derived from the host.
    pub api_url: Option<String>,
    pub installation_id: Option<u64>,
    /// Owners (lower case) this app answers for; empty means any owner it is installed on.
    pub owners: Vec<String>,
    /// Permissions to ask for when minting (`contents = "read"`); empty means all the app has.
    pub permissions: BTreeMap<String, String>,
}

impl App {
    /// The REST API base URL without a trailing slash.
    pub fn api_url(&self, protocol: &str) -> String {
        match &self.api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => self.host.default_api_url(protocol),
        }
    }

    /// A stable text for the token's scope, part of the cache key.
    pub fn scope(&self) -> String {
        self.permissions
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
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
                "stateless_tokens '{}' must be default, enabled or disabled",
                crate::protocol::printable(text)
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
    /// Time budget for all API calls of one get, retries included; connecting gets a third of
    /// it, at most 10 s.
    pub timeout: Duration,
    pub username: String,
    pub verbose: bool,
    /// `X-GitHub-Stateless-S2S-Token` on token requests.
    pub stateless_tokens: StatelessTokens,
}

pub const DEFAULT_MARGIN: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_USERNAME: &str = "x-access-token";

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
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cache: Option<String>,
    refresh_margin: Option<String>,
    timeout: Option<String>,
    username: Option<String>,
    stateless_tokens: Option<String>,
    #[serde(default, rename = "app")]
    apps: Vec<FileApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    app_id: StringOrNumber,
    private_key_path: PathBuf,
    host: Option<String>,
    api_url: Option<String>,
    installation_id: Option<u64>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(u64),
    String(String),
}

impl StringOrNumber {
    fn text(&self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(s) => s.clone(),
        }
    }
}

/// The default config file path.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("git-credential-github-app").join("config.toml"))
}

/// Merge flags, environment (through `getenv`) and the config file into a [`Config`].
pub fn resolve(flags: &Flags, getenv: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let env = |name: &str| getenv(name).filter(|v| !v.trim().is_empty());
    let (file_path, explicit) = match flags
        .config
        .clone()
        .or_else(|| env(env::CONFIG).map(PathBuf::from))
    {
        Some(p) => (Some(expand_home(&p)), true),
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

    let cache = first(&[flags.cache.clone(), env(env::CACHE), file.cache.clone()])
        .map(|s| CacheMode::parse(&s))
        .transpose()?
        .unwrap_or(CacheMode::Auto);
    let refresh_margin = first(&[
        flags.refresh_margin.clone(),
        env(env::REFRESH_MARGIN),
        file.refresh_margin.clone(),
    ])
    .map(|s| parse_duration(&s, "refresh margin"))
    .transpose()?
    .unwrap_or(DEFAULT_MARGIN);
    if refresh_margin >= Duration::from_secs(55 * 60) {
        bail!(
            "refresh margin {} is too long: installation tokens live one hour",
            humantime::format_duration(refresh_margin)
        );
    }
    let timeout = first(&[
        flags.timeout.clone(),
        env(env::TIMEOUT),
        file.timeout.clone(),
    ])
    .map(|s| parse_duration(&s, "timeout"))
    .transpose()?
    .unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        bail!(
            "timeout must be more than zero and at most {}",
            humantime::format_duration(MAX_TIMEOUT)
        );
    }
    let username = first(&[flags.username.clone(), file.username.clone()])
        .unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    if username.is_empty() || !username.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "username '{}' must be printable ASCII without spaces",
            crate::protocol::printable(&username)
        );
    }
    let stateless_tokens = first(&[env(env::STATELESS_TOKENS), file.stateless_tokens.clone()])
        .map(|s| StatelessTokens::parse(&s))
        .transpose()?
        .unwrap_or_default();
    Ok(Config {
        apps,
        cache,
        refresh_margin,
        timeout,
        username,
        verbose: flags.verbose,
        stateless_tokens,
    })
}

fn first(options: &[Option<String>]) -> Option<String> {
    options.iter().flatten().next().cloned()
}

fn read_file(path: &Path, explicit: bool) -> Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read config file {}", path.display()));
        }
    };
    toml::from_str(&text).map_err(|e| {
        // toml's Display quotes the offending line, which may hold a pasted key: give only the
        // position and the parser's message.
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" line {line}, column {column}:")
        });
        let message: String = e
            .message()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        anyhow!("config file {}:{at} {}", path.display(), message.trim())
    })
}

fn app_from_flags_and_env(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<App>> {
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
    let id = AppId::parse(&id_text).with_context(|| format!("from {origin}"))?;
    let key = if let Some(path) = &flags.private_key {
        KeySource::File(key_path(path, "--private-key")?)
    } else if let Some(pem) = env(env::PRIVATE_KEY) {
        KeySource::Env(Secret::new(pem))
    } else if let Some(path) = env(env::PRIVATE_KEY_PATH) {
        KeySource::File(key_path(Path::new(&path), env::PRIVATE_KEY_PATH)?)
    } else {
        bail!(
            "app {id} has no private key: pass --private-key PATH, or set {} (the PEM text) or {}",
            env::PRIVATE_KEY,
            env::PRIVATE_KEY_PATH
        );
    };
    let installation_id = match flags
        .installation_id
        .clone()
        .or_else(|| env(env::INSTALLATION_ID))
    {
        Some(text) => Some(parse_installation_id(&text)?),
        None => None,
    };
    let host_text = flags
        .host
        .clone()
        .or_else(|| env(env::HOST))
        .unwrap_or_else(|| "github.com".to_owned());
    let host = Host::parse(&host_text)?;
    let api_url = flags
        .api_url
        .clone()
        .or_else(|| env(env::API_URL))
        .map(|u| check_api_url(&u))
        .transpose()?;
    let owners = flags
        .owners
        .iter()
        .map(|o| o.trim().to_ascii_lowercase())
        .collect();
    Ok(Some(App {
        origin: if flags.app_id.is_some() {
            "command line".into()
        } else {
            "environment".into()
        },
        id,
        key,
        host,
        api_url,
        installation_id,
        owners,
        permissions: BTreeMap::new(),
    }))
}

fn app_from_file(fa: &FileApp, base: Option<&Path>, origin: String) -> Result<App> {
    let id = AppId::parse(&fa.app_id.text())?;
    let mut key_path = key_path(&fa.private_key_path, "private_key_path")?;
    if key_path.is_relative()
        && let Some(base) = base
    {
        key_path = base.join(key_path);
    }
    let host = Host::parse(fa.host.as_deref().unwrap_or("github.com"))?;
    let api_url = fa.api_url.as_deref().map(check_api_url).transpose()?;
    for (perm, level) in &fa.permissions {
        if !matches!(level.as_str(), "read" | "write" | "admin") || perm.is_empty() {
            bail!("permission '{perm} = {level}' must be read, write or admin");
        }
    }
    Ok(App {
        origin,
        id,
        key: KeySource::File(key_path),
        host,
        api_url,
        installation_id: fa.installation_id,
        owners: fa
            .owners
            .iter()
            .map(|o| o.trim().to_ascii_lowercase())
            .collect(),
        permissions: fa.permissions.clone(),
    })
}

fn parse_installation_id(text: &str) -> Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!(
            "installation id '{}' is not a positive number",
            crate::protocol::printable(text)
        ),
    }
}

/// An API URL must be https, except on loopback hosts (the local test GitHub).
fn check_api_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("API URL '{url}' has no scheme"))?;
    let host = Host::parse(rest.split('/').next().unwrap_or(""))?;
    match scheme {
        "https" => Ok(url.to_owned()),
        "http" if host.is_loopback() => Ok(url.to_owned()),
        "http" => bail!(
            "API URL '{url}' is plain http; only https is allowed (http only for loopback hosts)"
        ),
        _ => bail!("API URL '{url}' must start with https://"),
    }
}

/// `10m`, `90s`, `1h 5m`, or a bare number of seconds.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|_| {
        anyhow!(
            "{what} '{}' is not a duration like 10m or 90s",
            crate::protocol::printable(text)
        )
    })
}

/// A key *path* setting: refuses PEM text (a common CI mix-up) without ever echoing it.
fn key_path(text: &Path, setting: &str) -> Result<PathBuf> {
    let raw = text.to_string_lossy();
    if raw.contains("-----BEGIN") || raw.contains('\n') || raw.len() > 4096 {
        bail!(
            "{setting} holds the key itself, not a path to it; put the PEM text in {} instead",
            env::PRIVATE_KEY
        );
    }
    Ok(expand_home(text))
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
        std::fs::write(&path, "[[app]]\napp_id = 1\nprivate_key = \"-----BEGIN RSA PRIVATE KEY-----MIIEsecretbody\"\n").unwrap();
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
    fn api_url_must_be_https_except_loopback() {
        assert!(check_api_url("https://ghe.example.com/api/v3/").is_ok());
        assert!(check_api_url("http://127.0.0.1:9/api/v3").is_ok());
        assert!(check_api_url("http://ghe.example.com/api/v3").is_err());
        assert!(check_api_url("ftp://x").is_err());
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
        assert_eq!(c.apps[0].id, AppId::Numeric(123));
        assert!(matches!(&c.apps[0].key, KeySource::File(p) if p == Path::new("/k.pem")));
        assert_eq!(c.cache, CacheMode::None);
        let c = resolve(
            &Flags {
                config: f.config.clone(),
                ..Flags::default()
            },
            &env,
        )
        .unwrap();
        assert_eq!(c.apps[0].id, AppId::Numeric(999));
        assert!(matches!(&c.apps[0].key, KeySource::Env(_)));
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
        assert!(matches!(&acme.key, KeySource::File(p) if p == &dir.path().join("keys/acme.pem")));
        assert_eq!(acme.scope(), "contents:read");
        assert_eq!(c.apps[2].api_url("https"), "https://ghe.example.com/api/v3");
        assert_eq!(c.apps[2].installation_id, Some(7));
    }

    #[test]
    fn bad_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[[app]]\napp_id = 1\nprivate_key = \"x\"\n").unwrap();
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

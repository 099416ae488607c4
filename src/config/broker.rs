//! What the configuration says about a broker entry, as parsed values: which broker
//! (octo-sts, chinmina-bridge, or a `token_command`), its URL and settings, and where the job's
//! OIDC token comes from. `source::broker` uses them.
//!
//! From flags (`--broker octo-sts --broker-url URL --identity NAME [--org-scope] [--profile P]
//! [--oidc SOURCE] [--audience A]`) or a `[[broker]]` table of the config file. Nothing here
//! talks to anything.

use super::hosts::{ApiBase, Host, check_api_url, host_for};
use super::{App, SourceSpec, check_owner, quoted};
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Which broker, with the settings only it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// octo-sts: `identity` names the trust policy; `org_scope` asks for the owner alone (an
    /// organisation policy in `OWNER/.github`) instead of `OWNER/REPO`.
    OctoSts { identity: String, org_scope: bool },
    /// chinmina-bridge: an optional profile, and which endpoint.
    Chinmina {
        profile: Option<String>,
        mode: ChinminaMode,
    },
    /// Any program that prints a token.
    Command { argv: Vec<String> },
}

/// chinmina's two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChinminaMode {
    /// `POST /git-credentials[/PROFILE]`: git's credential format over HTTP.
    #[default]
    GitCredentials,
    /// `POST /token[/PROFILE]`: JSON.
    Token,
}

/// Where the CI job's OIDC token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcSource {
    /// Detect the CI system from its environment.
    Auto,
    GithubActions,
    /// GitLab CI: the environment variable an `id_tokens:` entry fills.
    Gitlab {
        variable: String,
    },
    Buildkite,
    /// A file read at every use (Kubernetes projected service-account token, …).
    File(PathBuf),
    /// A program that prints the token.
    Command(Vec<String>),
}

/// A broker entry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSpec {
    pub broker: Broker,
    /// The broker's base URL (https, or http to loopback), no trailing slash; empty for a command.
    pub url: String,
    /// None: no OIDC token (a `token_command` that needs none).
    pub oidc: Option<OidcSource>,
    /// The OIDC token's audience; default the broker's host name.
    pub audience: Option<String>,
}

impl BrokerSpec {
    /// `octo-sts https://octo-sts.dev identity ci`, for messages.
    pub fn describe(&self) -> String {
        match &self.broker {
            Broker::OctoSts { identity, .. } => {
                format!("octo-sts {} identity {identity}", self.url)
            }
            Broker::Chinmina { profile, .. } => match profile {
                Some(p) => format!("chinmina {} profile {p}", self.url),
                None => format!("chinmina {}", self.url),
            },
            Broker::Command { argv } => format!(
                "token_command '{}'",
                argv.first().map_or("", String::as_str).escape_debug()
            ),
        }
    }
}

impl OidcSource {
    /// `auto`, `github-actions`, `gitlab:VARIABLE`, `buildkite`, `file:PATH` (a command is given
    /// as a list in the config file, `oidc_command`).
    pub fn parse(text: &str) -> Result<OidcSource, String> {
        let text = text.trim();
        match text {
            "auto" => return Ok(OidcSource::Auto),
            "github-actions" => return Ok(OidcSource::GithubActions),
            "buildkite" => return Ok(OidcSource::Buildkite),
            _ => {}
        }
        if let Some(var) = text.strip_prefix("gitlab:") {
            let ok = !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return match ok {
                true => Ok(OidcSource::Gitlab {
                    variable: var.to_owned(),
                }),
                false => {
                    Err("oidc gitlab:VARIABLE: a variable's name is letters, digits and _".into())
                }
            };
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err(
                    "oidc file: needs a path (file:/var/run/secrets/tokens/octo-sts)".into(),
                );
            }
            return Ok(OidcSource::File(PathBuf::from(path)));
        }
        Err("oidc is one of auto, github-actions, gitlab:VARIABLE, buildkite, file:PATH (or oidc_command = [\"prog\", …] in the config file)".into())
    }

    /// For messages and `doctor`; never the token.
    pub fn describe(&self) -> String {
        match self {
            OidcSource::Auto => "auto-detected".into(),
            OidcSource::GithubActions => "GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL)".into(),
            OidcSource::Gitlab { variable } => format!("GitLab id_tokens variable {variable}"),
            OidcSource::Buildkite => "Buildkite (buildkite-agent oidc request-token)".into(),
            OidcSource::File(path) => format!("file {}", path.display()),
            OidcSource::Command(argv) => format!(
                "oidc_command '{}'",
                argv.first().map_or("", String::as_str).escape_debug()
            ),
        }
    }
}

impl ChinminaMode {
    pub fn parse(text: &str) -> Result<ChinminaMode, String> {
        match text.trim() {
            "git-credentials" => Ok(ChinminaMode::GitCredentials),
            "token" => Ok(ChinminaMode::Token),
            _ => Err("chinmina mode is git-credentials or token".into()),
        }
    }
}

/// The broker options of the command line.
#[derive(Debug, Default, Clone)]
pub struct BrokerFlags {
    /// `--broker octo-sts|chinmina`
    pub broker: Option<String>,
    pub url: Option<String>,
    pub identity: Option<String>,
    pub org_scope: bool,
    pub profile: Option<String>,
    pub oidc: Option<String>,
    pub audience: Option<String>,
}

impl BrokerFlags {
    /// The first broker option given, for messages (`--broker-url`).
    pub fn first_given(&self) -> &'static str {
        [
            (self.broker.is_some(), "--broker"),
            (self.url.is_some(), "--broker-url"),
            (self.identity.is_some(), "--identity"),
            (self.org_scope, "--org-scope"),
            (self.profile.is_some(), "--profile"),
            (self.oidc.is_some(), "--oidc"),
            (self.audience.is_some(), "--audience"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
        .unwrap_or("--broker")
    }

    pub fn any(&self) -> bool {
        self.broker.is_some()
            || self.url.is_some()
            || self.identity.is_some()
            || self.org_scope
            || self.profile.is_some()
            || self.oidc.is_some()
            || self.audience.is_some()
    }
}

/// A `[[broker]]` table of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBroker {
    /// `octo-sts`, `chinmina` or `command` (implied by `token_command`).
    pub kind: Option<String>,
    pub url: Option<String>,
    pub identity: Option<String>,
    #[serde(default)]
    pub org_scope: bool,
    pub profile: Option<String>,
    pub mode: Option<String>,
    pub oidc: Option<String>,
    pub oidc_command: Option<Vec<String>>,
    pub audience: Option<String>,
    pub token_command: Option<Vec<String>>,
    pub host: Option<String>,
    pub api_url: Option<String>,
    #[serde(default)]
    pub owners: Vec<String>,
}

/// The spec from the command line (`--broker …`); `check_url` validates the URL.
pub fn from_flags(
    flags: &BrokerFlags,
    check_url: &dyn Fn(&str) -> Result<String, String>,
) -> Result<BrokerSpec, String> {
    let kind = flags
        .broker
        .as_deref()
        .ok_or("--broker-url, --identity, --org-scope, --profile, --oidc and --audience need --broker octo-sts|chinmina")?;
    let url = flags
        .url
        .as_deref()
        .ok_or("--broker needs --broker-url URL")?;
    let oidc = match &flags.oidc {
        Some(text) => match OidcSource::parse(text).map_err(|e| format!("--{e}"))? {
            // git runs the helper in each repository's directory: a relative path would move.
            OidcSource::File(path) if path.is_relative() => {
                return Err("--oidc file:PATH needs an absolute path".into());
            }
            source => source,
        },
        None => OidcSource::Auto,
    };
    spec(
        kind,
        Some(url),
        flags.identity.clone(),
        flags.org_scope,
        flags.profile.clone(),
        None,
        Some(oidc),
        flags.audience.clone(),
        None,
        check_url,
        true,
    )
}

/// The spec from a `[[broker]]` table; relative paths are against `base` (the file's directory).
pub fn from_file(
    fb: &FileBroker,
    base: Option<&Path>,
    check_url: &dyn Fn(&str) -> Result<String, String>,
) -> Result<BrokerSpec, String> {
    let kind = match (&fb.kind, &fb.token_command) {
        (Some(k), _) => k.as_str(),
        (None, Some(_)) => "command",
        (None, None) => {
            return Err("kind = \"octo-sts\" | \"chinmina\" | \"command\" is missing".into());
        }
    };
    let oidc = match (&fb.oidc, &fb.oidc_command) {
        (Some(_), Some(_)) => return Err("give oidc or oidc_command, not both".into()),
        (None, Some(argv)) if argv.first().is_none_or(|p| p.trim().is_empty()) => {
            return Err(
                "oidc_command is empty; give the command as a list: [\"prog\", \"arg\"]".into(),
            );
        }
        (None, Some(argv)) => Some(OidcSource::Command(argv.clone())),
        (Some(text), None) => Some(match OidcSource::parse(text)? {
            OidcSource::File(p) if p.is_relative() => {
                OidcSource::File(base.map_or(p.clone(), |b| b.join(&p)))
            }
            other => other,
        }),
        // A command needs no OIDC token unless one is configured; a broker always does.
        (None, None) if kind == "command" => None,
        (None, None) => Some(OidcSource::Auto),
    };
    spec(
        kind,
        fb.url.as_deref(),
        fb.identity.clone(),
        fb.org_scope,
        fb.profile.clone(),
        fb.mode.as_deref(),
        oidc,
        fb.audience.clone(),
        fb.token_command.clone(),
        check_url,
        false,
    )
}

#[allow(clippy::too_many_arguments)]
fn spec(
    kind: &str,
    url: Option<&str>,
    identity: Option<String>,
    org_scope: bool,
    profile: Option<String>,
    mode: Option<&str>,
    oidc: Option<OidcSource>,
    audience: Option<String>,
    token_command: Option<Vec<String>>,
    check_url: &dyn Fn(&str) -> Result<String, String>,
    from_flags: bool,
) -> Result<BrokerSpec, String> {
    let (url_name, identity_name) = match from_flags {
        true => ("--broker-url URL", "--identity NAME"),
        false => ("url = \"…\"", "identity = \"…\""),
    };
    let needs_url = || -> Result<String, String> {
        check_url(url.ok_or_else(|| format!("broker {kind} needs {url_name}"))?)
    };
    let word_ok = |w: &str| {
        !w.is_empty()
            && w.len() <= 100
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if let Some(a) = &audience
        && (a.is_empty() || a.len() > 255 || a.contains(['\r', '\n', '\0']))
    {
        return Err(format!(
            "{}: the audience is one line of text",
            if from_flags { "--audience" } else { "audience" }
        ));
    }
    let broker = match kind {
        "octo-sts" => {
            if profile.is_some() || mode.is_some() || token_command.is_some() {
                return Err("profile, mode and token_command are not octo-sts settings".into());
            }
            let identity = identity.ok_or_else(|| {
                format!("broker octo-sts needs {identity_name} (the trust policy's name)")
            })?;
            if !word_ok(&identity) {
                return Err(format!(
                    "{identity_name}: a trust policy's name is letters, digits, -, _ and ."
                ));
            }
            Broker::OctoSts {
                identity,
                org_scope,
            }
        }
        "chinmina" => {
            if identity.is_some() || org_scope || token_command.is_some() {
                return Err(
                    "identity, org_scope and token_command are not chinmina settings".into(),
                );
            }
            if let Some(p) = &profile
                && !word_ok(p)
            {
                return Err(format!(
                    "{}: a profile's name is letters, digits, -, _ and .",
                    if from_flags { "--profile" } else { "profile" }
                ));
            }
            Broker::Chinmina {
                profile,
                mode: mode
                    .map(ChinminaMode::parse)
                    .transpose()?
                    .unwrap_or_default(),
            }
        }
        "command" => {
            if identity.is_some()
                || org_scope
                || profile.is_some()
                || mode.is_some()
                || url.is_some()
            {
                return Err(
                    "a token_command takes none of url, identity, org_scope, profile, mode".into(),
                );
            }
            let argv =
                token_command.ok_or("kind = \"command\" needs token_command = [\"prog\", …]")?;
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(
                    "token_command is empty; give the command as a list: [\"prog\", \"arg\"]"
                        .into(),
                );
            }
            return Ok(BrokerSpec {
                broker: Broker::Command { argv },
                url: String::new(),
                oidc,
                audience,
            });
        }
        _ => {
            return Err(format!(
                "{} is octo-sts or chinmina (or a token_command in the config file)",
                if from_flags { "--broker" } else { "kind" }
            ));
        }
    };
    Ok(BrokerSpec {
        broker,
        url: needs_url()?,
        oidc,
        audience,
    })
}

/// A `[[broker]]` table .
pub(super) fn broker_from_file(
    fb: &FileBroker,
    base: Option<&Path>,
    origin: String,
) -> Result<App> {
    let spec = from_file(fb, base, &check_broker_url).map_err(|e| anyhow!(e))?;
    let api_url = fb
        .api_url
        .as_deref()
        .map(|u| check_api_url(u, "api_url"))
        .transpose()?;
    let (host, api_url) = host_and_api(fb.host.as_deref().map(|h| (h, "host")), api_url)?;
    let owners = fb
        .owners
        .iter()
        .map(|o| check_owner(o).context("owners"))
        .collect::<Result<_>>()?;
    Ok(App {
        origin,
        host,
        api_url,
        owners,
        source: SourceSpec::Broker(spec),
    })
}

/// The host an entry serves and its API base, as for an app: a host given (`setting` names
/// where) with the API derived from it (keeping its scheme) unless given too, else the host the
/// API base belongs to (github.com without either).
pub(super) fn host_and_api(
    host: Option<(&str, &str)>,
    api_url: Option<ApiBase>,
) -> Result<(Host, Option<ApiBase>)> {
    match host {
        Some((text, setting)) => {
            let host = Host::parse(text).context(setting.to_owned())?;
            let api_url = match api_url {
                Some(url) => Some(url),
                None => ApiBase::of_host(text, &host, setting)?,
            };
            Ok((host, api_url))
        }
        None => Ok((host_for(api_url.as_ref().map(ApiBase::as_str))?, api_url)),
    }
}

/// A broker URL: https, or http to a loopback address (a token travels on it).
pub(super) fn check_broker_url(url: &str) -> std::result::Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) => {
            let host = Host::parse(rest.split('/').next().unwrap_or(""))
                .map_err(|e| format!("broker URL {}: {e}", quoted(url)))?;
            if !host.is_loopback() {
                return Err(format!(
                    "broker URL {} is plain http to a host that is not loopback; use https",
                    quoted(url)
                ));
            }
            rest
        }
        (None, None) => {
            return Err(format!(
                "broker URL {} must start with https://",
                quoted(url)
            ));
        }
    };
    if rest.split('/').next().is_none_or(str::is_empty)
        || url.contains(['?', '#', ' ', '@', '\r', '\n'])
    {
        return Err(format!(
            "broker URL {} is not a base URL (https://HOST[/PATH])",
            quoted(url)
        ));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Result<String, String> {
        Ok(url.trim_end_matches('/').to_owned())
    }

    #[test]
    fn flags_make_an_octo_sts_entry() {
        let flags = BrokerFlags {
            broker: Some("octo-sts".into()),
            url: Some("https://octo-sts.dev/".into()),
            identity: Some("ci".into()),
            ..BrokerFlags::default()
        };
        let spec = from_flags(&flags, &ok).unwrap();
        assert_eq!(
            spec,
            BrokerSpec {
                broker: Broker::OctoSts {
                    identity: "ci".into(),
                    org_scope: false
                },
                url: "https://octo-sts.dev".into(),
                oidc: Some(OidcSource::Auto),
                audience: None,
            }
        );
        let no_identity = BrokerFlags {
            identity: None,
            ..flags.clone()
        };
        assert!(
            from_flags(&no_identity, &ok)
                .unwrap_err()
                .contains("--identity")
        );
        let relative = BrokerFlags {
            oidc: Some("file:token".into()),
            ..flags.clone()
        };
        assert!(from_flags(&relative, &ok).unwrap_err().contains("absolute"));
        let unknown = BrokerFlags {
            oidc: Some("vault".into()),
            ..flags.clone()
        };
        assert!(
            from_flags(&unknown, &ok)
                .unwrap_err()
                .starts_with("--oidc is one of")
        );
        let no_url = BrokerFlags { url: None, ..flags };
        assert!(
            from_flags(&no_url, &ok)
                .unwrap_err()
                .contains("--broker-url")
        );
    }

    #[test]
    fn file_tables_make_each_kind() {
        let fb: FileBroker = toml::from_str(
            "kind = \"chinmina\"\nurl = \"https://c\"\nprofile = \"release\"\nmode = \"token\"\noidc = \"buildkite\"\n",
        )
        .unwrap();
        let spec = from_file(&fb, None, &ok).unwrap();
        assert_eq!(
            spec.broker,
            Broker::Chinmina {
                profile: Some("release".into()),
                mode: ChinminaMode::Token
            }
        );
        assert_eq!(spec.oidc, Some(OidcSource::Buildkite));
        let fb: FileBroker = toml::from_str("token_command = [\"/bin/sts\", \"x\"]\n").unwrap();
        let spec = from_file(&fb, None, &ok).unwrap();
        assert_eq!(
            spec.broker,
            Broker::Command {
                argv: vec!["/bin/sts".into(), "x".into()]
            }
        );
        assert_eq!(spec.oidc, None);
        let fb: FileBroker = toml::from_str(
            "kind = \"octo-sts\"\nurl = \"https://o\"\nidentity = \"ci\"\noidc = \"file:tok\"\n",
        )
        .unwrap();
        let spec = from_file(&fb, Some(Path::new("/etc/gcga")), &ok).unwrap();
        assert_eq!(spec.oidc, Some(OidcSource::File("/etc/gcga/tok".into())));
        let fb: FileBroker = toml::from_str(
            "kind = \"octo-sts\"\nurl = \"https://o\"\nidentity = \"ci\"\nprofile = \"x\"\n",
        )
        .unwrap();
        assert!(from_file(&fb, None, &ok).is_err());
        assert!(toml::from_str::<FileBroker>("kind = \"octo-sts\"\nsecret = 1\n").is_err());
    }

    #[test]
    fn broker_urls_are_https_or_loopback_http() {
        assert_eq!(
            check_broker_url("https://octo-sts.dev/").unwrap(),
            "https://octo-sts.dev"
        );
        assert_eq!(
            check_broker_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(
            check_broker_url("http://octo-sts.dev")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(check_broker_url("ftp://x").is_err());
        assert!(check_broker_url("https://user@x").is_err());
        assert!(check_broker_url("https://x/?a=b").is_err());
    }

    #[test]
    fn oidc_sources_parse() {
        assert_eq!(
            OidcSource::parse("gitlab:OCTO_ID_TOKEN"),
            Ok(OidcSource::Gitlab {
                variable: "OCTO_ID_TOKEN".into()
            })
        );
        assert_eq!(
            OidcSource::parse("file:/var/run/secrets/tokens/sts"),
            Ok(OidcSource::File("/var/run/secrets/tokens/sts".into()))
        );
        assert!(OidcSource::parse("gitlab:A-B").is_err());
        assert!(
            OidcSource::parse("vault")
                .unwrap_err()
                .contains("one of auto")
        );
    }
}

//! The config file (`config.toml`): its shape, reading it without echoing a pasted secret in a
//! message, and turning its `[[app]]` entries into [`App`]s.

use super::hosts::{ApiBase, Host, check_api_url, host_for};
use super::{
    App, AppId, InstallationSpec, SourceSpec, check_owner, expand_home, key_path, key_reference,
    quoted, user_spec,
};
use crate::keyref::KeyRef;
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) cache: Option<String>,
    pub(super) refresh_margin: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) username: Option<String>,
    pub(super) stateless_tokens: Option<String>,
    #[serde(default, rename = "app")]
    pub(super) apps: Vec<FileApp>,
    #[serde(default, rename = "broker")]
    pub(super) brokers: Vec<super::broker::FileBroker>,
    pub(super) public_fallback: Option<FileApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApp {
    app_id: StringOrNumber,
    private_key_path: Option<PathBuf>,
    /// Like `private_key_path`, or a key that is not a file (see [`key_reference`]).
    private_key: Option<String>,
    /// A command that signs (see `signer::command`).
    signer: Option<Vec<String>>,
    /// The public key file of `signer`, for checking its signatures and for `doctor`.
    public_key: Option<PathBuf>,
    host: Option<String>,
    api_url: Option<String>,
    installation_id: Option<u64>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    #[serde(default)]
    repo_scoped: bool,
    /// The logged-in person's token (a client ID as `app_id`, no key).
    #[serde(default)]
    user_tokens: bool,
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

pub(super) fn read_file(path: &Path, explicit: bool) -> Result<FileConfig> {
    let text = match crate::private_file::read_config(path) {
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
            let line_start = before.rsplit('\n').next().unwrap_or("");
            let column = line_start.chars().count() + 1;
            // The key whose value is wrong: the last name before a '=' on that line.
            let key = line_start
                .rsplit_once('=')
                .map(|(left, _)| {
                    let left = left.trim_end();
                    let start = left
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                        .map_or(0, |i| i + 1);
                    &left[start..]
                })
                .filter(|k| !k.is_empty())
                .map_or(String::new(), |k| {
                    format!(", {}", quoted(k).trim_matches('\''))
                });
            format!(" line {line}, column {column}{key}:")
        });
        let message: String = hide_quoted_values(e.message())
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        anyhow!("config file {}:{at} {}", path.display(), message.trim())
    })
}

/// serde's and toml's messages quote the value they did not expect (`invalid type: string
/// "-----BEGIN…", expected u64`) and the names they do not know (`` unknown field `x` ``): replace
/// each quoted part by [`quoted`]'s form of it, so no pasted secret is echoed.
pub(super) fn hide_quoted_values(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let close = rest.as_bytes()[start] as char;
        out.push_str(&rest[..start]);
        let body = &rest[start + 1..];
        // Find the closing quote, skipping Rust-escaped characters inside "…".
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if close == '"' && !escaped => escaped = true,
                c if c == close && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str("(value not shown)");
            return out;
        };
        let value = &body[..end];
        let unescaped = value.replace("\\n", "\n").replace("\\\"", "\"");
        match quoted(&unescaped).strip_prefix('\'') {
            Some(plain) => {
                out.push(close);
                out.push_str(plain.strip_suffix('\'').unwrap_or(plain));
                out.push(close);
            }
            None => out.push_str(&quoted(&unescaped)),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

pub(super) fn app_from_file(fa: &FileApp, base: Option<&Path>, origin: String) -> Result<App> {
    let id = AppId::parse(&fa.app_id.text()).context("app_id")?;
    let beside = |path: PathBuf| match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    };
    if fa.public_key.is_some() && fa.signer.is_none() {
        bail!(
            "public_key belongs beside signer = [...]; a private key or KMS gives its own public key"
        );
    }
    let has_key = fa.private_key_path.is_some() || fa.private_key.is_some() || fa.signer.is_some();
    if let Some(spec) = user_spec(&id, fa.user_tokens, has_key, has_key, "private_key_path")? {
        if fa.installation_id.is_some() || !fa.permissions.is_empty() || fa.repo_scoped {
            bail!(
                "app {id}: installation_id, permissions and repo_scoped are for installation tokens; a user token can do what the person and the app may"
            );
        }
        let (host, api_url) = host_and_api(fa)?;
        return Ok(App {
            origin,
            host,
            api_url,
            owners: owners(fa)?,
            source: SourceSpec::User(spec),
        });
    }
    let key = match (&fa.private_key_path, &fa.private_key, &fa.signer) {
        (Some(path), None, None) => KeyRef::File(beside(key_path(path, "private_key_path")?)),
        (None, Some(text), None) => match key_reference(text, "private_key")? {
            KeyRef::File(path) => KeyRef::File(beside(path)),
            other => other,
        },
        (None, None, Some(argv)) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                bail!(
                    "signer is empty; give the command as a list: signer = [\"program\", \"arg\"]"
                );
            }
            KeyRef::Command {
                argv: argv.clone(),
                public_key: fa.public_key.as_deref().map(|p| beside(expand_home(p))),
            }
        }
        (None, None, None) => {
            bail!("app {id} has no key: set private_key_path, private_key or signer")
        }
        _ => bail!("app {id}: give only one of private_key_path, private_key and signer"),
    };
    let (host, api_url) = host_and_api(fa)?;
    let permissions = super::Permissions::from_table(&fa.permissions)?;
    Ok(App {
        origin,
        host,
        api_url,
        owners: owners(fa)?,
        source: SourceSpec::Installation(InstallationSpec {
            id,
            key,
            installation_id: fa.installation_id,
            permissions,
            repo_scoped: fa.repo_scoped,
        }),
    })
}

/// An entry's host and API base (the one derived from the other when only one is given; a host
/// given with its scheme sets the API base on that scheme).
fn host_and_api(fa: &FileApp) -> Result<(Host, Option<ApiBase>)> {
    let api_url = fa
        .api_url
        .as_deref()
        .map(|u| check_api_url(u, "api_url"))
        .transpose()?;
    let (host, api_url) = match fa.host.as_deref() {
        Some(text) => {
            let host = Host::parse(text).context("host")?;
            let api_url = match api_url {
                Some(url) => Some(url),
                None => ApiBase::of_host(text, &host, "host")?,
            };
            (host, api_url)
        }
        None => (
            host_for(api_url.as_ref().map(ApiBase::as_str)).context("api_url")?,
            api_url,
        ),
    };
    Ok((host, api_url))
}

fn owners(fa: &FileApp) -> Result<Vec<String>> {
    fa.owners
        .iter()
        .map(|o| check_owner(o).context("owners"))
        .collect()
}

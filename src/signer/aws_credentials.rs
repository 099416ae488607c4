//! AWS credentials from the places AWS tools look, in the AWS SDKs' order:
//!
//! 1. environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared files for `AWS_PROFILE` (default `default`): `~/.aws/credentials`
//!    (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`) — static keys,
//!    `credential_process`, or `role_arn` + `web_identity_token_file`;
//! 3. web identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` (CI OIDC), through STS
//!    `AssumeRoleWithWebIdentity` (`AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` override it);
//! 4. container metadata: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `…_FULL_URI`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`;
//! 5. instance metadata (IMDSv2, one-second timeouts; `AWS_EC2_METADATA_DISABLED=true` skips it,
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it).
//!
//! Secrets stay [`Secret`]s; messages name the source, never a secret key or session token.

use super::aws_http::{Http, endpoint};
use crate::secret::Secret;
use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// Where they came from, for messages: "environment", "profile 'ci' in ~/.aws/credentials".
    pub source: String,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The first credentials found, or one line saying where the helper looked.
pub fn find(http: &Http, region: &str, partition: &str, env: Env<'_>) -> Result<Credentials> {
    if let Some(creds) = from_env(env)? {
        return Ok(creds);
    }
    if let Some(creds) = from_profile(http, region, partition, env)? {
        return Ok(creds);
    }
    if let (Some(role), Some(file)) = (env("AWS_ROLE_ARN"), env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        let session = env("AWS_ROLE_SESSION_NAME");
        return web_identity(
            http,
            region,
            partition,
            env,
            &role,
            Path::new(&file),
            session.as_deref(),
            "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE",
        );
    }
    if let Some(creds) = from_container(http, env)? {
        return Ok(creds);
    }
    if let Some(creds) = from_instance(http, env)? {
        return Ok(creds);
    }
    bail!(
        "no AWS credentials found for AWS KMS: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, or run where container or instance metadata gives a role"
    )
}

fn from_env(env: Env<'_>) -> Result<Option<Credentials>> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: Secret::new(secret.trim()),
            session_token: env("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim())),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        })),
        (Some(_), None) => bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
        _ => Ok(None),
    }
}

fn home_file(env: Env<'_>, var: &str, default: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".aws").join(default)))
}

/// `key = value` pairs of `[section]` in an INI file (AWS's shared file format).
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut current = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            if current {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        // Indented lines continue a nested value (`s3 =` sub-settings): not ours.
        if !current || line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=')
            && let Some(pairs) = found.as_mut()
        {
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    found
}

fn from_profile(
    http: &Http,
    region: &str,
    partition: &str,
    env: Env<'_>,
) -> Result<Option<Credentials>> {
    let explicit = env("AWS_PROFILE");
    let profile = explicit.clone().unwrap_or_else(|| "default".into());
    let mut settings = Vec::new();
    let mut sources = Vec::new();
    let files = [
        (
            home_file(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile.clone(),
        ),
        (
            home_file(env, "AWS_CONFIG_FILE", "config"),
            if profile == "default" {
                "default".into()
            } else {
                format!("profile {profile}")
            },
        ),
    ];
    for (path, section) in files {
        let Some(path) = path else { continue };
        let Ok(text) = read_small(&path) else {
            continue;
        };
        if let Some(pairs) = ini_section(&text, &section) {
            sources.push(path.display().to_string());
            settings.extend(pairs);
        }
    }
    if settings.is_empty() {
        if explicit.is_some() {
            bail!(
                "AWS_PROFILE '{}' is in neither ~/.aws/credentials nor ~/.aws/config",
                crate::protocol::printable(&profile)
            );
        }
        return Ok(None);
    }
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let source = format!(
        "profile '{}' in {}",
        crate::protocol::printable(&profile),
        sources.join(" and ")
    );
    if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
        return Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("aws_session_token").map(Secret::new),
            source,
        }));
    }
    if let Some(command) = get("credential_process") {
        return credential_process(http, &command, &source).map(Some);
    }
    if let (Some(role), Some(file)) = (get("role_arn"), get("web_identity_token_file")) {
        let session = get("role_session_name");
        return web_identity(
            http,
            region,
            partition,
            env,
            &role,
            Path::new(&file),
            session.as_deref(),
            &source,
        )
        .map(Some);
    }
    if explicit.is_some() {
        bail!(
            "{source} has no credentials the helper can use (static keys, credential_process, or role_arn with web_identity_token_file); for SSO or source_profile use credential_process = aws configure export-credentials --profile NAME --format process"
        );
    }
    Ok(None)
}

/// The JSON that `credential_process` programs and the container endpoint print.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(alias = "Token")]
    session_token: Option<String>,
}

fn credential_process(http: &Http, command: &str, source: &str) -> Result<Credentials> {
    let what = format!("credential_process of {source}");
    #[cfg(unix)]
    let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
    #[cfg(not(unix))]
    let argv = vec!["cmd".to_owned(), "/C".to_owned(), command.to_owned()];
    let out = super::command::run(&argv, b"", http.deadline, &what)?;
    let parsed: ProcessCredentials = serde_json::from_slice(&out)
        .map_err(|_| anyhow!("{what} did not print AWS credentials JSON (Version 1)"))?;
    Ok(Credentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        session_token: parsed.session_token.map(Secret::new),
        source: what,
    })
}

#[allow(clippy::too_many_arguments)]
fn web_identity(
    http: &Http,
    region: &str,
    partition: &str,
    env: Env<'_>,
    role: &str,
    token_file: &Path,
    session: Option<&str>,
    source: &str,
) -> Result<Credentials> {
    let shown = crate::protocol::printable(&token_file.to_string_lossy());
    let token = read_small(token_file)
        .map_err(|e| anyhow!("cannot read the web identity token file {shown} ({source}): {e}"))?;
    let token = Secret::new(token.trim());
    let url = endpoint("sts", region, partition, env)?;
    let session = session.unwrap_or("git-credential-github-app");
    let form = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role),
        form_encode(session),
        form_encode(token.expose())
    );
    let response = http
        .call(
            "POST",
            &format!("{url}/"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(form.as_bytes()),
            None,
        )
        .map_err(|e| anyhow!("cannot reach AWS STS at {url} for {source}: {e}"))?;
    let text = String::from_utf8_lossy(&response.body);
    if response.status != 200 {
        let code = xml_value(&text, "Code").unwrap_or_else(|| format!("HTTP {}", response.status));
        let message: String = xml_value(&text, "Message")
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        bail!(
            "AWS STS refused AssumeRoleWithWebIdentity for role {} ({source}): {code} {message}; check the role's trust policy for this token's issuer and audience",
            crate::protocol::printable(role)
        );
    }
    match (
        xml_value(&text, "AccessKeyId"),
        xml_value(&text, "SecretAccessKey"),
        xml_value(&text, "SessionToken"),
    ) {
        (Some(id), Some(secret), token) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
            source: format!(
                "role {} through web identity ({source})",
                crate::protocol::printable(role)
            ),
        }),
        _ => bail!("AWS STS answered AssumeRoleWithWebIdentity without credentials"),
    }
}

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>`, XML entities undone.
pub(super) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// An AWS credentials/config file or a token file: a regular file of at most 1 MiB, read
/// without blocking (a FIFO or a device is refused, not waited on).
fn read_small(path: &std::path::Path) -> std::io::Result<String> {
    let contents = crate::private_file::read(path, crate::private_file::MAX_KEY)?;
    String::from_utf8(contents.bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn from_container(http: &Http, env: Env<'_>) -> Result<Option<Credentials>> {
    let url = if let Some(relative) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        // A path on the metadata address; anything else (`@host/…`) would name another host.
        let relative = relative.trim();
        if !relative.starts_with('/') || relative.contains(['@', '\\']) {
            bail!("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting with /");
        }
        format!("http://169.254.170.2{relative}")
    } else if let Some(full) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let full = full.trim().to_owned();
        let host = full
            .split_once("://")
            .map(|(_, r)| r.split('/').next().unwrap_or(""))
            .unwrap_or("");
        let allowed = full.starts_with("https://")
            || crate::config::Host::parse(host).is_ok_and(|h| {
                h.is_loopback()
                    || matches!(
                        h.name(),
                        "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23"
                    )
            });
        if !allowed {
            bail!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback or the container metadata address"
            );
        }
        full
    } else {
        return Ok(None);
    };
    let token = match (
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(Secret::new(
            read_small(std::path::Path::new(&file))
                .map_err(|e| anyhow!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {e}"))?
                .trim(),
        )),
        (None, Some(token)) => Some(Secret::new(token.trim())),
        (None, None) => None,
    };
    let mut headers = vec![("accept", "application/json")];
    if let Some(token) = &token {
        headers.push(("authorization", token.expose()));
    }
    let response = http
        .call_metadata("GET", &url, &headers, Some(Duration::from_secs(2)))
        .map_err(|e| anyhow!("cannot reach the container credentials endpoint: {e}"))?;
    if response.status != 200 {
        bail!(
            "the container credentials endpoint answered HTTP {}",
            response.status
        );
    }
    let parsed: ProcessCredentials = serde_json::from_slice(&response.body).map_err(|_| {
        anyhow!("the container credentials endpoint did not answer credentials JSON")
    })?;
    Ok(Some(Credentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        session_token: parsed.session_token.map(Secret::new),
        source: "container metadata".into(),
    }))
}

fn from_instance(http: &Http, env: Env<'_>) -> Result<Option<Credentials>> {
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let base =
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim().trim_end_matches('/');
    let short = Some(Duration::from_secs(1));
    // No instance metadata here (not EC2): no credentials from it, and no error of its own.
    let Ok(response) = http.call_metadata(
        "PUT",
        &format!("{base}/latest/api/token"),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "300")],
        short,
    ) else {
        return Ok(None);
    };
    if response.status != 200 {
        return Ok(None);
    }
    let token = Secret::new(String::from_utf8_lossy(&response.body).trim());
    let get = |path: &str| -> Result<Vec<u8>> {
        let response = http
            .call_metadata(
                "GET",
                &format!("{base}/latest/meta-data/iam/security-credentials/{path}"),
                &[("x-aws-ec2-metadata-token", token.expose())],
                short,
            )
            .map_err(|e| anyhow!("instance metadata: {e}"))?;
        if response.status != 200 {
            bail!(
                "instance metadata has no IAM role for this instance (HTTP {}); attach an instance profile",
                response.status
            );
        }
        Ok(response.body)
    };
    let roles = get("")?;
    let role = String::from_utf8_lossy(&roles)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    if role.is_empty() {
        bail!("instance metadata lists no IAM role; attach an instance profile");
    }
    let parsed: ProcessCredentials = serde_json::from_slice(&get(&role)?)
        .map_err(|_| anyhow!("instance metadata did not answer credentials JSON"))?;
    Ok(Some(Credentials {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        session_token: parsed.session_token.map(Secret::new),
        source: format!(
            "instance metadata (role {})",
            crate::protocol::printable(&role)
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections() {
        let text = "[default]\naws_access_key_id = A\n[profile ci]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 2\ncredential_process = x y\n# c\n";
        assert_eq!(
            ini_section(text, "default").unwrap(),
            vec![("aws_access_key_id".into(), "A".into())]
        );
        assert_eq!(
            ini_section(text, "profile ci").unwrap(),
            vec![
                ("region".to_owned(), "eu-west-1".to_owned()),
                ("s3".into(), "".into()),
                ("credential_process".into(), "x y".into())
            ]
        );
        assert!(ini_section(text, "profile other").is_none());
    }

    #[test]
    fn xml_and_forms() {
        let xml = "<R><Credentials><AccessKeyId>AK</AccessKeyId><SessionToken>a&amp;b</SessionToken></Credentials></R>";
        assert_eq!(xml_value(xml, "AccessKeyId").as_deref(), Some("AK"));
        assert_eq!(xml_value(xml, "SessionToken").as_deref(), Some("a&b"));
        assert_eq!(xml_value(xml, "Nope"), None);
        assert_eq!(
            form_encode("arn:aws:iam::1:role/x y"),
            "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx%20y"
        );
    }

    #[test]
    fn environment_first_and_half_set_is_an_error() {
        let http = Http::new(std::time::Instant::now() + Duration::from_secs(1));
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
            _ => None,
        };
        let creds = find(&http, "us-east-1", "aws", &env).unwrap();
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        let half = |k: &str| (k == "AWS_ACCESS_KEY_ID").then(|| "AKID".to_owned());
        assert!(from_env(&half).is_err());
    }

    #[test]
    fn a_relative_container_uri_cannot_name_another_host() {
        let http = Http::new(std::time::Instant::now() + Duration::from_secs(1));
        for bad in [
            "@evil.example/creds",
            "evil.example/creds",
            "/x\\@evil.example",
        ] {
            let env =
                |k: &str| (k == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").then(|| bad.to_owned());
            let Err(err) = from_container(&http, &env) else {
                panic!("{bad} was accepted");
            };
            let err = err.to_string();
            assert!(
                err.contains("must be a path starting with /"),
                "{bad}: {err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn token_and_credentials_files_are_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert_eq!(
            read_small(&fifo).unwrap_err().to_string(),
            "a FIFO, not a regular file"
        );
        assert!(read_small(std::path::Path::new("/dev/zero")).is_err());
        let file = dir.path().join("credentials");
        std::fs::write(&file, "[default]\naws_access_key_id = AKID\n").unwrap();
        assert!(read_small(&file).unwrap().contains("AKID"));
    }
}

//! What the broker stand-ins share: minting installation tokens from the local GitHub the way
//! the real brokers do (their own GitHub App, its JWT, the REST API over HTTP, so every mint
//! shows in [`crate::GitHub::mint_count`]), and reading a file from a repository's `main`.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{App, real_now};

/// A failed GitHub call: the status (0 for no answer) and GitHub's message.
#[derive(Debug, Clone)]
pub(crate) struct GitHubFailure {
    pub status: u16,
    pub message: String,
}

/// A minted token.
#[derive(Debug, Clone)]
pub(crate) struct Minted {
    pub token: String,
    pub expires_at: String,
}

pub(crate) struct Minter {
    pub api: String,
    pub app: App,
    agent: ureq::Agent,
}

impl Minter {
    pub fn new(api: String, app: App) -> Minter {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .user_agent("local-github-broker")
            .build()
            .into();
        Minter { api, app, agent }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, GitHubFailure> {
        let url = format!("{}{path}", self.api);
        let auth = format!("Bearer {}", self.app.jwt_at(real_now()));
        let result = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Accept", "application/vnd.github+json")
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes()),
            _ => self
                .agent
                .get(&url)
                .header("Authorization", &auth)
                .header("Accept", "application/vnd.github+json")
                .call(),
        };
        let mut response = result.map_err(|e| GitHubFailure {
            status: 0,
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let value: Value = response
            .body_mut()
            .read_to_string()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(GitHubFailure {
                status,
                message: value["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }

    /// `GET /users/{owner}/installation` (answers for organisations too): the installation id.
    pub fn installation_for(&self, owner: &str) -> Result<u64, GitHubFailure> {
        let v = self.call("GET", &format!("/users/{owner}/installation"), None)?;
        v["id"].as_u64().ok_or(GitHubFailure {
            status: 0,
            message: "installation without id".into(),
        })
    }

    /// `POST /app/installations/{id}/access_tokens` with `permissions` and, when given, `repositories`.
    pub fn mint(
        &self,
        installation: u64,
        permissions: Option<&Value>,
        repositories: Option<Vec<String>>,
    ) -> Result<Minted, GitHubFailure> {
        let mut body = json!({});
        if let Some(p) = permissions {
            body["permissions"] = p.clone();
        }
        if let Some(r) = repositories {
            body["repositories"] = json!(r);
        }
        let v = self.call(
            "POST",
            &format!("/app/installations/{installation}/access_tokens"),
            Some(&body),
        )?;
        Ok(Minted {
            token: v["token"].as_str().unwrap_or("").to_string(),
            expires_at: v["expires_at"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// The content of `path` at `main` in a bare repository, or None.
pub(crate) fn read_file(repo: &Path, path: &str) -> Option<String> {
    let out = Command::new(crate::git::git_binary())
        .arg("--git-dir")
        .arg(repo)
        .args(["show", &format!("refs/heads/main:{path}")])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Commits `content` as `path` on `main` of a bare repository (one commit, like a push).
pub(crate) fn write_file(repo: &Path, path: &str, content: &str) -> std::io::Result<()> {
    let index = tempfile::NamedTempFile::new()?;
    let git = |args: &[&str], input: Option<&[u8]>| -> std::io::Result<String> {
        use std::io::Write;
        let mut child = Command::new(crate::git::git_binary())
            .arg("--git-dir")
            .arg(repo)
            .args(args)
            .env("GIT_INDEX_FILE", index.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "local-github")
            .env("GIT_AUTHOR_EMAIL", "local-github@example.invalid")
            .env("GIT_COMMITTER_NAME", "local-github")
            .env("GIT_COMMITTER_EMAIL", "local-github@example.invalid")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // An empty index file is not a valid index: let read-tree create it.
    std::fs::remove_file(index.path())?;
    git(&["read-tree", "refs/heads/main"], None)?;
    let blob = git(&["hash-object", "-w", "--stdin"], Some(content.as_bytes()))?;
    git(
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},{path}"),
        ],
        None,
    )?;
    let tree = git(&["write-tree"], None)?;
    let commit = git(
        &[
            "commit-tree",
            &tree,
            "-p",
            "refs/heads/main",
            "-m",
            &format!("Add {path}"),
        ],
        None,
    )?;
    git(&["update-ref", "refs/heads/main", &commit], None)?;
    Ok(())
}

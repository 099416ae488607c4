//! Git smart HTTP: authorisation like github.com, then the real `git http-backend` as CGI.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use base64::Engine;

use crate::http::{Body, HttpRequest, HttpResponse};
use crate::state::{World, level};

/// github.com's answer to a bad token (see "Git over HTTPS" under Sources in the crate's README).
pub(crate) const MSG_BAD_TOKEN: &str =
    "Invalid username or token. Password authentication is not supported for Git operations.";
/// A traced unauthenticated request to a missing/private repository ("Git over HTTPS" under
/// Sources in the crate's README) and github.com's answer to an inaccessible repository.
pub(crate) const MSG_REPO_NOT_FOUND: &str = "Repository not found.";
const TEXT: &str = "text/plain; charset=UTF-8";

/// A parsed smart-HTTP path: `/{owner}/{repo}[.git]/{info/refs|git-upload-pack|git-receive-pack}`.
pub(crate) struct GitPath {
    pub owner: String,
    pub repo: String,
    pub rest: String,
}

pub(crate) fn parse_path(path: &str) -> Option<GitPath> {
    let p = path.strip_prefix('/')?;
    let mut it = p.splitn(3, '/');
    let owner = it.next()?;
    let repo = it.next()?;
    let rest = it.next()?;
    if owner.is_empty() || repo.is_empty() || owner.starts_with('.') || repo.starts_with('.') {
        return None;
    }
    if !matches!(rest, "info/refs" | "git-upload-pack" | "git-receive-pack") {
        return None;
    }
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    Some(GitPath {
        owner: owner.to_string(),
        repo: repo.to_string(),
        rest: rest.to_string(),
    })
}

fn text(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, TEXT, format!("{body}\n"))
}

fn challenge(body: &str) -> HttpResponse {
    let mut r = text(401, body);
    // github.com is a Basic-only server ("Git over HTTPS" under Sources in the crate's README).
    r.set_header("WWW-Authenticate", "Basic realm=\"GitHub\"");
    r
}

/// Result of the authorisation step: the canonical repository path and the identity.
pub(crate) struct Authorized {
    pub path_info: String,
    pub remote_user: String,
}

/// Decides like github.com whether this request may touch the repository.
pub(crate) fn authorize(
    world: &World,
    req: &HttpRequest,
    gp: &GitPath,
    now: i64,
) -> Result<Authorized, HttpResponse> {
    let push = gp.rest == "git-receive-pack"
        || (gp.rest == "info/refs"
            && req.query_param("service").as_deref() == Some("git-receive-pack"));
    let Some((user, password)) = basic_credentials(req.header("authorization")) else {
        return Err(challenge(MSG_REPO_NOT_FOUND));
    };
    if user != "x-access-token" {
        return Err(challenge(MSG_BAD_TOKEN));
    }
    // Unknown, expired, revoked, uninstalled or suspended: all look like a bad password to git.
    let (token, inst) = world
        .check_token(&password, now)
        .map_err(|_| challenge(MSG_BAD_TOKEN))?;
    let Some(repo) = world.repo(&gp.owner, &gp.repo) else {
        return Err(text(404, MSG_REPO_NOT_FOUND));
    };
    if !world.token_covers(token, inst, &gp.owner, &gp.repo) {
        return Err(text(404, MSG_REPO_NOT_FOUND));
    }
    let contents = token
        .permissions
        .get("contents")
        .map(|v| level(v))
        .unwrap_or(0);
    let needed = if push { 2 } else { 1 };
    let slug = world
        .apps
        .get(&inst.app_id)
        .map(|a| a.slug.clone())
        .unwrap_or_default();
    if contents < needed {
        // Seen from github.com as `remote: Permission to OWNER/REPO.git denied to NAME[bot].`
        // + HTTP 403 (e.g. github.com/celestiaorg/celestia-specs/issues/210, peter-evans/create-pull-request#844).
        return Err(text(
            403,
            &format!(
                "Permission to {}.git denied to {slug}[bot].",
                repo.full_name()
            ),
        ));
    }
    Ok(Authorized {
        path_info: format!("/{}/{}.git/{}", repo.owner, repo.name, gp.rest),
        remote_user: format!("{slug}[bot]"),
    })
}

pub(crate) fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, value) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Runs `git http-backend` for an authorised request and streams its answer.
pub(crate) fn run_backend(
    root: &Path,
    req: &HttpRequest,
    auth: &Authorized,
) -> io::Result<HttpResponse> {
    let mut cmd = Command::new(git_binary());
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env(
            "SERVER_PROTOCOL",
            if req.http11 { "HTTP/1.1" } else { "HTTP/1.0" },
        )
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &auth.path_info)
        .env("QUERY_STRING", &req.query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_USER", &auth.remote_user)
        .env("REMOTE_ADDR", req.peer.ip().to_string())
        .env("GIT_COMMITTER_NAME", &auth.remote_user)
        .env("GIT_COMMITTER_EMAIL", "bot@local-github.invalid")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = req.header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = req.header("content-encoding") {
        // http-backend inflates gzip request bodies itself.
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(gp) = req.header("git-protocol") {
        cmd.env("GIT_PROTOCOL", gp);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = req.body.clone();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        if !s.is_empty() && std::env::var_os("LOCAL_GITHUB_DEBUG").is_some() {
            eprintln!("[local-github] git http-backend: {s}");
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut status = 200;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else if !k.eq_ignore_ascii_case("content-length") {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body: Body::Stream(Box::new(CgiBody {
            stdout,
            child,
            eof: false,
        })),
    })
}

/// The git executable: `LOCAL_GITHUB_GIT` or `git` from PATH.
pub(crate) fn git_binary() -> PathBuf {
    std::env::var_os("LOCAL_GITHUB_GIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("git"))
}

struct CgiBody {
    stdout: BufReader<ChildStdout>,
    child: Child,
    eof: bool,
}

impl Read for CgiBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }
}

impl Drop for CgiBody {
    fn drop(&mut self) {
        if !self.eof {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Creates `root/owner/name.git` as a bare repository with one commit on `main`
/// (a README), and `http.receivepack=true`. An existing repository is left alone.
pub(crate) fn create_bare_repo(root: &Path, owner: &str, name: &str) -> io::Result<PathBuf> {
    let dir = root.join(owner).join(format!("{name}.git"));
    if dir.join("HEAD").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let git = |args: &[&str], input: Option<&[u8]>| -> io::Result<String> {
        let mut cmd = Command::new(git_binary());
        cmd.arg("-C")
            .arg(&dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "local-github")
            .env("GIT_AUTHOR_EMAIL", "local-github@example.invalid")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_NAME", "local-github")
            .env("GIT_COMMITTER_EMAIL", "local-github@example.invalid")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(data) = input {
            child.stdin.take().unwrap().write_all(data)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git(
        &["init", "--quiet", "--bare", "--initial-branch=main"],
        None,
    )?;
    git(&["config", "http.receivepack", "true"], None)?;
    let readme = format!("# {name}\n\nA repository of {owner}, served by local-github.\n");
    let blob = git(&["hash-object", "-w", "--stdin"], Some(readme.as_bytes()))?;
    let tree = git(
        &["mktree"],
        Some(format!("100644 blob {blob}\tREADME.md\n").as_bytes()),
    )?;
    let commit = git(&["commit-tree", &tree, "-m", "Initial commit"], None)?;
    git(&["update-ref", "refs/heads/main", &commit], None)?;
    Ok(dir)
}

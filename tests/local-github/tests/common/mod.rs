#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use local_github::{Account, App, GitHub, Installation};

pub const UA: &str = "local-github-tests/1.0";

/// The world from the crate's README: app 1001 on org acme (selected: widgets,
/// contents write) and user octo (all, default permissions), plus app 2002
/// installed nowhere, and 3003 installed read-only on acme.
pub fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "demo-app"))
        .app(App::new(2002, "other-app"))
        .app(App::new(3003, "reader-app"))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .repo("acme", "widgets")
        .repo("acme", "secret")
        .repo("octo", "dotfiles")
        .installation(
            Installation::new(11, 1001, "acme")
                .selected(["widgets"])
                .permissions([("contents", "write"), ("metadata", "read")]),
        )
        .installation(Installation::new(12, 1001, "octo").all())
        .installation(
            Installation::new(31, 3003, "acme")
                .all()
                .permissions([("contents", "read"), ("metadata", "read")]),
        )
        .start()
        .expect("emulator starts")
}

pub fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A REST call with GitHub's recommended headers; `auth` is the whole Authorization value.
pub fn call(method: &str, url: &str, auth: Option<&str>, body: Option<&str>) -> Resp {
    let a = agent();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("User-Agent", UA)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28");
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let mut resp = match body {
        Some(b) => a
            .run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            )
            .expect("request"),
        None => a.run(req.body(()).unwrap()).expect("request"),
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(gh: &GitHub, path: &str, auth: Option<&str>) -> Resp {
    call("GET", &format!("{}{path}", gh.api_url()), auth, None)
}

pub fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// Mints a token over HTTP for installation `id` of app `app_id`; returns the JSON body.
pub fn mint(gh: &GitHub, app_id: u64, id: u64, body: Option<&str>) -> Resp {
    call(
        "POST",
        &format!("{}/app/installations/{id}/access_tokens", gh.api_url()),
        Some(&bearer(&gh.jwt(app_id))),
        body,
    )
}

/// A raw HTTP/1.1 exchange (for requests ureq would not send, e.g. without User-Agent).
pub fn raw(gh: &GitHub, request: &str) -> String {
    let mut s = TcpStream::connect(gh.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs git hermetically (no user/system config, no prompts, no credential helpers).
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "credential.helper=",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .env("HOME", dir)
        .output()
        .expect("git runs")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "git failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `http://x-access-token:TOKEN@127.0.0.1:PORT/owner/repo.git`
pub fn token_url(gh: &GitHub, token: &str, owner: &str, repo: &str) -> String {
    format!(
        "http://x-access-token:{token}@{}/{owner}/{repo}.git",
        gh.host()
    )
}

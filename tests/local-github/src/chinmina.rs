//! chinmina-bridge (github.com/chinmina/chinmina-bridge, `main.go`, `handlers.go`,
//! `internal/vendor/vendor.go`): Buildkite jobs trade their Buildkite OIDC token for a token of
//! their pipeline's repository.
//!
//! * Auth: `Authorization: Bearer <JWT>`, verified against the issuer's JWKS; `aud` must be the
//!   configured audience (default `app-token-issuer`, chinmina's `JWT_AUDIENCE`), `iss` the
//!   Buildkite issuer and `organization_slug` the configured organisation; else 401.
//! * `POST /token[/{profile}]` → JSON `ProfileToken{organizationSlug, profile, repositoryUrl,
//!   repositories, permissions, token, hashedToken, expiry}` (`expiry` RFC 3339) for the
//!   pipeline's repository (the pipeline comes from the token's `pipeline_slug`).
//! * `POST /git-credentials[/{profile}]` with git's credential `get` input (`protocol`, `host`,
//!   `path` required, else 400) → git's credential format (`protocol`, `host`, `path`,
//!   `username=x-access-token`, `password`, `password_expiry_utc`); a repository other than the
//!   pipeline's → **200 with an empty body** (not mine).
//! * Errors on git-credentials: `text/plain` status text plus a `Chinmina-Denied: <reason>`
//!   header; on /token `{"error":"<status text>"}` with the same header.
//! * Vended tokens are cached for 45 minutes per (repository, profile) (`main.go`), so the
//!   `expiry` handed out may be as little as 15 minutes away.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{HttpRequest, HttpResponse, Outcome, Server, reason};
use crate::minter::{Minted, Minter};
use crate::oidc::{audiences, verify};
use crate::{GitHub, LockExt, Result, real_now};

/// How long chinmina keeps a vended token (`main.go`: 45 minutes).
pub const VEND_CACHE_SECS: i64 = 45 * 60;

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct ChinminaRequest {
    pub path: String,
    pub status: u16,
    /// `Chinmina-Denied`, when set.
    pub denied: Option<String>,
    /// Whether a token was handed out (fresh or from the 45-minute cache).
    pub vended: bool,
}

struct ChinminaState {
    minter: Minter,
    issuer: String,
    audience: String,
    organization: String,
    /// pipeline slug → (owner, repo)
    pipelines: Mutex<HashMap<String, (String, String)>>,
    /// profile → permissions
    profiles: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// (repo, profile) → (minted, vended at)
    cache: Mutex<HashMap<(String, String), (Minted, i64)>>,
    git_base: String,
    log: Mutex<Vec<ChinminaRequest>>,
}

/// A running chinmina-bridge stand-in (stops when dropped).
pub struct Chinmina {
    url: String,
    state: Arc<ChinminaState>,
    _server: Server,
}

/// The claims of a Buildkite job's OIDC token (buildkite docs "OIDC with Buildkite": `sub` is
/// `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP`).
pub fn buildkite_claims(organization: &str, pipeline: &str, audience: &str) -> Value {
    let now = real_now();
    json!({
        "sub": format!("organization:{organization}:pipeline:{pipeline}:ref:refs/heads/main:commit:0123456789abcdef:step:build"),
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "organization_slug": organization,
        "pipeline_slug": pipeline,
        "build_number": 1,
        "build_branch": "main",
        "build_commit": "0123456789abcdef",
        "step_key": "build",
        "job_id": "0190a3c8-0000-4000-8000-000000000001",
        "agent_id": "0190a3c8-0000-4000-8000-000000000002",
    })
}

impl Chinmina {
    /// Serves chinmina on `127.0.0.1` for Buildkite organisation `organization`, trusting ID
    /// tokens from `issuer`, minting with app `app_id` of `gh`. Profile `default` grants
    /// `contents: read` (chinmina's default pipeline profile).
    pub fn start(gh: &GitHub, app_id: u64, issuer: &str, organization: &str) -> Result<Chinmina> {
        let (listener, addr) = Server::bind(([127, 0, 0, 1], 0).into())?;
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "default".to_string(),
            BTreeMap::from([("contents".to_string(), "read".to_string())]),
        );
        let state = Arc::new(ChinminaState {
            minter: Minter::new(gh.api_url(), gh.app(app_id)),
            issuer: issuer.to_string(),
            audience: "app-token-issuer".into(),
            organization: organization.to_string(),
            pipelines: Mutex::default(),
            profiles: Mutex::new(profiles),
            cache: Mutex::default(),
            git_base: gh.url(),
            log: Mutex::default(),
        });
        let s = state.clone();
        let server = Server::start(
            listener,
            Arc::new(move |req| Outcome::Respond(handle(&s, &req))),
            None,
        )?;
        Ok(Chinmina {
            url: format!("http://{addr}"),
            state,
            _server: server,
        })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }
    /// The audience chinmina expects (`JWT_AUDIENCE`).
    pub fn audience(&self) -> String {
        self.state.audience.clone()
    }
    /// Declares a pipeline and its repository (what chinmina reads from the Buildkite API).
    pub fn pipeline(&self, slug: &str, owner: &str, repo: &str) {
        self.state
            .pipelines
            .guard()
            .insert(slug.to_string(), (owner.to_string(), repo.to_string()));
    }
    /// Declares (or replaces) a profile with these permissions.
    pub fn profile<K: Into<String>, V: Into<String>>(
        &self,
        name: &str,
        permissions: impl IntoIterator<Item = (K, V)>,
    ) {
        self.state.profiles.guard().insert(
            name.to_string(),
            permissions
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
    }
    /// Makes every cached token look `secs` older (as if vended earlier), so the next answer
    /// carries an expiry that much closer.
    pub fn age_cache(&self, secs: i64) {
        for (_, at) in self.state.cache.guard().values_mut() {
            *at -= secs;
        }
    }
    pub fn requests(&self) -> Vec<ChinminaRequest> {
        self.state.log.guard().clone()
    }
    /// Requests that handed out a token.
    pub fn vend_count(&self) -> usize {
        self.state.log.guard().iter().filter(|r| r.vended).count()
    }
}

fn denied(status: u16, why: &str, json_body: bool) -> HttpResponse {
    let mut r = if json_body {
        HttpResponse::new(
            status,
            "application/json",
            json!({"error": reason(status)}).to_string(),
        )
    } else {
        HttpResponse::new(
            status,
            "text/plain; charset=utf-8",
            format!("{}\n", reason(status)),
        )
    };
    r.set_header("Chinmina-Denied", why);
    r
}

fn handle(state: &ChinminaState, req: &HttpRequest) -> HttpResponse {
    let (git, profile) = match req.path.as_str() {
        "/token" => (false, "default".to_string()),
        "/git-credentials" => (true, "default".to_string()),
        p => match (
            p.strip_prefix("/token/"),
            p.strip_prefix("/git-credentials/"),
        ) {
            (Some(prof), _) if !prof.is_empty() && !prof.contains('/') => (false, prof.to_string()),
            (_, Some(prof)) if !prof.is_empty() && !prof.contains('/') => (true, prof.to_string()),
            _ if p == "/healthcheck" => {
                return HttpResponse::new(200, "text/plain", "OK\n");
            }
            _ => return HttpResponse::new(404, "text/plain", "404 page not found\n"),
        },
    };
    let mut vended = false;
    let response = if req.method != "POST" {
        HttpResponse::new(405, "text/plain", "Method Not Allowed\n")
    } else if req.body.len() > 20 * 1024 {
        denied(413, "request too large", !git)
    } else {
        serve(state, req, git, &profile, &mut vended)
    };
    let denied = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("chinmina-denied"))
        .map(|(_, v)| v.clone());
    state.log.guard().push(ChinminaRequest {
        path: req.path.clone(),
        status: response.status,
        denied,
        vended,
    });
    response
}

fn serve(
    state: &ChinminaState,
    req: &HttpRequest,
    git: bool,
    profile: &str,
    vended: &mut bool,
) -> HttpResponse {
    let Some(bearer) = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return denied(401, "missing bearer token", !git);
    };
    let claims = match verify(bearer, real_now()) {
        Ok(c) => c,
        Err(_) => return denied(401, "invalid token", !git),
    };
    if claims["iss"].as_str() != Some(state.issuer.as_str())
        || !audiences(&claims).contains(&state.audience)
        || claims["organization_slug"].as_str() != Some(state.organization.as_str())
    {
        return denied(401, "token claims not accepted", !git);
    }
    let pipeline = claims["pipeline_slug"].as_str().unwrap_or("");
    let Some((owner, repo)) = state.pipelines.guard().get(pipeline).cloned() else {
        return denied(403, "pipeline has no repository", !git);
    };
    let Some(permissions) = state.profiles.guard().get(profile).cloned() else {
        return denied(403, &format!("profile {profile} not found"), !git);
    };
    let repository_url = format!("{}/{owner}/{repo}.git", state.git_base);
    let mut request_lines = BTreeMap::new();
    if git {
        let body = String::from_utf8_lossy(&req.body);
        for line in body.lines() {
            if let Some((k, v)) = line.split_once('=') {
                request_lines.insert(k.to_string(), v.to_string());
            }
        }
        let (Some(protocol), Some(host), Some(path)) = (
            request_lines.get("protocol"),
            request_lines.get("host"),
            request_lines.get("path"),
        ) else {
            return denied(400, "protocol, host and path are required", false);
        };
        let asked = format!("{protocol}://{host}/{}", path.trim_start_matches('/'));
        let norm = |u: &str| {
            u.trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase()
        };
        if norm(&asked) != norm(&repository_url) {
            return HttpResponse::new(200, "text/plain", "");
        }
    }
    let key = (
        format!("{owner}/{repo}").to_ascii_lowercase(),
        profile.to_string(),
    );
    let now = real_now();
    let cached = state
        .cache
        .guard()
        .get(&key)
        .filter(|(_, at)| now - at < VEND_CACHE_SECS)
        .map(|(m, _)| m.clone());
    let minted = match cached {
        Some(m) => m,
        None => {
            let installation = match state.minter.installation_for(&owner) {
                Ok(i) => i,
                Err(_) => return denied(500, "no installation for the repository owner", !git),
            };
            let perms = serde_json::to_value(&permissions).unwrap_or(Value::Null);
            match state
                .minter
                .mint(installation, Some(&perms), Some(vec![repo.clone()]))
            {
                Ok(m) => {
                    state.cache.guard().insert(key, (m.clone(), now));
                    m
                }
                Err(f) => {
                    return denied(500, &format!("token mint failed: {}", f.message), !git);
                }
            }
        }
    };
    *vended = true;
    let expiry = humantime::parse_rfc3339(&minted.expires_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    if git {
        let mut out = String::new();
        for k in ["protocol", "host", "path"] {
            out.push_str(&format!("{k}={}\n", request_lines[k]));
        }
        out.push_str("username=x-access-token\n");
        out.push_str(&format!("password={}\n", minted.token));
        out.push_str(&format!("password_expiry_utc={expiry}\n\n"));
        HttpResponse::new(200, "text/plain", out)
    } else {
        let perms: Vec<String> = permissions
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        HttpResponse::new(
            200,
            "application/json",
            json!({
                "organizationSlug": state.organization,
                "profile": format!("repo:{profile}"),
                "repositoryUrl": repository_url,
                "repositories": [repo],
                "permissions": perms,
                "token": minted.token,
                "hashedToken": format!("{:x}", Sha256::digest(minted.token.as_bytes())),
                "expiry": minted.expires_at,
            })
            .to_string(),
        )
    }
}

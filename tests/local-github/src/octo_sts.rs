//! octo-sts (github.com/octo-sts/app, `pkg/octosts/octosts.go` and `trust_policy.go`): exchange
//! an OIDC token for a GitHub installation token, as allowed by a trust policy kept in the
//! repository itself.
//!
//! `GET|POST /sts/exchange?scope=S&scopes=S&identity=NAME` with `Authorization: Bearer <OIDC>`:
//! 1. exactly one `Authorization` header with a `Bearer` token, else 401 (gRPC 16);
//! 2. the token's `iss` is read unverified (400 `invalid bearer token`), must be https (http only
//!    for loopback, 400 `invalid issuer format`), is discovered (400 `unable to fetch or create the
//!    provider`) and the token verified against its JWKS (401 `unable to verify bearer token`);
//! 3. `scopes` (0 → `scope`; 2 or more → 400 `multiple scopes not supported`), `identity`
//!    (400 `... must be provided`);
//! 4. the trust policy `.github/chainguard/{identity}.sts.yaml` on `main` of repository `scope`
//!    (`owner/repo`), or of `owner/.github` for an organisation scope (`owner`), as an org policy
//!    that may list `repositories:`; missing/unparsable/uncompilable → 404;
//! 5. the policy checks the token (issuer, subject, audience — the service's domain when the
//!    policy names none —, claim patterns; every pattern anchored) → 403 `trust policy: …`;
//! 6. the octo-sts App's installation on the owner mints a token with the policy's
//!    `permissions` for the repository (or the org policy's `repositories`); GitHub's 422 → 403
//!    `token exchange failure (StatusUnprocessableEntity)`, no installation → 404;
//! 7. the answer is `{"token":"ghs_…","refreshToken":"","expiry":null}`: **no expiry**.
//!
//! Errors are grpc-gateway's `{"code","message","details":[]}`. Trust policies are read on every
//! exchange (octo-sts caches them for five minutes; tests change them between exchanges).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{HttpRequest, HttpResponse, Outcome, Server};
use crate::minter::{Minter, read_file};
use crate::oidc::{VerifyError, audiences, form_params, unverified_issuer, verify};
use crate::{GitHub, LockExt, Result, real_now};

/// One exchange as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct StsExchange {
    pub method: String,
    /// The raw query string (to check that both `scope` and `scopes` were sent).
    pub query: String,
    pub scope: String,
    pub identity: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The error message, empty on success.
    pub message: String,
    /// The OIDC token's `sub` when it verified.
    pub subject: Option<String>,
    /// The minted token on success.
    pub token: Option<String>,
}

struct StsState {
    gh: Arc<crate::Shared>,
    minter: Minter,
    domain: String,
    log: Mutex<Vec<StsExchange>>,
    /// Answers to give instead of exchanging: (status, gRPC code, message, times left).
    faults: Mutex<Vec<(u32, String, usize)>>,
}

/// A running octo-sts stand-in (stops when dropped).
pub struct OctoSts {
    url: String,
    state: Arc<StsState>,
    _server: Server,
}

impl OctoSts {
    /// Serves octo-sts on `127.0.0.1`, minting with app `app_id` of `gh`. Its domain (the audience
    /// it expects when a policy names none) is `127.0.0.1`, as `octo-sts.dev` is for the real one.
    pub fn start(gh: &GitHub, app_id: u64) -> Result<OctoSts> {
        let (listener, addr) = Server::bind(([127, 0, 0, 1], 0).into())?;
        let state = Arc::new(StsState {
            gh: gh.shared.clone(),
            minter: Minter::new(gh.api_url(), gh.app(app_id)),
            domain: addr.ip().to_string(),
            log: Mutex::default(),
            faults: Mutex::default(),
        });
        let s = state.clone();
        let server = Server::start(
            listener,
            Arc::new(move |req| Outcome::Respond(handle(&s, &req))),
            None,
        )?;
        Ok(OctoSts {
            url: format!("http://{addr}"),
            state,
            _server: server,
        })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }
    /// The audience octo-sts expects by default.
    pub fn domain(&self) -> String {
        self.state.domain.clone()
    }
    pub fn exchanges(&self) -> Vec<StsExchange> {
        self.state.log.guard().clone()
    }
    /// Exchanges that returned a token.
    pub fn tokens_issued(&self) -> usize {
        self.state
            .log
            .guard()
            .iter()
            .filter(|e| e.status == 200)
            .count()
    }
    pub fn clear_log(&self) {
        self.state.log.guard().clear();
    }
    /// The next `times` exchanges answer gRPC `code` (its HTTP status: 16 → 401, 8 → 429,
    /// 14 → 503, 13 → 500, …) with `message` instead of exchanging; they are logged.
    pub fn fail_next(&self, code: u32, message: &str, times: usize) {
        self.state
            .faults
            .guard()
            .push((code, message.to_string(), times));
    }
}

/// The trust policy file (`trust_policy.go` `TrustPolicy` / `OrgTrustPolicy`), strict: unknown
/// fields are errors, `repositories` only in an org policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    issuer: Option<String>,
    issuer_pattern: Option<String>,
    subject: Option<String>,
    subject_pattern: Option<String>,
    audience: Option<String>,
    audience_pattern: Option<String>,
    #[serde(default)]
    claim_pattern: BTreeMap<String, String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    repositories: Option<Vec<String>>,
}

enum Matcher {
    Exact(String),
    /// The compiled, anchored pattern and the pattern as the policy wrote it.
    Pattern(regex::Regex, String),
}

impl Matcher {
    fn compile(
        exact: Option<String>,
        pattern: Option<String>,
        name: &str,
    ) -> std::result::Result<Option<Matcher>, String> {
        match (exact, pattern) {
            (Some(_), Some(_)) => Err(format!("only one of {name} or {name}_pattern can be set")),
            (Some(e), None) => Ok(Some(Matcher::Exact(e))),
            (None, Some(p)) => regex::Regex::new(&format!("^(?:{p})$"))
                .map(|r| Some(Matcher::Pattern(r, p)))
                .map_err(|e| format!("{name}_pattern: {e}")),
            (None, None) => Ok(None),
        }
    }
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == value,
            Matcher::Pattern(r, _) => r.is_match(value),
        }
    }
    fn describe(&self) -> String {
        match self {
            Matcher::Exact(e) => format!("{e:?}"),
            Matcher::Pattern(_, p) => format!("{p:?}"),
        }
    }
}

struct Policy {
    issuer: Matcher,
    subject: Matcher,
    audience: Option<Matcher>,
    claims: Vec<(String, regex::Regex)>,
    permissions: BTreeMap<String, String>,
    repositories: Option<Vec<String>>,
}

fn compile(file: PolicyFile) -> std::result::Result<Policy, String> {
    let issuer = Matcher::compile(file.issuer, file.issuer_pattern, "issuer")?
        .ok_or("one of issuer or issuer_pattern must be set")?;
    let subject = Matcher::compile(file.subject, file.subject_pattern, "subject")?
        .ok_or("one of subject or subject_pattern must be set")?;
    let audience = Matcher::compile(file.audience, file.audience_pattern, "audience")?;
    let mut claims = Vec::new();
    for (claim, pattern) in file.claim_pattern {
        let r = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
        claims.push((claim, r));
    }
    Ok(Policy {
        issuer,
        subject,
        audience,
        claims,
        permissions: file.permissions,
        repositories: file.repositories,
    })
}

impl Policy {
    /// `CheckToken`: the first mismatch, as octo-sts words it.
    fn check(&self, claims: &Value, domain: &str) -> std::result::Result<(), String> {
        let iss = claims["iss"].as_str().unwrap_or("");
        if !self.issuer.matches(iss) {
            return Err(format!(
                "trust policy: issuer {iss:?} did not match {}",
                self.issuer.describe()
            ));
        }
        let sub = claims["sub"].as_str().unwrap_or("");
        if !self.subject.matches(sub) {
            return Err(format!(
                "trust policy: subject {sub:?} did not match {}",
                self.subject.describe()
            ));
        }
        let auds = audiences(claims);
        match &self.audience {
            Some(m) if !auds.iter().any(|a| m.matches(a)) => {
                return Err(format!(
                    "trust policy: audience {auds:?} did not match {}",
                    m.describe()
                ));
            }
            None if !auds.iter().any(|a| a == domain) => {
                return Err(format!(
                    "trust policy: audience {auds:?} did not contain {domain:?}"
                ));
            }
            _ => {}
        }
        for (claim, pattern) in &self.claims {
            let value = match &claims[claim.as_str()] {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Null => {
                    return Err(format!(
                        "trust policy: expected claim {claim:?} not found in token"
                    ));
                }
                _ => {
                    return Err(format!(
                        "trust policy: expected claim {claim:?} to be a string or bool"
                    ));
                }
            };
            if !pattern.is_match(&value) {
                return Err(format!(
                    "trust policy: claim {claim:?} {value:?} did not match {:?}",
                    pattern.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// gRPC code → HTTP status (grpc-gateway's mapping).
fn grpc(code: u32, message: &str) -> HttpResponse {
    let status = match code {
        3 => 400,
        5 => 404,
        7 => 403,
        8 => 429,
        12 => 501,
        13 => 500,
        14 => 503,
        16 => 401,
        _ => 500,
    };
    HttpResponse::new(
        status,
        "application/json",
        json!({"code": code, "message": message, "details": []}).to_string(),
    )
}

fn handle(state: &StsState, req: &HttpRequest) -> HttpResponse {
    if req.path != "/sts/exchange" {
        return grpc(5, "Not Found");
    }
    if req.method != "GET" && req.method != "POST" {
        return grpc(12, "Method Not Allowed");
    }
    let mut params = form_params(&req.query);
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if req.method == "POST" && form {
        params.extend(form_params(&String::from_utf8_lossy(&req.body)));
    }
    let get_all = |n: &str| -> Vec<String> {
        params
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let scopes = get_all("scopes");
    let scope = match scopes.len() {
        0 => get_all("scope").into_iter().next().unwrap_or_default(),
        1 => scopes[0].clone(),
        _ => String::new(),
    };
    let identity = get_all("identity").into_iter().next().unwrap_or_default();
    let mut record = StsExchange {
        method: req.method.clone(),
        query: req.query.clone(),
        scope: scope.clone(),
        identity: identity.clone(),
        status: 0,
        message: String::new(),
        subject: None,
        token: None,
    };
    let fault = {
        let mut faults = state.faults.guard();
        let f = faults.first_mut().map(|f| {
            f.2 -= 1;
            (f.0, f.1.clone())
        });
        faults.retain(|f| f.2 > 0);
        f
    };
    let (response, token) = match fault {
        Some((code, message)) => (grpc(code, &message), None),
        None => exchange(state, req, &scopes, &scope, &identity, &mut record),
    };
    record.status = response.status;
    record.token = token;
    if response.status != 200 {
        record.message = match &response.body {
            crate::http::Body::Bytes(b) => serde_json::from_slice::<Value>(b)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default(),
            crate::http::Body::Stream(_) => String::new(),
        };
    }
    state.log.guard().push(record);
    response
}

fn exchange(
    state: &StsState,
    req: &HttpRequest,
    scopes: &[String],
    scope: &str,
    identity: &str,
    record: &mut StsExchange,
) -> (HttpResponse, Option<String>) {
    let auths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .collect();
    if auths.len() != 1 {
        return (grpc(16, "no authorization header"), None);
    }
    let Some(bearer) = auths[0].strip_prefix("Bearer ") else {
        return (grpc(16, "no bearer token"), None);
    };
    let issuer = match unverified_issuer(bearer) {
        Ok(i) => i,
        Err(VerifyError::Malformed(m)) => return (grpc(3, &m), None),
        Err(_) => return (grpc(3, "invalid bearer token"), None),
    };
    if !valid_issuer(&issuer) {
        return (grpc(3, "invalid issuer format"), None);
    }
    let claims = match verify(bearer, real_now()) {
        Ok(c) => c,
        Err(VerifyError::Unverified(m)) => return (grpc(16, &m), None),
        Err(VerifyError::Malformed(m) | VerifyError::Provider(m)) => return (grpc(3, &m), None),
    };
    record.subject = claims["sub"].as_str().map(str::to_string);
    if scopes.len() > 1 {
        return (grpc(3, "multiple scopes not supported"), None);
    }
    if scope.is_empty() {
        return (grpc(3, "scope must be provided"), None);
    }
    if identity.is_empty() {
        return (grpc(3, "identity must be provided"), None);
    }
    let (owner, repo, org) = match scope.split_once('/') {
        Some((o, r)) => (o, r, false),
        None => (scope, ".github", true),
    };
    let path = format!(".github/chainguard/{identity}.sts.yaml");
    let file = {
        let world = state.gh.world.guard();
        world.repo(owner, repo).map(|r| {
            state
                .gh
                .repo_root
                .join(&r.owner)
                .join(format!("{}.git", r.name))
        })
    }
    .and_then(|dir| read_file(&dir, &path));
    let Some(text) = file else {
        return (
            grpc(5, &format!("unable to find trust policy for {identity:?}")),
            None,
        );
    };
    let parsed = match serde_yaml_ng::from_str::<PolicyFile>(&text) {
        Ok(p) if !org && p.repositories.is_some() => Err(()),
        Ok(p) => Ok(p),
        Err(_) => Err(()),
    };
    let Ok(parsed) = parsed else {
        return (
            grpc(
                5,
                &format!("unable to parse trust policy found for {identity:?}"),
            ),
            None,
        );
    };
    let Ok(policy) = compile(parsed) else {
        return (
            grpc(
                5,
                &format!("unable to compile trust policy found for {identity:?}"),
            ),
            None,
        );
    };
    if let Err(m) = policy.check(&claims, &state.domain) {
        return (grpc(7, &m), None);
    }
    let installation = match state.minter.installation_for(owner) {
        Ok(i) => i,
        Err(f) if f.status == 404 => {
            return (
                grpc(5, &format!("no installation found for {owner:?}")),
                None,
            );
        }
        Err(_) => return (grpc(13, "failed to get token"), None),
    };
    let repositories = if org {
        policy.repositories.clone()
    } else {
        Some(vec![repo.to_string()])
    };
    let permissions = serde_json::to_value(&policy.permissions).unwrap_or(Value::Null);
    match state
        .minter
        .mint(installation, Some(&permissions), repositories)
    {
        Ok(m) => (
            HttpResponse::new(
                200,
                "application/json",
                json!({"token": m.token, "refreshToken": "", "expiry": null}).to_string(),
            ),
            Some(m.token),
        ),
        Err(f) if f.status == 422 => (
            grpc(7, "token exchange failure (StatusUnprocessableEntity)"),
            None,
        ),
        Err(f) if f.status == 429 => (grpc(8, "rate limited"), None),
        Err(_) => (grpc(13, "failed to get token"), None),
    }
}

/// `oidcvalidate`: https (http only for loopback), at most 255 characters, no query or fragment.
fn valid_issuer(iss: &str) -> bool {
    if iss.len() > 255 || iss.contains(['?', '#', ' ']) {
        return false;
    }
    if iss.starts_with("https://") {
        return true;
    }
    let Some(rest) = iss.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> std::result::Result<Policy, String> {
        compile(serde_yaml_ng::from_str::<PolicyFile>(yaml).map_err(|e| e.to_string())?)
    }

    #[test]
    fn patterns_are_anchored_and_claims_checked() {
        let p = policy(
            "issuer: https://token.actions.githubusercontent.com\nsubject_pattern: repo:acme/.*:ref:refs/heads/main\nclaim_pattern:\n  workflow: ci\npermissions:\n  contents: read\n",
        )
        .unwrap();
        let ok = json!({"iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/widgets:ref:refs/heads/main", "aud": ["127.0.0.1"], "workflow": "ci"});
        assert_eq!(p.check(&ok, "127.0.0.1"), Ok(()));
        let mut tail = ok.clone();
        tail["sub"] = json!("repo:acme/widgets:ref:refs/heads/main-evil");
        assert!(p.check(&tail, "127.0.0.1").unwrap_err().contains("subject"));
        let mut aud = ok.clone();
        aud["aud"] = json!("sts.amazonaws.com");
        assert!(p.check(&aud, "127.0.0.1").unwrap_err().contains("audience"));
        let mut claim = ok.clone();
        claim["workflow"] = json!("deploy");
        assert!(
            p.check(&claim, "127.0.0.1")
                .unwrap_err()
                .contains("claim \"workflow\"")
        );
    }

    #[test]
    fn policies_need_one_issuer_and_one_subject() {
        assert!(policy("subject: x\n").is_err());
        assert!(policy("issuer: a\nissuer_pattern: b\nsubject: x\n").is_err());
        assert!(policy("issuer: a\nsubject: x\nunknown: 1\n").is_err());
    }

    #[test]
    fn issuers_must_be_https_or_loopback() {
        assert!(valid_issuer("https://agent.buildkite.com"));
        assert!(valid_issuer("http://127.0.0.1:8080"));
        assert!(!valid_issuer("http://example.com"));
        assert!(!valid_issuer("https://x?y"));
    }
}

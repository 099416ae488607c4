//! An OIDC issuer (discovery + JWKS, RS256-signed ID tokens), GitHub Actions' ID-token endpoint,
//! and the verifier the broker stand-ins use on the tokens they are given.
//!
//! * `GET /.well-known/openid-configuration` answers `issuer`, `jwks_uri` and the fields
//!   go-oidc reads (as token.actions.githubusercontent.com and agent.buildkite.com publish them);
//! * `GET /.well-known/jwks` answers the RSA public key with its `kid`;
//! * `GET /_apis/distributedtask/hubs/Actions/plans/{plan}/jobs/{job}/idtoken?api-version=2.0&audience=A`
//!   with `Authorization: Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>` answers `{"count":1,"value":"<jwt>"}`
//!   for a job registered with [`OidcIssuer::actions_job`] — the claims GitHub puts in an Actions
//!   ID token, `aud` from `audience=` (default `https://github.com/OWNER`, as on GitHub), lifetime
//!   300 s (`exp - iat`, actions/toolkit#2048).
//!
//! Any other claims (a GitLab `id_tokens:` variable, a Buildkite job token, a Kubernetes
//! projected service-account token) are signed with [`OidcIssuer::sign`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::BigUint;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::http::{HttpRequest, HttpResponse, Outcome, Server};
use crate::{AppKey, LockExt, Result, real_now};

const JSON: &str = "application/json; charset=utf-8";
/// Lifetime of an Actions ID token (`exp - iat`).
pub const ACTIONS_TOKEN_LIFETIME: i64 = 300;

/// A GitHub Actions job that may ask for ID tokens.
#[derive(Debug, Clone)]
pub struct ActionsJob {
    pub repository: String,
    pub git_ref: String,
    pub event_name: String,
    pub actor: String,
    pub workflow: String,
    pub environment: Option<String>,
}

impl ActionsJob {
    /// A `push` job on `refs/heads/main` of `owner/repo` running workflow `ci`.
    pub fn new(repository: &str) -> ActionsJob {
        ActionsJob {
            repository: repository.to_string(),
            git_ref: "refs/heads/main".into(),
            event_name: "push".into(),
            actor: "octocat".into(),
            workflow: "ci".into(),
            environment: None,
        }
    }
    pub fn git_ref(mut self, r: &str) -> ActionsJob {
        self.git_ref = r.to_string();
        self
    }
    pub fn environment(mut self, env: &str) -> ActionsJob {
        self.environment = Some(env.to_string());
        self
    }
    pub fn event(mut self, name: &str) -> ActionsJob {
        self.event_name = name.to_string();
        self
    }

    fn owner(&self) -> &str {
        self.repository.split('/').next().unwrap_or("")
    }

    /// The claims GitHub puts in the job's ID token (docs: "About security hardening with
    /// OpenID Connect" → "Understanding the OIDC token").
    fn claims(&self, issuer: &str, audience: &str, now: i64) -> Value {
        let sub = match &self.environment {
            Some(env) => format!("repo:{}:environment:{env}", self.repository),
            None if self.event_name == "pull_request" => {
                format!("repo:{}:pull_request", self.repository)
            }
            None => format!("repo:{}:ref:{}", self.repository, self.git_ref),
        };
        let workflow_ref = format!(
            "{}/.github/workflows/{}.yml@{}",
            self.repository, self.workflow, self.git_ref
        );
        let mut jti = [0u8; 16];
        rand::Rng::fill(&mut rand::thread_rng(), &mut jti[..]);
        let mut claims = json!({
            "iss": issuer,
            "sub": sub,
            "aud": audience,
            "ref": self.git_ref,
            "ref_type": if self.git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
            "repository": self.repository,
            "repository_owner": self.owner(),
            "repository_visibility": "private",
            "actor": self.actor,
            "event_name": self.event_name,
            "workflow": self.workflow,
            "workflow_ref": workflow_ref,
            "job_workflow_ref": workflow_ref,
            "runner_environment": "github-hosted",
            "run_id": "1",
            "run_number": "1",
            "run_attempt": "1",
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "nbf": now,
            "exp": now + ACTIONS_TOKEN_LIFETIME,
        });
        if let Some(env) = &self.environment {
            claims["environment"] = json!(env);
        }
        claims
    }
}

struct IssuerState {
    url: String,
    key: AppKey,
    kid: String,
    /// ACTIONS_ID_TOKEN_REQUEST_TOKEN → the job it belongs to.
    jobs: Mutex<HashMap<String, ActionsJob>>,
    /// Audiences of the ID tokens handed out by the Actions endpoint, in order.
    actions_audiences: Mutex<Vec<String>>,
    discovery_requests: AtomicUsize,
}

/// A running OIDC issuer on `127.0.0.1` (stops when dropped).
pub struct OidcIssuer {
    state: Arc<IssuerState>,
    _server: Server,
}

impl OidcIssuer {
    /// Starts an issuer with a pooled key (the same for every issuer of the process; give
    /// another with [`OidcIssuer::start_with_key`]).
    pub fn start() -> Result<OidcIssuer> {
        OidcIssuer::start_with_key(AppKey::pooled(9001))
    }

    pub fn start_with_key(key: AppKey) -> Result<OidcIssuer> {
        let (listener, addr) = Server::bind(([127, 0, 0, 1], 0).into())?;
        let url = format!("http://{addr}");
        let kid = key.fingerprint()[7..23].replace(['+', '/'], "_");
        let state = Arc::new(IssuerState {
            url,
            key,
            kid,
            jobs: Mutex::default(),
            actions_audiences: Mutex::default(),
            discovery_requests: AtomicUsize::new(0),
        });
        let s = state.clone();
        let server = Server::start(
            listener,
            Arc::new(move |req| Outcome::Respond(handle(&s, &req))),
            None,
        )?;
        Ok(OidcIssuer {
            state,
            _server: server,
        })
    }

    /// The issuer URL (`iss`), `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.state.url.clone()
    }

    /// Signs `claims` as an RS256 ID token with the issuer's key and `kid`; `iss`, `iat` and
    /// `exp` (one hour) are added when missing.
    pub fn sign(&self, claims: Value) -> String {
        let mut claims = claims;
        let now = real_now();
        if let Some(map) = claims.as_object_mut() {
            map.entry("iss").or_insert_with(|| json!(self.state.url));
            map.entry("iat").or_insert_with(|| json!(now));
            map.entry("nbf").or_insert_with(|| json!(now));
            map.entry("exp").or_insert_with(|| json!(now + 3600));
        }
        sign(&self.state.key, &self.state.kid, &claims)
    }

    /// Registers an Actions job: returns `(ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN)`.
    /// The URL carries a query string already, as on GitHub.
    pub fn actions_job(&self, job: ActionsJob) -> (String, String) {
        let mut raw = [0u8; 24];
        rand::Rng::fill(&mut rand::thread_rng(), &mut raw[..]);
        let request_token = URL_SAFE_NO_PAD.encode(raw);
        let plan = format!("{:08x}", rand::random::<u32>());
        self.state.jobs.guard().insert(request_token.clone(), job);
        let url = format!(
            "{}/_apis/distributedtask/hubs/Actions/plans/{plan}/jobs/{plan}/idtoken?api-version=2.0",
            self.state.url
        );
        (url, request_token)
    }

    /// How many ID tokens the Actions endpoint handed out.
    pub fn actions_token_count(&self) -> usize {
        self.state.actions_audiences.guard().len()
    }

    /// The audiences the Actions endpoint was asked for, in order.
    pub fn actions_audiences(&self) -> Vec<String> {
        self.state.actions_audiences.guard().clone()
    }

    /// Requests for the discovery document (what a verifier fetches).
    pub fn discovery_count(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }
}

fn sign(key: &AppKey, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key_pem().as_bytes())
        .expect("own PEM parses");
    jsonwebtoken::encode(&header, claims, &encoding).expect("JWT signing")
}

fn respond(status: u16, body: Value) -> HttpResponse {
    HttpResponse::new(status, JSON, body.to_string())
}

fn handle(state: &IssuerState, req: &HttpRequest) -> HttpResponse {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
            respond(
                200,
                json!({
                    "issuer": state.url,
                    "jwks_uri": format!("{}/.well-known/jwks", state.url),
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_owner", "workflow", "actor", "event_name"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid"],
                }),
            )
        }
        ("GET", "/.well-known/jwks") => {
            let public = state.key.public_key();
            respond(
                200,
                json!({"keys": [{
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": state.kid,
                    "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                }]}),
            )
        }
        ("GET", p)
            if p.starts_with("/_apis/distributedtask/hubs/Actions/plans/")
                && p.ends_with("/idtoken") =>
        {
            let bearer = req
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            let Some(job) = state.jobs.guard().get(bearer).cloned() else {
                return respond(
                    401,
                    json!({"message": "TF400813: The user '' is not authorized to access this resource."}),
                );
            };
            let audience = req
                .query_param("audience")
                .map(|a| percent_decode(&a))
                .unwrap_or_else(|| format!("https://github.com/{}", job.owner()));
            let token = sign(
                &state.key,
                &state.kid,
                &job.claims(&state.url, &audience, real_now()),
            );
            state.actions_audiences.guard().push(audience);
            respond(200, json!({"count": 1, "value": token}))
        }
        _ => HttpResponse::new(404, "text/plain; charset=utf-8", "Not Found\n"),
    }
}

/// `%XX` and `+` decoding of one query or form value.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query (or form) parameters, decoded, in order; a name may repeat.
pub(crate) fn form_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Why a presented ID token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// Not a JWT, or no usable `iss` (gRPC InvalidArgument in octo-sts).
    Malformed(String),
    /// The issuer could not be discovered (InvalidArgument: "unable to fetch or create the provider").
    Provider(String),
    /// Signature, key id, expiry (Unauthenticated).
    Unverified(String),
}

/// The unverified `iss` of a JWT.
pub(crate) fn unverified_issuer(token: &str) -> std::result::Result<String, VerifyError> {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .ok_or_else(|| VerifyError::Malformed("invalid bearer token".into()))?;
    claims["iss"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| VerifyError::Malformed("invalid bearer token".into()))
}

/// Verifies an RS256 ID token the way go-oidc does: discovery at `{iss}/.well-known/openid-configuration`
/// (whose `issuer` must equal `iss`), the key from `jwks_uri` by `kid`, then the signature and
/// `exp`/`nbf` (60 s of leeway for `nbf`, none for `exp`). Returns the claims.
pub(crate) fn verify(token: &str, now: i64) -> std::result::Result<Value, VerifyError> {
    let issuer = unverified_issuer(token)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let get = |url: &str| -> Option<Value> {
        let mut r = agent.get(url).call().ok()?;
        if r.status().as_u16() != 200 {
            return None;
        }
        serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
    };
    let provider = || VerifyError::Provider("unable to fetch or create the provider".into());
    let discovery = get(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .ok_or_else(provider)?;
    if discovery["issuer"].as_str() != Some(issuer.as_str()) {
        return Err(provider());
    }
    let jwks = discovery["jwks_uri"]
        .as_str()
        .and_then(get)
        .ok_or_else(provider)?;
    let unverified =
        |m: &str| VerifyError::Unverified(format!("unable to verify bearer token: {m}"));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unverified("malformed jwt"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unverified("malformed jwt header"))?;
    if header["alg"] != "RS256" {
        return Err(unverified("unexpected signature algorithm"));
    }
    let kid = header["kid"].as_str();
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| unverified("malformed jwt signature"))?;
    let message = format!("{h}.{p}");
    let verified = jwks["keys"].as_array().into_iter().flatten().any(|k| {
        if kid.is_some() && k["kid"].as_str() != kid {
            return false;
        }
        let (Some(n), Some(e)) = (
            k["n"].as_str().and_then(|n| URL_SAFE_NO_PAD.decode(n).ok()),
            k["e"].as_str().and_then(|e| URL_SAFE_NO_PAD.decode(e).ok()),
        ) else {
            return false;
        };
        let Ok(public) =
            rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
        else {
            return false;
        };
        let Ok(signature) = rsa::pkcs1v15::Signature::try_from(sig.as_slice()) else {
            return false;
        };
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err(unverified("failed to verify signature"));
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unverified("malformed jwt payload"))?;
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => {}
        Some(_) => return Err(unverified("token is expired")),
        None => return Err(unverified("token has no exp")),
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
        return Err(unverified("token is not valid yet"));
    }
    Ok(claims)
}

/// The `aud` claim as a list (a string or an array of strings).
pub(crate) fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

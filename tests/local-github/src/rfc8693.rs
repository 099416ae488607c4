//! A generic OAuth 2.0 Token Exchange server (RFC 8693 §2): what a Keycloak, an internal STS or
//! a Vault plugin in front of a GitHub App looks like to a client.
//!
//! `POST /token`, `application/x-www-form-urlencoded`:
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (else 400
//! `unsupported_grant_type`), `subject_token` (an OIDC ID token from a trusted issuer, verified by
//! discovery + JWKS; else 400 `invalid_grant`), `subject_token_type`
//! `urn:ietf:params:oauth:token-type:id_token` or `…:jwt` (else 400 `invalid_request`), and
//! `scope=OWNER/REPO` (else 400 `invalid_scope`). The answer (§2.2.1):
//! `{"access_token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token",
//! "token_type":"N_A","expires_in"}`, the token minted by the server's app for that repository
//! with `contents: write`. Errors are RFC 6749 §5.2 `{"error","error_description"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::http::{HttpRequest, HttpResponse, Outcome, Server};
use crate::minter::Minter;
use crate::oidc::{form_params, verify};
use crate::{GitHub, Result, real_now};

struct State {
    minter: Minter,
    issuer: String,
    exchanges: AtomicUsize,
}

/// A running RFC 8693 server (stops when dropped).
pub struct TokenExchange {
    url: String,
    state: Arc<State>,
    _server: Server,
}

impl TokenExchange {
    /// Trusts ID tokens from `issuer`; mints with app `app_id` of `gh`.
    pub fn start(gh: &GitHub, app_id: u64, issuer: &str) -> Result<TokenExchange> {
        let (listener, addr) = Server::bind(([127, 0, 0, 1], 0).into())?;
        let state = Arc::new(State {
            minter: Minter::new(gh.api_url(), gh.app(app_id)),
            issuer: issuer.to_string(),
            exchanges: AtomicUsize::new(0),
        });
        let s = state.clone();
        let server = Server::start(
            listener,
            Arc::new(move |req| Outcome::Respond(handle(&s, &req))),
            None,
        )?;
        Ok(TokenExchange {
            url: format!("http://{addr}/token"),
            state,
            _server: server,
        })
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Exchanges that handed out a token.
    pub fn exchange_count(&self) -> usize {
        self.state.exchanges.load(Ordering::SeqCst)
    }
}

fn error(code: &str, description: &str) -> HttpResponse {
    HttpResponse::new(
        400,
        "application/json",
        json!({"error": code, "error_description": description}).to_string(),
    )
}

fn handle(state: &State, req: &HttpRequest) -> HttpResponse {
    if req.path != "/token" || req.method != "POST" {
        return HttpResponse::new(404, "application/json", r#"{"error":"not_found"}"#);
    }
    let params = form_params(&String::from_utf8_lossy(&req.body));
    let get = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return error(
            "unsupported_grant_type",
            "grant_type must be token-exchange",
        );
    }
    if !matches!(
        get("subject_token_type"),
        "urn:ietf:params:oauth:token-type:id_token" | "urn:ietf:params:oauth:token-type:jwt"
    ) {
        return error(
            "invalid_request",
            "subject_token_type must be id_token or jwt",
        );
    }
    match verify(get("subject_token"), real_now()) {
        Ok(c) if c["iss"].as_str() == Some(state.issuer.as_str()) => {}
        _ => return error("invalid_grant", "subject_token is not valid"),
    };
    let Some((owner, repo)) = get("scope").split_once('/') else {
        return error("invalid_scope", "scope must be OWNER/REPO");
    };
    let installation = match state.minter.installation_for(owner) {
        Ok(i) => i,
        Err(_) => return error("invalid_target", "no installation for the owner"),
    };
    let permissions = json!({"contents": "write"});
    match state.minter.mint(
        installation,
        Some(&permissions),
        Some(vec![repo.to_string()]),
    ) {
        Ok(m) => {
            state.exchanges.fetch_add(1, Ordering::SeqCst);
            let expires_in = humantime::parse_rfc3339(&m.expires_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64 - real_now());
            HttpResponse::new(
                200,
                "application/json",
                json!({
                    "access_token": m.token,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "N_A",
                    "expires_in": expires_in.max(0),
                })
                .to_string(),
            )
        }
        Err(f) => error("invalid_target", &f.message),
    }
}

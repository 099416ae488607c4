//! The GitHub REST API calls the helper makes: with the app's JWT, find the installation for an
//! owner, mint an installation token, read the app and list its installations; with an
//! installation token, revoke it. Nothing here knows about git's protocol.
//!
//! Every call ends by the caller's [`Deadline`] (one per get, shared by every app tried); connection failures and 5xx are retried with backoff inside one time
//! budget; short rate-limit waits are honoured; redirects are never followed (so the JWT never goes
//! to another host); answers are size-limited. A 401 for the JWT's times is answered by re-signing
//! with GitHub's clock (from its `Date` header) once.
//!
//! This module holds the endpoints and the retry policy; one HTTP exchange and what can go wrong
//! with it are [`transport`].

pub mod transport;

pub use transport::{Deadline, Method, Transport, printable_message, unix_now};
use transport::{Http, Reply};

use crate::jwt::{self, JwtIssuer};
use crate::protocol::printable;
use crate::secret::{Expiring, Secret};
use crate::trace;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Rate-limit waits up to this long are waited out; longer ones fail with the time to retry.
const MAX_RATE_LIMIT_WAIT: u64 = 10;
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(3000),
];

/// The part of an installation we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
    pub account: String,
}

/// Why GitHub refused the app's JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtProblem {
    /// Its `iat`/`exp` times: this machine's clock is off (after one re-signed retry).
    Clock,
    /// The signature: the key does not belong to the app, or was deleted from it.
    WrongKey,
    /// No app with this ID or client ID on this host.
    UnknownApp,
}

/// Why a call failed, classified for the caller. Every variant carries one line ready for stderr
/// (its `Display`), naming the host and what to do.
#[derive(Debug)]
pub enum ApiError {
    /// No usable answer: connection refused, reset, TLS, timeout, an oversized answer, or the
    /// time budget ran out (`cause`: `None`). `text` is the line for stderr.
    Transport {
        cause: Option<Transport>,
        text: String,
    },
    /// GitHub's rate limit, with the Unix time to retry at.
    RateLimited { retry_at: u64, text: String },
    /// The app's JWT was refused.
    JwtRejected { problem: JwtProblem, text: String },
    /// The app is not installed where it was asked for (an owner, a repository).
    NotInstalled(String),
    /// The installation is suspended by an owner of the account.
    Suspended(String),
    /// The installation id is unknown to this app, or access to it was lost (404/401 on mint).
    InstallationGone { status: u16, message: String },
    /// Anything else (422, unexpected statuses, unreadable answers).
    Other(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::InstallationGone { status, message } => write!(f, "{status} {message}"),
            ApiError::Transport { text, .. }
            | ApiError::RateLimited { text, .. }
            | ApiError::JwtRejected { text, .. }
            | ApiError::NotInstalled(text)
            | ApiError::Suspended(text)
            | ApiError::Other(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for ApiError {}

/// The app itself, from `GET /app`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppInfo {
    pub id: u64,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
}

/// One installation of the app, from `GET /app/installations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationInfo {
    pub id: u64,
    pub account: String,
    /// `User` or `Organization`.
    pub account_type: String,
    /// `all` or `selected`.
    pub repository_selection: String,
    pub suspended: bool,
}

/// A minted token and what GitHub said about it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: Expiring,
    /// The token's permissions as GitHub granted them.
    pub permissions: BTreeMap<String, String>,
}

/// What `DELETE /installation/token` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// 204: revoked now.
    Revoked,
    /// 401: the token was already expired or revoked.
    AlreadyInvalid,
}

/// Installations per page when listing them (GitHub's maximum).
const PER_PAGE: usize = 100;
/// Pages followed at most when listing installations (10,000 installations).
const MAX_PAGES: usize = 100;

/// A REST client for one API base URL.
pub struct Client {
    http: Http,
    api_url: String,
    /// For messages: "github.com".
    host: String,
    /// All calls of this client, retries included, end by then.
    deadline: Deadline,
}

impl Client {
    pub fn new(api_url: &str, host: &str, deadline: Deadline) -> Client {
        Client {
            http: Http::new(deadline, crate::net::proxy::ureq_proxy(api_url)),
            api_url: api_url.to_owned(),
            host: host.to_owned(),
            deadline,
        }
    }

    /// Asks for this token format on token requests (`X-GitHub-Stateless-S2S-Token`).
    pub fn with_stateless_tokens(mut self, mode: crate::config::StatelessTokens) -> Client {
        self.http.stateless_tokens = mode.header();
        self
    }

    /// `GET /repos/{owner}/{repo}/installation`, then `GET /users/{owner}/installation` (which
    /// answers for organisations too). `None` when the app is not installed for the owner.
    pub fn find_installation(
        &self,
        signer: &mut JwtIssuer,
        owner: &str,
        repo: Option<&str>,
    ) -> Result<Option<Installation>, ApiError> {
        let mut paths = Vec::new();
        if let Some(repo) = repo {
            paths.push(format!("/repos/{owner}/{repo}/installation"));
        }
        paths.push(format!("/users/{owner}/installation"));
        for path in paths {
            let reply = self.with_jwt(signer, Method::Get, &path, None)?;
            match reply.status {
                200 => {
                    #[derive(Deserialize)]
                    struct Account {
                        login: String,
                    }
                    #[derive(Deserialize)]
                    struct Body {
                        id: u64,
                        account: Option<Account>,
                    }
                    let body: Body = self.json(&reply, Method::Get, &path)?;
                    let account = body.account.map_or_else(|| owner.to_owned(), |a| a.login);
                    return Ok(Some(Installation {
                        id: body.id,
                        account: printable_message(&account),
                    }));
                }
                404 | 301 => {
                    trace!("GET {path} → {}: {}", reply.status, reply.message());
                    if reply.message() == "Integration not found" {
                        return Err(self.jwt_refused(&reply, signer));
                    }
                    continue;
                }
                _ => {
                    return Err(self.failure(
                        &reply,
                        &format!("looking up the app's installation for '{owner}'"),
                        signer,
                    ));
                }
            }
        }
        Ok(None)
    }

    /// `POST /app/installations/{id}/access_tokens`, narrowed to `permissions` (none: all the
    /// installation has) and to `repositories` (none: all the installation covers).
    pub fn create_token(
        &self,
        signer: &mut JwtIssuer,
        installation: u64,
        permissions: &crate::config::Permissions,
        repositories: &[String],
    ) -> Result<Minted, ApiError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let mut request = serde_json::Map::new();
        if !permissions.is_empty() {
            request.insert("permissions".into(), permissions.to_json());
        }
        if !repositories.is_empty() {
            request.insert("repositories".into(), serde_json::json!(repositories));
        }
        let body = (!request.is_empty())
            .then(|| serde_json::Value::Object(request).to_string().into_bytes());
        // Before any attempt: the token's lifetime is counted from here, never from later.
        let sent = unix_now();
        let reply = self.with_jwt(signer, Method::Post, &path, body.as_deref())?;
        match reply.status {
            200 | 201 => parse_token(&reply.body)
                .map(|token| Minted {
                    token: to_local_clock(token, reply.date, sent),
                    permissions: parse_permissions(&reply.body),
                })
                .map_err(|why| {
                    ApiError::Other(format!(
                        "{} answered the token request for installation {installation} with {why}",
                        self.host
                    ))
                }),
            404 => Err(ApiError::InstallationGone {
                status: 404,
                message: reply.message(),
            }),
            401 if !is_jwt_message(&reply.message()) => Err(ApiError::InstallationGone {
                status: 401,
                message: reply.message(),
            }),
            403 if reply.message().to_ascii_lowercase().contains("suspend") => {
                Err(ApiError::Suspended(format!(
                    "installation {installation} on {} is suspended ({}); an owner of the account can unsuspend it in the app's installation settings",
                    self.host,
                    reply.message()
                )))
            }
            422 if !repositories.is_empty() => Err(ApiError::NotInstalled(format!(
                "{} refused a token for installation {installation} limited to repository {}: {} (add the repository to the installation's selection, or mint without --repo-scoped)",
                self.host,
                repositories.join(", "),
                reply.message()
            ))),
            422 => Err(ApiError::Other(format!(
                "{} refused a token for installation {installation}: {} (ask only for permissions and repositories the installation has)",
                self.host,
                reply.message()
            ))),
            _ => Err(self.failure(
                &reply,
                &format!("minting a token for installation {installation}"),
                signer,
            )),
        }
    }

    /// `GET /app`: the app the key signs for.
    pub fn app(&self, signer: &mut JwtIssuer) -> Result<AppInfo, ApiError> {
        let reply = self.with_jwt(signer, Method::Get, "/app", None)?;
        match reply.status {
            200 => {
                let mut info: AppInfo = self.json(&reply, Method::Get, "/app")?;
                info.slug = printable_message(&info.slug);
                info.name = printable_message(&info.name);
                Ok(info)
            }
            _ => Err(self.failure(&reply, "reading the app (GET /app)", signer)),
        }
    }

    /// `GET /app/installations`, every page (following the `Link` header's `rel="next"`),
    /// without enterprise installations (they cannot read repositories).
    pub fn installations(&self, signer: &mut JwtIssuer) -> Result<Vec<InstallationInfo>, ApiError> {
        let mut all = Vec::new();
        let mut path = format!("/app/installations?per_page={PER_PAGE}");
        for _ in 0..MAX_PAGES {
            let reply = self.with_jwt(signer, Method::Get, &path, None)?;
            if reply.status != 200 {
                return Err(self.failure(&reply, "listing the app's installations", signer));
            }
            all.extend(parse_installations(&reply.body).map_err(|e| {
                ApiError::Other(format!(
                    "{} answered GET {path} with JSON the helper cannot read ({e})",
                    self.host
                ))
            })?);
            match reply
                .next
                .as_deref()
                .and_then(|next| self.same_api_path(next))
            {
                Some(next) => path = next,
                None => return Ok(all),
            }
        }
        Err(ApiError::Other(format!(
            "{} listed more than {} pages of installations; stopped",
            self.host, MAX_PAGES
        )))
    }

    /// `GET /repos/{owner}/{repo}/installation` alone: the installation that can reach this
    /// repository (`None`: the app is not installed there, or the repository is not among those
    /// the installation was given). For `doctor --repo`.
    pub fn repo_installation(
        &self,
        signer: &mut JwtIssuer,
        owner: &str,
        repo: &str,
    ) -> Result<Option<u64>, ApiError> {
        let path = format!("/repos/{owner}/{repo}/installation");
        let reply = self.with_jwt(signer, Method::Get, &path, None)?;
        match reply.status {
            200 => {
                #[derive(Deserialize)]
                struct Body {
                    id: u64,
                }
                let body: Body = self.json(&reply, Method::Get, &path)?;
                Ok(Some(body.id))
            }
            404 | 301 if reply.message() != "Integration not found" => Ok(None),
            _ => Err(self.failure(
                &reply,
                &format!("looking up the installation for {owner}/{repo}"),
                signer,
            )),
        }
    }

    /// `DELETE /installation/token`, authenticated with the token itself.
    pub fn revoke(&self, token: &Secret) -> Result<Revoked, ApiError> {
        let reply = self.send(Method::Delete, "/installation/token", token, None)?;
        match reply.status {
            204 | 200 => Ok(Revoked::Revoked),
            // 404: GitHub no longer knows the token (what token brokers document as "already
            // expired"); nothing is left to revoke.
            401 | 404 => Ok(Revoked::AlreadyInvalid),
            403 if reply.message().to_ascii_lowercase().contains("suspend") => {
                Err(ApiError::Suspended(format!(
                    "{} did not revoke token {}: the installation is suspended ({})",
                    self.host,
                    token.fingerprint(),
                    reply.message()
                )))
            }
            _ => {
                let status = reply.status;
                if reply.is_rate_limited() {
                    return Err(self.rate_limited(&reply));
                }
                Err(ApiError::Other(format!(
                    "{} answered {status} to revoking token {}: {}",
                    self.host,
                    token.fingerprint(),
                    reply.message()
                )))
            }
        }
    }

    /// A `Link` URL back to a path under our API base; anything else is not followed.
    fn same_api_path(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(&self.api_url)?;
        (rest.starts_with('/') && !rest.contains(['\r', '\n', ' '])).then(|| rest.to_owned())
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        reply: &Reply,
        method: Method,
        path: &str,
    ) -> Result<T, ApiError> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            ApiError::Other(format!(
                "{} answered {method} {path} with JSON the helper cannot read ({})",
                self.host,
                printable_message(&e.to_string())
            ))
        })
    }

    /// Send with a fresh JWT; on a 401 about the JWT's times, learn GitHub's clock and retry once.
    fn with_jwt(
        &self,
        signer: &mut JwtIssuer,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ApiError> {
        let jwt = signer
            .sign(jwt::now())
            .map_err(|e| ApiError::Other(format!("{e:#}")))?;
        let reply = self.send(method, path, &jwt, body)?;
        if reply.status != 401 || !is_clock_message(&reply.message()) {
            return Ok(reply);
        }
        let Some(date) = reply.date else {
            return Ok(reply);
        };
        let server_now = date
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let offset = server_now - jwt::now();
        trace!(
            "GitHub rejected the JWT's times ({}); its clock is {offset:+} s from ours, re-signing",
            reply.message()
        );
        if offset == signer.offset {
            return Ok(reply);
        }
        signer.offset = offset;
        let jwt = signer
            .sign(jwt::now())
            .map_err(|e| ApiError::Other(format!("{e:#}")))?;
        self.send(method, path, &jwt, body)
    }

    /// One call with retries for transport errors, 5xx and short rate limits, inside the time
    /// budget. `bearer` is the JWT or, for revoking, the installation token.
    fn send(
        &self,
        method: Method,
        path: &str,
        bearer: &Secret,
        body: Option<&[u8]>,
    ) -> Result<Reply, ApiError> {
        let url = format!("{}{path}", self.api_url);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let remaining = self.deadline.remaining();
            if remaining.is_zero() {
                return Err(ApiError::Transport {
                    cause: None,
                    text: format!(
                        "no answer from {} within the time budget (--timeout); gave up",
                        self.api_url
                    ),
                });
            }
            let sent = Instant::now();
            let outcome = self.http.send_once(method, &url, bearer, body, remaining);
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            let wait = match &outcome {
                Ok(reply) if reply.status >= 500 => {
                    trace!(
                        "{method} {path} → {} (attempt {})",
                        reply.status,
                        attempt + 1
                    );
                    BACKOFF.get(attempt).copied()
                }
                Ok(reply) if reply.is_rate_limited() => {
                    let secs = reply.rate_limit_wait(unix_now());
                    trace!(
                        "{method} {path} → {} rate limited, retry in {secs} s",
                        reply.status
                    );
                    (secs <= MAX_RATE_LIMIT_WAIT && attempt == 0)
                        .then(|| Duration::from_secs(secs.max(1)))
                }
                Ok(reply) => {
                    trace!("{method} {path} → {} in {ms:.2} ms", reply.status);
                    None
                }
                Err(e) if !e.worth_retrying() => None,
                Err(e) => {
                    trace!("{method} {path} failed: {e} (attempt {})", attempt + 1);
                    BACKOFF.get(attempt).copied()
                }
            };
            match wait {
                Some(wait) if Instant::now() + wait < self.deadline.at() => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                _ => {
                    return match outcome {
                        Ok(reply) if reply.is_rate_limited() => Err(self.rate_limited(&reply)),
                        Ok(reply) => Ok(reply),
                        Err(Transport::TooLarge) => Err(ApiError::Transport {
                            text: format!(
                                "{} sent {} to {method} {path}",
                                self.host,
                                Transport::TooLarge
                            ),
                            cause: Some(Transport::TooLarge),
                        }),
                        Err(e) if !e.worth_retrying() => Err(ApiError::Transport {
                            text: format!("cannot reach {}: {e}", self.api_url),
                            cause: Some(e),
                        }),
                        Err(e) => Err(ApiError::Transport {
                            text: format!(
                                "cannot reach {}{} ({e}); gave up after {} attempt(s) in {:.1} s",
                                self.api_url,
                                if self.deadline.passed() {
                                    " within the time budget (--timeout)"
                                } else {
                                    ""
                                },
                                attempt + 1,
                                started.elapsed().as_secs_f32()
                            ),
                            cause: Some(e),
                        }),
                    };
                }
            }
        }
    }

    fn rate_limited(&self, reply: &Reply) -> ApiError {
        let now = unix_now();
        let wait = reply.rate_limit_wait(now);
        let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now + wait));
        ApiError::RateLimited {
            retry_at: now + wait,
            text: format!(
                "{} rate-limited the app ({} {}); retry after {when} (in {})",
                self.host,
                reply.status,
                reply.message(),
                humantime::format_duration(Duration::from_secs(wait))
            ),
        }
    }

    /// The JWT itself was refused: wrong key for the app, or no such app on this host.
    fn jwt_refused(&self, reply: &Reply, signer: &JwtIssuer) -> ApiError {
        let message = reply.message();
        let id = signer.issuer();
        let (problem, text) = if message == "Integration not found" {
            (
                JwtProblem::UnknownApp,
                format!(
                    "{} knows no GitHub App with ID {id} ({message}); check the app id and the host",
                    self.host
                ),
            )
        } else if is_clock_message(&message) {
            (
                JwtProblem::Clock,
                format!(
                    "{} rejected the app's JWT for its times ({message}); check this machine's clock",
                    self.host
                ),
            )
        } else {
            (
                JwtProblem::WrongKey,
                format!(
                    "{} rejected the app's JWT ({message}): the private key does not belong to app {id} or was deleted from it — check the app id, or generate a new key on the app's settings page",
                    self.host
                ),
            )
        };
        ApiError::JwtRejected { problem, text }
    }

    fn failure(&self, reply: &Reply, doing: &str, signer: &JwtIssuer) -> ApiError {
        let message = reply.message();
        if reply.status == 401 || is_jwt_message(&message) || message == "Integration not found" {
            return self.jwt_refused(reply, signer);
        }
        if reply.is_rate_limited() {
            return self.rate_limited(reply);
        }
        let message = if message.is_empty() {
            "no message".to_owned()
        } else {
            message
        };
        ApiError::Other(format!(
            "{} answered {} while {doing}: {message}",
            self.host, reply.status
        ))
    }
}

/// GitHub's 401 messages about a JWT's `iat`/`exp`, word for word as GitHub sends them.
fn is_clock_message(message: &str) -> bool {
    message.contains("'Issued at' claim ('iat')")
        || message.contains("'Expiration time' claim ('exp')")
}

fn is_jwt_message(message: &str) -> bool {
    is_clock_message(message) || message.contains("JSON web token")
}

fn parse_token(body: &[u8]) -> Result<Expiring, String> {
    #[derive(Deserialize)]
    struct Body {
        token: Option<String>,
        expires_at: Option<String>,
    }
    let body: Body = serde_json::from_slice(body)
        .map_err(|_| "an answer that is not the expected JSON".to_owned())?;
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or("an answer without a token")?;
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token containing spaces or control characters".to_owned());
    }
    let expires_at = body.expires_at.ok_or("an answer without expires_at")?;
    let expires = humantime::parse_rfc3339(&expires_at)
        .map_err(|_| format!("an unreadable expires_at '{}'", printable(&expires_at)))?;
    let expires_at = expires
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "an expires_at before 1970".to_owned())?
        .as_secs();
    Ok(Expiring {
        secret: Secret::new(token),
        expires_at,
    })
}

/// One page of `GET /app/installations`, without enterprise installations (they cannot read
/// repositories). Server text is made printable.
fn parse_installations(body: &[u8]) -> Result<Vec<InstallationInfo>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Account {
        login: Option<String>,
        slug: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    #[derive(Deserialize)]
    struct Item {
        id: u64,
        account: Option<Account>,
        target_type: Option<String>,
        repository_selection: Option<String>,
        suspended_at: Option<String>,
    }
    let items: Vec<Item> = serde_json::from_slice(body)?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let account = item.account.as_ref();
            let kind = item
                .target_type
                .clone()
                .or_else(|| account.and_then(|a| a.kind.clone()))
                .unwrap_or_default();
            if kind.eq_ignore_ascii_case("enterprise") {
                trace!("leaving out enterprise installation {}", item.id);
                return None;
            }
            let login = account
                .and_then(|a| a.login.clone().or_else(|| a.slug.clone()))
                .unwrap_or_default();
            Some(InstallationInfo {
                id: item.id,
                account: printable_message(&login),
                account_type: printable_message(&kind),
                repository_selection: printable_message(
                    item.repository_selection.as_deref().unwrap_or(""),
                ),
                suspended: item.suspended_at.is_some(),
            })
        })
        .collect())
}

/// The `permissions` object of a token answer (empty when absent or unreadable).
fn parse_permissions(body: &[u8]) -> BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        permissions: BTreeMap<String, serde_json::Value>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| {
            b.permissions
                .into_iter()
                .filter_map(|(k, v)| {
                    v.as_str()
                        .map(|v| (printable_message(&k), printable_message(v)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// GitHub's documented lifetime of an installation token.
pub const TOKEN_LIFETIME: u64 = 3600;
/// The shortest lifetime we ever claim for a token GitHub just minted, when its answer does not
/// say how long the token lives on our clock.
const FALLBACK_LIFETIME: u64 = 5 * 60;

/// GitHub's `expires_at` is on GitHub's clock; git compares `password_expiry_utc` with ours. The
/// token lives `expires_at − Date` (GitHub's own clock, both from the same answer), at most
/// GitHub's documented hour, counted on our clock from `sent`, when we sent the request (a little
/// before GitHub minted it, so never later than the real expiry). A `Date` that is missing,
/// unreadable or not before `expires_at` is unusable: then `expires_at` is read on our clock,
/// again at most an hour from `sent`, and at least [`FALLBACK_LIFETIME`] (GitHub just minted
/// it). Never 0, never in the past, never longer than the token lives.
fn to_local_clock(mut token: Expiring, server_date: Option<SystemTime>, sent: u64) -> Expiring {
    let date = server_date
        .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .filter(|&date| date < token.expires_at);
    let lifetime = match date {
        Some(date) => {
            let offset = date as i64 - sent as i64;
            if offset.abs() > 2 {
                trace!("GitHub's clock is about {offset:+} s from ours; expiry counted on ours");
            }
            token.expires_at - date
        }
        None => {
            trace!("GitHub's Date header is missing or unusable; reading expires_at on our clock");
            token.expires_at.saturating_sub(sent).max(FALLBACK_LIFETIME)
        }
    };
    token.expires_at = sent + lifetime.clamp(1, TOKEN_LIFETIME);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_checked() {
        let ok = parse_token(br#"{"token":"ghs_16C7e42F292c6912E7710c838347Ae178B4a","expires_at":"2016-07-11T22:14:10Z","permissions":{}}"#).unwrap();
        assert_eq!(ok.expires_at, 1468275250);
        assert_eq!(
            ok.secret.expose(),
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
        );
        assert_eq!(
            parse_token(br#"{"expires_at":"2016-07-11T22:14:10Z"}"#).unwrap_err(),
            "an answer without a token"
        );
        assert_eq!(
            parse_token(br#"{"token":"ghs_x"}"#).unwrap_err(),
            "an answer without expires_at"
        );
        assert!(
            parse_token(b"<html>")
                .unwrap_err()
                .contains("not the expected JSON")
        );
        assert!(parse_token(br#"{"token":"a\nb","expires_at":"2016-07-11T22:14:10Z"}"#).is_err());
        assert!(
            parse_token(br#"{"token":"ghs_x","expires_at":"tomorrow"}"#)
                .unwrap_err()
                .contains("unreadable")
        );
    }

    #[test]
    fn installations_are_read_without_enterprise_ones() {
        // Shaped like GET_app_installations.json's example, plus an enterprise installation.
        let body = br#"[
            {"id":1,"account":{"login":"octocat","id":1,"type":"User"},"repository_selection":"all",
             "target_type":"Organization","suspended_at":null},
            {"id":2,"account":{"slug":"big-corp","name":"Big Corp"},"repository_selection":"selected",
             "target_type":"Enterprise"},
            {"id":3,"account":{"login":"evil\u001b[31m","type":"User"},"repository_selection":"selected",
             "suspended_at":"2024-01-01T00:00:00Z"}
        ]"#;
        let list = parse_installations(body).unwrap();
        assert_eq!(
            list[0],
            InstallationInfo {
                id: 1,
                account: "octocat".into(),
                account_type: "Organization".into(),
                repository_selection: "all".into(),
                suspended: false,
            }
        );
        assert_eq!(list.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 3]);
        assert!(list[1].suspended && list[1].account.starts_with("evil"));
        assert!(
            !list[1].account.chars().any(char::is_control),
            "{:?}",
            list[1]
        );
        assert!(parse_installations(b"{}").is_err());
    }

    #[test]
    fn token_permissions_are_read() {
        let p = parse_permissions(
            br#"{"token":"t","permissions":{"contents":"read","metadata":"read","x":1}}"#,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p["contents"], "read");
        assert!(parse_permissions(b"{}").is_empty());
    }

    #[test]
    fn expiry_is_counted_on_our_clock_from_the_lifetime_github_states() {
        let sent = 1_700_000_000;
        let token = |expires_at| Expiring {
            secret: Secret::new("ghs_x"),
            expires_at,
        };
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        let expiry = |expires_at, date| to_local_clock(token(expires_at), date, sent).expires_at;
        // Same clocks, GitHub answering a second later.
        assert_eq!(expiry(sent + 3601, at(sent + 1)), sent + 3600);
        // GitHub's whole clock ahead or behind: only the lifetime counts.
        for skew in [7200_i64, -7200, 10 * 365 * 86400, -86400] {
            let g = (sent as i64 + skew) as u64;
            assert_eq!(expiry(g + 3600, at(g)), sent + 3600, "skew {skew}");
        }
        // A shorter lifetime (a GHES setting, the test GitHub) is kept.
        assert_eq!(expiry(sent + 600, at(sent)), sent + 600);
        // Only the Date is off: far ahead, 2 h ahead (both after expires_at: unusable).
        assert_eq!(
            expiry(sent + 3600, at(sent + 10 * 365 * 86400)),
            sent + 3600
        );
        assert_eq!(expiry(sent + 3600, at(sent + 7200)), sent + 3600);
        // Date behind: never more than the documented hour.
        assert_eq!(expiry(sent + 3600, at(sent - 3600)), sent + 3600);
        assert_eq!(expiry(sent + 1800, at(sent - 3600)), sent + 3600);
        // No Date: expires_at on our clock, within the hour, never in the past or 0.
        assert_eq!(expiry(sent + 3600, None), sent + 3600);
        assert_eq!(expiry(sent + 999_999, None), sent + 3600);
        assert_eq!(expiry(sent + 1200, None), sent + 1200);
        assert_eq!(expiry(sent - 7200, None), sent + FALLBACK_LIFETIME);
        assert_eq!(expiry(0, None), sent + FALLBACK_LIFETIME);
        assert_eq!(expiry(0, at(sent)), sent + FALLBACK_LIFETIME);
    }

    #[test]
    fn clock_messages_are_recognised() {
        assert!(is_clock_message(
            "'Expiration time' claim ('exp') is too far in the future"
        ));
        assert!(is_clock_message(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        ));
        assert!(is_clock_message(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
        ));
        assert!(!is_clock_message("A JSON web token could not be decoded"));
        assert!(is_jwt_message("A JSON web token could not be decoded"));
    }
}

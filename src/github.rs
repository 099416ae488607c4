//! The GitHub REST API calls the helper makes, with the app's JWT: find the installation for an
//! owner, mint an installation token. Nothing here knows about git's protocol.
//!
//! Every call has a timeout; connection failures and 5xx are retried with backoff inside one time
//! budget; short rate-limit waits are honoured; redirects are never followed (so the JWT never goes
//! to another host); answers are size-limited. A 401 for the JWT's times is answered by re-signing
//! with GitHub's clock (from its `Date` header) once.

use crate::jwt::{self, Signer};
use crate::protocol::printable;
use crate::secret::Secret;
use crate::trace;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USER_AGENT: &str = concat!("git-credential-github-app/", env!("CARGO_PKG_VERSION"));
const API_VERSION: &str = "2022-11-28";
/// Largest API answer we read; a token answer listing 500 repositories is ~2 MiB at most.
const MAX_BODY: u64 = 4 << 20;
/// Rate-limit waits up to this long are waited out; longer ones fail with the time to retry.
const MAX_RATE_LIMIT_WAIT: u64 = 10;
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(3000),
];

/// A minted installation token.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    /// Unix seconds, from GitHub's `expires_at`.
    pub expires_at: u64,
}

/// The part of an installation we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
    pub account: String,
}

/// Why a call failed, classified for the caller.
#[derive(Debug)]
pub enum ApiError {
    /// The installation id is unknown to this app, or access to it was lost (404/401 on mint).
    InstallationGone { status: u16, message: String },
    /// Anything the user must act on; the text is one line, ready for stderr.
    Failed(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::InstallationGone { status, message } => write!(f, "{status} {message}"),
            ApiError::Failed(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for ApiError {}

/// One HTTP answer, reduced to what we look at.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    date: Option<SystemTime>,
    retry_after: Option<u64>,
    ratelimit_remaining: Option<u64>,
    ratelimit_reset: Option<u64>,
}

impl Reply {
    /// GitHub's `message`, made safe to print.
    fn message(&self) -> String {
        #[derive(Deserialize)]
        struct Body {
            message: Option<String>,
        }
        let message = serde_json::from_slice::<Body>(&self.body)
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_default();
        printable_message(&message)
    }

    fn is_rate_limited(&self) -> bool {
        (self.status == 403 || self.status == 429)
            && (self.retry_after.is_some()
                || self.ratelimit_remaining == Some(0)
                || self.message().to_ascii_lowercase().contains("rate limit"))
    }

    /// Seconds to wait before retrying a rate-limited call.
    /// Seconds to wait, at most a day (GitHub's hourly limits never ask for more; a larger value
    /// is a broken answer).
    fn rate_limit_wait(&self, now: u64) -> u64 {
        let wait = match (self.retry_after, self.ratelimit_reset) {
            (Some(secs), _) => secs,
            (None, Some(reset)) if self.ratelimit_remaining == Some(0) => reset.saturating_sub(now),
            _ => 60, // GitHub: "wait at least one minute" for a secondary limit without retry-after
        };
        wait.min(24 * 3600)
    }
}

fn printable_message(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one_line.trim().to_owned()
}

/// A REST client for one API base URL.
pub struct Client {
    agent: ureq::Agent,
    api_url: String,
    /// For messages: "github.com".
    host: String,
    /// All calls of this client (one `get`), retries included, end by then.
    deadline: Instant,
    /// `X-GitHub-Stateless-S2S-Token` for token requests.
    stateless_tokens: Option<&'static str>,
}

impl Client {
    pub fn new(api_url: &str, host: &str, timeout: Duration) -> Client {
        let connect = (timeout / 3).min(Duration::from_secs(10));
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(connect))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .tls_config(tls)
            .build();
        Client {
            agent: config.into(),
            api_url: api_url.to_owned(),
            host: host.to_owned(),
            deadline: Instant::now() + timeout,
            stateless_tokens: None,
        }
    }

    /// Asks for this token format on token requests (`X-GitHub-Stateless-S2S-Token`).
    pub fn with_stateless_tokens(mut self, mode: crate::config::StatelessTokens) -> Client {
        self.stateless_tokens = mode.header();
        self
    }

    /// `GET /repos/{owner}/{repo}/installation`, then `GET /users/{owner}/installation` (which
    /// answers for organisations too). `None` when the app is not installed for the owner.
    pub fn find_installation(
        &self,
        signer: &mut Signer,
        owner: &str,
        repo: Option<&str>,
    ) -> Result<Option<Installation>, ApiError> {
        let mut paths = Vec::new();
        if let Some(repo) = repo {
            paths.push(format!("/repos/{owner}/{repo}/installation"));
        }
        paths.push(format!("/users/{owner}/installation"));
        for path in paths {
            let reply = self.with_jwt(signer, "GET", &path, None)?;
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
                    let body: Body = serde_json::from_slice(&reply.body).map_err(|e| {
                        ApiError::Failed(format!(
                            "{} answered GET {path} with JSON the helper cannot read ({e})",
                            self.host
                        ))
                    })?;
                    let account = body.account.map_or_else(|| owner.to_owned(), |a| a.login);
                    return Ok(Some(Installation {
                        id: body.id,
                        account,
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

    /// `POST /app/installations/{id}/access_tokens`.
    pub fn create_token(
        &self,
        signer: &mut Signer,
        installation: u64,
        permissions: &BTreeMap<String, String>,
    ) -> Result<Token, ApiError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let body = if permissions.is_empty() {
            None
        } else {
            Some(
                serde_json::json!({ "permissions": permissions })
                    .to_string()
                    .into_bytes(),
            )
        };
        let reply = self.with_jwt(signer, "POST", &path, body.as_deref())?;
        match reply.status {
            200 | 201 => parse_token(&reply.body)
                .map(|token| to_local_clock(token, reply.date))
                .map_err(|why| {
                    ApiError::Failed(format!(
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
                Err(ApiError::Failed(format!(
                    "installation {installation} on {} is suspended ({}); an owner of the account can unsuspend it in the app's installation settings",
                    self.host,
                    reply.message()
                )))
            }
            422 => Err(ApiError::Failed(format!(
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

    /// Send with a fresh JWT; on a 401 about the JWT's times, learn GitHub's clock and retry once.
    fn with_jwt(
        &self,
        signer: &mut Signer,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ApiError> {
        let jwt = signer
            .sign(jwt::now())
            .map_err(|e| ApiError::Failed(format!("{e:#}")))?;
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
            .map_err(|e| ApiError::Failed(format!("{e:#}")))?;
        self.send(method, path, &jwt, body)
    }

    /// One call with retries for transport errors, 5xx and short rate limits, inside the time budget.
    fn send(
        &self,
        method: &str,
        path: &str,
        jwt: &Secret,
        body: Option<&[u8]>,
    ) -> Result<Reply, ApiError> {
        let url = format!("{}{path}", self.api_url);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ApiError::Failed(format!(
                    "no answer from {} within the time budget (--timeout); gave up",
                    self.api_url
                )));
            }
            let sent = Instant::now();
            let outcome = self.send_once(method, &url, jwt, body, remaining);
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
                // Another attempt would meet the same certificate.
                Err(e) if e.starts_with(CERT_NOT_TRUSTED) => None,
                Err(e) => {
                    trace!("{method} {path} failed: {e} (attempt {})", attempt + 1);
                    BACKOFF.get(attempt).copied()
                }
            };
            match wait {
                Some(wait) if Instant::now() + wait < self.deadline => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                _ => {
                    return match outcome {
                        Ok(reply) if reply.is_rate_limited() => Err(self.rate_limited(&reply)),
                        Ok(reply) => Ok(reply),
                        Err(e) if e.starts_with(CERT_NOT_TRUSTED) => Err(ApiError::Failed(
                            format!("cannot reach {}: {e}", self.api_url),
                        )),
                        Err(e) => Err(ApiError::Failed(format!(
                            "cannot reach {} ({e}); gave up after {} attempt(s) in {:.1} s",
                            self.api_url,
                            attempt + 1,
                            started.elapsed().as_secs_f32()
                        ))),
                    };
                }
            }
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        jwt: &Secret,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, String> {
        let timeout = Some(timeout.max(Duration::from_millis(100)));
        let auth = format!("Bearer {}", jwt.expose());
        let result = if method == "POST" {
            let request = self
                .agent
                .post(url)
                .header("Authorization", &auth)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", API_VERSION)
                .config()
                .timeout_global(timeout)
                .build();
            // POST is only used to mint tokens.
            let request = match self.stateless_tokens {
                Some(value) => request.header("X-GitHub-Stateless-S2S-Token", value),
                None => request,
            };
            match body {
                Some(bytes) => request
                    .header("Content-Type", "application/json")
                    .send(bytes),
                None => request.send_empty(),
            }
        } else {
            self.agent
                .get(url)
                .header("Authorization", &auth)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", API_VERSION)
                .config()
                .timeout_global(timeout)
                .build()
                .call()
        };
        let mut response = result.map_err(|e| describe_transport_error(&e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let date = header("date").and_then(|d| httpdate::parse_http_date(&d).ok());
        let retry_after = number("retry-after");
        let ratelimit_remaining = number("x-ratelimit-remaining");
        let ratelimit_reset = number("x-ratelimit-reset");
        let status = response.status().as_u16();
        let body = match response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
        {
            Ok(body) => body,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                let message = format!("an answer larger than {} MiB", MAX_BODY >> 20);
                return Ok(Reply {
                    status: 0,
                    body: serde_json::json!({ "message": message })
                        .to_string()
                        .into_bytes(),
                    date,
                    retry_after: None,
                    ratelimit_remaining: None,
                    ratelimit_reset: None,
                });
            }
            Err(e) => {
                return Err(format!(
                    "reading the answer: {}",
                    describe_transport_error(&e)
                ));
            }
        };
        Ok(Reply {
            status,
            body,
            date,
            retry_after,
            ratelimit_remaining,
            ratelimit_reset,
        })
    }

    fn rate_limited(&self, reply: &Reply) -> ApiError {
        let now = unix_now();
        let wait = reply.rate_limit_wait(now);
        let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now + wait));
        ApiError::Failed(format!(
            "{} rate-limited the app ({} {}); retry after {when} (in {})",
            self.host,
            reply.status,
            reply.message(),
            humantime::format_duration(Duration::from_secs(wait))
        ))
    }

    /// The JWT itself was refused: wrong key for the app, or no such app on this host.
    fn jwt_refused(&self, reply: &Reply, signer: &Signer) -> ApiError {
        let message = reply.message();
        let id = signer.issuer();
        if message == "Integration not found" {
            return ApiError::Failed(format!(
                "{} knows no GitHub App with ID {id} ({message}); check the app id and the host",
                self.host
            ));
        }
        if is_clock_message(&message) {
            return ApiError::Failed(format!(
                "{} rejected the app's JWT for its times ({message}); check this machine's clock",
                self.host
            ));
        }
        ApiError::Failed(format!(
            "{} rejected the app's JWT ({message}): the private key does not belong to app {id} — check the app id, or generate a new key on the app's settings page",
            self.host
        ))
    }

    fn failure(&self, reply: &Reply, doing: &str, signer: &Signer) -> ApiError {
        let message = reply.message();
        if reply.status == 0 {
            return ApiError::Failed(format!("{} sent {message} while {doing}", self.host));
        }
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
        ApiError::Failed(format!(
            "{} answered {} while {doing}: {message}",
            self.host, reply.status
        ))
    }
}

/// GitHub's 401 messages about a JWT's `iat`/`exp` (see shared/github-api/errors.json).
fn is_clock_message(message: &str) -> bool {
    message.contains("'Issued at' claim ('iat')")
        || message.contains("'Expiration time' claim ('exp')")
}

fn is_jwt_message(message: &str) -> bool {
    is_clock_message(message) || message.contains("JSON web token")
}

fn parse_token(body: &[u8]) -> Result<Token, String> {
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
    Ok(Token {
        secret: Secret::new(token),
        expires_at,
    })
}

/// GitHub's `expires_at` is on GitHub's clock; git compares `password_expiry_utc` with ours. Shift
/// it by the difference the answer's `Date` shows, and never trust more than two hours (tokens
/// live one).
fn to_local_clock(mut token: Token, server_date: Option<SystemTime>) -> Token {
    let now = unix_now();
    if let Some(date) = server_date.and_then(|d| d.duration_since(UNIX_EPOCH).ok()) {
        let offset = date.as_secs() as i64 - now as i64;
        // `Date` has one-second resolution and the answer took time: ignore differences that small.
        if offset.abs() > 2 {
            trace!("GitHub's clock is {offset:+} s from ours; expiry shifted to our clock");
            token.expires_at = (token.expires_at as i64 - offset).max(0) as u64;
        }
    }
    token.expires_at = token.expires_at.min(now + 2 * 3600);
    token
}

const CERT_NOT_TRUSTED: &str = "the server's TLS certificate is not trusted";

fn describe_transport_error(e: &ureq::Error) -> String {
    let rustls_error = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(r @ rustls::Error::InvalidCertificate(_)) = rustls_error {
        return printable_message(&format!(
            "{CERT_NOT_TRUSTED} ({r}); if a private CA or a TLS-inspecting proxy signs it, add that CA to the system store or point SSL_CERT_FILE at a bundle that has it"
        ));
    }
    printable_message(&e.to_string())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    #[test]
    fn rate_limit_waits() {
        let reply = |retry_after, remaining, reset| Reply {
            status: 403,
            body: br#"{"message":"API rate limit exceeded for installation ID 1."}"#.to_vec(),
            date: None,
            retry_after,
            ratelimit_remaining: remaining,
            ratelimit_reset: reset,
        };
        assert_eq!(reply(Some(7), None, None).rate_limit_wait(100), 7);
        assert_eq!(reply(None, Some(0), Some(160)).rate_limit_wait(100), 60);
        assert_eq!(reply(None, Some(0), Some(105)).rate_limit_wait(100), 5);
        assert!(reply(None, None, None).is_rate_limited());
        assert_eq!(
            reply(Some(u64::MAX), None, None).rate_limit_wait(100),
            86400
        );
        assert_eq!(
            reply(None, Some(0), Some(999_999_999_999)).rate_limit_wait(100),
            86400
        );
    }
}

//! The HTTP exchange every broker shares: a fresh OIDC token for each attempt; a 401 gets one
//! more attempt (with a new OIDC token); 400/403/404 are the broker's refusal, shown with its own
//! message and never retried; 429, 5xx and connection failures are retried with backoff inside
//! the time budget; no redirect is followed. And the expiry rule: a token is assumed to live at
//! most [`ASSUMED_LIFETIME`] from when it was asked for, whatever the broker says or does not say.

use crate::github::{Deadline, printable_message};
use crate::secret::Secret;
use std::fmt;
use std::time::{Duration, Instant};

/// A brokered token is assumed to live at most this long from receipt (GitHub's installation
/// tokens live one hour; octo-sts returns no expiry at all).
pub const ASSUMED_LIFETIME: u64 = 3600;
/// Largest broker answer read.
const MAX_BODY: u64 = 1 << 20;
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(3000),
];
const USER_AGENT: &str = concat!("git-credential-github-app/", env!("CARGO_PKG_VERSION"));

/// When a brokered token expires on this machine's clock: what the broker said, but never more
/// than [`ASSUMED_LIFETIME`] after `received` (Unix seconds).
pub fn expiry(returned: Option<u64>, received: u64) -> u64 {
    let cap = received + ASSUMED_LIFETIME;
    returned.map_or(cap, |at| at.min(cap))
}

/// An expiry a broker wrote as RFC 3339 — any offset (`Z`, `+02:00`, …), or none at all (read as
/// UTC) — in Unix seconds. None for anything else, which callers refuse rather than drop: a
/// dropped expiry would become the [`ASSUMED_LIFETIME`] cap, later than the real one.
pub fn unix_time(text: &str) -> Option<u64> {
    let text = text.trim();
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => u64::try_from(t.timestamp()).ok(),
        Err(_) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    }
}

/// Why an exchange gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerError {
    /// 400, 403 or 404: the broker refused (no policy, policy mismatch, unknown profile). Its
    /// own message; `get` shows it and passes git on to the next helper.
    Refused { status: u16, message: String },
    /// 401 twice, with two fresh OIDC tokens.
    Unauthorized(String),
    /// 429, 5xx or no answer, until the time budget ran out.
    Unavailable(String),
    /// No OIDC token: the environment it comes from is missing, or its source failed.
    Oidc(String),
    /// An answer the helper cannot read, or a configuration it cannot use.
    Invalid(String),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::Refused { message, .. }
            | BrokerError::Unauthorized(message)
            | BrokerError::Unavailable(message)
            | BrokerError::Oidc(message)
            | BrokerError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for BrokerError {}

/// An HTTP request to a broker.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    /// `Content-Type` and body, for a POST.
    pub body: Option<(&'static str, Vec<u8>)>,
}

/// A broker's answer, reduced to what the brokers' modules read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The host name of a broker URL, without port: the default OIDC audience (what octo-sts
/// expects when a trust policy names none: its domain, `octo-sts.dev`).
pub fn default_audience(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or("").to_owned(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h).to_owned(),
    }
}

/// `%`-encodes a query value (unreserved characters and `/` pass).
pub fn query_value(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One exchange with retries: `oidc` gives a fresh OIDC token for each attempt, `request` the
/// request to send with it; `broker` names the broker in messages. Returns the first answer that
/// is neither retried nor an error (2xx, 204, …); 400/403/404 become [`BrokerError::Refused`]
/// with `message(reply)`.
pub fn exchange(
    broker: &str,
    deadline: Deadline,
    oidc: &mut dyn FnMut() -> Result<Option<Secret>, BrokerError>,
    request: &Request,
    message: &dyn Fn(&Reply) -> String,
) -> Result<Reply, BrokerError> {
    let agent = agent(deadline, &request.url);
    let started = Instant::now();
    let mut attempt = 0;
    let mut unauthorized = 0;
    loop {
        if deadline.passed() {
            return Err(BrokerError::Unavailable(format!(
                "no answer from {broker} within the time budget (--timeout); gave up"
            )));
        }
        let bearer = oidc()?;
        let outcome = send(&agent, request, bearer.as_ref(), deadline);
        let wait = match &outcome {
            Ok(reply) if reply.status == 401 && unauthorized == 0 => {
                unauthorized += 1;
                crate::trace!("{broker} answered 401; once more with a fresh OIDC token");
                Some(Duration::ZERO)
            }
            Ok(reply) if reply.status == 429 || reply.status >= 500 => {
                crate::trace!(
                    "{broker} answered {} (attempt {})",
                    reply.status,
                    attempt + 1
                );
                BACKOFF.get(attempt).copied()
            }
            Ok(reply) => {
                crate::trace!("{broker} answered {}", reply.status);
                None
            }
            Err(e) => {
                crate::trace!("{broker}: {e} (attempt {})", attempt + 1);
                BACKOFF.get(attempt).copied()
            }
        };
        match wait {
            Some(wait) if Instant::now() + wait < deadline.at() => {
                std::thread::sleep(wait);
                attempt += 1;
            }
            _ => {
                let reply = outcome.map_err(|e| {
                    BrokerError::Unavailable(format!(
                        "cannot reach {broker} ({e}); gave up after {} attempt(s) in {:.1} s",
                        attempt + 1,
                        started.elapsed().as_secs_f32()
                    ))
                })?;
                return match reply.status {
                    400 | 403 | 404 => Err(BrokerError::Refused {
                        status: reply.status,
                        message: format!(
                            "{broker} refused ({}): {}",
                            reply.status,
                            message(&reply)
                        ),
                    }),
                    401 => Err(BrokerError::Unauthorized(format!(
                        "{broker} did not accept the OIDC token (401, twice): {}",
                        message(&reply)
                    ))),
                    429 | 500.. => Err(BrokerError::Unavailable(format!(
                        "{broker} answered {} ({}); gave up after {} attempt(s) in {:.1} s",
                        reply.status,
                        message(&reply),
                        attempt + 1,
                        started.elapsed().as_secs_f32()
                    ))),
                    _ => Ok(reply),
                };
            }
        }
    }
}

/// A broker's `message` (octo-sts), `error` or `error_description` (RFC 6749), or a short text
/// body, made safe to print.
pub fn json_message(reply: &Reply) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| {
            ["message", "error_description", "error"]
                .iter()
                .find_map(|k| v[*k].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
    let text = printable_message(&text);
    if text.is_empty() {
        "no message".to_owned()
    } else {
        text
    }
}

/// The agent for one exchange with `url`: GitHub's client settings (connections bounded by a
/// third of the time left, no redirects, the platform's certificate roots) and the proxy
/// `crate::net::proxy` chose for the URL, as for every client of the helper.
fn agent(deadline: Deadline, url: &str) -> ureq::Agent {
    let connect =
        (deadline.remaining() / 3).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(USER_AGENT)
        .tls_config(tls)
        .proxy(crate::net::proxy::ureq_proxy(url))
        .build()
        .into()
}

fn send(
    agent: &ureq::Agent,
    request: &Request,
    bearer: Option<&Secret>,
    deadline: Deadline,
) -> Result<Reply, String> {
    let timeout = Some(deadline.remaining().max(Duration::from_millis(100)));
    let auth = bearer.map(|b| format!("Bearer {}", b.expose()));
    let result = match &request.body {
        Some((content_type, body)) => {
            let mut r = agent
                .post(&request.url)
                .header("Content-Type", *content_type);
            if let Some(auth) = &auth {
                r = r.header("Authorization", auth);
            }
            r.header("Accept", "application/json")
                .config()
                .timeout_global(timeout)
                .build()
                .send(body.as_slice())
        }
        None => {
            let mut r = match request.method {
                "DELETE" => agent.delete(&request.url),
                _ => agent.get(&request.url),
            };
            if let Some(auth) = &auth {
                r = r.header("Authorization", auth);
            }
            r.header("Accept", "application/json")
                .config()
                .timeout_global(timeout)
                .build()
                .call()
        }
    };
    let mut response = result.map_err(|e| printable_message(&e.to_string()))?;
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("reading the answer: {}", printable_message(&e.to_string())))?;
    Ok(Reply {
        status,
        body,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_at_most_an_hour_from_receipt() {
        assert_eq!(expiry(None, 1000), 4600);
        assert_eq!(expiry(Some(1900), 1000), 1900);
        assert_eq!(expiry(Some(99_999), 1000), 4600);
    }

    #[test]
    fn the_default_audience_is_the_host_name() {
        assert_eq!(default_audience("https://octo-sts.dev"), "octo-sts.dev");
        assert_eq!(default_audience("http://127.0.0.1:8080/base"), "127.0.0.1");
        assert_eq!(default_audience("https://[::1]:9/"), "::1");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("acme/widgets"), "acme/widgets");
        assert_eq!(query_value("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn broker_messages_are_read_and_made_printable() {
        let reply = |body: &str| Reply {
            status: 403,
            body: body.as_bytes().to_vec(),
            headers: vec![],
        };
        assert_eq!(
            json_message(&reply(
                r#"{"code":7,"message":"trust policy: subject \"x\" did not match \"y\""}"#
            )),
            "trust policy: subject \"x\" did not match \"y\""
        );
        assert_eq!(
            json_message(&reply(
                r#"{"error":"invalid_grant","error_description":"expired"}"#
            )),
            "expired"
        );
        assert_eq!(
            json_message(&reply("Forbidden\n\u{1b}[2J")),
            "Forbidden  [2J"
        );
        assert_eq!(json_message(&reply("")), "no message");
    }

    /// The loop against the octo-sts stand-in, with GitHub Actions' ID-token endpoint. The
    /// local GitHub runs `git http-backend`, a Unix host's program: not under Wine.
    #[cfg(unix)]
    #[test]
    fn exchanges_retry_a_401_once_with_a_fresh_oidc_token_and_5xx_in_the_budget() {
        use super::super::{octo_sts, oidc};
        use local_github::{Account, ActionsJob, App, GitHub, Installation, OctoSts, OidcIssuer};
        let gh = GitHub::builder()
            .app(App::new(1001, "sts"))
            .account(Account::org("acme"))
            .repo("acme", "widgets")
            .installation(Installation::new(11, 1001, "acme").all())
            .start()
            .unwrap();
        let issuer = OidcIssuer::start().unwrap();
        let policy = format!(
            "issuer: {}\nsubject: repo:acme/widgets:ref:refs/heads/main\npermissions:\n  contents: read\n",
            issuer.url()
        );
        gh.write_file("acme", "widgets", ".github/chainguard/ci.sts.yaml", &policy)
            .unwrap();
        let sts = OctoSts::start(&gh, 1001).unwrap();
        let (url, request_token) = issuer.actions_job(ActionsJob::new("acme/widgets"));
        let env = move |k: &str| match k {
            oidc::ACTIONS_URL => Some(url.clone()),
            oidc::ACTIONS_TOKEN => Some(request_token.clone()),
            _ => None,
        };
        let audience = default_audience(&sts.url());
        let deadline = Deadline::after(Duration::from_secs(20));
        let source = oidc::OidcSource::GithubActions;
        let mut fresh = || source.fetch(&audience, &env, deadline).map(Some);
        let run = |fresh: &mut dyn FnMut() -> Result<Option<Secret>, BrokerError>,
                   identity: &str| {
            let request = octo_sts::request(&sts.url(), "acme/widgets", identity);
            exchange("octo-sts", deadline, fresh, &request, &json_message)
        };
        sts.fail_next(16, "unable to verify bearer token", 1);
        sts.fail_next(14, "unavailable", 1);
        let reply = run(&mut fresh, "ci").unwrap();
        assert!(gh.token_is_valid(octo_sts::token(&reply).unwrap().expose()));
        assert_eq!(sts.exchanges().len(), 3);
        assert_eq!(
            issuer.actions_token_count(),
            3,
            "a fresh OIDC token for every attempt"
        );
        assert_eq!(issuer.actions_audiences()[0], "127.0.0.1");
        // 401 twice: one retry only.
        sts.fail_next(16, "unable to verify bearer token", 2);
        let err = run(&mut fresh, "ci").unwrap_err();
        assert!(matches!(err, BrokerError::Unauthorized(_)), "{err}");
        assert_eq!(sts.exchanges().len(), 5);
        // A refusal: the broker's own message, no retry.
        let err = run(&mut fresh, "deploy").unwrap_err();
        assert_eq!(
            err,
            BrokerError::Refused {
                status: 404,
                message: "octo-sts refused (404): unable to find trust policy for \"deploy\""
                    .into()
            }
        );
        assert_eq!(sts.exchanges().len(), 6);
    }
}

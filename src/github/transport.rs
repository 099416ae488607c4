//! One HTTP exchange with the API: the client's settings (no redirects, the platform's roots,
//! GitHub's headers), the answer reduced to what the helper looks at, and why an exchange got no
//! usable answer ([`Transport`]), typed from the HTTP client's own error. The run's time budget
//! is a [`Deadline`].

use crate::secret::Secret;
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USER_AGENT: &str = concat!("git-credential-github-app/", env!("CARGO_PKG_VERSION"));
const API_VERSION: &str = "2022-11-28";
/// Largest API answer we read; a token answer listing 500 repositories is ~2 MiB at most.
const MAX_BODY: u64 = 4 << 20;
/// The end of the time budget of one run (`--timeout`, counted from the start of a get): every
/// API call, retry, rate-limit wait and lock wait of the run ends by then.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    pub fn at(&self) -> Instant {
        self.0
    }

    /// What is left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// An HTTP method the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP agent for one run: connections bounded by a third of the time left (10 s at most),
/// no redirects, the platform's certificate roots, the proxy `crate::net::proxy` chose.
pub struct Http {
    agent: ureq::Agent,
    /// `X-GitHub-Stateless-S2S-Token` for token requests.
    pub stateless_tokens: Option<&'static str>,
}

impl Http {
    pub fn new(deadline: Deadline, proxy: Option<ureq::Proxy>) -> Http {
        let connect =
            (deadline.remaining() / 3).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .tls_config(tls)
            .proxy(proxy)
            .build();
        Http {
            agent: config.into(),
            stateless_tokens: None,
        }
    }

    pub(super) fn send_once(
        &self,
        method: Method,
        url: &str,
        bearer: &Secret,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, Transport> {
        let timeout = Some(timeout.max(Duration::from_millis(100)));
        let auth = format!("Bearer {}", bearer.expose());
        let result = match method {
            Method::Post => {
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
            }
            Method::Get | Method::Delete => {
                let request = match method {
                    Method::Delete => self.agent.delete(url),
                    _ => self.agent.get(url),
                };
                request
                    .header("Authorization", &auth)
                    .header("Accept", "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", API_VERSION)
                    .config()
                    .timeout_global(timeout)
                    .build()
                    .call()
            }
        };
        let mut response = result.map_err(|e| Transport::from_ureq(&e))?;
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
        let next = header("link").and_then(|l| next_link(&l));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| match Transport::from_ureq(&e) {
                Transport::Connection(text) => {
                    Transport::Connection(format!("reading the answer: {text}"))
                }
                other => other,
            })?;
        Ok(Reply {
            status,
            body,
            date,
            retry_after,
            ratelimit_remaining,
            ratelimit_reset,
            next,
        })
    }
}

/// Why a call got no usable answer, classified where the HTTP client reports it (never by the
/// text of its message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The TLS handshake failed; `untrusted`: because the server's certificate is not trusted
    /// (another attempt would meet the same certificate).
    Tls { untrusted: bool, text: String },
    /// No connection or no answer within the time left.
    Timeout(String),
    /// Refused, reset, no such host, a broken answer: anything else on the way.
    Connection(String),
    /// The answer is larger than the helper reads (4 MiB).
    TooLarge,
}

impl Transport {
    pub(super) fn from_ureq(e: &ureq::Error) -> Transport {
        let rustls_error = match e {
            ureq::Error::Rustls(r) => Some(r),
            ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        match (e, rustls_error) {
            (_, Some(r @ rustls::Error::InvalidCertificate(_))) => Transport::Tls {
                untrusted: true,
                text: printable_message(&format!(
                    "the server's TLS certificate is not trusted ({r}); if a private CA or a TLS-inspecting proxy signs it, add that CA to the system store or point SSL_CERT_FILE at a bundle that has it"
                )),
            },
            (_, Some(r)) => Transport::Tls {
                untrusted: false,
                text: printable_message(&format!("TLS: {r}")),
            },
            (ureq::Error::BodyExceedsLimit(_), _) => Transport::TooLarge,
            (ureq::Error::Timeout(_), _) => Transport::Timeout(printable_message(&e.to_string())),
            (ureq::Error::Io(io), _) if io.kind() == std::io::ErrorKind::TimedOut => {
                Transport::Timeout(printable_message(&e.to_string()))
            }
            _ => Transport::Connection(printable_message(&e.to_string())),
        }
    }

    /// Whether another attempt may get an answer: not for an untrusted certificate or an
    /// oversized answer, which would come back the same.
    pub fn worth_retrying(&self) -> bool {
        !matches!(
            self,
            Transport::Tls {
                untrusted: true,
                ..
            } | Transport::TooLarge
        )
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tls { text, .. }
            | Transport::Timeout(text)
            | Transport::Connection(text) => f.write_str(text),
            Transport::TooLarge => write!(f, "an answer larger than {} MiB", MAX_BODY >> 20),
        }
    }
}

/// One HTTP answer, reduced to what we look at.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) date: Option<SystemTime>,
    pub(super) retry_after: Option<u64>,
    pub(super) ratelimit_remaining: Option<u64>,
    pub(super) ratelimit_reset: Option<u64>,
    /// The `Link` header's `rel="next"` URL.
    pub(super) next: Option<String>,
}

impl Reply {
    /// GitHub's `message`, made safe to print.
    pub(super) fn message(&self) -> String {
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

    pub(super) fn is_rate_limited(&self) -> bool {
        (self.status == 403 || self.status == 429)
            && (self.retry_after.is_some()
                || self.ratelimit_remaining == Some(0)
                || self.message().to_ascii_lowercase().contains("rate limit"))
    }

    /// Seconds to wait before retrying a rate-limited call.
    /// Seconds to wait, at most a day (GitHub's hourly limits never ask for more; a larger value
    /// is a broken answer).
    pub(super) fn rate_limit_wait(&self, now: u64) -> u64 {
        let wait = match (self.retry_after, self.ratelimit_reset) {
            (Some(secs), _) => secs,
            (None, Some(reset)) if self.ratelimit_remaining == Some(0) => reset.saturating_sub(now),
            _ => 60, // GitHub: "wait at least one minute" for a secondary limit without retry-after
        };
        wait.min(24 * 3600)
    }
}

/// Text from the server (a message, an account login, a transport error) as it may reach a
/// terminal or a trace: one line of at most 300 characters, control characters (terminal escapes
/// included) as spaces, and bidi, zero-width and other invisible formatting characters shown as
/// `\u{…}`, so nothing can redraw the terminal or make text read differently than it is.
pub fn printable_message(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(300) {
        if c.is_control() {
            out.push(' ');
        } else if is_invisible_format(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// Bidi controls, zero-width characters and the other invisible format characters (Unicode
/// category Cf, plus the line and paragraph separators).
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}')
}

/// The `rel="next"` URL of a `Link` header
/// (`<https://api.github.com/resource?page=2>; rel="next", <…>; rel="last"`).
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                p.trim()
                    .strip_prefix("rel=")
                    .is_some_and(|v| v.trim_matches('"').split(' ').any(|r| r == "next"))
            })
            .then(|| url.to_owned())
    })
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
    fn transport_failures_are_typed_by_the_clients_error_not_its_text() {
        let too_large = Transport::from_ureq(&ureq::Error::BodyExceedsLimit(MAX_BODY));
        assert_eq!(too_large, Transport::TooLarge);
        assert_eq!(too_large.to_string(), "an answer larger than 4 MiB");
        assert!(
            !too_large.worth_retrying(),
            "the same answer would come again"
        );
        let timeout = Transport::from_ureq(&ureq::Error::Timeout(ureq::Timeout::Global));
        assert!(matches!(timeout, Transport::Timeout(_)), "{timeout:?}");
        assert!(timeout.worth_retrying());
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert!(matches!(
            Transport::from_ureq(&ureq::Error::Io(io)),
            Transport::Timeout(_)
        ));
        let refused = Transport::from_ureq(&ureq::Error::ConnectionFailed);
        assert_eq!(refused, Transport::Connection("connection failed".into()));
        let untrusted = Transport::from_ureq(&ureq::Error::Rustls(
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(
            matches!(&untrusted, Transport::Tls { untrusted: true, text } if text.starts_with("the server's TLS certificate is not trusted")),
            "{untrusted:?}"
        );
        assert!(!untrusted.worth_retrying());
    }

    #[test]
    fn next_links_are_found() {
        assert_eq!(
            next_link(r#"<https://api.github.com/resource?page=2>; rel="next", <https://api.github.com/resource?page=5>; rel="last""#).as_deref(),
            Some("https://api.github.com/resource?page=2")
        );
        assert_eq!(
            next_link(r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=3>; rel="next""#)
                .as_deref(),
            Some("https://x/a?page=3")
        );
        assert_eq!(next_link(r#"<https://x/a?page=1>; rel="first""#), None);
        assert_eq!(next_link("junk"), None);
    }

    #[test]
    fn server_text_is_escaped() {
        assert_eq!(
            printable_message("\u{1b}[2J\u{1b}]0;owned\u{7}Bad\ncredentials"),
            "[2J ]0;owned Bad credentials"
        );
        assert_eq!(
            printable_message("evil\u{202E}txt.exe\u{200B}\u{2066}x\u{FEFF}"),
            "evil\\u{202e}txt.exe\\u{200b}\\u{2066}x\\u{feff}"
        );
        assert_eq!(printable_message("Not Found"), "Not Found");
        assert_eq!(printable_message("Café — naïve 日本"), "Café — naïve 日本");
        assert_eq!(printable_message(&"x".repeat(400)).len(), 300);
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
            next: None,
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

//! GitHub's OAuth endpoints for a GitHub App's user access tokens: the device flow
//! (`POST /login/device/code`, then polling `POST /login/oauth/access_token`) and refreshing
//! (`grant_type=refresh_token` with the client ID and no secret, as GitHub allows for tokens from
//! the device flow). Plain inputs and outputs: a [`Post`] sends a form, the rest is parsing.
//!
//! GitHub answers OAuth errors with HTTP 200 and an `error` field, `bad_refresh_token` included;
//! answers are form-encoded unless `Accept: application/json` is sent (it always is here, and
//! both are read). Expiries come from `expires_in` / `refresh_token_expires_in` in the answer;
//! an app that opted out of expiring user tokens gets neither, and its token never expires.

use crate::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The device-code grant type (RFC 8628).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Largest answer read from the OAuth endpoints.
const MAX_BODY: u64 = 64 * 1024;
/// Longest lifetime taken from an answer's `expires_in` (a year): a hostile or broken answer
/// cannot make an expiry overflow.
pub const MAX_LIFETIME: u64 = 366 * 24 * 60 * 60;
const USER_AGENT: &str = concat!("git-credential-github-app/", env!("CARGO_PKG_VERSION"));

/// The web side of a GitHub host: `https://github.com`, `https://ghe.example.com`, or the local
/// test GitHub over loopback http.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web(pub String);

impl Web {
    /// `scheme://host` for an app's host. The scheme comes from the host itself: https, except
    /// plain http for a loopback host whose API URL is http too (the local test GitHub). An http
    /// API URL on loopback for a remote host (an SSH tunnel to a GHES API) never makes the device
    /// code or a refresh token travel to that host in clear text.
    pub fn new(api_url: &str, host: &str) -> Web {
        let loopback = crate::config::Host::parse(host).is_ok_and(|h| h.is_loopback());
        let api_http = api_url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        let scheme = if loopback && api_http {
            "http"
        } else {
            "https"
        };
        Web(format!("{scheme}://{host}"))
    }
    pub fn device_code_url(&self) -> String {
        format!("{}/login/device/code", self.0)
    }
    pub fn token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.0)
    }
}

/// An HTTP answer reduced to what is read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Sends a form with `Accept: application/json`, or a REST GET with a user token. Fields may be
/// secrets (device code, refresh token): an implementation never logs them.
pub trait Post {
    fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<Answer, String>;
    fn get(&self, url: &str, token: &Secret) -> Result<Answer, String>;
}

/// `GET {api}/user` with the user's token: the person's login.
pub fn user_login(
    post: &dyn Post,
    api_url: &str,
    host: &str,
    token: &Secret,
) -> Result<String, OAuthError> {
    let answer = post
        .get(&format!("{api_url}/user"), token)
        .map_err(OAuthError::Transport)?;
    let login = (answer.status == 200)
        .then(|| serde_json::from_slice::<serde_json::Value>(&answer.body).ok())
        .flatten()
        .and_then(|v| v.get("login").and_then(|l| l.as_str()).map(str::to_owned))
        .filter(|l| !l.is_empty());
    login
        .map(|l| crate::github::printable_message(&l))
        .ok_or_else(|| {
            OAuthError::Unexpected(format!(
                "{host} answered {} to GET /user with the new token",
                answer.status
            ))
        })
}

/// A device code as GitHub hands it out.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    /// Seconds the code is valid for.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

/// Tokens from a device-flow or refresh grant. Times are Unix seconds on this machine's clock.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: Secret,
    /// `None`: the token does not expire (the app opted out of expiring user tokens).
    pub expires_at: Option<u64>,
    pub refresh: Option<Secret>,
    pub refresh_expires_at: Option<u64>,
}

/// One poll of the token endpoint.
#[derive(Debug)]
pub enum Poll {
    /// `authorization_pending`: the person has not entered the code yet.
    Pending,
    /// `slow_down`: wait 5 s more from now on (GitHub also sends the new interval).
    SlowDown {
        interval: Option<u64>,
    },
    Done(Tokens),
}

/// Every way the endpoints say no, each with its own line ([`fmt::Display`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// `expired_token` (also spelt `token_expired` in GitHub's docs): the code was not entered in time.
    ExpiredToken,
    /// `access_denied`: the person pressed Cancel.
    AccessDenied,
    /// `incorrect_device_code`.
    IncorrectDeviceCode,
    /// `incorrect_client_credentials`, or a 404 from the device-code endpoint: no app with this client ID.
    IncorrectClientCredentials,
    /// `device_flow_disabled`: "Enable Device Flow" is off in the app's settings.
    DeviceFlowDisabled,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `bad_refresh_token`: the refresh token is used up, expired or revoked; only a new login helps.
    BadRefreshToken,
    /// Another `error` code, with GitHub's description.
    Other { error: String, description: String },
    /// No usable answer (an HTTP status without an OAuth body, or an unreadable body).
    Unexpected(String),
    /// No answer at all.
    Transport(String),
}

impl OAuthError {
    fn from_code(error: &str, description: &str) -> OAuthError {
        match error {
            "expired_token" | "token_expired" => OAuthError::ExpiredToken,
            "access_denied" => OAuthError::AccessDenied,
            "incorrect_device_code" => OAuthError::IncorrectDeviceCode,
            "incorrect_client_credentials" => OAuthError::IncorrectClientCredentials,
            "device_flow_disabled" => OAuthError::DeviceFlowDisabled,
            "unsupported_grant_type" => OAuthError::UnsupportedGrantType,
            "bad_refresh_token" => OAuthError::BadRefreshToken,
            _ => OAuthError::Other {
                error: crate::github::printable_message(error),
                description: crate::github::printable_message(description),
            },
        }
    }

    /// One line for the person, naming the app and host where it helps.
    pub fn explain(&self, client_id: &str, host: &str) -> String {
        match self {
            OAuthError::ExpiredToken => format!(
                "the one-time code expired before it was entered at {host}; run login again"
            ),
            OAuthError::AccessDenied => format!(
                "the authorization of app {client_id} was cancelled at {host}; nothing was stored"
            ),
            OAuthError::IncorrectDeviceCode => format!(
                "{host} no longer knows this login's device code (incorrect_device_code); run login again"
            ),
            OAuthError::IncorrectClientCredentials => format!(
                "{host} knows no GitHub App with client ID {client_id}; check --app-id (the Client ID on the app's settings page)"
            ),
            OAuthError::DeviceFlowDisabled => format!(
                "the device flow is off for app {client_id} on {host}: tick \"Enable Device Flow\" on the app's settings page (General → Identifying and authorizing users), then run login again"
            ),
            OAuthError::UnsupportedGrantType => format!(
                "{host} does not support this grant type (unsupported_grant_type): is it a GitHub host?"
            ),
            OAuthError::BadRefreshToken => format!(
                "{host} no longer accepts the login's refresh token (bad_refresh_token: used, expired or revoked); log in again with: git-credential-github-app login --app-id {client_id}"
            ),
            OAuthError::Other { error, description } => {
                format!("{host} refused: {error} ({description})")
            }
            OAuthError::Unexpected(text) | OAuthError::Transport(text) => text.clone(),
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthError::Other { error, .. } => write!(f, "{error}"),
            OAuthError::Unexpected(t) | OAuthError::Transport(t) => f.write_str(t),
            other => f.write_str(match other {
                OAuthError::ExpiredToken => "expired_token",
                OAuthError::AccessDenied => "access_denied",
                OAuthError::IncorrectDeviceCode => "incorrect_device_code",
                OAuthError::IncorrectClientCredentials => "incorrect_client_credentials",
                OAuthError::DeviceFlowDisabled => "device_flow_disabled",
                OAuthError::UnsupportedGrantType => "unsupported_grant_type",
                _ => "bad_refresh_token",
            }),
        }
    }
}

impl std::error::Error for OAuthError {}

/// The fields of a JSON or form-encoded answer (values as text).
fn fields(answer: &Answer) -> Option<BTreeMap<String, String>> {
    let json = answer
        .content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
        || answer.body.first() == Some(&b'{');
    if json {
        let value: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
        let map = value.as_object()?;
        return Some(
            map.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect(),
        );
    }
    let text = std::str::from_utf8(&answer.body).ok()?;
    let mut map = BTreeMap::new();
    for pair in text.trim().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        map.insert(form_decode(k)?, form_decode(v)?);
    }
    Some(map)
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The OAuth error in `map`, if any.
fn error_of(map: &BTreeMap<String, String>) -> Option<OAuthError> {
    let error = map.get("error").filter(|e| !e.is_empty())?;
    let description = map.get("error_description").cloned().unwrap_or_default();
    Some(OAuthError::from_code(error, &description))
}

fn unexpected(host: &str, answer: &Answer) -> OAuthError {
    OAuthError::Unexpected(format!(
        "{host} answered HTTP {} without an OAuth answer the helper can read",
        answer.status
    ))
}

fn number(map: &BTreeMap<String, String>, name: &str) -> Option<u64> {
    map.get(name).and_then(|v| v.trim().parse().ok())
}

/// `POST /login/device/code` for `client_id`.
pub fn request_device_code(
    post: &dyn Post,
    web: &Web,
    host: &str,
    client_id: &str,
) -> Result<DeviceCode, OAuthError> {
    let answer = post
        .post_form(&web.device_code_url(), &[("client_id", client_id)])
        .map_err(OAuthError::Transport)?;
    parse_device_code(host, &answer)
}

pub fn parse_device_code(host: &str, answer: &Answer) -> Result<DeviceCode, OAuthError> {
    if answer.status == 404 {
        return Err(OAuthError::IncorrectClientCredentials);
    }
    let map = fields(answer).ok_or_else(|| unexpected(host, answer))?;
    if let Some(e) = error_of(&map) {
        return Err(e);
    }
    let text = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
    match (
        text("device_code"),
        text("user_code"),
        text("verification_uri"),
    ) {
        (Some(device_code), Some(user_code), Some(verification_uri)) if answer.status == 200 => {
            Ok(DeviceCode {
                device_code: Secret::new(device_code),
                user_code: crate::github::printable_message(&user_code),
                verification_uri: crate::github::printable_message(&verification_uri),
                // RFC 8628 defaults: 5 s between polls; GitHub's codes live 900 s.
                expires_in: number(&map, "expires_in").unwrap_or(900),
                interval: number(&map, "interval").unwrap_or(5),
            })
        }
        _ => Err(unexpected(host, answer)),
    }
}

/// One poll of `POST /login/oauth/access_token` with the device code. `now`: Unix seconds when
/// the request was sent (expiries are counted from it).
pub fn poll(
    post: &dyn Post,
    web: &Web,
    host: &str,
    client_id: &str,
    device_code: &Secret,
    now: u64,
) -> Result<Poll, OAuthError> {
    let answer = post
        .post_form(
            &web.token_url(),
            &[
                ("client_id", client_id),
                ("device_code", device_code.expose()),
                ("grant_type", DEVICE_GRANT),
            ],
        )
        .map_err(OAuthError::Transport)?;
    let map = fields(&answer).ok_or_else(|| unexpected(host, &answer))?;
    match map.get("error").map(String::as_str) {
        Some("authorization_pending") => return Ok(Poll::Pending),
        Some("slow_down") => {
            return Ok(Poll::SlowDown {
                interval: number(&map, "interval"),
            });
        }
        _ => {}
    }
    tokens(host, &answer, &map, now).map(Poll::Done)
}

/// `POST /login/oauth/access_token` with `grant_type=refresh_token`, the client ID and the
/// refresh token (no client secret: the tokens came from the device flow).
pub fn refresh(
    post: &dyn Post,
    web: &Web,
    host: &str,
    client_id: &str,
    refresh_token: &Secret,
    now: u64,
) -> Result<Tokens, OAuthError> {
    let answer = post
        .post_form(
            &web.token_url(),
            &[
                ("client_id", client_id),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
        )
        .map_err(OAuthError::Transport)?;
    let map = fields(&answer).ok_or_else(|| unexpected(host, &answer))?;
    tokens(host, &answer, &map, now)
}

fn tokens(
    host: &str,
    answer: &Answer,
    map: &BTreeMap<String, String>,
    now: u64,
) -> Result<Tokens, OAuthError> {
    if let Some(e) = error_of(map) {
        return Err(e);
    }
    let access = map
        .get("access_token")
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .filter(|_| answer.status == 200)
        .ok_or_else(|| unexpected(host, answer))?;
    let refresh = map
        .get("refresh_token")
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .map(|t| Secret::new(t.as_str()));
    Ok(Tokens {
        access: Secret::new(access.as_str()),
        expires_at: number(map, "expires_in").map(|s| now.saturating_add(s.min(MAX_LIFETIME))),
        refresh_expires_at: refresh
            .as_ref()
            .and(number(map, "refresh_token_expires_in"))
            .map(|s| now.saturating_add(s.min(MAX_LIFETIME))),
        refresh,
    })
}

/// Pages of `GET /user/installations` followed at most (10,000 installations).
const MAX_PAGES: usize = 100;

/// `GET {api}/user/installations` with the user's token, every page: the accounts (login, as
/// GitHub writes it) of the app's installations the person can reach, with their ids.
pub fn user_installations(
    post: &dyn Post,
    api_url: &str,
    host: &str,
    token: &Secret,
) -> Result<Vec<(String, u64)>, OAuthError> {
    let mut out = Vec::new();
    for page in 1..=MAX_PAGES {
        let answer = post
            .get(
                &format!("{api_url}/user/installations?per_page=100&page={page}"),
                token,
            )
            .map_err(OAuthError::Transport)?;
        let value: serde_json::Value = (answer.status == 200)
            .then(|| serde_json::from_slice(&answer.body).ok())
            .flatten()
            .ok_or_else(|| {
                OAuthError::Unexpected(format!(
                    "{host} answered {} to GET /user/installations with the user's token",
                    answer.status
                ))
            })?;
        let items = value
            .get("installations")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default();
        out.extend(items.iter().filter_map(|i| {
            let login = i.get("account")?.get("login")?.as_str()?;
            let id = i.get("id")?.as_u64()?;
            Some((crate::github::printable_message(login), id))
        }));
        if items.len() < 100 {
            break;
        }
    }
    Ok(out)
}

/// Reads an environment variable.
type Env = dyn Fn(&str) -> Option<String>;

/// The real [`Post`]: ureq, no redirects (a token never follows one off-host), size-limited
/// answers, every call within `timeout`, each through the proxy `crate::net::proxy` chose for
/// its URL (the web host and the API may differ), as for every client of the helper.
pub struct Http {
    agent: ureq::Agent,
    /// The environment the proxy is chosen from (the process's; a test gives its own).
    env: Box<Env>,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http::with_env(timeout, Box::new(|name| std::env::var(name).ok()))
    }

    fn with_env(timeout: Duration, env: Box<Env>) -> Http {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .tls_config(tls)
            .proxy(None)
            .build();
        Http {
            agent: config.into(),
            env,
        }
    }

    /// The proxy for a request to `url` (none: direct; ureq never reads the environment itself).
    fn proxy(&self, url: &str) -> Option<ureq::Proxy> {
        crate::net::proxy::for_url_in(url, &*self.env).and_then(|p| p.to_ureq())
    }
}

impl Post for Http {
    fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<Answer, String> {
        let response = self
            .agent
            .post(url)
            .header("Accept", "application/json")
            .config()
            .proxy(self.proxy(url))
            .build()
            .send_form(fields.iter().copied());
        read(url, response)
    }

    fn get(&self, url: &str, token: &Secret) -> Result<Answer, String> {
        let response = self
            .agent
            .get(url)
            .header("Authorization", &format!("Bearer {}", token.expose()))
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .config()
            .proxy(self.proxy(url))
            .build()
            .call();
        read(url, response)
    }
}

fn read(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, String> {
    let mut response = response.map_err(|e| {
        format!(
            "cannot reach {url}: {}",
            crate::github::printable_message(&e.to_string())
        )
    })?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A request as sent: URL and form fields.
    pub type Sent = (String, Vec<(String, String)>);

    /// Answers from a script and records what was sent.
    pub struct Scripted {
        pub answers: RefCell<Vec<Answer>>,
        pub sent: RefCell<Vec<Sent>>,
    }

    impl Scripted {
        pub fn new(answers: Vec<(u16, &str)>) -> Scripted {
            Scripted {
                answers: RefCell::new(
                    answers
                        .into_iter()
                        .rev()
                        .map(|(status, body)| Answer {
                            status,
                            content_type: Some(if body.starts_with('{') {
                                "application/json; charset=utf-8".into()
                            } else {
                                "application/x-www-form-urlencoded; charset=utf-8".into()
                            }),
                            body: body.as_bytes().to_vec(),
                        })
                        .collect(),
                ),
                sent: RefCell::default(),
            }
        }
    }

    impl Post for Scripted {
        fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<Answer, String> {
            self.sent.borrow_mut().push((
                url.to_owned(),
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ));
            self.answers
                .borrow_mut()
                .pop()
                .ok_or_else(|| "no more answers".to_owned())
        }

        fn get(&self, url: &str, _token: &Secret) -> Result<Answer, String> {
            self.sent
                .borrow_mut()
                .push((format!("GET {url}"), Vec::new()));
            self.answers
                .borrow_mut()
                .pop()
                .ok_or_else(|| "no more answers".to_owned())
        }
    }

    const WEB: &str = "https://github.com";

    #[test]
    fn a_device_code_is_read_from_json_or_a_form() {
        let web = Web(WEB.into());
        let post = Scripted::new(vec![(
            200,
            r#"{"device_code":"3584d83530557fdd1f46af8289938c8ef79f9dc5","user_code":"WDJB-MJHT","verification_uri":"https://github.com/login/device","expires_in":900,"interval":5}"#,
        )]);
        let code = request_device_code(&post, &web, "github.com", "Iv23liX").unwrap();
        assert_eq!(code.user_code, "WDJB-MJHT");
        assert_eq!((code.expires_in, code.interval), (900, 5));
        assert_eq!(
            post.sent.borrow()[0],
            (
                "https://github.com/login/device/code".to_owned(),
                vec![("client_id".to_owned(), "Iv23liX".to_owned())]
            )
        );
        let form = Scripted::new(vec![(
            200,
            "device_code=abc&user_code=AB12-CD34&verification_uri=https%3A%2F%2Fghe.example%2Flogin%2Fdevice&expires_in=600&interval=7",
        )]);
        let code = request_device_code(&form, &web, "h", "Iv23liX").unwrap();
        assert_eq!(code.verification_uri, "https://ghe.example/login/device");
        assert_eq!((code.expires_in, code.interval), (600, 7));
    }

    #[test]
    fn device_code_refusals_are_typed() {
        let web = Web(WEB.into());
        let cases = [
            (
                200,
                r#"{"error":"device_flow_disabled","error_description":"Device Flow must be explicitly enabled for this App"}"#,
                OAuthError::DeviceFlowDisabled,
            ),
            (
                400,
                r#"{"error":"device_flow_disabled"}"#,
                OAuthError::DeviceFlowDisabled,
            ),
            (404, "Not Found", OAuthError::IncorrectClientCredentials),
        ];
        for (status, body, expected) in cases {
            let post = Scripted::new(vec![(status, body)]);
            assert_eq!(
                request_device_code(&post, &web, "github.com", "Iv23liX").unwrap_err(),
                expected
            );
        }
        let post = Scripted::new(vec![(502, "<html>bad gateway</html>")]);
        let e = request_device_code(&post, &web, "github.com", "Iv23liX").unwrap_err();
        assert_eq!(
            e.explain("Iv23liX", "github.com"),
            "github.com answered HTTP 502 without an OAuth answer the helper can read"
        );
    }

    #[test]
    fn polls_read_pending_slow_down_errors_and_tokens_with_expiries_from_the_answer() {
        let web = Web(WEB.into());
        let post = Scripted::new(vec![
            (200, r#"{"error":"authorization_pending"}"#),
            (
                200,
                r#"{"error":"slow_down","error_description":"Too many requests have been made in the same timeframe.","interval":10}"#,
            ),
            (200, "error=expired_token&error_description=x"),
            (200, r#"{"error":"token_expired"}"#),
            (200, r#"{"error":"access_denied"}"#),
            (200, r#"{"error":"incorrect_device_code"}"#),
            (200, r#"{"error":"incorrect_client_credentials"}"#),
            (200, r#"{"error":"unsupported_grant_type"}"#),
            (
                200,
                r#"{"access_token":"ghu_A","expires_in":28800,"refresh_token":"ghr_B","refresh_token_expires_in":15897600,"scope":"","token_type":"bearer"}"#,
            ),
            (200, "access_token=ghu_C&scope=&token_type=bearer"),
        ]);
        let code = Secret::new("dc");
        let p = || poll(&post, &web, "github.com", "Iv23liX", &code, 1000);
        assert!(matches!(p(), Ok(Poll::Pending)));
        assert!(matches!(p(), Ok(Poll::SlowDown { interval: Some(10) })));
        for expected in [
            OAuthError::ExpiredToken,
            OAuthError::ExpiredToken,
            OAuthError::AccessDenied,
            OAuthError::IncorrectDeviceCode,
            OAuthError::IncorrectClientCredentials,
            OAuthError::UnsupportedGrantType,
        ] {
            assert_eq!(p().unwrap_err(), expected);
        }
        let Ok(Poll::Done(t)) = p() else {
            panic!("tokens")
        };
        assert_eq!(t.access.expose(), "ghu_A");
        assert_eq!(t.expires_at, Some(1000 + 28800));
        assert_eq!(t.refresh.as_ref().map(Secret::expose), Some("ghr_B"));
        assert_eq!(t.refresh_expires_at, Some(1000 + 15897600));
        // An app without expiring tokens: no expiry, no refresh token.
        let Ok(Poll::Done(t)) = p() else {
            panic!("tokens")
        };
        assert_eq!(
            (t.expires_at, t.refresh.is_none(), t.refresh_expires_at),
            (None, true, None)
        );
        let sent = post.sent.borrow();
        assert_eq!(sent[0].0, "https://github.com/login/oauth/access_token");
        assert_eq!(
            sent[0].1,
            [
                ("client_id".to_owned(), "Iv23liX".to_owned()),
                ("device_code".to_owned(), "dc".to_owned()),
                ("grant_type".to_owned(), DEVICE_GRANT.to_owned()),
            ]
        );
    }

    #[test]
    fn refresh_sends_no_secret_and_bad_refresh_token_with_http_200_is_an_error() {
        let web = Web(WEB.into());
        let post = Scripted::new(vec![
            (
                200,
                r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
            ),
            (
                200,
                r#"{"access_token":"ghu_N","expires_in":100,"refresh_token":"ghr_N","refresh_token_expires_in":200}"#,
            ),
        ]);
        let r = Secret::new("ghr_OLD");
        assert_eq!(
            refresh(&post, &web, "github.com", "Iv23liX", &r, 50).unwrap_err(),
            OAuthError::BadRefreshToken
        );
        let t = refresh(&post, &web, "github.com", "Iv23liX", &r, 50).unwrap();
        assert_eq!((t.expires_at, t.refresh_expires_at), (Some(150), Some(250)));
        let sent = post.sent.borrow();
        assert_eq!(
            sent[0].1,
            [
                ("client_id".to_owned(), "Iv23liX".to_owned()),
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), "ghr_OLD".to_owned()),
            ]
        );
        assert!(
            sent.iter()
                .all(|(_, f)| f.iter().all(|(k, _)| k != "client_secret"))
        );
    }

    #[test]
    fn each_error_has_its_own_line() {
        let lines: Vec<String> = [
            OAuthError::ExpiredToken,
            OAuthError::AccessDenied,
            OAuthError::IncorrectDeviceCode,
            OAuthError::IncorrectClientCredentials,
            OAuthError::DeviceFlowDisabled,
            OAuthError::UnsupportedGrantType,
            OAuthError::BadRefreshToken,
        ]
        .iter()
        .map(|e| e.explain("Iv23liX", "github.com"))
        .collect();
        for (i, l) in lines.iter().enumerate() {
            assert!(!l.contains('\n'));
            assert!(lines[..i].iter().all(|o| o != l));
        }
        assert!(lines[4].contains("\"Enable Device Flow\""), "{}", lines[4]);
        assert!(
            lines[6].ends_with("git-credential-github-app login --app-id Iv23liX"),
            "{}",
            lines[6]
        );
    }

    #[test]
    fn the_web_base_is_https_unless_the_host_itself_is_loopback() {
        // An SSH tunnel to a GHES API: the web side is still the remote host, over https.
        assert_eq!(
            Web::new("http://127.0.0.1:8443/api/v3", "ghe.corp.example"),
            Web("https://ghe.corp.example".into())
        );
        assert_eq!(
            Web::new("http://localhost:8443/api/v3", "ghe.corp.example:8443"),
            Web("https://ghe.corp.example:8443".into())
        );
        // A loopback host with an http API stays http; with an https API, https.
        assert_eq!(
            Web::new("HTTP://[::1]:9/api/v3", "[::1]:9"),
            Web("http://[::1]:9".into())
        );
        assert_eq!(
            Web::new("https://127.0.0.1:5/api/v3", "127.0.0.1:5"),
            Web("https://127.0.0.1:5".into())
        );
        // A look-alike of loopback is not loopback.
        assert_eq!(
            Web::new("http://127.0.0.1:5/api/v3", "127.0.0.1.evil.example"),
            Web("https://127.0.0.1.evil.example".into())
        );
    }

    #[test]
    fn hostile_lifetimes_are_clamped_without_overflow() {
        let post = Scripted::new(vec![(
            200,
            r#"{"access_token":"ghu_A","expires_in":18446744073709551615,"refresh_token":"ghr_B","refresh_token_expires_in":18446744073709551615}"#,
        )]);
        let r = Secret::new("ghr_OLD");
        let t = refresh(&post, &Web(WEB.into()), "h", "Iv23liX", &r, u64::MAX - 1).unwrap();
        assert_eq!(
            (t.expires_at, t.refresh_expires_at),
            (Some(u64::MAX), Some(u64::MAX))
        );
        let post = Scripted::new(vec![(
            200,
            r#"{"access_token":"ghu_A","expires_in":18446744073709551615,"refresh_token":"ghr_B","refresh_token_expires_in":18446744073709551615}"#,
        )]);
        let t = refresh(&post, &Web(WEB.into()), "h", "Iv23liX", &r, 1000).unwrap();
        assert_eq!(t.expires_at, Some(1000 + MAX_LIFETIME));
        assert_eq!(t.refresh_expires_at, Some(1000 + MAX_LIFETIME));
    }

    #[test]
    fn each_request_goes_through_the_proxy_chosen_for_its_url() {
        use std::io::{BufRead, BufReader};
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = proxy.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((stream, _)) = proxy.accept() else {
                return;
            };
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
            let _ = tx.send(line);
        });
        let env =
            move |name: &str| (name == "https_proxy").then(|| format!("http://127.0.0.1:{port}"));
        let http = Http::with_env(Duration::from_secs(2), Box::new(env));
        assert!(
            http.proxy("http://ghe.test.invalid/x").is_none(),
            "http_proxy unset"
        );
        let _ = http.post_form(
            "https://ghe.test.invalid/login/oauth/access_token",
            &[("client_id", "Iv23liX")],
        );
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the request reached the proxy");
        assert!(line.contains("ghe.test.invalid"), "{line}");
    }

    #[test]
    fn the_web_base_follows_the_api_scheme() {
        assert_eq!(
            Web::new("https://api.github.com", "github.com").token_url(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(
            Web::new("http://127.0.0.1:5/api/v3", "127.0.0.1:5").device_code_url(),
            "http://127.0.0.1:5/login/device/code"
        );
    }
}

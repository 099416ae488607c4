//! The OAuth side of a GitHub App: the device flow (`POST /login/device/code`, the page a person
//! visits at `/login/device`, polling `POST /login/oauth/access_token`), refresh-token grants with
//! rotation, and `GET /api/v3/user` for a user token.
//!
//! Shapes and strings follow GitHub's documentation ("Generating a user access token for a
//! GitHub App", "Refreshing user access tokens", "Authorizing OAuth apps" → device flow error
//! codes) and answers captured by client libraries:
//! * parameters come from the query string, a form body or a JSON body;
//! * answers are `application/x-www-form-urlencoded` unless the request's `Accept` names
//!   `application/json`;
//! * every OAuth error is **HTTP 200** with `error`, `error_description`, `error_uri`
//!   (`slow_down` adds the new `interval`);
//! * an unknown client ID on `/login/device/code` is a 404.

use serde_json::{Value, json};

use crate::LockExt;
use crate::Shared;
use crate::api::{self, Urls};
use crate::http::{HttpRequest, HttpResponse};
use crate::users::{GrantState, UserTokenProblem};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
/// The `error_uri` GitHub sends with device-flow errors.
pub(crate) const ERROR_URI: &str = "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow";
pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// GitHub's `error_description` for each `error`.
pub(crate) fn description(error: &str) -> &'static str {
    match error {
        "authorization_pending" => "The authorization request is still pending.",
        "slow_down" => "Too many requests have been made in the same timeframe.",
        "expired_token" => "The `device code` has expired.",
        "access_denied" => "The user has denied your application access.",
        "incorrect_client_credentials" => {
            "The client_id and/or client_secret passed are incorrect."
        }
        "incorrect_device_code" => "The device_code provided is not valid.",
        "device_flow_disabled" => "Device Flow must be explicitly enabled for this App",
        "unsupported_grant_type" => "The grant type is not supported.",
        "bad_refresh_token" => "The refresh token passed is incorrect or expired.",
        _ => "",
    }
}

/// `true` for the paths this module serves.
pub(crate) fn is_oauth_path(path: &str) -> bool {
    matches!(
        path,
        "/login/device/code" | "/login/oauth/access_token" | "/login/device"
    )
}

/// Percent-decoding of one form or query component (`+` is a space).
pub(crate) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The request's parameters: query string, then a form or JSON body.
fn params(req: &HttpRequest) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add_form = |text: &str| {
        for kv in text.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            out.push((form_decode(k), form_decode(v)));
        }
    };
    add_form(&req.query);
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&req.body) {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push((k, v));
            }
        }
    } else if let Ok(text) = std::str::from_utf8(&req.body) {
        add_form(text);
    }
    out
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn wants_json(req: &HttpRequest) -> bool {
    req.header("accept")
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"))
}

/// An OAuth answer (always 200) as JSON or form, fields in the given order.
fn answer(req: &HttpRequest, fields: &[(&str, Value)]) -> HttpResponse {
    if wants_json(req) {
        let map: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        return api::json_response(200, &Value::Object(map));
    }
    let body = fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={}", form_encode(&v))
        })
        .collect::<Vec<_>>()
        .join("&");
    HttpResponse::new(200, FORM, body)
}

fn oauth_error(req: &HttpRequest, error: &str, extra: &[(&str, Value)]) -> HttpResponse {
    let mut fields = vec![
        ("error", json!(error)),
        ("error_description", json!(description(error))),
        ("error_uri", json!(ERROR_URI)),
    ];
    fields.extend(extra.iter().cloned());
    answer(req, &fields)
}

/// Routes the paths of [`is_oauth_path`].
pub(crate) fn handle(shared: &Shared, req: &HttpRequest, now: i64) -> HttpResponse {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/login/device/code") => device_code(shared, req, now),
        ("POST", "/login/oauth/access_token") => access_token(shared, req, now),
        ("GET", "/login/device") => HttpResponse::new(200, HTML, DEVICE_PAGE),
        ("POST", "/login/device") => device_page_submit(shared, req, now),
        _ => HttpResponse::new(404, "text/plain; charset=UTF-8", "Not Found\n"),
    }
}

fn device_code(shared: &Shared, req: &HttpRequest, now: i64) -> HttpResponse {
    let p = params(req);
    let mut world = shared.world.guard();
    let app = param(&p, "client_id")
        .and_then(|id| world.apps.values().find(|a| a.client_id == id))
        .cloned();
    let Some(app) = app else {
        return HttpResponse::new(404, "text/plain; charset=UTF-8", "Not Found\n");
    };
    if !app.device_flow {
        return oauth_error(req, "device_flow_disabled", &[]);
    }
    let (device_code, grant) = world.users.new_grant(app.id, now);
    answer(
        req,
        &[
            ("device_code", json!(device_code)),
            ("user_code", json!(grant.user_code)),
            (
                "verification_uri",
                json!(format!("{}/login/device", shared.base)),
            ),
            ("expires_in", json!(grant.expires_at - now)),
            ("interval", json!(grant.interval)),
        ],
    )
}

fn access_token(shared: &Shared, req: &HttpRequest, now: i64) -> HttpResponse {
    let p = params(req);
    let mut world = shared.world.guard();
    let app = param(&p, "client_id")
        .and_then(|id| world.apps.values().find(|a| a.client_id == id))
        .cloned();
    let grant_type = param(&p, "grant_type").unwrap_or("");
    let Some(app) = app else {
        return oauth_error(req, "incorrect_client_credentials", &[]);
    };
    match grant_type {
        DEVICE_GRANT => {
            world.users.stats.polls += 1;
            let Some(grant) = param(&p, "device_code")
                .and_then(|code| world.users.grants.get_mut(code))
                .filter(|g| g.app_id == app.id)
            else {
                return oauth_error(req, "incorrect_device_code", &[]);
            };
            if grant.state == GrantState::Redeemed {
                return oauth_error(req, "incorrect_device_code", &[]);
            }
            if now >= grant.expires_at {
                return oauth_error(req, "expired_token", &[]);
            }
            let polled = std::time::Instant::now();
            let too_soon = grant.last_poll.is_some_and(|last| {
                polled.duration_since(last) < std::time::Duration::from_secs(grant.interval)
            });
            grant.last_poll = Some(polled);
            if too_soon {
                grant.interval += 5;
                let interval = grant.interval;
                world.users.stats.slow_downs += 1;
                return oauth_error(req, "slow_down", &[("interval", json!(interval))]);
            }
            match grant.state.clone() {
                GrantState::Pending => oauth_error(req, "authorization_pending", &[]),
                GrantState::Denied => oauth_error(req, "access_denied", &[]),
                GrantState::Redeemed => oauth_error(req, "incorrect_device_code", &[]),
                GrantState::Approved(login) => {
                    grant.state = GrantState::Redeemed;
                    let (token, refresh) =
                        world
                            .users
                            .issue(app.id, &login, app.expiring_user_tokens, now);
                    token_answer(req, &token, refresh, now)
                }
            }
        }
        "refresh_token" => {
            world.users.stats.refreshes += 1;
            let users = &mut world.users;
            let Some(old) = param(&p, "refresh_token")
                .and_then(|r| users.refresh_tokens.get_mut(r))
                .filter(|r| r.app_id == app.id && !r.spent && now < r.expires_at)
            else {
                return oauth_error(req, "bad_refresh_token", &[]);
            };
            // Rotation: the refresh token is used up and its access token stops working.
            old.spent = true;
            let (login, old_access) = (old.login.clone(), old.access_token.clone());
            if let Some(t) = users.tokens.get_mut(&old_access) {
                t.revoked = true;
            }
            users.stats.refreshed += 1;
            let (token, refresh) = users.issue(app.id, &login, true, now);
            token_answer(req, &token, refresh, now)
        }
        _ => oauth_error(req, "unsupported_grant_type", &[]),
    }
}

fn token_answer(
    req: &HttpRequest,
    token: &crate::users::UserToken,
    refresh: Option<(String, i64)>,
    now: i64,
) -> HttpResponse {
    let mut fields = vec![("access_token", json!(token.token))];
    if let (Some(exp), Some((r, rexp))) = (token.expires_at, refresh) {
        fields.push(("expires_in", json!(exp - now)));
        fields.push(("refresh_token", json!(r)));
        fields.push(("refresh_token_expires_in", json!(rexp - now)));
    }
    fields.push(("scope", json!("")));
    fields.push(("token_type", json!("bearer")));
    answer(req, &fields)
}

/// The page at `/login/device`: a signed-in person types the code and authorises (or cancels).
/// The stand-in has no sessions: the form's `login` field says who is signed in.
const DEVICE_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Device Activation</title></head><body>\n\
<h1>Device Activation</h1>\n<form method=\"post\" action=\"/login/device\">\n\
<label>Signed in as <input name=\"login\"></label>\n\
<label>Enter the code displayed on your device <input name=\"user_code\" placeholder=\"XXXX-XXXX\"></label>\n\
<button name=\"authorize\" value=\"true\">Authorize</button>\n\
<button name=\"authorize\" value=\"false\">Cancel</button>\n</form>\n</body></html>\n";

fn page(status: u16, title: &str, text: &str) -> HttpResponse {
    HttpResponse::new(
        status,
        HTML,
        format!(
            "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>\n"
        ),
    )
}

fn device_page_submit(shared: &Shared, req: &HttpRequest, now: i64) -> HttpResponse {
    let p = params(req);
    let mut world = shared.world.guard();
    let Some(login) = param(&p, "login")
        .and_then(|l| world.account(l))
        .filter(|a| a.kind == crate::model::AccountType::User)
        .map(|a| a.login.clone())
    else {
        return page(
            401,
            "Sign in to GitHub",
            "Sign in as a user to activate a device.",
        );
    };
    let approve = param(&p, "authorize") != Some("false");
    let Some(grant) = param(&p, "user_code").and_then(|c| world.users.grant_by_user_code(c, now))
    else {
        return page(
            422,
            "Device Activation",
            "That code didn't work. Check the code and try again.",
        );
    };
    if approve {
        grant.state = GrantState::Approved(login);
        page(
            200,
            "Congratulations, you're all set!",
            "Your device is now connected.",
        )
    } else {
        grant.state = GrantState::Denied;
        page(
            200,
            "Access denied",
            "You have denied the device access to your account.",
        )
    }
}

/// Approves (or denies) the pending grant with `user_code` as `login`, as the page does.
pub(crate) fn decide(shared: &Shared, user_code: &str, login: &str, approve: bool) -> bool {
    let now = shared.now();
    let mut world = shared.world.guard();
    let Some(login) = world.account(login).map(|a| a.login.clone()) else {
        return false;
    };
    match world.users.grant_by_user_code(user_code, now) {
        Some(g) => {
            g.state = if approve {
                GrantState::Approved(login)
            } else {
                GrantState::Denied
            };
            true
        }
        None => false,
    }
}

/// `GET /api/v3/user` with a user token: the user. An installation token gets GitHub's 403.
pub(crate) fn user(shared: &Shared, req: &HttpRequest, urls: &Urls, now: i64) -> HttpResponse {
    const DOC: &str = "https://docs.github.com/rest/users/users#get-the-authenticated-user";
    let world = shared.world.guard();
    let token = req
        .header("authorization")
        .and_then(|a| a.trim().split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("token") || s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return api::error(401, "Requires authentication", DOC);
    };
    match world.users.check(&token, now) {
        Ok(t) => {
            let Some(acc) = world.account(&t.login) else {
                return api::error(401, "Bad credentials", "https://docs.github.com/rest");
            };
            let mut v = api::simple_user(acc, urls);
            v["name"] = json!(acc.login);
            api::json_response(200, &v)
        }
        Err(UserTokenProblem::Unknown) if world.check_token(&token, now).is_ok() => {
            api::error(403, "Resource not accessible by integration", DOC)
        }
        Err(_) => api::error(401, "Bad credentials", "https://docs.github.com/rest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_coding_round_trips() {
        let s = "a b&c=d/é%";
        assert_eq!(form_decode(&form_encode(s)), s);
        assert_eq!(form_decode("x%2"), "x%2");
        assert_eq!(form_decode("urn%3Aietf%3Aparams"), "urn:ietf:params");
    }
}

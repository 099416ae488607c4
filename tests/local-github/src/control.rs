//! `/_emulator/*`: observation and fault control for out-of-process users (scripts).
//! These requests are neither logged nor subject to faults.

use std::time::Duration;

use serde_json::{Value, json};

use crate::LockExt;
use crate::http::{HttpRequest, HttpResponse};
use crate::model::{Fault, FaultAction, TokenFormat};
use crate::{Shared, api};

fn ok(v: Value) -> HttpResponse {
    api::json_response(200, &v)
}

fn bad(msg: &str) -> HttpResponse {
    api::json_response(400, &json!({"message": msg}))
}

fn body(req: &HttpRequest) -> Result<Value, HttpResponse> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| bad(&format!("bad JSON: {e}")))
}

pub(crate) fn handle(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    match control(shared, req) {
        Ok(r) | Err(r) => r,
    }
}

fn control(shared: &Shared, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let route = req.path.trim_start_matches("/_emulator").trim_matches('/');
    Ok(match (req.method.as_str(), route) {
        ("GET", "requests") => {
            let log = shared.log.guard();
            ok(serde_json::to_value(&*log).unwrap())
        }
        ("POST", "clear") => {
            shared.log.guard().clear();
            HttpResponse::empty(204)
        }
        ("GET", "stats") => ok(shared.stats()),
        ("GET", "state") => ok(json!({
            "now": shared.now(),
            "clock_offset_secs": shared.clock_offset.load(std::sync::atomic::Ordering::SeqCst),
            "token_lifetime_secs": shared.token_lifetime(),
            "token_format": match shared.token_format() {
                TokenFormat::Classic => "classic",
                TokenFormat::Stateless => "stateless",
            },
            "pending_faults": shared.faults.guard().iter().map(|f| f.times).sum::<usize>(),
        })),
        ("POST", "clock") => {
            let b = body(req)?;
            let secs = b["offset_secs"]
                .as_i64()
                .ok_or_else(|| bad("want {\"offset_secs\": N}"))?;
            shared
                .clock_offset
                .store(secs, std::sync::atomic::Ordering::SeqCst);
            HttpResponse::empty(204)
        }
        ("POST", "token-lifetime") => {
            let b = body(req)?;
            let secs = b["secs"]
                .as_u64()
                .ok_or_else(|| bad("want {\"secs\": N}"))?;
            shared
                .token_lifetime
                .store(secs, std::sync::atomic::Ordering::SeqCst);
            HttpResponse::empty(204)
        }
        ("POST", "token-format") => {
            let b = body(req)?;
            let f = match b["format"].as_str() {
                Some("classic") => TokenFormat::Classic,
                Some("stateless") => TokenFormat::Stateless,
                _ => return Err(bad("want {\"format\": \"classic\"|\"stateless\"}")),
            };
            shared.set_token_format(f);
            HttpResponse::empty(204)
        }
        ("POST", "faults") => {
            let f = parse_fault(&body(req)?)?;
            shared.faults.guard().push(f);
            HttpResponse::empty(204)
        }
        ("DELETE", "faults") => {
            shared.faults.guard().clear();
            HttpResponse::empty(204)
        }
        ("POST", "revoke-tokens") => {
            for t in shared.world.guard().tokens.values_mut() {
                t.revoked = true;
            }
            HttpResponse::empty(204)
        }
        ("POST", action @ ("suspend" | "unsuspend" | "uninstall")) => {
            let b = body(req)?;
            let id = b["installation_id"]
                .as_u64()
                .ok_or_else(|| bad("want {\"installation_id\": N}"))?;
            let now = shared.now();
            let mut world = shared.world.guard();
            let found = match action {
                "uninstall" => world.installations.remove(&id).is_some(),
                _ => match world.installations.get_mut(&id) {
                    Some(i) => {
                        i.suspended_at = (action == "suspend").then_some(now);
                        i.updated_at = now;
                        true
                    }
                    None => false,
                },
            };
            if found {
                HttpResponse::empty(204)
            } else {
                api::json_response(404, &json!({"message": "no such installation"}))
            }
        }
        _ => api::json_response(404, &json!({"message": "unknown control endpoint"})),
    })
}

/// `{"method"?, "path_prefix", "times"?, "status"?, "body"? (JSON or string),
///   "content_type"?, "headers"? {name: value}, "delay_ms"?, "drop"?}`
fn parse_fault(b: &Value) -> Result<Fault, HttpResponse> {
    let prefix = b["path_prefix"]
        .as_str()
        .ok_or_else(|| bad("path_prefix is required"))?;
    let action = if b["drop"].as_bool() == Some(true) {
        FaultAction::Drop
    } else if let Some(ms) = b["delay_ms"].as_u64() {
        FaultAction::Delay(Duration::from_millis(ms))
    } else {
        let status = b["status"]
            .as_u64()
            .ok_or_else(|| bad("one of status, delay_ms, drop is required"))?
            as u16;
        let (default_ct, bytes) = match &b["body"] {
            Value::Null => ("application/json; charset=utf-8", Vec::new()),
            Value::String(s) => ("text/plain; charset=utf-8", s.as_bytes().to_vec()),
            v => (
                "application/json; charset=utf-8",
                v.to_string().into_bytes(),
            ),
        };
        let headers = b["headers"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        FaultAction::Respond {
            status,
            content_type: b["content_type"].as_str().unwrap_or(default_ct).to_string(),
            body: bytes,
            headers,
        }
    };
    let mut f = Fault::new(prefix, action).times(b["times"].as_u64().unwrap_or(1) as usize);
    if let Some(m) = b["method"].as_str() {
        f = f.method(m);
    }
    Ok(f)
}

//! GitHub App JWT verification with GitHub's own error strings.
//!
//! Order of checks (GitHub's real order is not documented; see README.md):
//! 1. `Authorization: Bearer <three base64url parts>`, JSON header and payload,
//!    `alg` = RS256                                  → 401 "A JSON web token could not be decoded"
//! 2. `iss` (number, numeric string or client id) names an app → else 404 "Integration not found"
//! 3. signature verifies with one of that app's keys → else 401 "A JSON web token could not be decoded"
//! 4. `iat` is an integer and not after server now (+ leeway) → else 401 'Issued at' message
//! 5. `exp` is numeric and after server now          → else 401 'Expiration time' ... numeric message
//! 6. `exp` - now <= 600 or `exp` - `iat` <= 600     → else 401 'Expiration time' ... too far message

use base64::Engine;
use serde_json::Value;

use crate::state::World;

/// GitHub's strings, as seen in the threads listed under "Error strings" in the crate's README.
pub(crate) const MSG_DECODE: &str = "A JSON web token could not be decoded";
pub(crate) const MSG_INTEGRATION_NOT_FOUND: &str = "Integration not found";
pub(crate) const MSG_IAT: &str = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
pub(crate) const MSG_EXP: &str = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
pub(crate) const MSG_EXP_TOO_FAR: &str = "'Expiration time' claim ('exp') is too far in the future";

/// Longest JWT lifetime GitHub accepts ("no more than 10 minutes into the future", GitHub docs
/// "Generating a JSON Web Token (JWT) for a GitHub App"; "JWT rules" under Sources in the crate's README).
pub(crate) const MAX_JWT_LIFETIME: i64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    Decode,
    IntegrationNotFound,
    Iat,
    Exp,
    ExpTooFar,
}

impl JwtError {
    pub fn status(self) -> u16 {
        match self {
            JwtError::IntegrationNotFound => 404,
            _ => 401,
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            JwtError::Decode => MSG_DECODE,
            JwtError::IntegrationNotFound => MSG_INTEGRATION_NOT_FOUND,
            JwtError::Iat => MSG_IAT,
            JwtError::Exp => MSG_EXP,
            JwtError::ExpTooFar => MSG_EXP_TOO_FAR,
        }
    }
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Decode)
}

/// Verifies the `Authorization` header value; returns the app id.
pub(crate) fn verify(
    world: &World,
    authorization: Option<&str>,
    now: i64,
    iat_leeway: i64,
) -> Result<u64, JwtError> {
    let auth = authorization.ok_or(JwtError::Decode)?.trim();
    let (scheme, token) = auth.split_once(' ').ok_or(JwtError::Decode)?;
    // A JWT must be sent with the Bearer scheme (github/docs reusable getting-started/bearer-vs-token).
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtError::Decode);
    }
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Decode);
    }
    let header: Value = serde_json::from_slice(&b64(parts[0])?).map_err(|_| JwtError::Decode)?;
    let claims: Value = serde_json::from_slice(&b64(parts[1])?).map_err(|_| JwtError::Decode)?;
    let signature = b64(parts[2])?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") || !claims.is_object() {
        return Err(JwtError::Decode);
    }
    let app = match claims.get("iss") {
        Some(Value::Number(n)) => {
            let id = n.as_u64().ok_or(JwtError::IntegrationNotFound)?;
            world.apps.get(&id)
        }
        Some(Value::String(s)) => match s.parse::<u64>() {
            Ok(id) => world.apps.get(&id),
            Err(_) => world.apps.values().find(|a| a.client_id == *s),
        },
        _ => return Err(JwtError::Decode),
    }
    .ok_or(JwtError::IntegrationNotFound)?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    if !app
        .keys
        .iter()
        .any(|k| k.verify_rs256(signed.as_bytes(), &signature))
    {
        return Err(JwtError::Decode);
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64().ok_or(JwtError::Iat)?,
        _ => return Err(JwtError::Iat),
    };
    if iat > now + iat_leeway {
        return Err(JwtError::Iat);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(JwtError::Exp)?;
    if exp <= now as f64 {
        return Err(JwtError::Exp);
    }
    if exp - now as f64 > MAX_JWT_LIFETIME as f64 && exp - iat as f64 > MAX_JWT_LIFETIME as f64 {
        return Err(JwtError::ExpTooFar);
    }
    Ok(app.id)
}

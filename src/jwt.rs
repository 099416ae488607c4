//! The app's JSON Web Token: RS256, `iss` = App ID or client ID, `iat` 60 s in the past and `exp`
//! nine minutes ahead, inside GitHub's ten-minute limit with room for a clock a minute fast.
//!
//! The token is built here (`base64url(header).base64url(claims)`) and its signature comes from a
//! [`KeySigner`], wherever the key lives.
//!
//! `offset` is what we learnt of GitHub's clock (its `Date` minus ours, in seconds): when GitHub
//! rejects a JWT for its times, the caller re-signs with the offset from GitHub's `Date` header.

use crate::secret::Secret;
use crate::signer::KeySigner;
use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// How far `iat` is backdated (GitHub's documentation recommends 60 s).
pub const BACKDATE: i64 = 60;
/// Lifetime from `iat`: 10 minutes is GitHub's maximum for `exp - now`, so `exp` = now + 9 min.
pub const LIFETIME: i64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

/// `{"alg":"RS256","typ":"JWT"}`, base64url-encoded.
const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";

/// Issues the app's JWTs: built here, signed by a [`KeySigner`] (wherever the key is), on GitHub's
/// clock as far as it is known. (The key's signer is `signer`; this is what uses it.)
pub struct JwtIssuer {
    key: Box<dyn KeySigner>,
    iss: String,
    /// Seconds to add to our clock to get GitHub's.
    pub offset: i64,
    /// The last JWT, with the offset and time it was signed for: a lookup and a mint in one run
    /// share it (RSA signing is most of a cold get's CPU time).
    last: Option<(i64, i64, Secret)>,
}

/// How long a signed JWT is reused within one process (it stays valid for nine minutes).
const REUSE: i64 = 60;

impl JwtIssuer {
    pub fn new(key: Box<dyn KeySigner>, iss: String, offset: i64) -> JwtIssuer {
        JwtIssuer {
            key,
            iss,
            offset,
            last: None,
        }
    }

    /// What signs (for `doctor`: its public key and fingerprint).
    pub fn key(&self) -> &dyn KeySigner {
        self.key.as_ref()
    }

    /// The `iss` claim: the App ID or client ID.
    pub fn issuer(&self) -> &str {
        &self.iss
    }

    /// A JWT for the local time `now` (Unix seconds).
    pub fn sign(&mut self, now: i64) -> Result<Secret> {
        if let Some((offset, signed_at, jwt)) = &self.last
            && *offset == self.offset
            && (0..REUSE).contains(&(now - signed_at))
        {
            return Ok(jwt.clone());
        }
        let started = std::time::Instant::now();
        let server_now = now + self.offset;
        let claims = Claims {
            iat: server_now - BACKDATE,
            exp: server_now - BACKDATE + LIFETIME,
            iss: &self.iss,
        };
        let claims = serde_json::to_vec(&claims).context("cannot encode the JWT's claims")?;
        let mut jwt = format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = self.key.sign(jwt.as_bytes())?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        crate::trace!(
            "JWT signed in {:.2} ms by {}",
            started.elapsed().as_secs_f64() * 1000.0,
            self.key.describe()
        );
        let jwt = Secret::new(jwt);
        self.last = Some((self.offset, now, jwt.clone()));
        Ok(jwt)
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{KeySigner, local::LocalKey};

    #[test]
    fn header_is_rs256() {
        let header = URL_SAFE_NO_PAD.decode(HEADER).unwrap();
        assert_eq!(header, br#"{"alg":"RS256","typ":"JWT"}"#);
    }

    #[test]
    fn jwt_is_header_claims_and_a_verifiable_signature() {
        let pem = Secret::new(include_str!("signer/github-example-key.pem"));
        let key = LocalKey::parse(&pem, "the example key").unwrap();
        let spki = key.public_key_der().unwrap();
        let mut signer = JwtIssuer::new(Box::new(key), "12345".into(), 7);
        let jwt = signer.sign(1_000_000).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_000_007 - BACKDATE, "exp": 1_000_007 - BACKDATE + LIFETIME, "iss": "12345"})
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        crate::signer::verify(&spki, input.as_bytes(), &signature).unwrap();
        assert_eq!(signer.key().public_key_der().unwrap(), spki);
        // Reused within a minute, re-signed when the offset changes.
        assert_eq!(signer.sign(1_000_030).unwrap(), jwt);
        signer.offset = 100;
        assert_ne!(signer.sign(1_000_030).unwrap(), jwt);
    }
}

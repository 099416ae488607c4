//! The app's JSON Web Token: RS256, `iss` = App ID or client ID, `iat` 60 s in the past and `exp`
//! nine minutes ahead, inside GitHub's ten-minute limit with room for a clock a minute fast.
//!
//! `offset` is what we learnt of GitHub's clock (its `Date` minus ours, in seconds): when GitHub
//! rejects a JWT for its times, the caller re-signs with the offset from GitHub's `Date` header.

use crate::secret::Secret;
use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
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

/// Signs app JWTs with one key, correcting for a known clock offset.
pub struct Signer {
    key: EncodingKey,
    iss: String,
    /// Seconds to add to our clock to get GitHub's.
    pub offset: i64,
    /// The last JWT, with the offset and time it was signed for: a lookup and a mint in one run
    /// share it (RSA signing is most of a cold get's CPU time).
    last: Option<(i64, i64, Secret)>,
}

/// How long a signed JWT is reused within one process (it stays valid for nine minutes).
const REUSE: i64 = 60;

impl Signer {
    pub fn new(key: EncodingKey, iss: String, offset: i64) -> Signer {
        Signer {
            key,
            iss,
            offset,
            last: None,
        }
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
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .context("cannot sign the app's JWT with this key")?;
        crate::trace!(
            "JWT signed in {:.2} ms",
            started.elapsed().as_secs_f64() * 1000.0
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

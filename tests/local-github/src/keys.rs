//! RSA key generation (cached per process), PEM encodings and fingerprints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::Error;

/// One RSA key pair of a GitHub App.
#[derive(Clone)]
pub struct AppKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    public: RsaPublicKey,
    verifier: rsa::pkcs1v15::VerifyingKey<Sha256>,
    pkcs1_pem: String,
    pkcs8_pem: String,
    fingerprint: String,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("fingerprint", &self.inner.fingerprint)
            .finish_non_exhaustive()
    }
}

impl AppKey {
    /// A freshly generated 2048-bit key (slow in unoptimised builds; prefer [`AppKey::pooled`]).
    pub fn generate() -> AppKey {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation failed");
        AppKey::from_private(&key)
    }

    /// A key from the per-process cache: the same `slot` gives the same key
    /// for the life of the process, different slots give different keys.
    pub fn pooled(slot: u64) -> AppKey {
        static POOL: OnceLock<Mutex<HashMap<u64, Arc<OnceLock<AppKey>>>>> = OnceLock::new();
        let cell = POOL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(slot)
            .or_default()
            .clone();
        cell.get_or_init(AppKey::generate).clone()
    }

    /// Loads a private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<AppKey, Error> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| Error::new(format!("not an RSA private key PEM: {e}")))?;
        Ok(AppKey::from_private(&key))
    }

    /// A key known only by its public half (DER SubjectPublicKeyInfo), as for a key kept in a
    /// KMS: the app trusts it, and its private PEMs are empty (it cannot [`AppKey::sign_jwt`]).
    pub fn from_public_der(der: &[u8]) -> Result<AppKey, Error> {
        use rsa::pkcs8::DecodePublicKey;
        let public = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| Error::new(format!("not an RSA SubjectPublicKeyInfo: {e}")))?;
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der))
        );
        Ok(AppKey {
            inner: Arc::new(KeyInner {
                verifier: rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone()),
                public,
                pkcs1_pem: String::new(),
                pkcs8_pem: String::new(),
                fingerprint,
            }),
        })
    }

    fn from_private(key: &RsaPrivateKey) -> AppKey {
        let public = key.to_public_key();
        let pkcs1_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .expect("PKCS#1 encoding")
            .to_string();
        let pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding")
            .to_string();
        let spki = public.to_public_key_der().expect("SPKI encoding");
        // GitHub docs, "Managing private keys for GitHub Apps" (Sources in the crate's README):
        // `openssl rsa -pubout -outform DER | openssl sha256 -binary | openssl base64`.
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_bytes()))
        );
        AppKey {
            inner: Arc::new(KeyInner {
                verifier: rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone()),
                public,
                pkcs1_pem,
                pkcs8_pem,
                fingerprint,
            }),
        }
    }

    /// PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), the format GitHub hands out.
    pub fn private_key_pem(&self) -> &str {
        &self.inner.pkcs1_pem
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn private_key_pkcs8_pem(&self) -> &str {
        &self.inner.pkcs8_pem
    }

    /// `SHA256:<base64>` of the DER SubjectPublicKeyInfo, as GitHub shows it.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    pub fn public_key(&self) -> &RsaPublicKey {
        &self.inner.public
    }

    /// Verifies an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature.
    pub(crate) fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
            return false;
        };
        self.inner.verifier.verify(message, &sig).is_ok()
    }

    /// Signs `claims` as an RS256 JWT with this key.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.inner.pkcs1_pem.as_bytes())
            .expect("own PEM parses");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            claims,
            &key,
        )
        .expect("JWT signing")
    }
}

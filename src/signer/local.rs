//! The app's key as a PEM file or environment variable on this machine ([`crate::key`] reads it).

use super::KeySigner;
use crate::keyref::KeyRef;
use crate::secret::Secret;
use anyhow::{Result, anyhow};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

pub struct LocalKey {
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
    origin: String,
}

impl LocalKey {
    pub fn load(source: &KeyRef, warn: &mut dyn FnMut(String)) -> Result<LocalKey> {
        let key = crate::key::load(source, warn)?;
        Ok(LocalKey::new(key, source.describe()))
    }

    /// A key from PEM text; `origin` names it in messages.
    pub fn parse(text: &Secret, origin: &str) -> Result<LocalKey> {
        Ok(LocalKey::new(
            crate::key::parse(text, origin)?,
            origin.to_owned(),
        ))
    }

    fn new(key: RsaPrivateKey, origin: String) -> LocalKey {
        let public = key.to_public_key();
        LocalKey {
            signing: SigningKey::new(key),
            public,
            origin,
        }
    }

    pub fn public(&self) -> &RsaPublicKey {
        &self.public
    }
}

impl KeySigner for LocalKey {
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>> {
        // Blinded (randomised) RSA, as jsonwebtoken and openssl do, against timing attacks.
        let signature = self
            .signing
            .try_sign_with_rng(&mut rsa::rand_core::OsRng, signing_input)
            .map_err(|e| anyhow!("cannot sign with {} ({e})", self.origin))?;
        Ok(signature.to_vec())
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        Ok(self
            .public
            .to_public_key_der()
            .map_err(|e| anyhow!("cannot encode the public key of {} ({e})", self.origin))?
            .into_vec())
    }

    fn describe(&self) -> String {
        self.origin.clone()
    }
}

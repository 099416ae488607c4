//! Who signs the app's JWT. The JWT's signing input goes to a [`KeySigner`] and an RSASSA-PKCS1-v1_5
//! SHA-256 signature comes back; discovery, cache, single-flight and clock-skew retry do not care
//! where the key lives.
//!
//! Signers: a PEM key on this machine ([`local`]); a PKCS#11 token ([`pkcs11`]); AWS KMS
//! ([`aws_kms`]); any program ([`command`]). A signer is opened only when a token must be
//! minted (never for a cached answer), so no module is loaded and no credential is read before then.

pub mod aws_credentials;
pub mod aws_http;
pub mod aws_kms;
pub mod command;
pub mod local;
pub mod pkcs11;

use crate::keyref::KeyRef;
use anyhow::Result;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Signs with the app's RSA key, wherever it is.
pub trait KeySigner {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `signing_input` (the signer hashes it), as raw bytes.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>>;
    /// The public key as DER SubjectPublicKeyInfo, for [`fingerprint`].
    fn public_key_der(&self) -> Result<Vec<u8>>;
    /// What signs, for messages and traces ("the key in /home/me/app.pem"); never a secret.
    fn describe(&self) -> String;
}

/// Open the signer for `source`. `deadline` bounds the time spent signing (a signer command is
/// killed when it runs over); `warn` receives one-line warnings (loose file permissions).
pub fn open(
    source: &KeyRef,
    deadline: Instant,
    warn: &mut dyn FnMut(String),
) -> Result<Box<dyn KeySigner>> {
    match source {
        KeyRef::File(_) | KeyRef::Env(_) => Ok(Box::new(local::LocalKey::load(source, warn)?)),
        KeyRef::Pkcs11(uri) => Ok(Box::new(pkcs11::Pkcs11Signer::open(uri, warn)?)),
        KeyRef::AwsKms(key) => Ok(Box::new(aws_kms::KmsSigner::open(key, deadline)?)),
        KeyRef::Command { argv, public_key } => Ok(Box::new(command::CommandSigner::new(
            argv,
            public_key.as_deref(),
            deadline,
        )?)),
    }
}

pub use crate::keyref::shown_value;

/// The fingerprint GitHub shows for an app key: `SHA256:` and the standard base64 (padded) of the
/// SHA-256 of the DER SubjectPublicKeyInfo — what `openssl rsa -pubout -outform DER | openssl
/// sha256 -binary | openssl base64` prints.
pub fn fingerprint(spki_der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki_der))
    )
}

/// The DER `DigestInfo` prefix of a SHA-256 hash (RFC 8017 §9.2 note 1): signers that only do raw
/// PKCS#1 v1.5 padding (`CKM_RSA_PKCS`) sign this prefix followed by the 32-byte digest.
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// `DigestInfo(SHA-256(message))`.
pub fn sha256_digest_info(message: &[u8]) -> Vec<u8> {
    let mut out = SHA256_DIGEST_INFO_PREFIX.to_vec();
    out.extend_from_slice(&Sha256::digest(message));
    out
}

/// DER SubjectPublicKeyInfo for an RSA key given as big-endian modulus and public exponent.
pub fn rsa_spki_der(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>> {
    use rsa::pkcs8::EncodePublicKey;
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from_bytes_be(exponent),
    )
    .map_err(|e| anyhow::anyhow!("the signer's public key is not a usable RSA key ({e})"))?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the signer's public key ({e})"))?
        .into_vec())
}

/// Check that `signature` is a PKCS#1 v1.5 SHA-256 signature of `message` by `spki_der`'s key.
pub fn verify(spki_der: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(spki_der)
        .map_err(|e| anyhow::anyhow!("the public key is not an RSA SubjectPublicKeyInfo ({e})"))?;
    key.verify(
        rsa::Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(message),
        signature,
    )
    .map_err(|_| anyhow::anyhow!("the signature does not verify with the public key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    /// GitHub's published example app key (the `integration-from-manifest` example of its REST
    /// API description): public data, not a secret.
    pub const EXAMPLE_KEY: &str = include_str!("github-example-key.pem");

    #[test]
    fn fingerprint_matches_githubs_documented_openssl_pipeline() {
        let key = local::LocalKey::parse(&Secret::new(EXAMPLE_KEY), "the example key").unwrap();
        assert_eq!(
            fingerprint(&key.public_key_der().unwrap()),
            "SHA256:jruIcxbAqxv7oiBc/IHGkkTvdF54gOGRqvUEns1IZDc="
        );
    }

    #[test]
    fn spki_from_modulus_and_exponent_is_the_same_key() {
        use rsa::traits::PublicKeyParts;
        let key = local::LocalKey::parse(&Secret::new(EXAMPLE_KEY), "the example key").unwrap();
        let public = key.public();
        let der = rsa_spki_der(&public.n().to_bytes_be(), &public.e().to_bytes_be()).unwrap();
        assert_eq!(der, key.public_key_der().unwrap());
    }

    #[test]
    fn raw_padding_over_digest_info_is_the_same_signature() {
        use rsa::traits::PublicKeyParts;
        let key = local::LocalKey::parse(&Secret::new(EXAMPLE_KEY), "the example key").unwrap();
        let message = b"header.claims";
        let signature = key.sign(message).unwrap();
        verify(&key.public_key_der().unwrap(), message, &signature).unwrap();
        // Undo the signature with the public key: PKCS#1 v1.5 type 1 padding, then DigestInfo.
        let public = key.public();
        let m = rsa::BigUint::from_bytes_be(&signature).modpow(public.e(), public.n());
        let em = m.to_bytes_be();
        assert!(em.ends_with(&sha256_digest_info(message)));
        assert_eq!(em[0], 1, "block type 1 after the leading zero");
        assert!(verify(&key.public_key_der().unwrap(), b"other", &signature).is_err());
    }
}

//! HTTPS for the emulator: a certificate authority made for this run (nothing is installed
//! anywhere) and a server certificate for `127.0.0.1` and `localhost` signed by it.
//! Clients trust the CA the ordinary way: `SSL_CERT_FILE`, `GIT_SSL_CAINFO`, `http.sslCAInfo`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// A per-run CA and the server configuration presenting a certificate it signed.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::new(format!("{what}: {e}"))
}

/// Makes a CA ("local-github test CA <random>") and a server certificate valid for
/// `127.0.0.1`, `::1` and `localhost`, plus any extra DNS names.
pub(crate) fn generate(extra_names: &[String]) -> Result<Tls> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    let tag: u32 = rand::random();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("local-github test CA {tag:08x}"),
    );
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "local-github");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err("CA certificate"))?;

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let mut params = CertificateParams::new(names).map_err(err("server certificate"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(err("server key"))?;
    let cert = params
        .signed_by(&key, &ca)
        .map_err(err("server certificate"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| Error::new(format!("TLS server configuration: {e}")))?;
    Ok(Tls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    })
}

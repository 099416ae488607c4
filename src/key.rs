//! The app's private key: read it, accept the forms people paste into CI secrets, and say exactly
//! what is wrong when it is not a GitHub App key.
//!
//! GitHub hands out PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`); `openssl` 3 writes PKCS#8 (`BEGIN PRIVATE
//! KEY`); both are accepted. So is the PEM with literal `\n` instead of newlines, and the PEM as one
//! base64 blob, as users store them in CI secrets.

use crate::keyref::{KeyRef, shown};
use crate::secret::Secret;
use anyhow::{Result, bail};
use base64::Engine;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use std::path::Path;

const NEW_KEY: &str =
    "generate a new private key on the app's settings page (it downloads a .pem file)";

/// Read and parse a PEM key (`source` is [`KeyRef::File`] or [`KeyRef::Env`]). `warn`
/// receives one-line warnings (loose file permissions).
pub fn load(source: &KeyRef, warn: &mut dyn FnMut(String)) -> Result<RsaPrivateKey> {
    let text = match source {
        KeyRef::File(path) => read_file(path, warn)?,
        KeyRef::Env(pem) => pem.clone(),
        other => bail!("{} is not a PEM key", other.describe()),
    };
    parse(&text, &source.describe())
}

fn read_file(path: &Path, warn: &mut dyn FnMut(String)) -> Result<Secret> {
    let contents = match crate::private_file::read(path, crate::private_file::MAX_KEY) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("private key file {} does not exist", shown(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!(
                "cannot read private key file {}: permission denied",
                shown(path)
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory || path.is_dir() => {
            bail!(
                "private key path {} is a directory, not a .pem file",
                shown(path)
            )
        }
        Err(e) => bail!("cannot read private key file {}: {e}", shown(path)),
    };
    if crate::private_file::readable_by_others(&contents) {
        let mode = contents.mode.unwrap_or(0) & 0o777;
        warn(format!(
            "warning: private key file {} is readable by others (mode {mode:03o}); run: chmod 600 {}",
            shown(path),
            shown(path)
        ));
    }
    match String::from_utf8(contents.bytes) {
        Ok(text) => Ok(Secret::new(text)),
        Err(_) => bail!(
            "the key in {} is binary (DER?); GitHub App keys are PEM text — {NEW_KEY}",
            shown(path)
        ),
    }
}

/// Parse PEM text (or its pasted variants) into an RSA key: PKCS#1 or PKCS#8.
pub fn parse(text: &Secret, origin: &str) -> Result<RsaPrivateKey> {
    let normalized = normalize(text.expose());
    let pem = normalized
        .as_ref()
        .map_or(text.expose(), Secret::expose)
        .trim();
    diagnose(pem, origin)?;
    let parsed = if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(pem).ok()
    } else {
        RsaPrivateKey::from_pkcs8_pem(pem).ok()
    };
    match parsed {
        Some(key) => Ok(key),
        None if pem.contains("BEGIN PRIVATE KEY") => {
            bail!("{origin} is PKCS#8 but not an RSA key; GitHub App keys are RSA — {NEW_KEY}")
        }
        None => bail!("{origin} is damaged (the PEM does not decode to an RSA key); {NEW_KEY}"),
    }
}

/// Undo the ways keys get mangled on their way into an environment variable: literal `\n`
/// sequences, or the whole PEM base64-encoded once more.
fn normalize(text: &str) -> Option<Secret> {
    let trimmed = text.trim();
    if trimmed.contains("-----BEGIN") && trimmed.contains("\\n") && !trimmed.contains('\n') {
        return Some(Secret::new(
            trimmed.replace("\\r\\n", "\n").replace("\\n", "\n"),
        ));
    }
    if !trimmed.contains("-----") && trimmed.len() > 100 {
        let compact: String = trimmed.split_whitespace().collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
            && let Ok(decoded) = String::from_utf8(bytes)
            && decoded.contains("-----BEGIN")
        {
            return Some(Secret::new(decoded));
        }
    }
    None
}

/// Recognise the wrong things people point the helper at, with a message for each.
fn diagnose(pem: &str, origin: &str) -> Result<()> {
    if pem.is_empty() {
        bail!("{origin} is empty; {NEW_KEY}");
    }
    if pem.contains("BEGIN OPENSSH PRIVATE KEY") {
        bail!(
            "{origin} is an OpenSSH key; GitHub App keys are PEM (BEGIN RSA PRIVATE KEY) — {NEW_KEY}"
        );
    }
    if pem.contains("BEGIN EC PRIVATE KEY") {
        bail!("{origin} is an EC key; GitHub Apps sign with RSA keys — {NEW_KEY}");
    }
    if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        bail!(
            "{origin} is encrypted with a passphrase; decrypt it with: openssl rsa -in KEY.pem -out app.pem"
        );
    }
    if pem.contains("PUBLIC KEY") && !pem.contains("PRIVATE KEY") {
        bail!("{origin} is a public key; the helper needs the app's private key — {NEW_KEY}");
    }
    if pem.starts_with("ssh-rsa ") || pem.starts_with("ssh-ed25519 ") {
        bail!("{origin} is an SSH public key; the helper needs the app's private key — {NEW_KEY}");
    }
    if !pem.contains("-----BEGIN") {
        let token = pem.trim();
        if token.len() == 40 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{origin} looks like a client secret, not a private key — {NEW_KEY}");
        }
        if token.starts_with("ghp_")
            || token.starts_with("github_pat_")
            || token.starts_with("ghs_")
        {
            bail!("{origin} is a GitHub token, not a private key — {NEW_KEY}");
        }
        bail!("{origin} is not a PEM private key (no '-----BEGIN' line); {NEW_KEY}");
    }
    if pem.lines().filter(|l| !l.trim().is_empty()).count() <= 2 {
        bail!(
            "{origin} has no key body (only the BEGIN/END lines arrived — was the value truncated?)"
        );
    }
    if !pem.contains("-----END") {
        bail!("{origin} is truncated (no '-----END' line)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(&Secret::new(text), "the key in k.pem") {
            Ok(_) => panic!("accepted {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn wrong_kinds_of_key_are_named() {
        assert!(
            err("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n")
                .contains("OpenSSH key")
        );
        assert!(
            err("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n")
                .contains("EC key")
        );
        assert!(
            err("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
                .contains("public key")
        );
        assert!(err("0123456789abcdef0123456789abcdef01234567").contains("client secret"));
        assert!(err("ghp_abcdefabcdefabcdef").contains("GitHub token"));
        assert!(err("hello").contains("not a PEM private key"));
        assert!(err("").contains("is empty"));
        assert!(err("-----BEGIN RSA PRIVATE KEY-----\n").contains("no key body"));
        assert!(err("-----BEGIN RSA PRIVATE KEY-----\nMIIE\nAAAA\n").contains("truncated"));
        assert!(err("-----BEGIN RSA PRIVATE KEY-----\nMIIEnotreally\nAAAA\n-----END RSA PRIVATE KEY-----\n").contains("damaged"));
        assert!(err("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n").contains("passphrase"));
    }

    #[test]
    fn messages_never_contain_the_key_text() {
        let body = "MIIEsecretmaterialsecretmaterial";
        let e = err(&format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{body}\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        ));
        assert!(!e.contains(body), "{e}");
    }

    #[test]
    fn pasted_forms_are_normalised() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\nBBBB\n-----END RSA PRIVATE KEY-----\n";
        let escaped = pem.replace('\n', "\\n");
        assert_eq!(normalize(&escaped).unwrap().expose(), pem);
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem.repeat(2));
        assert_eq!(normalize(&b64).unwrap().expose(), pem.repeat(2));
        assert!(normalize(pem).is_none());
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = load(&KeyRef::File("/no/such/app.pem".into()), &mut |_| {})
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("/no/such/app.pem does not exist"),
            "{e}"
        );
    }
}

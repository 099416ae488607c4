//! Where the app's private key is: a reference as a person writes it (`--private-key`,
//! `GITHUB_APP_PRIVATE_KEY[_PATH]`, `private_key`/`signer` in the config file), parsed once into a
//! [`KeyRef`]. Which signer opens it is `signer`'s business; this module only names the key.
//!
//! A reference is a `pkcs11:` URI ([`pkcs11_uri`]), an AWS KMS key ARN ([`kms_arn`]), or else a
//! path; [`Written::of`] tells which, so that no other module looks at the prefixes.

pub mod kms_arn;
pub mod pkcs11_uri;

use crate::secret::Secret;
use kms_arn::KmsKey;
use pkcs11_uri::Pkcs11Uri;
use std::path::{Path, PathBuf};

/// The environment variable that holds the PEM text itself.
pub const PRIVATE_KEY_ENV: &str = "GITHUB_APP_PRIVATE_KEY";

/// Where the app's private key is.
#[derive(Debug, Clone)]
pub enum KeyRef {
    /// A PEM file.
    File(PathBuf),
    /// The PEM text itself, from [`PRIVATE_KEY_ENV`].
    Env(Secret),
    /// An RFC 7512 `pkcs11:` URI (`--private-key 'pkcs11:token=…;object=…?module-path=…'`).
    Pkcs11(Pkcs11Uri),
    /// An AWS KMS key or alias ARN (`--private-key arn:aws:kms:REGION:ACCOUNT:key/ID`).
    AwsKms(KmsKey),
    /// `signer = ["program", "arg", …]` in the config file, with an optional `public_key` file.
    Command {
        argv: Vec<String>,
        public_key: Option<PathBuf>,
    },
}

/// What a key reference given as one word is, by its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// `pkcs11:…`
    Pkcs11Uri,
    /// `arn:…`
    KmsArn,
    /// Anything else: a file.
    Path,
}

impl Written {
    pub fn of(text: &str) -> Written {
        let text = text.trim_start();
        if text.starts_with("pkcs11:") {
            Written::Pkcs11Uri
        } else if text.starts_with("arn:") {
            Written::KmsArn
        } else {
            Written::Path
        }
    }
}

/// A value from the user (a program, a path) as it may appear in a message: quoted, control
/// characters escaped, or `(a GitHub token, not shown)` when it looks like a secret pasted in
/// the wrong place.
pub fn shown_value(text: &str) -> String {
    match crate::secret::kind(text) {
        Some(what) => format!("({what}, not shown)"),
        None => format!("'{}'", crate::protocol::printable(text)),
    }
}

impl KeyRef {
    /// What holds the key, for messages ("the key in PATH", "PKCS#11 key 'app' on token 'gh'");
    /// never the key or a PIN.
    pub fn describe(&self) -> String {
        match self {
            KeyRef::File(path) => format!("the key in {}", shown(path)),
            KeyRef::Env(_) => format!("the key in {PRIVATE_KEY_ENV}"),
            KeyRef::Pkcs11(uri) => uri.describe(),
            KeyRef::AwsKms(key) => key.describe(),
            KeyRef::Command { argv, .. } => format!(
                "signer command {}",
                shown_value(argv.first().map_or("", String::as_str))
            ),
        }
    }
}

/// A path as it may appear in a message: control characters escaped, length capped.
pub fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out: String = text
        .chars()
        .take(256)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 256 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_told_by_its_form() {
        assert_eq!(Written::of("pkcs11:object=k"), Written::Pkcs11Uri);
        assert_eq!(Written::of(" arn:aws:kms:x"), Written::KmsArn);
        assert_eq!(Written::of("~/app.pem"), Written::Path);
        assert_eq!(Written::of("./pkcs11:odd.pem"), Written::Path);
    }
}

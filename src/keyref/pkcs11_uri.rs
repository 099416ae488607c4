//! RFC 7512 `pkcs11:` URIs, as given for `--private-key`: which token, which key, which module,
//! which PIN.
//!
//! `pkcs11:token=github;object=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin`
//!
//! Path attributes select the token (`token`, `manufacturer`, `serial`, `model`, `slot-id`) and the
//! key (`object` = its label, `id`); query attributes give the module (`module-path`, or
//! `module-name` looked up by the system's loader) and the PIN (`pin-value`, or `pin-source` =
//! `file:PATH` or a path). The URI is parsed by hand: it is short, and the PIN must stay a
//! [`Secret`] from the first byte. Signing with it is `signer::pkcs11`.

use crate::secret::Secret;
use anyhow::{Result, anyhow, bail};
use std::path::PathBuf;

/// A parsed `pkcs11:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    /// The key's `CKA_LABEL`.
    pub object: Option<String>,
    /// The key's `CKA_ID` (bytes).
    pub id: Option<Vec<u8>>,
    pub module: Module,
    pub pin: Pin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Module {
    Path(PathBuf),
    /// `module-name=softhsm2` → `libsofthsm2.so` through the loader's search path.
    Name(String),
}

#[derive(Clone, PartialEq, Eq)]
pub enum Pin {
    None,
    Value(Secret),
    File(PathBuf),
}

/// Not even a fingerprint of a PIN: a short PIN's hash is quickly reversed.
impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::None => f.write_str("None"),
            Pin::Value(_) => f.write_str("Value(…)"),
            Pin::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Pkcs11Uri {
    /// Parse `pkcs11:path-attrs?query-attrs`. Messages never contain the PIN.
    pub fn parse(text: &str) -> Result<Pkcs11Uri> {
        let Some(rest) = text.trim().strip_prefix("pkcs11:") else {
            bail!("a PKCS#11 key is named by a URI starting with 'pkcs11:'");
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri {
            token: None,
            manufacturer: None,
            serial: None,
            model: None,
            slot_id: None,
            object: None,
            id: None,
            module: Module::Name(String::new()),
            pin: Pin::None,
        };
        let mut module = None;
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| anyhow!("pkcs11: URI attribute '{}' has no '='", shown(attr)))?;
            let bytes = percent_decode(value)
                .ok_or_else(|| anyhow!("pkcs11: URI attribute '{name}' has a bad %-escape"))?;
            let text = || {
                String::from_utf8(bytes.clone())
                    .map_err(|_| anyhow!("pkcs11: URI attribute '{name}' is not UTF-8"))
            };
            match name {
                "token" => uri.token = Some(text()?),
                "manufacturer" => uri.manufacturer = Some(text()?),
                "serial" => uri.serial = Some(text()?),
                "model" => uri.model = Some(text()?),
                "slot-id" => {
                    uri.slot_id = Some(
                        text()?
                            .parse()
                            .map_err(|_| anyhow!("pkcs11: URI slot-id must be a number"))?,
                    )
                }
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(bytes),
                "type" => match text()?.as_str() {
                    "private" => {}
                    other => bail!(
                        "pkcs11: URI type={} cannot sign; name the private key (type=private) or leave type out",
                        shown(other)
                    ),
                },
                // Attributes that do not narrow the choice here.
                "library-description"
                | "library-manufacturer"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                other => bail!("pkcs11: URI has an unknown attribute '{}'", shown(other)),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr.split_once('=').unwrap_or((attr, ""));
            let bytes = percent_decode(value)
                .ok_or_else(|| anyhow!("pkcs11: URI attribute '{name}' has a bad %-escape"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow!("pkcs11: URI attribute '{name}' is not UTF-8"))?;
            match name {
                "module-path" => module = Some(Module::Path(PathBuf::from(text))),
                "module-name" => module = Some(Module::Name(text)),
                "pin-value" => uri.pin = Pin::Value(Secret::new(text)),
                "pin-source" => {
                    let path = text.strip_prefix("file:").unwrap_or(&text);
                    let path = path.strip_prefix("//").unwrap_or(path);
                    uri.pin = Pin::File(PathBuf::from(path));
                }
                other => bail!(
                    "pkcs11: URI has an unknown query attribute '{}'",
                    shown(other)
                ),
            }
        }
        uri.module = module.ok_or_else(|| {
            anyhow!(
                "the pkcs11: URI names no module; add ?module-path=/path/to/the/vendor's/pkcs11.so (SoftHSM: /usr/lib/softhsm/libsofthsm2.so)"
            )
        })?;
        if uri.object.is_none() && uri.id.is_none() {
            bail!("the pkcs11: URI names no key; add object=LABEL (or id=%01…) to its path");
        }
        Ok(uri)
    }

    /// "PKCS#11 key 'app' on token 'github'", for messages.
    pub fn describe(&self) -> String {
        let key = match (&self.object, &self.id) {
            (Some(label), _) => format!("'{}'", shown(label)),
            (None, Some(id)) => format!("id {}", crate::secret::hex(id)),
            (None, None) => "?".to_owned(),
        };
        match &self.token {
            Some(token) => format!("PKCS#11 key {key} on token '{}'", shown(token)),
            None => format!("PKCS#11 key {key}"),
        }
    }

    /// The module's file: the path given, or the name as the system's loader finds it.
    pub fn module_file(&self) -> PathBuf {
        match &self.module {
            Module::Path(path) => path.clone(),
            Module::Name(name) if cfg!(target_os = "macos") => format!("lib{name}.dylib").into(),
            Module::Name(name) if cfg!(windows) => format!("{name}.dll").into(),
            Module::Name(name) => format!("lib{name}.so").into(),
        }
    }
}

fn shown(text: &str) -> String {
    crate::protocol::printable(text)
}

/// `%XX` escapes decoded; `None` for a `%` not followed by two hex digits (RFC 3986 allows no
/// other), which the `percent-encoding` crate would pass through unchanged.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_encoding::percent_decode(bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_as_rfc_7512_writes_them() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=gh-app;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("My Token"));
        assert_eq!(uri.object.as_deref(), Some("gh-app"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(
            uri.module,
            Module::Path("/usr/lib/softhsm/libsofthsm2.so".into())
        );
        assert_eq!(uri.pin, Pin::Value(Secret::new("1234")));
        assert_eq!(uri.describe(), "PKCS#11 key 'gh-app' on token 'My Token'");
        let uri = Pkcs11Uri::parse("pkcs11:object=k?module-name=softhsm2&pin-source=file:/run/pin")
            .unwrap();
        assert_eq!(uri.pin, Pin::File("/run/pin".into()));
        let module = if cfg!(windows) {
            "softhsm2.dll"
        } else if cfg!(target_os = "macos") {
            "libsofthsm2.dylib"
        } else {
            "libsofthsm2.so"
        };
        assert_eq!(uri.module_file(), PathBuf::from(module));
    }

    #[test]
    fn bad_uris_are_named_without_the_pin() {
        for (text, expected) in [
            ("pkcs11:object=k", "names no module"),
            ("pkcs11:token=t?module-path=/m.so", "names no key"),
            (
                "pkcs11:object=k;type=public?module-path=/m.so",
                "type=public cannot sign",
            ),
            (
                "pkcs11:object=k;colour=red?module-path=/m.so",
                "unknown attribute 'colour'",
            ),
            ("pkcs11:object=%zz?module-path=/m.so", "bad %-escape"),
            (
                "pkcs11:object=k?module-path=/m.so&pin-valu=9876",
                "unknown query attribute",
            ),
        ] {
            let e = Pkcs11Uri::parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("9876"), "{e}");
        }
    }
}

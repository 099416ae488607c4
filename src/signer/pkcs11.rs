//! PKCS#11: the key in a token (YubiHSM 2, YubiKey PIV through ykcs11, SoftHSM, tpm2-pkcs11, AWS
//! CloudHSM, Google Cloud KMS through kmsp11, Azure Managed HSM), named by an RFC 7512 URI:
//!
//! `pkcs11:token=github;object=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin`
//!
//! Path attributes select the token (`token`, `manufacturer`, `serial`, `model`, `slot-id`) and the
//! key (`object` = its label, `id`); query attributes give the module (`module-path`, or
//! `module-name` looked up by the system's loader) and the PIN (`pin-value`, or `pin-source` =
//! `file:PATH` or a path). The URI is parsed by hand: it is short, and the PIN must stay a
//! [`Secret`] from the first byte.
//!
//! Signing uses `CKM_SHA256_RSA_PKCS`, or `CKM_RSA_PKCS` over a SHA-256 DigestInfo on tokens that
//! only pad (some PIV cards). The public key comes from the token: the public key object with the
//! same id/label, else the private key's modulus and exponent.

use super::KeySigner;
use crate::keyref::pkcs11_uri::{Module, Pin, Pkcs11Uri};
use crate::secret::Secret;
use anyhow::{Result, anyhow, bail};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

fn shown(text: &str) -> String {
    crate::protocol::printable(text)
}

pub struct Pkcs11Signer {
    // Field order is drop order: the session closes before the module is finalized.
    session: Session,
    key: ObjectHandle,
    /// `CKM_SHA256_RSA_PKCS` when the token has it, else `CKM_RSA_PKCS` over a DigestInfo.
    hashes_itself: bool,
    what: String,
    _module: Pkcs11,
}

impl Pkcs11Signer {
    /// `warn` receives one-line warnings (a PIN file others can read).
    pub fn open(uri: &Pkcs11Uri, warn: &mut dyn FnMut(String)) -> Result<Pkcs11Signer> {
        let what = uri.describe();
        let file = uri.module_file();
        let file_shown = shown(&file.to_string_lossy());
        let module = Pkcs11::new(&file).map_err(|e| match e {
            CkError::LibraryLoading(_) if !file.exists() && matches!(uri.module, Module::Path(_)) => {
                anyhow!("PKCS#11 module {file_shown} does not exist; install the token's PKCS#11 library or fix module-path in the pkcs11: URI")
            }
            e => anyhow!("cannot load PKCS#11 module {file_shown}: {e}"),
        })?;
        match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another app of this run opened the same module.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => bail!("PKCS#11 module {file_shown} failed to start: {}", rv(&e)),
        }
        let slot = find_slot(&module, uri, &file_shown)?;
        let token_info = module
            .get_token_info(slot)
            .map_err(|e| anyhow!("cannot read the token of {what}: {}", rv(&e)))?;
        let session = module
            .open_ro_session(slot)
            .map_err(|e| anyhow!("cannot open a session with {what}: {}", rv(&e)))?;
        let pin = match &uri.pin {
            Pin::None => None,
            Pin::Value(pin) => Some(pin.clone()),
            Pin::File(path) => Some(read_pin(path, warn)?),
        };
        match pin {
            Some(pin) => {
                let auth = AuthPin::from(pin.expose().to_owned());
                match session.login(UserType::User, Some(&auth)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => bail!(
                        "the PIN for {what} is wrong (CKR_PIN_INCORRECT); check pin-value or pin-source — tokens lock after a few wrong PINs"
                    ),
                    Err(CkError::Pkcs11(RvError::PinLocked, _)) => bail!(
                        "the PIN of {what} is locked (CKR_PIN_LOCKED); unlock it with the token's SO PIN"
                    ),
                    Err(e) => bail!("cannot log in to {what}: {}", rv(&e)),
                }
            }
            None if token_info.login_required() => bail!(
                "{what} needs a PIN: add pin-source=file:/path/to/pin (or pin-value=…) to the pkcs11: URI's query"
            ),
            None => {}
        }
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
        ];
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let keys = session
            .find_objects(&template)
            .map_err(|e| anyhow!("cannot search {what}: {}", rv(&e)))?;
        let key = match keys.as_slice() {
            [key] => *key,
            [] => bail!(
                "{what} does not exist (no RSA private key with that label/id on the token{}); list the keys with: pkcs11-tool --module {file_shown} --login --list-objects",
                if uri.pin == Pin::None {
                    ", and no PIN was given to see private objects"
                } else {
                    ""
                }
            ),
            _ => bail!(
                "{what} matches {} keys; add id=… to the pkcs11: URI",
                keys.len()
            ),
        };
        let mechanisms = module.get_mechanism_list(slot).unwrap_or_default();
        let hashes_itself = mechanisms.contains(&MechanismType::SHA256_RSA_PKCS);
        if !hashes_itself && !mechanisms.contains(&MechanismType::RSA_PKCS) {
            bail!("{what}: the token offers neither CKM_SHA256_RSA_PKCS nor CKM_RSA_PKCS");
        }
        crate::trace!(
            "{what}: signing with {}",
            if hashes_itself {
                "CKM_SHA256_RSA_PKCS"
            } else {
                "CKM_RSA_PKCS over a DigestInfo"
            }
        );
        Ok(Pkcs11Signer {
            session,
            key,
            hashes_itself,
            what,
            _module: module,
        })
    }

    /// The public key object with the same label and id, if the token has one.
    fn public_object(&self) -> Option<ObjectHandle> {
        let attributes = self
            .session
            .get_attributes(self.key, &[AttributeType::Label, AttributeType::Id])
            .ok()?;
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        for attribute in attributes {
            match attribute {
                Attribute::Label(l) => template.push(Attribute::Label(l)),
                Attribute::Id(i) => template.push(Attribute::Id(i)),
                _ => {}
            }
        }
        self.session
            .find_objects(&template)
            .ok()?
            .into_iter()
            .next()
    }
}

fn find_slot(module: &Pkcs11, uri: &Pkcs11Uri, file_shown: &str) -> Result<Slot> {
    let slots = module.get_slots_with_token().map_err(|e| {
        anyhow!(
            "PKCS#11 module {file_shown} cannot list its tokens: {}",
            rv(&e)
        )
    })?;
    let mut labels = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let Ok(info) = module.get_token_info(slot) else {
            continue;
        };
        labels.push(format!("'{}'", shown(info.label())));
        let matches = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| w.trim_end() == have.trim_end())
        };
        if matches(&uri.token, info.label())
            && matches(&uri.manufacturer, info.manufacturer_id())
            && matches(&uri.serial, info.serial_number())
            && matches(&uri.model, info.model())
        {
            return Ok(slot);
        }
    }
    let wanted = uri.token.as_deref().map_or_else(
        || "matching the URI".to_owned(),
        |t| format!("'{}'", shown(t)),
    );
    if labels.is_empty() {
        bail!(
            "PKCS#11 module {file_shown} has no token (is the device plugged in, or the token initialised?)"
        );
    }
    bail!(
        "PKCS#11 module {file_shown} has no token {wanted}; its tokens: {}",
        labels.join(", ")
    )
}

fn read_pin(path: &std::path::Path, warn: &mut dyn FnMut(String)) -> Result<Secret> {
    let shown_path = shown(&path.to_string_lossy());
    let contents = crate::private_file::read(path, crate::private_file::MAX_PIN)
        .map_err(|e| anyhow!("cannot read the PIN file {shown_path} (pin-source): {e}"))?;
    if crate::private_file::readable_by_others(&contents) {
        warn(format!(
            "warning: the PIN file {shown_path} (pin-source) is readable by others (mode {:03o}); run: chmod 600 {shown_path}",
            contents.mode.unwrap_or(0) & 0o777
        ));
    }
    let text = Secret::new(String::from_utf8_lossy(&contents.bytes).into_owned());
    let pin = text.expose().trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        bail!("the PIN file {shown_path} (pin-source) is empty");
    }
    Ok(Secret::new(pin))
}

/// A PKCS#11 error by its return value's name (`PinIncorrect`), without the standard's prose.
fn rv(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{rv:?} from {function:?}"),
        other => other.to_string(),
    }
}

impl KeySigner for Pkcs11Signer {
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>> {
        let result = if self.hashes_itself {
            self.session
                .sign(&Mechanism::Sha256RsaPkcs, self.key, signing_input)
        } else {
            self.session.sign(
                &Mechanism::RsaPkcs,
                self.key,
                &super::sha256_digest_info(signing_input),
            )
        };
        result.map_err(|e| anyhow!("{} refused to sign: {}", self.what, rv(&e)))
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        let object = self.public_object().unwrap_or(self.key);
        let attributes = self
            .session
            .get_attributes(
                object,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(|e| anyhow!("cannot read the public key of {}: {}", self.what, rv(&e)))?;
        let (mut modulus, mut exponent) = (None, None);
        for attribute in attributes {
            match attribute {
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::PublicExponent(e) => exponent = Some(e),
                _ => {}
            }
        }
        match (modulus, exponent) {
            (Some(m), Some(e)) => super::rsa_spki_der(&m, &e),
            _ => bail!(
                "{} shows neither a public key object nor its modulus; import the public key too",
                self.what
            ),
        }
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_module_is_one_line() {
        let uri =
            Pkcs11Uri::parse("pkcs11:object=k?module-path=/no/such/pkcs11.so&pin-value=1").unwrap();
        let e = Pkcs11Signer::open(&uri, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "PKCS#11 module /no/such/pkcs11.so does not exist; install the token's PKCS#11 library or fix module-path in the pkcs11: URI"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_pin_file_others_can_read_is_named_and_a_fifo_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "1234\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(
            read_pin(&pin, &mut |w| warnings.push(w)).unwrap().expose(),
            "1234"
        );
        assert_eq!(
            warnings,
            [format!(
                "warning: the PIN file {} (pin-source) is readable by others (mode 644); run: chmod 600 {}",
                pin.display(),
                pin.display()
            )]
        );
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        warnings.clear();
        read_pin(&pin, &mut |w| warnings.push(w)).unwrap();
        assert!(warnings.is_empty());
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read_pin(&fifo, &mut |_| {}).err().unwrap().to_string();
        assert!(
            e.ends_with("(pin-source): a FIFO, not a regular file"),
            "{e}"
        );
    }
}

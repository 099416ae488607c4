//! Reading the small files a user points the helper at — the private key, a PKCS#11
//! `pin-source`, a signer's `public_key`, `config.toml` — the way the cache reads its own: opened
//! without blocking, only a regular file (never a FIFO that would hang the read, a device such as
//! `/dev/zero` that never ends, a directory), and never more than a cap. It also says who may
//! write a file that decides what the helper runs (`config.toml`'s `signer = [...]`), as ssh
//! does for its config.

use std::io::{self, Read as _};
use std::path::Path;

/// A private key, a config file: 1 MiB is far more than either needs.
pub const MAX_KEY: u64 = 1 << 20;
/// A PIN file.
pub const MAX_PIN: u64 = 4096;

/// A file's bytes and who may read or write it.
pub struct Contents {
    pub bytes: Vec<u8>,
    /// Permission bits (unix).
    pub mode: Option<u32>,
    /// Owner (unix).
    pub uid: Option<u32>,
}

/// Read `path` (following symbolic links: keys are often linked from a secrets directory) if it
/// is a regular file of at most `max` bytes. Errors keep their kind (`NotFound`,
/// `PermissionDenied`, …); a FIFO, a device or an oversized file is `InvalidInput` with a
/// message saying which.
pub fn read(path: &Path, max: u64) -> io::Result<Contents> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "a directory"));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", kind_of(&meta)),
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} bytes, more than {max} allowed", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("more than {max} bytes"),
        ));
    }
    #[cfg(unix)]
    let (mode, uid) = {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        (Some(meta.permissions().mode() & 0o7777), Some(meta.uid()))
    };
    #[cfg(not(unix))]
    let (mode, uid) = (None, None);
    Ok(Contents { bytes, mode, uid })
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a file"
}

/// Why a file that decides what the helper runs must not be trusted: writable by everyone, or
/// owned by someone else than us (or root). `None` when it is fine. The directory holding it is
/// checked the same way (a sticky directory such as /tmp excepted). Group-writable passes: with
/// the user-private groups of most distributions (umask 002) the group is the user.
pub fn untrusted(path: &Path, contents: &Contents) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = rustix::process::geteuid().as_raw();
        let (mode, uid) = (contents.mode.unwrap_or(0), contents.uid.unwrap_or(me));
        if mode & 0o002 != 0 {
            return Some(format!(
                "it is writable by everyone (mode {:03o}); run: chmod go-w {}",
                mode & 0o777,
                path.display()
            ));
        }
        if uid != me && uid != 0 {
            return Some(format!(
                "it belongs to uid {uid}, not to you (uid {me}) or root"
            ));
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
        let meta = std::fs::metadata(dir).ok()?;
        let dir_mode = meta.permissions().mode();
        if dir_mode & 0o002 != 0 && dir_mode & 0o1000 == 0 {
            return Some(format!(
                "its directory {} is writable by everyone (mode {:03o})",
                dir.display(),
                dir_mode & 0o777
            ));
        }
        if meta.uid() != me && meta.uid() != 0 {
            return Some(format!(
                "its directory {} belongs to uid {}, not to you",
                dir.display(),
                meta.uid()
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = (path, contents);
        None
    }
}

/// `config.toml`: its text, if it is a file no one else could have written (its `signer = [...]`
/// runs as us). Refused like ssh refuses such a config: `PermissionDenied` with the reason.
pub fn read_config(path: &Path) -> io::Result<String> {
    // `--config /dev/null` said as such (and `NUL` on Windows, where `/dev/null` is no file
    // either): no config file, without a system call.
    if path == Path::new("/dev/null")
        || (cfg!(windows) && path.as_os_str().eq_ignore_ascii_case("NUL"))
    {
        return Ok(String::new());
    }
    let contents = match read(path, MAX_KEY) {
        Ok(contents) => contents,
        // `--config /dev/null`: no config file, as people (and tests) say it. Resolved only when
        // the read fails for a reason other than absence: on a cached get without a config file,
        // resolving the path cost a system call per component.
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            if std::fs::canonicalize(path).is_ok_and(|p| p == Path::new("/dev/null")) {
                return Ok(String::new());
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Some(why) = untrusted(path, &contents) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("not used: {why}"),
        ));
    }
    String::from_utf8(contents.bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether others than the owner may read the file (a PIN, a key).
pub fn readable_by_others(contents: &Contents) -> bool {
    contents.mode.is_some_and(|m| m & 0o077 != 0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_big_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read(&fifo, MAX_KEY).err().unwrap();
        assert_eq!(e.to_string(), "a FIFO, not a regular file");
        let e = read(Path::new("/dev/zero"), MAX_KEY).err().unwrap();
        assert_eq!(e.to_string(), "a device, not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 5000]).unwrap();
        assert!(read(&big, MAX_PIN).is_err());
        assert_eq!(read(&big, MAX_KEY).unwrap().bytes.len(), 5000);
        assert_eq!(
            read(dir.path(), MAX_KEY).err().unwrap().kind(),
            io::ErrorKind::IsADirectory
        );
    }

    #[test]
    fn a_file_others_can_write_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(untrusted(&path, &read(&path, MAX_KEY).unwrap()), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            untrusted(&path, &read(&path, MAX_KEY).unwrap())
                .unwrap()
                .starts_with("it is writable by everyone (mode 666)")
        );
        let c = Contents {
            bytes: Vec::new(),
            mode: Some(0o644),
            uid: Some(4242),
        };
        if rustix::process::geteuid().as_raw() != 4242 {
            assert!(
                untrusted(&path, &c)
                    .unwrap()
                    .contains("belongs to uid 4242")
            );
        }
        assert!(readable_by_others(&c));
    }
}

/// On every OS (the Unix-only tests above are in `tests`).
#[cfg(test)]
mod null_device {
    use super::*;

    #[test]
    fn the_null_device_is_no_config_file() {
        assert_eq!(read_config(Path::new("/dev/null")).unwrap(), "");
        #[cfg(windows)]
        for name in ["NUL", "nul"] {
            assert_eq!(read_config(Path::new(name)).unwrap(), "");
        }
    }
}

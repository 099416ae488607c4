//! Any signer, as a command (`signer = ["program", "arg", …]` in the config file): the JWT's
//! signing input on its stdin, the RSASSA-PKCS1-v1_5 SHA-256 signature on its stdout, as raw
//! bytes or base64 (standard or URL-safe, padded or not, surrounding whitespace ignored).
//!
//! The command runs inside the get's time budget and is killed when it runs over. On failure its
//! stderr is shown on one line, capped, with anything that looks like a key, token or signature
//! masked. With `public_key = "app.pub.pem"` beside it, every signature is checked before it is
//! sent to GitHub (so a wrong key or garbage is named as such) and `doctor` shows the fingerprint.

use super::KeySigner;
use anyhow::{Result, anyhow, bail};
use base64::Engine;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most stdout/stderr kept from a signer (an RSA-16384 signature in base64 is ~2.8 KB).
const OUTPUT_CAP: usize = 64 * 1024;
/// The most stderr shown in a message.
const SHOWN_STDERR: usize = 300;

pub struct CommandSigner {
    argv: Vec<String>,
    public_key: Option<PathBuf>,
    /// The public key's SPKI DER, read when the signer is opened.
    spki: Option<Vec<u8>>,
    deadline: Instant,
}

impl CommandSigner {
    pub fn new(
        argv: &[String],
        public_key: Option<&Path>,
        deadline: Instant,
    ) -> Result<CommandSigner> {
        if argv.is_empty() || argv[0].trim().is_empty() {
            bail!("signer is empty; give the command as a list: signer = [\"program\", \"arg\"]");
        }
        let spki = match public_key {
            Some(path) => Some(read_public_key(path)?),
            None => None,
        };
        Ok(CommandSigner {
            argv: argv.to_vec(),
            public_key: public_key.map(Path::to_path_buf),
            spki,
            deadline,
        })
    }

    /// The program, as it may be shown: quoted, or `(a GitHub token, not shown)`.
    fn name(&self) -> String {
        super::shown_value(&self.argv[0])
    }
}

impl KeySigner for CommandSigner {
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>> {
        let name = self.name();
        let out = run(
            &self.argv,
            signing_input,
            self.deadline,
            &format!("signer command {name}"),
        )?;
        let signature = decode_signature(&out).ok_or_else(|| {
            anyhow!(
                "signer command {name} printed {} bytes that are not an RSA signature (raw or base64); it must print the PKCS#1 v1.5 SHA-256 signature of its stdin",
                out.len()
            )
        })?;
        if let Some(spki) = &self.spki {
            super::verify(spki, signing_input, &signature).map_err(|_| {
                anyhow!(
                    "signer command {name} returned a signature that does not verify with public_key {}; it signs with another key, or not with RSASSA-PKCS1-v1_5 SHA-256",
                    self.public_key.as_deref().map_or(String::new(), |p| super::shown_value(&p.to_string_lossy()))
                )
            })?;
        }
        Ok(signature)
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        self.spki.clone().ok_or_else(|| {
            anyhow!(
                "the fingerprint of signer command {} is unknown: add public_key = \"app.pub.pem\" beside signer (openssl rsa -in app.pem -pubout -out app.pub.pem)",
                self.name()
            )
        })
    }

    fn describe(&self) -> String {
        format!("signer command {}", self.name())
    }
}

/// Run `argv` with `input` on stdin until `deadline`; its stdout when it succeeds. `what` names
/// it in messages ("signer command 'openssl'"). Failures give one line with its stderr masked.
pub fn run(argv: &[String], input: &[u8], deadline: Instant, what: &str) -> Result<Vec<u8>> {
    let Some((program, args)) = argv.split_first() else {
        bail!("{what} is empty");
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so that a timeout stops the whole command (`sh -c '… | …'`), not
    // just its first process.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow!("{what} was not found (check the configured command and PATH)")
        }
        _ => anyhow!("cannot start {what}: {e}"),
    })?;
    // The pipes are read on threads that hand their bytes over a channel: a process the command
    // started in the background may keep a pipe open after the command itself exited, and waiting
    // for that must stay inside the time budget too.
    let stdout = child.stdout.take().map(drained);
    let stderr = child.stderr.take().map(drained);
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        // A command that exits without reading stdin is judged by its exit status below.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                #[cfg(unix)]
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{what} did not answer within the time budget and was stopped; check that it runs without prompting (or raise --timeout)"
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => bail!("cannot wait for {what}: {e}"),
        }
    };
    let pid = child.id();
    // The command has exited: what it printed is in the pipes. A process it left behind holding
    // them gets a moment, not the rest of the budget (which the API calls still need).
    let grace = deadline.min(Instant::now() + AFTER_EXIT);
    let out = collect(stdout, grace, pid, what)?;
    let err = collect(stderr, grace, pid, what)?;
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        };
        let said = shown_stderr(&err);
        if said.is_empty() {
            bail!("{what} {how}");
        }
        bail!("{what} {how}: {said}");
    }
    Ok(out)
}

/// How long the pipes may stay open after the command exited before its process group is stopped.
const AFTER_EXIT: Duration = Duration::from_millis(300);

/// Read `pipe` to its end on a thread; its bytes arrive on the returned channel.
fn drained(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(drain(pipe));
    });
    rx
}

/// What a pipe held, once every process holding it has closed it, or by the deadline. A process
/// left running in the background with the pipe open is stopped with the command's process group;
/// if the pipe still does not close, the command failed.
fn collect(
    pipe: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    deadline: Instant,
    pid: u32,
    what: &str,
) -> Result<Vec<u8>> {
    use std::sync::mpsc::RecvTimeoutError;
    let Some(rx) = pipe else {
        return Ok(Vec::new());
    };
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(bytes) => return Ok(bytes),
        Err(RecvTimeoutError::Disconnected) => return Ok(Vec::new()),
        Err(RecvTimeoutError::Timeout) => {}
    }
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = pid;
    rx.recv_timeout(Duration::from_millis(100)).map_err(|_| {
        anyhow!(
            "{what} exited, but a process it left running (outside its process group) kept its output open; make it close stdout and stderr"
        )
    })
}

/// Read a pipe to its end, keeping at most [`OUTPUT_CAP`] bytes.
fn drain(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Base64 (any common flavour) when stdout is base64 text, else the raw bytes; `None` when it
/// cannot be an RSA signature (RSA-1024 to RSA-16384: 128 to 2048 bytes).
pub fn decode_signature(out: &[u8]) -> Option<Vec<u8>> {
    let plausible = |sig: &[u8]| (128..=2048).contains(&sig.len()) && sig[0] != 0xff;
    let text: Vec<u8> = out
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let is_base64 = !text.is_empty()
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(b));
    if is_base64 {
        let trimmed: Vec<u8> = text.iter().copied().filter(|b| *b != b'=').collect();
        for engine in [
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            if let Ok(sig) = engine.decode(&trimmed)
                && plausible(&sig)
            {
                return Some(sig);
            }
        }
    }
    // Text that is not base64 (`vault:v1:…`, an error message) is not a raw signature either: a
    // random 256-byte signature is printable ASCII with a probability of about 10^-110.
    let is_text = out
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    (!is_text && plausible(out)).then(|| out.to_vec())
}

/// A signer's stderr as one line: control characters replaced, long secret-looking runs
/// (base64, hex, tokens) masked, the last [`SHOWN_STDERR`] characters kept.
pub fn shown_stderr(err: &[u8]) -> String {
    let text = String::from_utf8_lossy(err);
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&mask_word(word));
    }
    let count = out.chars().count();
    if count > SHOWN_STDERR {
        let tail: String = out.chars().skip(count - SHOWN_STDERR).collect();
        out = format!("…{tail}");
    }
    out.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A word that carries a long run of key/token characters is replaced by `[masked]`.
fn mask_word(word: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in word.chars() {
        if c.is_ascii_alphanumeric() || "+/=_-.".contains(c) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    if longest >= 24 && word.chars().any(|c| c.is_ascii_digit()) {
        "[masked]".to_owned()
    } else {
        word.to_owned()
    }
}

/// An RSA public key file: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
    let shown = super::shown_value(&path.to_string_lossy());
    let contents = crate::private_file::read(path, crate::private_file::MAX_KEY)
        .map_err(|e| anyhow!("cannot read public_key {shown}: {e}"))?;
    let text = String::from_utf8(contents.bytes)
        .map_err(|_| anyhow!("public_key {shown} is not PEM text"))?;
    if text.contains("PRIVATE KEY") {
        bail!(
            "public_key {shown} holds a private key; give the public half (openssl rsa -in app.pem -pubout -out app.pub.pem) and keep the private key off this machine"
        );
    }
    let key = rsa::RsaPublicKey::from_public_key_pem(text.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text.trim()))
        .map_err(|_| {
            anyhow!("public_key {shown} is not an RSA public key PEM (BEGIN PUBLIC KEY)")
        })?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| anyhow!("cannot encode public_key {shown} ({e})"))?
        .into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_background_process_holding_the_output_is_bounded_by_the_deadline() {
        let argv = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        // The command exits at once, but a process it left behind keeps stdout open for 30 s:
        // stopped with the command's process group soon after the command exited (not at the
        // deadline: the rest of the budget is the API's), and what was printed is kept.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(20);
        let out = run(
            &argv("sleep 30 & echo signed"),
            b"",
            deadline,
            "test command",
        )
        .unwrap();
        assert_eq!(out, b"signed\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}: the leftover process took the budget",
            started.elapsed()
        );
        // One that left its process group cannot be stopped: the command fails, in time.
        if !std::path::Path::new("/usr/bin/setsid").exists() {
            crate::test_skip::skip("setsid missing: a process that left the group is not tried");
            return;
        }
        let started = Instant::now();
        let deadline = started + Duration::from_millis(800);
        let err = run(
            &argv("setsid sleep 3 & echo signed"),
            b"",
            deadline,
            "test command",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("(outside its process group) kept its output open"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn signatures_are_read_raw_or_in_any_base64() {
        let sig: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(decode_signature(&sig).unwrap(), sig);
        let std = base64::engine::general_purpose::STANDARD.encode(&sig);
        assert_eq!(
            decode_signature(format!("{std}\n").as_bytes()).unwrap(),
            sig
        );
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig);
        assert_eq!(decode_signature(url.as_bytes()).unwrap(), sig);
        let wrapped: String = std
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(decode_signature(wrapped.as_bytes()).unwrap(), sig);
    }

    #[test]
    fn garbage_is_not_a_signature() {
        assert!(decode_signature(b"").is_none());
        assert!(decode_signature(b"OK\n").is_none());
        assert!(decode_signature(b"error: permission denied\n").is_none());
        assert!(decode_signature(&[0u8; 64]).is_none());
        // Vault Transit's answer without its `vault:v1:` prefix removed
        let vault = format!(
            "vault:v1:{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 256])
        );
        assert!(decode_signature(vault.as_bytes()).is_none());
        assert!(decode_signature("error: ".repeat(40).as_bytes()).is_none());
    }

    #[test]
    fn stderr_is_one_masked_capped_line() {
        let err = b"error: token ghs_16C7e42F292c6912E7710c838347Ae178B4a rejected\n\tsecond line\x1b[31m";
        let shown = shown_stderr(err);
        assert_eq!(
            shown,
            "error: token [masked] rejected second line\\u{1b}[31m"
        );
        let long = "word ".repeat(200);
        let shown = shown_stderr(long.as_bytes());
        assert!(shown.starts_with('…') && shown.chars().count() <= SHOWN_STDERR + 1);
    }
}

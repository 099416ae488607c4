//! Hostile and unlucky cases: secrets pasted into the wrong setting, odd API URLs, a frozen
//! D-Bus, FIFOs and foreign directories in the cache, skewed `Date` headers, hostile server
//! text, a client that keeps stdin open, sudo with someone else's HOME.

use crate::support::*;
use git_credential_github_app::config::flags::{GLOBAL, Name};

const PEM_BODY: &str = "MIIEpAIBAAKCAQEAzSECRETPEMBODY0123456789";
const PAT: &str = "ghp_SECRETpat0123456789abcdefghijklmnopq";
const CLIENT_SECRET: &str = "c0ffee5ec7e7c0ffee5ec7e70123456789abcdef";

fn pem() -> String {
    format!("-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n")
}

/// Every option and variable, given a PEM, a PAT and a client secret, through the real binary:
/// one line naming the setting, no part of the value.
#[test]
fn secrets_in_the_wrong_setting_are_never_echoed() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let request = format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host());
    let key = env.key_path.display().to_string();
    for secret in [pem(), PAT.to_owned(), CLIENT_SECRET.to_owned()] {
        let secret = secret.as_str();
        // Every global option that takes a value, and every variable (the trace's is a switch
        // or a log path), from the one table the helper parses its command line with.
        let options: Vec<String> = GLOBAL
            .iter()
            .filter(|o| o.value.is_some())
            .filter_map(|o| o.long.map(|l| format!("--{l}")))
            .collect();
        for option in options {
            let mut args = vec!["--app-id", "1001", "--private-key", &key, "--host"];
            let host = gh.host();
            args.push(&host);
            args.extend([option.as_str(), secret, "get"]);
            let out = run(env.command(HELPER).args(&args), request.as_bytes());
            check(&out, &option, secret);
        }
        let variables = GLOBAL
            .iter()
            .filter(|o| o.name != Name::Verbose)
            .filter_map(|o| o.env);
        for variable in variables {
            let mut cmd = env.command(HELPER);
            cmd.env("GITHUB_APP_ID", "1001")
                .env("GITHUB_APP_HOST", gh.host())
                .env("GITHUB_APP_PRIVATE_KEY_PATH", &key)
                .env(variable, secret);
            if variable == "GITHUB_APP_PRIVATE_KEY" {
                cmd.env_remove("GITHUB_APP_PRIVATE_KEY_PATH");
            }
            let out = run(cmd.arg("get"), request.as_bytes());
            check(&out, variable, secret);
        }
    }

    #[track_caller]
    fn check(out: &std::process::Output, setting: &str, secret: &str) {
        let err = stderr(out);
        assert!(!out.status.success(), "{setting} accepted a secret: {err}");
        assert!(stdout(out).is_empty(), "{setting}: {}", stdout(out));
        assert_eq!(err.lines().count(), 1, "{setting}: one line: {err}");
        assert!(err.contains(setting), "{setting} is not named: {err}");
        let flat = secret.replace('\n', "");
        for start in (0..flat.len().saturating_sub(8)).step_by(4) {
            let part = &flat[start..start + 8];
            if part.contains("-----") || part.contains("PRIVATE") || part.contains("KEY") {
                continue;
            }
            assert!(!err.contains(part), "{setting} echoes '{part}': {err}");
        }
    }
}

/// `--api-url` with a query, a fragment, or a host that only starts like loopback.
#[test]
fn odd_api_urls_are_refused_with_a_clear_message() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    for (url, expected) in [
        (
            format!("{}?per_page=1", gh.api_url()),
            "git-credential-github-app: --api-url has a query or fragment (?… or #…), which an API base cannot have; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
        (
            format!("{}#x", gh.api_url()),
            "git-credential-github-app: --api-url has a query or fragment (?… or #…), which an API base cannot have; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
        (
            "http://[::1]evil.example/api/v3".to_owned(),
            "git-credential-github-app: --api-url does not have a valid host name; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
    ] {
        let key = env.key_path.display().to_string();
        let args = [
            "--app-id",
            "1001",
            "--private-key",
            &key,
            "--host",
            &gh.host(),
        ];
        let out = run(
            env.command(HELPER)
                .args(args)
                .args(["--api-url", &url, "get"]),
            format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host()).as_bytes(),
        );
        assert!(!out.status.success());
        assert_eq!(stderr(&out), expected, "{url}");
        assert!(stdout(&out).is_empty());
    }
    assert_eq!(gh.lookup_count() + gh.mint_count(), 0);
    // Nothing was remembered for a refused URL.
    assert!(!env.cache_dir().join("installations").exists());
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// `password_expiry_utc` is an hour from the request on our clock, whatever GitHub's clock or its
/// `Date` header says; never 0, never in the past, never more than the token lives.
#[test]
fn expiry_is_right_whatever_the_date_header_says() {
    const MINT: &str = "/api/v3/app/installations/";
    let gh = world();
    let env = Env::new(&gh, 1001);
    let get = |what: &str| {
        let before = unix_now();
        let out = env.helper(
            &["--cache", "none", "get"],
            format!(
                "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
                gh.host()
            )
            .as_bytes(),
        );
        let after = unix_now();
        assert_ok(&out);
        let expiry: u64 = field(&out, "password_expiry_utc").unwrap().parse().unwrap();
        assert!(
            expiry >= before + 3600 - 2 && expiry <= after + 3600,
            "{what}: expiry {expiry} is not an hour from {before}..{after}: {}",
            stderr(&out)
        );
    };
    // GitHub's whole clock skewed (Date and expires_at agree): far ahead, 2 h ahead, behind.
    for offset in [10 * 365 * 86400_i64, 7200, -7200] {
        gh.set_clock_offset(offset);
        get(&format!("GitHub's clock {offset:+} s"));
    }
    gh.set_clock_offset(0);
    // Only the Date header is off (a proxy, a broken server): expires_at is right on our clock.
    let now = unix_now();
    for (what, date) in [
        ("Date far ahead", http_date(now + 10 * 365 * 86400)),
        ("Date 2 h ahead", http_date(now + 7200)),
        ("Date 1 h behind", http_date(now - 3600)),
        ("Date garbage", "yesterday".to_owned()),
        ("Date empty", String::new()),
    ] {
        let expires_at = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_now() + 3600),
        );
        gh.inject(
            local_github::Fault::new(
                MINT,
                local_github::FaultAction::json(
                    201,
                    serde_json::json!({"token": "ghs_dateTest0123456789abcdefghijklmnopq", "expires_at": expires_at.to_string()}),
                )
                .with_header("Date", date),
            )
            .method("POST")
            .times(1),
        );
        get(what);
    }
}

/// Run `cmd` with `stdin`, killing it if it takes longer than `limit` (a hang fails the test
/// instead of blocking the suite).
fn run_within(
    cmd: &mut std::process::Command,
    stdin: &[u8],
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = cmd
        .process_group(0) // so that a hung helper under git is killed too
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr so far: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Files under `dir` with their modes (directories end in '/').
fn tree(dir: &std::path::Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let name = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            if meta.is_dir() {
                out.push((name + "/", meta.permissions().mode() & 0o7777));
                stack.push(entry.path());
            } else {
                out.push((name, meta.permissions().mode() & 0o7777));
            }
        }
    }
    out.sort();
    out
}

/// A FIFO where the token, the installation record or the lock file should be: `get` answers
/// promptly (it mints) instead of blocking in open().
#[test]
fn fifos_in_the_cache_do_not_block_a_get() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = token_of(&env.fill("octo/dotfiles.git"));
    let root = env.cache_dir();
    let mut planted = 0;
    for sub in ["tokens", "installations", "locks"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::remove_file(&path).unwrap();
            mkfifo(&path);
            planted += 1;
        }
    }
    assert!(planted >= 3, "planted {planted}");
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
        gh.host()
    );
    let out = run_within(
        env.command("git").args(["credential", "fill"]),
        input.as_bytes(),
        std::time::Duration::from_secs(20),
    );
    let second = token_of(&out);
    assert_ne!(first, second, "the FIFO was not read as a token");
    // The FIFOs were replaced by private regular files.
    for (name, mode) in tree(&root) {
        let ok = if name.ends_with('/') { 0o700 } else { 0o600 };
        assert_eq!(mode, ok, "{name}");
        if !name.ends_with('/') {
            assert!(
                std::fs::metadata(root.join(&name)).unwrap().is_file(),
                "{name}"
            );
        }
    }
}

/// Under umask 000 the helper's directories (and a missing ~/.cache) are 0700, its files 0600.
#[test]
fn umask_000_still_makes_private_directories_and_files() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    assert!(!env.home.join(".cache").exists());
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
        gh.host()
    );
    let out = run(
        env.command("sh")
            .args(["-c", "umask 000 && exec git credential fill"]),
        input.as_bytes(),
    );
    token_of(&out);
    let cache = env.home.join(".cache");
    let files = tree(&cache);
    assert!(files.len() >= 7, "{files:?}");
    for (name, mode) in files {
        let ok = if name.ends_with('/') { 0o700 } else { 0o600 };
        assert_eq!(mode, ok, "{name}: {mode:o}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "~/.cache");
}

/// `sudo -E git …`: root with a HOME that belongs to someone else creates nothing there, and the
/// get still answers (minting), saying why in the trace.
#[test]
fn root_with_another_users_home_creates_nothing_there() {
    if !root_or_skip("to run as root with another user's HOME") {
        return;
    }
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let chown_r = |path: &std::path::Path| {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    env.command("true"); // writes the harness's askpass script before the snapshot
    chown_r(&env.home);
    let before = tree(&env.home);
    for round in 0..2 {
        let out = env.fill("octo/dotfiles.git");
        token_of(&out);
        assert!(
            stderr(&out).contains("which belongs to uid 65534, not to us (uid 0): another user's HOME (sudo -E?); going on without the file cache"),
            "round {round}: {}",
            stderr(&out)
        );
        assert_eq!(tree(&env.home), before, "round {round}: files appeared");
    }
    assert_eq!(gh.mint_count(), 2);
    // The user's own cache, already there: neither read nor written by root.
    std::fs::create_dir_all(env.cache_dir()).unwrap();
    chown_r(&env.home);
    let before = tree(&env.home);
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    assert!(
        stderr(&out).contains("belongs to uid 65534, not to us (uid 0)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        tree(&env.home),
        before,
        "files appeared in the user's cache"
    );
}

/// A session bus that accepts connections and never answers (a stopped `dbus-daemon`), with the
/// default cache: `get` answers within its timeout, twice (the token minted the first time is
/// answered even though the Secret Service never took it).
#[test]
fn a_frozen_session_bus_does_not_hang_a_get() {
    if !have(&["dbus-daemon"]) {
        return;
    }
    /// The daemon, resumed and stopped even when the test fails.
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut daemon = Daemon(
        std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut address = String::new();
    {
        use std::io::BufRead;
        let stdout = daemon.0.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut address)
            .unwrap();
    }
    let address = address.trim().to_owned();
    assert!(address.starts_with("unix:"), "{address}");
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &daemon.0.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&[
        "--app-id",
        "1001",
        "--private-key",
        &env.key_path.display().to_string(),
        "--host",
        &gh.host(),
        "--timeout",
        "6s",
    ]);
    env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
        gh.host()
    );
    for round in 0..2 {
        let started = std::time::Instant::now();
        let out = run_within(
            env.command("git").args(["credential", "fill"]),
            input.as_bytes(),
            std::time::Duration::from_secs(30),
        );
        let took = started.elapsed();
        token_of(&out);
        eprintln!("frozen bus, get {round}: {took:?}");
        assert!(
            took < std::time::Duration::from_secs(6), // the --timeout
            "round {round}: {took:?}\n{}",
            stderr(&out)
        );
    }
    assert!(gh.mint_count() >= 1);
    // doctor's cache round trip through the frozen Secret Service ends within doctor's own
    // --timeout too (issue 17.5), not the helper line's.
    let started = std::time::Instant::now();
    let out = run_within(
        env.command(HELPER).args([
            "doctor",
            "--host",
            &gh.host(),
            "--timeout",
            "4s",
            "--cache",
            "keyring",
        ]),
        b"",
        std::time::Duration::from_secs(60),
    );
    let took = started.elapsed();
    eprintln!("doctor --timeout 4s on a frozen session bus: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(6),
        "doctor took {took:?}\n{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(" cache: "), "{}", stdout(&out));
}

/// The helper marks itself non-dumpable, as ssh-agent does: checked on a helper that runs as
/// another user and is blocked on a hung API. The kernel then gives its /proc entries to root
/// (a dumpable process's are its own user's), and no core file or ptrace by that user can read
/// the key.
#[test]
fn the_helper_is_not_dumpable() {
    if !root_or_skip("to run the helper as another user") || !have(&["setpriv"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    // The helper runs as nobody (65534): its HOME and key are theirs.
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&env.home)
        .status()
        .unwrap();
    assert!(status.success());
    let dir = env.home.parent().unwrap();
    crate::support::chmod(dir, 0o755);
    gh.inject(local_github::Fault::new(
        "/api/v3/",
        local_github::FaultAction::delay_ms(20_000),
    ));
    let key = env.key_path.display().to_string();
    let host = gh.host();
    let mut child = env
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", HELPER])
        .args(["--app-id", "1001", "--private-key", &key, "--host", &host])
        .args(["--cache", "none", "--timeout", "30s", "get"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "protocol=http\nhost={host}\npath=octo/dotfiles.git\n\n"
        )
        .unwrap();
    }
    // setpriv execs the helper: same pid. Give it time to be waiting on the API.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let running = child.try_wait().unwrap().is_none();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{}/status", child.id()))
            .unwrap()
            .uid()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        uid_line.contains("65534"),
        "not running as nobody: {uid_line}"
    );
    assert!(running, "the helper did not wait for the hung API");
    assert_eq!(
        owner, 0,
        "/proc entries of a dumpable process belong to its user"
    );
}

/// Text from the server (a message, an account login) reaches stderr and traces without terminal
/// escapes, bidi or zero-width characters.
#[test]
fn hostile_server_text_is_escaped() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}Bad\u{202E}gnp.exe\u{200B}\u{2066}!\u{FEFF}";
    gh.inject(
        local_github::Fault::new(
            "/api/v3/repos/octo/dotfiles/installation",
            local_github::FaultAction::json(
                200,
                serde_json::json!({"id": 12, "account": {"login": hostile}}),
            ),
        )
        .times(1),
    );
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains(r"(account [2J ]0;pwned Bad\u{202e}gnp.exe\u{200b}\u{2066}!\u{feff})"),
        "{err}"
    );
    gh.inject(local_github::Fault::new(
        "/api/v3/repos/nobody/thing/installation",
        local_github::FaultAction::github_error(403, hostile),
    ));
    let out = env.fill("nobody/thing.git");
    let err = stderr(&out);
    assert!(
        err.contains(r"answered 403 while looking up the app's installation for 'nobody': [2J ]0;pwned Bad\u{202e}gnp.exe\u{200b}\u{2066}!\u{feff}"),
        "{err}"
    );
    for (what, out) in [("lookup", &out)] {
        let err = stderr(out);
        for bad in [
            '\u{1b}', '\u{7}', '\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}',
        ] {
            assert!(!err.contains(bad), "{what}: {:?} in {err:?}", bad);
        }
    }
}

/// A client that writes the request and the blank line but keeps stdin open gets its answer.
#[test]
fn a_blank_line_ends_the_request_while_stdin_stays_open() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let mut child = env
        .command(HELPER)
        .args(["--app-id", "1001", "--private-key"])
        .arg(&env.key_path)
        .args(["--host", &gh.host(), "--cache", "none", "get"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    {
        use std::io::Write;
        write!(
            stdin,
            "protocol=http\nhost={}\npath=octo/dotfiles.git\n\n",
            gh.host()
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    let started = std::time::Instant::now();
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    if exited.is_none() {
        let _ = child.kill();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(exited.is_some(), "no answer while stdin stayed open");
    assert!(
        stdout(&out).starts_with("username=x-access-token\npassword=ghs_"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Issue 17 item 6: exec's command gets the token and nothing that mints another; SIGTERM to the
/// helper reaches the command (no orphan holding the token).
#[cfg(unix)]
#[test]
fn exec_hands_over_only_the_token_and_signals_reach_the_command() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let pem = gh.app(1001).private_key_pem().to_owned();
    env.set_env("GITHUB_APP_PRIVATE_KEY", &pem);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TIMEOUT", "20s");
    env.set_env("KEEP_ME", "yes");
    let out = env.helper(&["exec", "octo", "--", "env"], b"");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("GH_TOKEN=ghs_") && text.contains("KEEP_ME=yes"),
        "{text}"
    );
    assert!(!text.contains("GITHUB_APP_PRIVATE_KEY"), "{text}");
    assert!(!text.contains("GIT_CREDENTIAL_GITHUB_APP_"), "{text}");
    assert!(!text.contains(pem.lines().nth(1).unwrap()), "{text}");

    let pidfile = env.home.join("child.pid");
    let mut helper = env
        .command(HELPER)
        .args([
            "--app-id",
            "1001",
            "--private-key",
            env.key_path.to_str().unwrap(),
            "--host",
            &env.host,
            "--cache",
            "file",
            "exec",
            "octo",
            "--",
            "sh",
            "-c",
            &format!(
                "echo $$ > '{}.tmp' && mv '{0}.tmp' '{0}' && exec sleep 30",
                pidfile.display()
            ),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let child: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ok(&run(
        std::process::Command::new("kill").args(["-TERM", &helper.id().to_string()]),
        b"",
    ));
    let status = helper.wait().unwrap();
    assert!(!status.success());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let alive = std::process::Command::new("kill")
        .args(["-0", &child.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    if alive {
        // Clean up the orphan this test made before failing.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .status();
    }
    assert!(
        !alive,
        "the command (pid {child}) outlived SIGTERM to the helper, holding the token"
    );
}

/// Issue 17 item 6: a config.toml anyone can write (or that belongs to someone else) is not used:
/// its `signer = [...]` would run as its victim.
#[cfg(unix)]
#[test]
fn a_config_file_others_could_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let gh = world();
    let env = Env::new(&gh, 1001);
    let pwned = env.home.join("pwned");
    env.write_config(
        &[],
        &format!(
            "[[app]]\napp_id = 1001\nhost = \"{}\"\nsigner = [\"sh\", \"-c\", \"touch {}\"]\n",
            env.host,
            pwned.display()
        ),
    );
    let path = env
        .home
        .join(".config/git-credential-github-app/config.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(
        env.command(HELPER)
            .args(["token", "acme", "--host", &env.host]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: cannot read config file {}: not used: it is writable by everyone (mode 666); run: chmod go-w {}\n",
            path.display(),
            path.display()
        )
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = path.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(
        env.command(HELPER)
            .args(["token", "acme", "--host", &env.host]),
        b"",
    );
    assert!(
        stderr(&out).contains("its directory")
            && stderr(&out).contains("is writable by everyone (mode 777)"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        !pwned.exists(),
        "the signer of an untrusted config file ran"
    );
    if !root_or_skip("to give config.toml to another user") {
        return;
    }
    std::os::unix::fs::chown(&path, Some(4242), Some(4242)).unwrap();
    let out = run(
        env.command(HELPER)
            .args(["token", "acme", "--host", &env.host]),
        b"",
    );
    assert!(
        stderr(&out).contains("it belongs to uid 4242, not to you (uid 0) or root"),
        "{}",
        stderr(&out)
    );
    assert!(
        !pwned.exists(),
        "the signer of an untrusted config file ran"
    );
}

/// Issue 17 item 5: a FIFO or a device as the key file is refused at once, not read forever.
#[cfg(unix)]
#[test]
fn a_fifo_or_a_device_as_the_key_is_refused_at_once() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let fifo = env.home.join("key.fifo");
    assert_ok(&run(std::process::Command::new("mkfifo").arg(&fifo), b""));
    for (key, what) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a device"),
    ] {
        env.set_flags(&[
            "--app-id",
            "1001",
            "--private-key",
            key,
            "--host",
            &gh.host(),
            "--cache",
            "file",
            "--timeout",
            "30s",
        ]);
        let started = std::time::Instant::now();
        let out = env.fill("acme/widgets.git");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot read private key file {key}: {what}, not a regular file"
            )),
            "{err}"
        );
    }
}

/// Issue 17 item 9: in a container, `--cache auto` keeps tokens out of the kernel keyring (per
/// uid on the host's kernel, so shared with other containers of that uid) and doctor says so.
#[cfg(unix)]
#[test]
fn cache_auto_in_a_container_keeps_tokens_out_of_the_kernel_keyring() {
    use crate::cache::keyutils_keys_holding;
    if !have(&["keyctl"]) {
        return;
    }
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "auto"]);
    env.set_env("container", "podman");
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert!(keyutils_keys_holding(&env, &token).is_empty());
    assert!(env.cache_dir().join("tokens").exists());
    let before = gh.mint_count();
    assert_eq!(token_of(&env.fill("octo/dotfiles.git")), token);
    assert_eq!(gh.mint_count(), before, "cached in the container's files");
    let out = run(
        env.command(HELPER).args(["doctor", "--host", &env.host]),
        b"",
    );
    let text = stdout(&out);
    assert!(
        text.contains("[ OK ] cache: in a container (")
            && text.contains("): --cache auto leaves out the kernel keyring, which belongs to the uid on the host's kernel"),
        "{text}"
    );
    // --cache keyring still uses it: the user asked for it.
    env.add_flags(&["--cache", "keyring"]);
    let token = token_of(&env.fill("acme/widgets.git"));
    assert_eq!(keyutils_keys_holding(&env, &token).len(), 1);
}

use crate::support::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn erase_drops_only_the_rejected_token() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    // a rejection of some other password keeps our token
    assert_ok(&env.reject("octo/dotfiles.git", "ghs_not_ours"));
    assert_eq!(
        field(&env.fill("octo/dotfiles.git"), "password").as_deref(),
        Some(token.as_str())
    );
    assert_eq!(gh.mint_count(), 1);
    // rejecting our token drops it: the next get mints a new one, without a new lookup
    assert_ok(&env.reject("octo/dotfiles.git", &token));
    let next = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    assert_ne!(next, token);
    assert_eq!((gh.lookup_count(), gh.mint_count()), (1, 2));
}

#[test]
fn tokens_inside_the_refresh_margin_are_replaced() {
    let gh = world();
    gh.set_token_lifetime(9 * 60); // less than the default 10-minute margin
    let env = Env::new(&gh, 1001);
    let a = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    let b = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    assert_ne!(
        a, b,
        "a token with 9 minutes left is not served from the cache"
    );
    assert_eq!(gh.mint_count(), 2);
    // with a 5-minute margin the same token is fresh enough
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--refresh-margin", "5m"]);
    let c = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    let d = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    assert_eq!(c, d);
    assert_eq!(gh.mint_count(), 3);
}

#[test]
fn file_cache_is_private_and_atomic() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    assert_ok(&env.fill("octo/dotfiles.git"));
    let root = env.cache_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let tokens: Vec<_> = std::fs::read_dir(root.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "one entry, no leftover temporary files: {tokens:?}"
    );
    assert_eq!(mode(&root.join("tokens")), 0o700);
    assert_eq!(mode(&tokens[0]), 0o600);
    assert!(tokens[0].extension().is_some_and(|e| e == "json"));
}

#[test]
fn cache_none_mints_every_time_and_writes_no_token() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "none"]);
    assert_ok(&env.fill("octo/dotfiles.git"));
    assert_ok(&env.fill("octo/dotfiles.git"));
    assert_eq!(gh.mint_count(), 2);
    assert_eq!(gh.lookup_count(), 1, "the installation is still remembered");
    assert!(!env.cache_dir().join("tokens").exists());
}

#[test]
fn kernel_keyutils_holds_the_token_without_a_session_bus() {
    if !have(&["keyctl"]) {
        return;
    }
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "keyring"]);
    let token = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    let before = gh.requests().len();
    assert_eq!(
        field(&env.fill("octo/dotfiles.git"), "password"),
        Some(token.clone())
    );
    assert_eq!(
        gh.requests().len(),
        before,
        "second get served from the kernel keyring"
    );
    assert!(
        !env.cache_dir().join("tokens").exists(),
        "nothing in the file cache"
    );
    // the key is in the user keyring, readable by our processes
    assert_eq!(
        keyutils_keys_holding(&env, &token).len(),
        1,
        "token not found in the user keyring"
    );
    // erase removes it from the keyring too
    assert_ok(&env.reject("octo/dotfiles.git", &token));
    assert_ne!(
        field(&env.fill("octo/dotfiles.git"), "password"),
        Some(token)
    );
}

/// Ids of the user-keyring keys of this helper whose payload holds `token`.
pub(crate) fn keyutils_keys_holding(env: &Env, token: &str) -> Vec<String> {
    let ids = stdout(&run(env.command("keyctl").args(["rlist", "@u"]), b""));
    ids.split_whitespace()
        .filter(|id| {
            stdout(&run(env.command("keyctl").args(["rdescribe", id]), b""))
                .contains("git-credential-github-app:")
        })
        .filter(|id| stdout(&run(env.command("keyctl").args(["print", id]), b"")).contains(token))
        .map(str::to_owned)
        .collect()
}

/// Run `script` in a private D-Bus session with an unlocked gnome-keyring (Secret Service).
///
/// The session's output goes through files, not pipes: a D-Bus-activated gnome-keyring-daemon can
/// outlive the session for a moment while holding the bus's stdio, and a pipe would make the test
/// wait for it (the hang GitPython #295 describes for credential-cache's daemon).
pub(crate) fn in_secret_service(env: &Env, script: &str) -> std::process::Output {
    let dir = env.home.join("ss");
    std::fs::create_dir_all(&dir).unwrap();
    let full = format!(
        "set -e\neval \"$(printf pw | gnome-keyring-daemon --unlock --components=secrets)\" >/dev/null\n{script}"
    );
    std::fs::write(dir.join("script.sh"), full).unwrap();
    let status = env
        .command("dbus-run-session")
        .args(["--", "sh", "script.sh"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.join("out")).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .status()
        .unwrap();
    std::process::Output {
        status,
        stdout: std::fs::read(dir.join("out")).unwrap(),
        stderr: std::fs::read(dir.join("err")).unwrap(),
    }
}

#[test]
fn secret_service_holds_the_token() {
    if !have(&[
        "dbus-run-session",
        "gnome-keyring-daemon",
        "secret-tool",
        "keyctl",
    ]) {
        return;
    }
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "keyring"]);
    let fill = format!(
        "printf 'protocol=http\\nhost={}\\npath=octo/dotfiles.git\\n' | git credential fill",
        env.host
    );
    let out = in_secret_service(
        &env,
        &format!("{fill}\nsecret-tool search --all service git-credential-github-app 2>&1\n"),
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("secret = {{\"v\":1,\"token\":\"{token}\"")),
        "the Secret Service holds it: {text}"
    );
    assert!(
        !env.cache_dir().join("tokens").exists(),
        "nothing in the file cache"
    );
    // The kernel keyring holds a copy in front of it; drop that copy, and the next get (in a new
    // session, as after a re-login) is answered by the Secret Service and refills the copy.
    let ids = keyutils_keys_holding(&env, &token);
    assert_eq!(ids.len(), 1);
    assert_ok(&run(
        env.command("keyctl").args(["invalidate", &ids[0]]),
        b"",
    ));
    let out = in_secret_service(
        &env,
        &format!("export GIT_CREDENTIAL_GITHUB_APP_TRACE=1\n{fill}\n"),
    );
    let err = stderr(&out);
    assert_eq!(field(&out, "password"), Some(token.clone()), "{err}");
    assert!(
        err.contains("cache hit in secret-service") && err.contains("into keyutils"),
        "{err}"
    );
    assert_eq!(
        keyutils_keys_holding(&env, &token).len(),
        1,
        "copied back into the kernel keyring"
    );
    assert_eq!(gh.mint_count(), 1);
}

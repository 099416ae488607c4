//! The Windows build (`x86_64-pc-windows-gnu`) under Wine, answering Linux git against the local
//! GitHub: git runs a wrapper that starts the `.exe` with Wine. `.ci/windows.sh` builds the `.exe`,
//! builds the `ProcessPrng` shim Wine 8 lacks and prepares a Wine prefix; `.ci/run` then sets
//! GCGA_WINDOWS_HELPER, GCGA_WINE and GCGA_WINEPREFIX. Without them these tests skip, saying so
//! (and scripts/test counts them), unless GCGA_REQUIRE_TOOLS is set (CI): then they fail.
//!
//! Each test runs in its own copy of the prefix (hard links, fresh registry files), so each has
//! its own Credential Manager and `%LOCALAPPDATA%`.
//!
//! Not covered here: Git for Windows itself (its `sh` running the helper line) and NTFS ACLs
//! (Wine has none). A Windows program under Wine cannot run a Linux program and wait for it
//! (Wine hands back no process handle), so `setup` and doctor's git checks, which run git, are
//! checked for what they say about that, not for what they write.

use local_github::{Account, App, Fault, FaultAction, GitHub, Installation, TokenFormat};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

/// The built `.exe`, Wine, and the prepared prefix (from `.ci/windows.sh`).
struct WineSetup {
    exe: PathBuf,
    wine: PathBuf,
    prefix: PathBuf,
}

#[track_caller]
fn wine_setup() -> Option<WineSetup> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    match (
        var("GCGA_WINDOWS_HELPER"),
        var("GCGA_WINE"),
        var("GCGA_WINEPREFIX"),
    ) {
        (Some(exe), Some(wine), Some(prefix)) => {
            for p in [&exe, &wine, &prefix] {
                assert!(p.exists(), "{} does not exist", p.display());
            }
            Some(WineSetup { exe, wine, prefix })
        }
        _ => {
            skip(
                "no Windows build under Wine: GCGA_WINDOWS_HELPER, GCGA_WINE and GCGA_WINEPREFIX unset (.ci/windows.sh prepares them, then source target/windows-ci/env.sh)",
            );
            None
        }
    }
}

/// acme (selected repositories, many permissions: long stateless tokens) and octo (all).
fn world() -> GitHub {
    let perms = [
        ("actions", "read"),
        ("checks", "read"),
        ("contents", "write"),
        ("deployments", "read"),
        ("issues", "read"),
        ("metadata", "read"),
        ("packages", "read"),
        ("pull_requests", "write"),
        ("statuses", "read"),
        ("workflows", "write"),
    ];
    GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .repo("acme", "widgets")
        .repo("acme", "gadgets")
        .repo("octo", "dotfiles")
        .installation(
            Installation::new(11, 1001, "acme")
                .selected(["widgets", "gadgets"])
                .permissions(perms),
        )
        .installation(Installation::new(12, 1001, "octo").all())
        .start()
        .unwrap()
}

/// A test's Windows: its own prefix and a wrapper git runs as the helper.
struct Windows {
    env: Env,
    wrapper: PathBuf,
    prefix: PathBuf,
    wine: PathBuf,
}

impl Windows {
    fn new(gh: &GitHub, setup: &WineSetup, cache: &str) -> Windows {
        let mut env = Env::new(gh, 1001);
        let prefix = env.home.join("wineprefix");
        copy_prefix(&setup.prefix, &prefix);
        env.set_env("WINEPREFIX", &prefix.display().to_string());
        env.set_env("WINEDEBUG", "-all");
        let wrapper = env.home.join("git-credential-github-app.sh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} {} \"$@\"\n",
                sh_quote(&setup.wine.display().to_string()),
                sh_quote(&setup.exe.display().to_string())
            ),
        )
        .unwrap();
        chmod(&wrapper, 0o755);
        let windows = Windows {
            env,
            wrapper,
            prefix,
            wine: setup.wine.clone(),
        };
        // The helper line git runs (an empty helper first drops the native one Env wrote).
        windows.env.append_gitconfig(&format!(
            "[credential \"{}\"]\n\thelper =\n\thelper = {} {}\n",
            windows.env.git_url,
            windows.wrapper.display(),
            windows.flags(cache).join(" ")
        ));
        windows
    }

    fn flags(&self, cache: &str) -> Vec<String> {
        vec![
            "--app-id".into(),
            "1001".into(),
            "--private-key".into(),
            self.env.key_path.display().to_string(),
            "--host".into(),
            self.env.host.clone(),
            "--cache".into(),
            cache.into(),
        ]
    }

    /// The `.exe` itself (through the wrapper) with `args`.
    fn helper(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(
            self.env
                .command(&self.wrapper.display().to_string())
                .args(args),
            stdin,
        )
    }

    /// `%LOCALAPPDATA%` of the prefix's user (`C:\users\<name>\AppData\Local`).
    fn local_appdata(&self) -> PathBuf {
        let users = self.prefix.join("drive_c/users");
        let user = std::fs::read_dir(&users)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("AppData/Local").is_dir() && !p.ends_with("Public"))
            .unwrap_or_else(|| panic!("no user profile under {}", users.display()));
        user.join("AppData/Local")
    }

    fn cache_dir(&self) -> PathBuf {
        self.local_appdata().join("git-credential-github-app")
    }

    /// The file cache's entries holding `token`.
    fn token_files_holding(&self, token: &str) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.cache_dir().join("tokens")) else {
            return Vec::new();
        };
        dir.map(|e| e.unwrap().path())
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(token)))
            .collect()
    }
}

impl Drop for Windows {
    fn drop(&mut self) {
        // Stop this prefix's wineserver before its directory goes.
        let server = self.wine.with_file_name("wineserver");
        if server.exists() {
            let _ = std::process::Command::new(server)
                .arg("-k")
                .env("WINEPREFIX", &self.prefix)
                .output();
        }
    }
}

/// A private copy of the prepared prefix: files hard-linked (Wine only reads its DLLs), the
/// registry files copied (wineserver rewrites them).
fn copy_prefix(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert_ok(&out);
    for name in ["system.reg", "user.reg", "userdef.reg"] {
        let path = to.join(name);
        if path.exists() {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn git_gets_and_erases_through_the_exe() {
    let Some(setup) = wine_setup() else { return };
    let gh = world();
    let win = Windows::new(&gh, &setup, "file");
    let out = win.env.fill("octo/dotfiles.git");
    let token = token_of(&out);
    assert_eq!(field(&out, "username").as_deref(), Some("x-access-token"));
    assert!(
        field(&out, "password_expiry_utc").is_some(),
        "{}",
        stdout(&out)
    );
    // git clones with it.
    assert_ok(&win.env.clone_repo("octo", "dotfiles"));
    assert_eq!(gh.mint_count(), 1);
    // git's reject (erase) drops exactly that token: the next get mints anew.
    assert_ok(&win.env.reject("octo/dotfiles.git", &token));
    assert!(win.token_files_holding(&token).is_empty());
    let next = token_of(&win.env.fill("octo/dotfiles.git"));
    assert_ne!(next, token);
    assert_eq!((gh.lookup_count(), gh.mint_count()), (1, 2));
    // Hosts and owners it does not serve: nothing on stdout, git falls through.
    let out = win.helper(
        &win.flags("file")
            .iter()
            .map(String::as_str)
            .chain(["get"])
            .collect::<Vec<_>>(),
        b"protocol=https\nhost=example.com\npath=a/b.git\n",
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn the_file_cache_is_under_localappdata() {
    let Some(setup) = wine_setup() else { return };
    let gh = world();
    let win = Windows::new(&gh, &setup, "file");
    let token = token_of(&win.env.fill("octo/dotfiles.git"));
    assert_eq!(token_of(&win.env.fill("octo/dotfiles.git")), token);
    assert_eq!(
        gh.mint_count(),
        1,
        "the second get came from the file cache"
    );
    let files = win.token_files_holding(&token);
    assert_eq!(files.len(), 1, "{:?}", win.cache_dir());
    // The installation is remembered there too, and nothing went to the Linux-side cache.
    assert!(win.cache_dir().join("installations").is_dir());
    assert!(!win.env.cache_dir().exists());
}

#[test]
fn a_long_stateless_token_round_trips_through_the_credential_manager() {
    let Some(setup) = wine_setup() else { return };
    let gh = world();
    gh.set_token_format(TokenFormat::Stateless);
    let win = Windows::new(&gh, &setup, "keyring");
    let token = token_of(&win.env.fill("acme/widgets.git"));
    assert!(
        token.len() >= 520,
        "{} characters: the test wants a token of at least 520",
        token.len()
    );
    assert_eq!(token_of(&win.env.fill("acme/widgets.git")), token);
    assert_eq!(
        gh.mint_count(),
        1,
        "the second get came from the Credential Manager"
    );
    // Nothing in the file cache: the Credential Manager took it.
    assert!(win.token_files_holding(&token).is_empty());
    assert!(!win.cache_dir().join("tokens").exists());
    // Wine keeps the Credential Manager in the user's registry: our entry is there, by name.
    let user_reg = std::fs::read_to_string(win.prefix.join("user.reg")).unwrap();
    assert!(
        user_reg.contains("git-credential-github-app"),
        "no Credential Manager entry named git-credential-github-app in user.reg"
    );
    // erase removes it from the Credential Manager.
    assert_ok(&win.env.reject("acme/widgets.git", &token));
    let next = token_of(&win.env.fill("acme/widgets.git"));
    assert_ne!(next, token);
    assert_eq!(gh.mint_count(), 2);
    assert_ok(&win.env.clone_repo("acme", "widgets"));
    assert_eq!(gh.mint_count(), 2);
}

#[test]
fn concurrent_cold_gets_mint_once_with_a_windows_file_lock() {
    let Some(setup) = wine_setup() else { return };
    let gh = world();
    gh.inject(Fault::new("/api/v3/app/installations/", FaultAction::delay_ms(1500)).method("POST"));
    let win = Windows::new(&gh, &setup, "file");
    // Wine's first start in a fresh prefix is slow: start it once before racing.
    assert_ok(&win.helper(&["--version"], b""));
    let n = 6;
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| win.env.fill("octo/dotfiles.git")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: std::collections::BTreeSet<_> = outputs.iter().map(token_of).collect();
    assert_eq!(tokens.len(), 1, "all {n} got the same token");
    assert_eq!(
        gh.mint_count(),
        1,
        "one process minted; the others waited for its lock"
    );
    assert!(win.cache_dir().join("locks").is_dir());
}

#[test]
fn doctor_checks_the_key_the_app_and_the_credential_manager() {
    let Some(setup) = wine_setup() else { return };
    let gh = world();
    let win = Windows::new(&gh, &setup, "keyring");
    let mut args = win.flags("keyring");
    args.push("doctor".into());
    let out = win.helper(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"");
    let text = stdout(&out);
    let line = |check: &str| {
        text.lines()
            .find(|l| l[6..].starts_with(&format!(" {check}: ")))
            .unwrap_or_else(|| panic!("no {check} line in:\n{text}"))
            .to_owned()
    };
    // No file mode on Windows: the key line names the format only (what Unix adds is ", mode 600").
    let fingerprint = gh.app(1001).fingerprint();
    assert_eq!(
        line("key"),
        format!(
            "[ OK ] key: the key in {} (PKCS#1): fingerprint {fingerprint}",
            win.env.key_path.display()
        )
    );
    assert_eq!(
        line("app-auth"),
        "[ OK ] app-auth: GitHub accepts the key for app 1001 'ci-bot' (slug ci-bot)"
    );
    assert!(line("installations").starts_with("[ OK ] installations: 2 installation(s):"));
    assert_eq!(
        line("cache"),
        "[ OK ] cache: keyring backend (credential-manager): write, read and delete work"
    );
    // Wine cannot run Linux git for a Windows program: doctor says so instead of guessing.
    assert_eq!(
        line("git"),
        "[FAIL] git: cannot run git (is it installed and on PATH?): program not found"
    );
    // ... and does not claim what it could not read.
    assert_eq!(
        line("extraheader"),
        "[SKIP] extraheader: git's config could not be read: cannot run git (is it installed and on PATH?): program not found"
    );
    assert!(!out.status.success());
}

#[test]
fn a_token_too_long_for_the_credential_manager_is_cached_in_the_file() {
    let Some(setup) = wine_setup() else { return };
    // 60 selected repositories make a stateless token of over 1,300 characters: its cache entry
    // no longer fits a Credential Manager blob (2,560 bytes, the text stored as UTF-16).
    let names: Vec<String> = (0..60).map(|i| format!("service-number-{i:03}")).collect();
    let mut builder = GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .account(Account::org("acme"));
    for name in &names {
        builder = builder.repo("acme", name);
    }
    let gh = builder
        .installation(Installation::new(11, 1001, "acme").selected(names.clone()))
        .start()
        .unwrap();
    gh.set_token_format(TokenFormat::Stateless);
    let win = Windows::new(&gh, &setup, "auto");
    let token = token_of(&win.env.fill("acme/service-number-000.git"));
    assert!(token.len() > 1300, "{} characters", token.len());
    assert_eq!(
        token_of(&win.env.fill("acme/service-number-000.git")),
        token
    );
    assert_eq!(gh.mint_count(), 1, "the second get came from a cache");
    assert_eq!(
        win.token_files_holding(&token).len(),
        1,
        "the file cache took it"
    );
}

use crate::support::*;
use std::path::Path;

/// A gh-like helper: answers every `get` with its own user and password.
fn gh_like(home: &Path) -> String {
    let path = home.join("gh-like.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 0\ncat >/dev/null\necho username=gh-user\necho password=gho_from_gh_like\n",
    )
    .unwrap();
    chmod(&path, 0o755);
    format!("!{}", path.display())
}

/// A gitconfig holding the user's own helpers for the host: gh's pattern (empty reset, then gh)
/// and a plain `store`.
fn users_gitconfig(env: &Env) -> String {
    let text = format!(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n\
         [credential \"http://{host}\"]\n\thelper =\n\thelper = {gh}\n[credential]\n\thelper = store\n",
        host = env.host,
        gh = gh_like(&env.home)
    );
    std::fs::write(env.home.join(".gitconfig"), &text).unwrap();
    text
}

fn setup_args(env: &Env) -> Vec<String> {
    [
        "--app-id",
        "1001",
        "--private-key",
        &env.key_path.display().to_string(),
        "--host",
        &env.host,
        "--cache",
        "file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn helper_cmd(env: &Env, word: &str, extra: &[&str]) -> std::process::Output {
    run(
        env.command(HELPER)
            .arg(word)
            .args(setup_args(env))
            .args(extra),
        b"",
    )
}

fn gitconfig(env: &Env) -> String {
    std::fs::read_to_string(env.home.join(".gitconfig")).unwrap()
}

#[test]
fn setup_keeps_the_users_helpers_after_ours_and_unsetup_restores_the_file() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let before = users_gitconfig(&env);
    let gh_line = gh_like(&env.home);

    let out = helper_cmd(&env, "setup", &[]);
    assert_ok(&out);
    let url = format!("http://{}/", env.host);
    let ours = format!(
        "{HELPER} --app-id 1001 --private-key {} --host {} --cache file",
        env.key_path.display(),
        env.host
    );
    assert_eq!(
        stdout(&out),
        format!(
            "Configured git ({home}/.gitconfig) for {url}:\n    [credential \"{url}\"]\n        helper =\n        helper = {ours}\n        helper = {gh_line}\n        helper = store\n        useHttpPath = true\nCheck it: git-credential-github-app doctor --host {host}\nUndo it:  git-credential-github-app unsetup --host {host}\n",
            home = env.home.display(),
            host = env.host,
        )
    );
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: warning: helper 'store' runs after this one, and git hands it every token the app mints: it writes them in plain text to ~/.git-credentials. Tokens expire within an hour; remove that helper for {url} unless you need it.\n"
        )
    );
    // The user's file is untouched above our section.
    assert!(gitconfig(&env).starts_with(&before), "{}", gitconfig(&env));
    // git runs: the reset, ours, then the user's helpers, in that order.
    let helpers = env.git(&["config", "--get-all", &format!("credential.{url}.helper")]);
    assert_eq!(stdout(&helpers), format!("\n{ours}\n{gh_line}\nstore\n"));

    // An owner the app serves gets an installation token; one it does not serve is answered by
    // the user's gh-like helper, through real git.
    let served = env.fill("acme/widgets.git");
    token_of(&served);
    let other = env.fill("nobody/thing.git");
    assert_ok(&other);
    assert_eq!(field(&other, "username").as_deref(), Some("gh-user"));
    assert_eq!(
        field(&other, "password").as_deref(),
        Some("gho_from_gh_like")
    );
    // The warning was true: git handed the token of a clone to `store`.
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    let stored = std::fs::read_to_string(env.home.join(".git-credentials")).unwrap();
    assert!(stored.contains("x-access-token:ghs_"), "{stored}");

    let out = helper_cmd(&env, "unsetup", &[]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "Removed the setup for {url} from {}/.gitconfig; git's credential config there is as it was before.\n",
            env.home.display()
        )
    );
    assert_eq!(gitconfig(&env), before);
    // and again: nothing left to undo
    let out = helper_cmd(&env, "unsetup", &[]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("Nothing to undo: the global git config has no setup for {url}.\n")
    );
    // Without our helper, the served owner is the gh-like helper's again.
    let after = env.fill("acme/widgets.git");
    assert_eq!(
        field(&after, "password").as_deref(),
        Some("gho_from_gh_like")
    );
}

#[test]
fn setup_is_idempotent_and_options_go_after_the_word_too() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let before = users_gitconfig(&env);
    assert_ok(&helper_cmd(&env, "setup", &[]));
    let once = gitconfig(&env);
    // options before the command word, and a second run
    let out = run(env.command(HELPER).args(setup_args(&env)).arg("setup"), b"");
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("Reconfigured git"),
        "{}",
        stdout(&out)
    );
    assert_eq!(gitconfig(&env), once);
    token_of(&env.fill("octo/dotfiles.git"));
    assert_ok(&helper_cmd(&env, "unsetup", &[]));
    assert_eq!(gitconfig(&env), before);
}

#[test]
fn setup_from_an_empty_home_and_back() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    std::fs::remove_file(env.home.join(".gitconfig")).unwrap();
    let out = helper_cmd(&env, "setup", &[]);
    assert_ok(&out);
    assert_eq!(stderr(&out), "");
    token_of(&env.fill("acme/widgets.git"));
    assert_ok(&helper_cmd(&env, "unsetup", &[]));
    // The file stays (it may be a link into a dotfiles repository), empty as git sees it.
    assert_eq!(gitconfig(&env), "");
}

#[test]
fn setup_local_and_system_scopes() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let global = users_gitconfig(&env);
    // --local: inside a repository, only its .git/config changes
    assert_ok(&env.git(&["init", "--quiet", "repo"]));
    let repo = env.home.join("repo");
    let local_before = std::fs::read_to_string(repo.join(".git/config")).unwrap();
    let out = run(
        env.command(HELPER)
            .current_dir(&repo)
            .arg("setup")
            .arg("--local")
            .args(setup_args(&env)),
        b"",
    );
    assert_ok(&out);
    assert_eq!(gitconfig(&env), global);
    let local = std::fs::read_to_string(repo.join(".git/config")).unwrap();
    assert!(local.contains(&format!("[credential \"http://{}/\"]", env.host)));
    let fill = run(
        env.command("git")
            .current_dir(&repo)
            .args(["credential", "fill"]),
        format!("protocol=http\nhost={}\npath=acme/widgets.git\n", env.host).as_bytes(),
    );
    token_of(&fill);
    // outside the repository git does not use it
    assert_eq!(
        field(&env.fill("acme/widgets.git"), "password").as_deref(),
        Some("gho_from_gh_like")
    );
    let out = run(
        env.command(HELPER)
            .current_dir(&repo)
            .args(["unsetup", "--local", "--host", &env.host]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(repo.join(".git/config")).unwrap(),
        local_before
    );
    // --local outside a repository: git's refusal, nothing written
    let out = helper_cmd(&env, "setup", &["--local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("inside a git repository"),
        "{}",
        stderr(&out)
    );

    // --system: the file GIT_CONFIG_SYSTEM names, read by git before the user's ~/.gitconfig,
    // whose helpers (after ours in git's order) therefore still run after ours.
    let system = env.home.join("system-gitconfig");
    std::fs::write(&system, "[core]\n\tautocrlf = false\n").unwrap();
    let system_cmd = |args: &[&str]| {
        let mut cmd = env.command(HELPER);
        cmd.env_remove("GIT_CONFIG_NOSYSTEM")
            .env("GIT_CONFIG_SYSTEM", &system)
            .args(args);
        cmd
    };
    let mut cmd = system_cmd(&["setup", "--system"]);
    cmd.args(setup_args(&env));
    let out = run(&mut cmd, b"");
    assert_ok(&out);
    assert_eq!(gitconfig(&env), global);
    let text = std::fs::read_to_string(&system).unwrap();
    assert_eq!(
        text,
        format!(
            "[core]\n\tautocrlf = false\n[credential \"http://{host}/\"]\n\thelper = \n\thelper = {HELPER} --app-id 1001 --private-key {key} --host {host} --cache file\n\tuseHttpPath = true\n\tgithubAppSetup = helpers=2,useHttpPath\n",
            host = env.host,
            key = env.key_path.display()
        )
    );
    let mut fill = env.command("git");
    fill.env_remove("GIT_CONFIG_NOSYSTEM")
        .env("GIT_CONFIG_SYSTEM", &system)
        .args(["credential", "fill"]);
    // ~/.gitconfig's gh reset comes after the system file: it drops ours, as git decides, and
    // setup said so.
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: warning: git will not run this helper for http://{}/: the empty 'helper =' in file:{}/.gitconfig comes later and drops it\n",
            env.host,
            env.home.display()
        )
    );
    let out = run(
        &mut fill,
        format!("protocol=http\nhost={}\npath=acme/widgets.git\n", env.host).as_bytes(),
    );
    assert_eq!(field(&out, "password").as_deref(), Some("gho_from_gh_like"));
    let out = run(
        &mut system_cmd(&["unsetup", "--system", "--host", &env.host]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(&system).unwrap(),
        "[core]\n\tautocrlf = false\n"
    );
}

#[test]
fn setup_proactive_writes_proactive_auth_and_refuses_old_git() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let before = users_gitconfig(&env);
    // a git that says it is 2.45
    let bin = env.home.join("old-git");
    std::fs::create_dir_all(&bin).unwrap();
    let real_git = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        bin.join("git"),
        format!(
            "#!/bin/sh\n[ \"$1\" = version ] && {{ echo 'git version 2.45.2'; exit 0; }}\nexec {} \"$@\"\n",
            real_git.trim()
        ),
    )
    .unwrap();
    chmod(&bin.join("git"), 0o755);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = run(
        env.command(HELPER)
            .env("PATH", path)
            .arg("setup")
            .arg("--proactive")
            .args(setup_args(&env)),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: --proactive needs git 2.46 or later (http.<url>.proactiveAuth); this is git 2.45.2\n"
    );
    assert_eq!(gitconfig(&env), before);

    let git_version = stdout(&env.git(&["version"]));
    let minor: u32 = git_version
        .trim()
        .trim_start_matches("git version 2.")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if !git_version.starts_with("git version 2.") || minor < 46 {
        skip(&format!(
            "the proactive write needs git 2.46 or later: {}",
            git_version.trim()
        ));
        return;
    }
    let out = helper_cmd(&env, "setup", &["--proactive"]);
    assert_ok(&out);
    let url = format!("http://{}/", env.host);
    assert_eq!(
        stdout(&env.git(&["config", "--get", &format!("http.{url}.proactiveAuth")])),
        "basic\n"
    );
    assert!(stdout(&out).contains(&format!(
        "    [http \"{url}\"]\n        proactiveAuth = basic\n"
    )));
    assert_ok(&helper_cmd(&env, "unsetup", &[]));
    assert_eq!(gitconfig(&env), before);
}

#[test]
fn setup_over_an_older_install_sh_config_says_the_old_line_no_longer_runs() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    // what install.sh used to write: the user's own section with our line in it
    let before = gitconfig(&env);
    assert!(before.contains(&format!("[credential \"http://{}\"]", env.host)));
    let out = helper_cmd(&env, "setup", &[]);
    assert_ok(&out);
    let old_line = env.helper_line();
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: note: an older helper line of ours for http://{host} (file:{home}/.gitconfig) no longer runs; remove it if you like: git config --global --unset-all --fixed-value credential.http://{host}.helper '{old_line}'\n",
            host = env.host,
            home = env.home.display(),
        )
    );
    // git runs ours once: one mint for two fills, nothing of the old line after ours
    let url = format!("http://{}/", env.host);
    assert_eq!(
        stdout(&env.git(&["config", "--get-all", &format!("credential.{url}.helper")])),
        format!(
            "\n{HELPER} --app-id 1001 --private-key {} --host {} --cache file\n",
            env.key_path.display(),
            env.host
        )
    );
    token_of(&env.fill("acme/widgets.git"));
    assert_eq!(gh.mint_count(), 1);
    assert_ok(&helper_cmd(&env, "unsetup", &[]));
    assert_eq!(gitconfig(&env), before);
}

#[test]
fn setup_passes_a_pkcs11_uri_and_least_privilege_options_through_git_config() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    // A PIN in the URI is refused: it would sit in the git config and in every helper argv.
    let with_pin =
        "pkcs11:token=gh;object=app key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234";
    let refused = run(
        env.command(HELPER).args([
            "setup",
            "--app-id",
            "1001",
            "--private-key",
            with_pin,
            "--host",
            &env.host,
        ]),
        b"",
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "git-credential-github-app: the pkcs11: URI carries pin-value, which would be stored in the git config and shown by ps on every run; put the PIN in a file only you can read and use pin-source=file:/path/to/pin instead\n"
    );
    assert!(
        !std::fs::read_to_string(env.home.join(".gitconfig"))
            .unwrap_or_default()
            .contains("1234")
    );
    let uri = "pkcs11:token=gh;object=app key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/home/me/.pin";
    let out = run(
        env.command(HELPER).args([
            "setup",
            "--app-id",
            "1001",
            "--private-key",
            uri,
            "--host",
            &env.host,
            "--permissions",
            "contents:read",
            "--repo-scoped",
        ]),
        b"",
    );
    assert_ok(&out);
    let url = format!("http://{}/", env.host);
    let helpers = env.git(&["config", "--get-all", &format!("credential.{url}.helper")]);
    let ours = stdout(&helpers)
        .lines()
        .find(|l| l.starts_with(HELPER) || l.starts_with(&format!("'{HELPER}")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", stdout(&helpers)));
    let words = git_credential_github_app::gitconfig::shell_words(&ours).unwrap();
    assert_eq!(
        words[1..],
        [
            "--app-id",
            "1001",
            "--private-key",
            uri,
            "--host",
            &env.host,
            "--permissions",
            "contents:read",
            "--repo-scoped"
        ],
        "{ours}"
    );
}

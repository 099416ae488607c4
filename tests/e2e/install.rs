use crate::support::*;
use std::process::Command;

#[test]
fn install_sh_installs_and_configures_git_idempotently_keeping_the_users_helpers() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    // start from a HOME whose git config has the user's own helper for the host (the pattern
    // `gh auth setup-git` writes): install.sh used to delete it
    let theirs = env.home.join("theirs.sh");
    std::fs::write(
        &theirs,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 0\ncat >/dev/null\necho username=me\necho password=theirs\n",
    )
    .unwrap();
    chmod(&theirs, 0o755);
    let url = format!("http://{}", env.host);
    let before = format!(
        "[user]\n\tname = T\n\temail = t@example.com\n[credential \"{url}\"]\n\thelper =\n\thelper = !{}\n",
        theirs.display()
    );
    std::fs::write(env.home.join(".gitconfig"), &before).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
    let prefix = env.home.join("bin");
    let key = env.key_path.display().to_string();
    for run_no in 0..2 {
        let out = run(
            env.command("bash").args([
                script,
                "--binary",
                HELPER,
                "--prefix",
                &prefix.display().to_string(),
                "--app-id",
                "1001",
                "--private-key",
                &key,
                "--host",
                &url,
            ]),
            b"",
        );
        assert_ok(&out);
        let configured = if run_no == 0 {
            "Configured git"
        } else {
            "Reconfigured git"
        };
        assert!(stdout(&out).contains(configured), "{}", stdout(&out));
    }
    let installed = prefix.join("git-credential-github-app");
    assert!(installed.exists());
    // The bash completion and the man page, from the installed binary, for this user; no fish
    // completion where fish is not set up; nothing half-written left behind.
    let share = env.home.join(".local/share");
    for (file, args) in [
        (
            share.join("bash-completion/completions/git-credential-github-app"),
            &["completions", "bash"][..],
        ),
        (share.join("man/man1/git-credential-github-app.1"), &["man"]),
    ] {
        let expected = run(Command::new(HELPER).args(args), b"").stdout;
        assert_eq!(
            std::fs::read(&file).ok(),
            Some(expected),
            "{}",
            file.display()
        );
        let dir = std::fs::read_dir(file.parent().unwrap()).unwrap();
        assert_eq!(dir.count(), 1, "{}", file.display());
    }
    assert!(!env.home.join(".config/fish").exists());
    let helpers = env.git(&[
        "config",
        "--global",
        "--get-all",
        &format!("credential.{url}/.helper"),
    ]);
    let lines: Vec<String> = stdout(&helpers).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            String::new(),
            format!(
                "{} --app-id 1001 --private-key {key} --host {url}",
                installed.display()
            ),
            format!("!{}", theirs.display()),
        ],
        "the empty reset, ours once, then the user's helper"
    );
    assert_eq!(
        stdout(&env.git(&[
            "config",
            "--global",
            &format!("credential.{url}/.useHttpPath")
        ]))
        .trim(),
        "true"
    );
    // git now clones through the installed helper, and owners the app does not serve still get
    // the user's helper's answer
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_eq!(gh.mint_count(), 1);
    let other = env.fill("nobody/thing.git");
    assert_eq!(field(&other, "password").as_deref(), Some("theirs"));
    // and the installed binary undoes it
    assert_ok(&run(
        env.command(&installed.display().to_string())
            .args(["unsetup", "--host", &url]),
        b"",
    ));
    assert_eq!(
        std::fs::read_to_string(env.home.join(".gitconfig")).unwrap(),
        before
    );
}

#[test]
fn install_sh_refuses_half_a_configuration() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
    let out = run(
        env.command("bash")
            .args([script, "--binary", HELPER, "--app-id", "1001"]),
        b"",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--app-id needs --private-key"),
        "{}",
        stderr(&out)
    );
    // setup's options without an app: refused before anything is installed
    let prefix = env.home.join("bin");
    let out = run(
        env.command("bash").args([
            script,
            "--binary",
            HELPER,
            "--prefix",
            &prefix.display().to_string(),
            "--owner",
            "acme",
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "install.sh: --owner is an option of setup, which needs the app: add --app-id ID --private-key PATH (or run without it to only install the binary)\n"
    );
    assert!(!prefix.exists());
}

#[test]
fn install_sh_checks_the_key_file_and_the_binary_before_building_or_installing() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
    let prefix = env.home.join("bin");
    let prefix_s = prefix.display().to_string();
    let missing = env.home.join("missing.pem").display().to_string();
    // No cargo on PATH: a check that came after the build would fail on cargo instead.
    let out = run(
        env.command("bash").env("PATH", "/usr/bin:/bin").args([
            script,
            "--prefix",
            &prefix_s,
            "--app-id",
            "1001",
            "--private-key",
            &missing,
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "install.sh: no private key file at {missing} (--private-key takes the app's .pem file, a pkcs11: URI or an AWS KMS key ARN)\n"
        )
    );
    let out = run(
        env.command("bash")
            .args([script, "--prefix", &prefix_s, "--binary", &missing]),
        b"",
    );
    assert_eq!(
        stderr(&out),
        format!("install.sh: --binary {missing} is not an executable file\n")
    );
    assert!(!prefix.exists(), "nothing installed");
}

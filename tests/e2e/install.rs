use crate::flows::world;
use crate::support::*;

#[test]
fn install_sh_installs_and_configures_git_idempotently() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    // start from a HOME whose git config has no helper for the host
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = T\n\temail = t@example.com\n",
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
    let prefix = env.home.join("bin");
    let url = format!("http://{}", env.host);
    let key = env.key_path.display().to_string();
    for _ in 0..2 {
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
        assert!(stdout(&out).contains("Configured git"), "{}", stdout(&out));
    }
    let installed = prefix.join("git-credential-github-app");
    assert!(installed.exists());
    let helpers = env.git(&[
        "config",
        "--global",
        "--get-all",
        &format!("credential.{url}.helper"),
    ]);
    let lines: Vec<String> = stdout(&helpers).lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        2,
        "an empty reset line and ours, once: {lines:?}"
    );
    assert_eq!(lines[0], "");
    assert!(
        lines[1].starts_with(&installed.display().to_string())
            && lines[1].contains("--app-id 1001"),
        "{lines:?}"
    );
    assert_eq!(
        stdout(&env.git(&[
            "config",
            "--global",
            &format!("credential.{url}.useHttpPath")
        ]))
        .trim(),
        "true"
    );
    // and git now clones through the installed helper
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_eq!(gh.mint_count(), 1);
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
}

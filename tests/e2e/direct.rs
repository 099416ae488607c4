use crate::support::*;

fn refused(env: &Env, input: &[u8]) -> String {
    let out = env.helper(&["get"], input);
    assert!(!out.status.success(), "accepted {input:?}");
    assert_eq!(stdout(&out), "", "{input:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("git-credential-github-app: "), "{err}");
    err
}

#[test]
fn hostile_requests_are_refused_with_one_line() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let h = env.host.clone();
    assert!(
        refused(
            &env,
            format!("protocol=http\nhost={h}\rhost=evil\npath=acme/widgets\n").as_bytes()
        )
        .contains("carriage return")
    );
    assert!(
        refused(
            &env,
            format!("protocol=http\nhost={h}\npath=acme/wid\0gets\n").as_bytes()
        )
        .contains("NUL")
    );
    assert!(refused(&env, b"protocol=http\n").contains("without a 'host'"));
    assert!(refused(&env, format!("host={h}\n").as_bytes()).contains("without a 'protocol'"));
    assert!(
        refused(
            &env,
            format!("protocol=http\nhost={h}\nhost={h}\n").as_bytes()
        )
        .contains("repeats 'host'")
    );
    assert!(
        refused(
            &env,
            format!("protocol=http\nhost={h}\npath=acme/..\n").as_bytes()
        )
        .contains("refusing repository path")
    );
    assert!(
        refused(&env, format!("url=http://{h}/%2e%2e/widgets\n").as_bytes())
            .contains("refusing repository path")
    );
    assert!(refused(&env, &[b'x'; 2 << 20]).contains("over"));
    let mut non_utf8 = format!("protocol=http\nhost={h}\npath=").into_bytes();
    non_utf8.extend_from_slice(b"\xff\n");
    assert!(refused(&env, &non_utf8).contains("not UTF-8"));
    assert_eq!(gh.requests().len(), 0);
}

#[test]
fn url_form_and_unknown_keys_are_understood() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let input = format!(
        "capability[]=authtype\ncapability[]=state\nurl=http://{}/octo/dotfiles.git\nwwwauth[]=Basic realm=\"GitHub\"\nstate[]=x\nfuture=1\n",
        env.host
    );
    let out = env.helper(&["get"], input.as_bytes());
    assert_ok(&out);
    assert_eq!(field(&out, "username").as_deref(), Some("x-access-token"));
    assert!(field(&out, "password").is_some());
}

#[test]
fn store_and_unknown_operations_are_silent() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\nusername=x-access-token\npassword=ghs_x\n",
        env.host
    );
    for op in ["store", "capability", "frobnicate"] {
        let out = env.helper(&[op], input.as_bytes());
        assert_ok(&out);
        assert_eq!(
            (stdout(&out), stderr(&out)),
            (String::new(), String::new()),
            "{op}"
        );
    }
    let approve = run(
        env.command("git").args(["credential", "approve"]),
        input.as_bytes(),
    );
    assert_ok(&approve);
    assert_eq!(stderr(&approve), "");
    assert_eq!(gh.requests().len(), 0);
}

#[test]
fn help_and_version() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = run(env.command(HELPER).arg("--help"), b"");
    assert_ok(&out);
    assert!(stdout(&out).contains("--app-id"));
    assert!(stdout(&out).contains("useHttpPath = true"));
    let out = run(env.command(HELPER).arg("--version"), b"");
    assert_eq!(
        stdout(&out),
        format!("git-credential-github-app {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(env.command(HELPER).arg("--bogus"), b"");
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
}

#[test]
fn trace_shows_the_flow_with_tokens_masked() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let first = env.fill("acme/widgets.git");
    assert_ok(&first);
    let token = field(&first, "password").unwrap();
    let second = env.fill("acme/widgets.git");
    let reject = env.reject("acme/widgets.git", &token);
    let key = gh.app(1001).private_key_pem().to_owned();
    let key_body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for out in [&first, &second, &reject] {
        let err = stderr(out);
        assert!(err.contains("trace:"), "{err}");
        assert!(!err.contains(&token), "token leaked: {err}");
        assert!(!err.contains(&token[4..20]), "token part leaked: {err}");
        for line in &key_body {
            assert!(!err.contains(line), "key leaked: {err}");
        }
        assert!(!err.contains("eyJ"), "a JWT leaked: {err}");
    }
    let err = stderr(&first);
    assert!(err.contains("installation 11"), "{err}");
    assert_eq!(
        err.matches("JWT signed in").count(),
        1,
        "one JWT serves the lookup and the mint: {err}"
    );
    assert!(err.contains("minted token sha256:"), "{err}");
    assert!(stderr(&second).contains("cache hit"), "{}", stderr(&second));
    assert!(
        stderr(&reject).contains("dropping cached token"),
        "{}",
        stderr(&reject)
    );
}

#[test]
fn key_problems_are_named() {
    let gh = world();
    let cases = [
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "OpenSSH key",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n",
            "public key",
        ),
        (
            "0123456789abcdef0123456789abcdef01234567\n",
            "client secret",
        ),
    ];
    for (pem, expected) in cases {
        let env = Env::with_key(&gh, 1001, pem);
        let out = env.fill("octo/dotfiles.git");
        assert_eq!(
            field(&out, "password").as_deref(),
            Some("askpass-answer"),
            "git fell back to askpass"
        );
        let err = stderr(&out);
        assert!(
            err.contains(expected) && err.contains(&env.key_path.display().to_string()),
            "{err}"
        );
    }
    let env = Env::new(&gh, 1001);
    std::fs::remove_file(&env.key_path).unwrap();
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(
        err.contains(&format!("{} does not exist", env.key_path.display())),
        "{err}"
    );
    assert_eq!(gh.mint_count(), 0);
}

#[test]
fn a_key_of_another_app_is_reported_plainly() {
    let gh = local_github::GitHub::builder()
        .app(local_github::App::new(1001, "ci-bot"))
        .app(local_github::App::new_unique_key(3003, "other"))
        .account(local_github::Account::user("octo"))
        .repo("octo", "dotfiles")
        .installation(local_github::Installation::new(12, 1001, "octo").all())
        .start()
        .unwrap();
    let other_key = gh.app(3003).private_key_pem().to_owned();
    let env = Env::with_key(&gh, 1001, &other_key);
    let out = env.fill("octo/dotfiles.git");
    let err = stderr(&out);
    assert!(err.contains("does not belong to app 1001"), "{err}");
    assert!(
        err.contains("A JSON web token could not be decoded"),
        "{err}"
    );
    assert_eq!(
        field(&out, "password"),
        Some("askpass-answer".into()),
        "git fell back to askpass"
    );
}

#[test]
fn group_readable_key_gets_a_warning() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    chmod(&env.key_path, 0o644);
    let out = env.fill("octo/dotfiles.git");
    assert_ok(&out);
    assert!(
        stderr(&out).contains("readable by others (mode 644)"),
        "{}",
        stderr(&out)
    );
}

use crate::support::*;
use local_github::{Account, App, GitHub, Installation};
use std::time::{Duration, Instant};

pub fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .account(Account::user("octo"))
        .repo("octo", "dotfiles")
        .installation(
            Installation::new(12, 1001, "octo")
                .all()
                .permissions([("contents", "write"), ("metadata", "read")]),
        )
        .start()
        .unwrap()
}

/// The app configured only through the config file, its key signed by `signer` (TOML list text).
fn with_signer(gh: &GitHub, signer: &str, extra: &str) -> Env {
    let mut env = Env::new(gh, 1001);
    env.write_config(
        &[],
        &format!(
            "cache = \"file\"\n[[app]]\napp_id = 1001\nhost = \"{}\"\nsigner = {signer}\n{extra}",
            gh.host()
        ),
    );
    env.set_flags(&[]);
    env
}

fn toml_str(path: &std::path::Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn public_key_file(env: &Env) -> std::path::PathBuf {
    let public = env.home.join("app.pub.pem");
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&env.key_path)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap();
    assert_ok(&out);
    public
}

fn commit_and_push(env: &Env, dir: &str) -> std::process::Output {
    std::fs::write(env.home.join(dir).join("signed.txt"), "signed elsewhere\n").unwrap();
    assert_ok(&env.git(&["-C", dir, "add", "signed.txt"]));
    assert_ok(&env.git(&["-C", dir, "commit", "--quiet", "-m", "signed"]));
    env.git(&["-C", dir, "push", "--quiet", "origin", "main"])
}

#[test]
fn openssl_as_the_signer_clones_and_pushes() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = world();
    let probe = Env::new(&gh, 1001);
    let public = public_key_file(&probe);
    let signer = format!(
        "[\"openssl\", \"dgst\", \"-sha256\", \"-sign\", {}]",
        toml_str(&probe.key_path)
    );
    let env = with_signer(
        &gh,
        &signer,
        &format!("public_key = {}\n", toml_str(&public)),
    );
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_ok(&commit_and_push(&env, "octo-dotfiles"));
    assert_eq!(gh.mint_count(), 1);
}

#[test]
fn a_signer_printing_base64_works_without_a_public_key() {
    if !have(&["openssl", "base64"]) {
        return;
    }
    let gh = world();
    let probe = Env::new(&gh, 1001);
    let signer = format!(
        "[\"sh\", \"-c\", \"openssl dgst -sha256 -sign \\\"$0\\\" | base64\", {}]",
        toml_str(&probe.key_path)
    );
    let env = with_signer(&gh, &signer, "");
    token_of(&env.fill("octo/dotfiles.git"));
}

#[test]
fn a_failing_signer_is_named_with_its_stderr_masked() {
    let gh = world();
    let env = with_signer(
        &gh,
        r#"["sh", "-c", "echo 'permission denied for token hvs.CAESIJx9k2Lq8Zr7Tq0VvW3yN5' >&2; echo more >&2; exit 3"]"#,
        "",
    );
    let out = env.fill("octo/dotfiles.git");
    assert_eq!(field(&out, "password").as_deref(), Some("askpass-answer"));
    let err = stderr(&out);
    assert!(
        err.contains(
            "signer command 'sh' exited with status 3: permission denied for token [masked] more"
        ),
        "{err}"
    );
    assert!(!err.contains("CAESIJ"), "{err}");
    assert_eq!(gh.mint_count(), 0);
}

#[test]
fn a_hanging_signer_is_stopped_within_the_time_budget() {
    let gh = world();
    let mut env = with_signer(&gh, r#"["sh", "-c", "sleep 30; sleep 30"]"#, "");
    env.add_flags(&["--timeout", "2s"]);
    let started = Instant::now();
    let out = env.fill("octo/dotfiles.git");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert!(
        err.contains("signer command 'sh' did not answer within the time budget and was stopped"),
        "{err}"
    );
}

#[test]
fn a_signer_printing_garbage_is_refused_before_github_sees_it() {
    let gh = world();
    let env = with_signer(&gh, r#"["echo", "hello"]"#, "");
    let out = env.fill("octo/dotfiles.git");
    let err = stderr(&out);
    assert!(
        err.contains("signer command 'echo' printed 6 bytes that are not an RSA signature"),
        "{err}"
    );
    assert_eq!(gh.lookup_count() + gh.mint_count(), 0);
}

#[test]
fn a_signer_with_another_key_is_caught_by_its_public_key() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = world();
    let probe = Env::new(&gh, 1001);
    let public = public_key_file(&probe);
    let other = probe.home.join("other.pem");
    assert_ok(
        &std::process::Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&other)
            .arg("2048")
            .output()
            .unwrap(),
    );
    let signer = format!(
        "[\"openssl\", \"dgst\", \"-sha256\", \"-sign\", {}]",
        toml_str(&other)
    );
    let env = with_signer(
        &gh,
        &signer,
        &format!("public_key = {}\n", toml_str(&public)),
    );
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(
        err.contains(
            "signer command 'openssl' returned a signature that does not verify with public_key"
        ),
        "{err}"
    );
    assert_eq!(gh.lookup_count() + gh.mint_count(), 0);
}

#[test]
fn a_missing_signer_program_is_one_line() {
    let gh = world();
    let env = with_signer(&gh, r#"["no-such-signer-program", "x"]"#, "");
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(
        err.contains("signer command 'no-such-signer-program' was not found"),
        "{err}"
    );
}

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

/// A SoftHSM2 token 'github' (user PIN 1234) holding the app's key as 'gh-app', id 01; the PEM it
/// was imported from is deleted. The helper finds the token through SOFTHSM2_CONF.
struct SoftHsm {
    module: String,
}

fn softhsm(gh: &GitHub, env: &mut Env) -> Option<SoftHsm> {
    if !have(&["softhsm2-util"]) {
        return None;
    }
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("softhsm2-util is installed but libsofthsm2.so was not found");
    let tokens = env.home.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = env.home.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let util = |args: &[&str]| {
        let out = std::process::Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(args)
            .output()
            .unwrap();
        assert_ok(&out);
    };
    util(&[
        "--init-token",
        "--free",
        "--label",
        "github",
        "--pin",
        "1234",
        "--so-pin",
        "123456",
    ]);
    let pkcs8 = env.home.join("app.pkcs8.pem");
    write_0600(&pkcs8, &gh.app(1001).private_key_pkcs8_pem());
    util(&[
        "--import",
        &pkcs8.display().to_string(),
        "--token",
        "github",
        "--label",
        "gh-app",
        "--id",
        "01",
        "--pin",
        "1234",
    ]);
    std::fs::remove_file(&pkcs8).unwrap();
    std::fs::remove_file(&env.key_path).unwrap();
    env.set_env("SOFTHSM2_CONF", &conf.display().to_string());
    Some(SoftHsm {
        module: module.to_owned(),
    })
}

/// The helper line with `--private-key 'URI'`: single-quoted for the shell git runs it with, and
/// the whole value double-quoted in ~/.gitconfig, where `;` would start a comment.
fn use_uri(env: &mut Env, gh: &GitHub, uri: &str) {
    env.set_flags(&[]);
    let line = format!(
        "{} --app-id 1001 --private-key '{uri}' --host {} --cache file",
        HELPER,
        gh.host()
    );
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper =\n\thelper = \"{}\"\n",
        env.git_url,
        line.replace('\\', "\\\\").replace('"', "\\\"")
    ));
}

#[test]
fn softhsm2_token_clones_and_pushes_with_the_pem_deleted() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let Some(hsm) = softhsm(&gh, &mut env) else {
        return;
    };
    let pin = env.home.join("pin");
    write_0600(&pin, "1234\n");
    let uri = format!(
        "pkcs11:token=github;object=gh-app;type=private?module-path={}&pin-source=file:{}",
        hsm.module,
        pin.display()
    );
    use_uri(&mut env, &gh, &uri);
    assert!(!env.key_path.exists());
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_ok(&commit_and_push(&env, "octo-dotfiles"));
    assert_eq!(gh.mint_count(), 1);
    // pin-value and id= work too
    let uri = format!(
        "pkcs11:token=github;id=%01?module-path={}&pin-value=1234",
        hsm.module
    );
    use_uri(&mut env, &gh, &uri);
    let cache = env.cache_dir();
    std::fs::remove_dir_all(cache).unwrap();
    token_of(&env.fill("octo/dotfiles.git"));
    assert_eq!(gh.mint_count(), 2);
}

#[test]
fn softhsm2_errors_are_one_line_without_the_pin() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let Some(hsm) = softhsm(&gh, &mut env) else {
        return;
    };
    let m = &hsm.module;
    for (uri, expected) in [
        (
            format!("pkcs11:token=github;object=gh-app?module-path={m}&pin-value=987654"),
            "the PIN for PKCS#11 key 'gh-app' on token 'github' is wrong (CKR_PIN_INCORRECT); check pin-value or pin-source",
        ),
        (
            format!("pkcs11:token=github;object=nope?module-path={m}&pin-value=1234"),
            "PKCS#11 key 'nope' on token 'github' does not exist",
        ),
        (
            format!("pkcs11:token=gitlab;object=gh-app?module-path={m}&pin-value=1234"),
            "has no token 'gitlab'; its tokens: 'github'",
        ),
        (
            "pkcs11:token=github;object=gh-app?module-path=/opt/none/libpkcs11.so&pin-value=1234"
                .to_owned(),
            "PKCS#11 module /opt/none/libpkcs11.so does not exist",
        ),
        (
            format!("pkcs11:token=github;object=gh-app?module-path={m}"),
            "needs a PIN: add pin-source=file:",
        ),
    ] {
        use_uri(&mut env, &gh, &uri);
        let out = env.fill("octo/dotfiles.git");
        let err = stderr(&out);
        assert!(err.contains(expected), "{uri}\n{err}");
        assert!(!err.contains("987654"), "{err}");
        assert_eq!(
            err.lines().filter(|l| !l.starts_with("askpass")).count(),
            1,
            "{err}"
        );
    }
    assert_eq!(gh.mint_count(), 0);
}

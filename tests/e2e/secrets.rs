//! Secrets stay secret: with tracing on, no path of the helper prints a token, the JWT or any
//! part of the private key.

use crate::support::*;
use local_github::{Fault, FaultAction, GitHub};
use std::process::Output;

const MINT: &str = "/api/v3/app/installations/";

/// Everything secret the helper ever held: issued tokens, the key's body lines.
fn assert_clean(gh: &GitHub, out: &Output, what: &str) {
    let err = stderr(out);
    for t in gh.tokens() {
        assert!(!err.contains(&t.token), "{what}: token leaked: {err}");
        assert!(
            !err.contains(&t.token[4..16]),
            "{what}: part of a token leaked: {err}"
        );
    }
    for app in gh.apps() {
        for pem in [app.private_key_pem(), app.private_key_pkcs8_pem()] {
            for line in pem.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!err.contains(line), "{what}: key material leaked: {err}");
            }
        }
    }
    assert!(!err.contains("eyJ"), "{what}: a JWT leaked: {err}");
    assert!(
        !err.contains("Bearer "),
        "{what}: an Authorization header leaked: {err}"
    );
}

#[test]
fn no_path_leaks_a_token_a_jwt_or_the_key_with_trace_on() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let mut outputs: Vec<(&str, Output)> = Vec::new();

    outputs.push(("cold get", env.fill("acme/widgets.git")));
    outputs.push(("cached get", env.fill("acme/widgets.git")));
    let token = field(&outputs[0].1, "password").unwrap();
    outputs.push(("erase", env.reject("acme/widgets.git", &token)));
    outputs.push(("clone", env.clone_repo("acme", "widgets")));

    gh.set_clock_offset(-900);
    outputs.push(("clock skew", env.fill("octo/dotfiles.git")));
    gh.set_clock_offset(0);

    gh.inject(Fault::new(MINT, FaultAction::github_error(502, "Server Error")).method("POST"));
    outputs.push(("retry", env.fill("nobody/thing.git")));
    gh.suspend(11);
    let t = field(&env.fill("acme/widgets.git"), "password").unwrap();
    assert_ok(&env.reject("acme/widgets.git", &t));
    outputs.push(("suspended", env.fill("acme/widgets.git")));
    gh.inject(Fault::new(MINT, FaultAction::json(201, serde_json::json!({"token": "ghs_bad token with spaces", "expires_at": "2030-01-01T00:00:00Z"}))).method("POST"));
    let t = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    assert_ok(&env.reject("octo/dotfiles.git", &t));
    outputs.push(("bad token answer", env.fill("octo/dotfiles.git")));

    let other = GitHub::builder()
        .app(local_github::App::new_unique_key(5005, "other"))
        .start()
        .unwrap();
    let wrong_key = Env::with_key(&gh, 1001, &other.app(5005).private_key_pem());
    let mut wrong_key = wrong_key;
    wrong_key.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    outputs.push(("key of another app", wrong_key.fill("octo/dotfiles.git")));

    let mut env_key = Env::new(&gh, 1001);
    let host = env_key.host.clone();
    env_key.set_flags(&["--host", &host, "--cache", "file", "--verbose"]);
    env_key.set_env("GITHUB_APP_ID", "1001");
    env_key.set_env("GITHUB_APP_PRIVATE_KEY", &gh.app(1001).private_key_pem());
    outputs.push((
        "key from the environment",
        env_key.fill("octo/dotfiles.git"),
    ));
    env_key.set_env(
        "GITHUB_APP_PRIVATE_KEY",
        &gh.app(1001).private_key_pem().replace("MII", "MIX"),
    );
    outputs.push((
        "damaged key from the environment",
        env_key.fill("octo/dotfiles.git"),
    ));

    for (what, out) in &outputs {
        assert!(stderr(out).contains("trace:"), "{what}: trace was on");
        assert_clean(&gh, out, what);
        assert_clean(&other, out, what);
    }
}

#[test]
fn key_formats_people_paste_are_accepted_and_wrong_ones_named() {
    let gh = world();
    use base64::Engine;
    let pem = gh.app(1001).private_key_pem();
    // the whole PEM base64-encoded once more, as some CI secret stores want it
    let mut env = Env::new(&gh, 1001);
    let host = env.host.clone();
    env.set_flags(&["--host", &host, "--cache", "none"]);
    env.set_env("GITHUB_APP_ID", "1001");
    env.set_env(
        "GITHUB_APP_PRIVATE_KEY",
        &base64::engine::general_purpose::STANDARD.encode(&pem),
    );
    assert_ok(&env.clone_repo("octo", "dotfiles"));

    if !have(&["openssl"]) {
        return;
    }
    // a real EC key (SEC1 and PKCS#8) from openssl
    for (args, expected) in [
        (
            vec!["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
            "EC key",
        ),
        (
            vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            "not an RSA key",
        ),
        (vec!["genpkey", "-algorithm", "ed25519"], "not an RSA key"),
    ] {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success());
        let env = Env::with_key(&gh, 1001, &String::from_utf8(out.stdout).unwrap());
        let err = stderr(&env.fill("octo/dotfiles.git"));
        assert!(
            err.contains(expected) && err.contains("app.pem"),
            "{args:?}: {err}"
        );
    }
    // an encrypted key
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-aes256",
            "-pass",
            "pass:x",
        ])
        .output()
        .unwrap();
    let env = Env::with_key(&gh, 1001, &String::from_utf8(out.stdout).unwrap());
    assert!(stderr(&env.fill("octo/dotfiles.git")).contains("encrypted with a passphrase"));
    // an app id that is neither a number nor a client id
    let mut env = Env::new(&gh, 1001);
    let key = env.key_path.display().to_string();
    env.set_flags(&["--app-id", "my-app", "--private-key", &key, "--host", &host]);
    let out = env.fill("octo/dotfiles.git");
    assert!(
        stderr(&out).contains("neither a numeric App ID nor a client ID"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gh.mint_count(), 1);
}

/// Issue 17 item 4: what setup and doctor print never holds a secret a user put in the wrong
/// place: a PEM as --config, a token as public_key, signer, --repo or a remote's user name, an
/// inline password in a helper line, a PKCS#11 PIN.
#[test]
fn no_secret_on_screen_in_setup_and_doctor() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let pem = gh.app(1001).private_key_pem().to_owned();
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&pem)
    };
    let pat = "ghp_R3dTeamPastedThisTokenHere0123456789";
    let key_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let check = |what: &str, out: &Output, secrets: &[&str]| {
        let all = format!("{}{}", stdout(out), stderr(out));
        for s in secrets.iter().chain(key_lines.iter()) {
            assert!(!all.contains(s), "{what}: {s} shown:\n{all}");
        }
        assert!(
            !all.contains(&b64[..40]),
            "{what}: base64 key shown:\n{all}"
        );
    };
    let doctor = |args: &[&str]| {
        run(
            env.command(HELPER)
                .arg("doctor")
                .args(["--host", &env.host, "--timeout", "5s"])
                .args(args),
            b"",
        )
    };
    // A PEM (or its base64) where a config file path goes.
    check("--config PEM", &doctor(&["--config", &pem]), &[]);
    check("--config base64", &doctor(&["--config", &b64]), &[]);
    check(
        "token --config PEM",
        &run(
            env.command(HELPER)
                .args(["token", "acme", "--config", &pem]),
            b"",
        ),
        &[],
    );
    check(
        "env config base64",
        &run(
            env.command(HELPER)
                .env("GIT_CREDENTIAL_GITHUB_APP_CONFIG", &b64)
                .args(["doctor", "--host", &env.host]),
            b"",
        ),
        &[],
    );
    // A token as --repo.
    check("--repo PAT", &doctor(&["--repo", pat]), &[pat]);
    check(
        "--repo PAT/x",
        &doctor(&["--repo", &format!("{pat}/x")]),
        &[pat],
    );
    // A token as the signer or its public_key.
    let config = env.home.join("signer.toml");
    std::fs::write(
        &config,
        format!(
            "[[app]]\napp_id = 1001\nhost = \"{}\"\nsigner = [\"{pat}\"]\n",
            env.host
        ),
    )
    .unwrap();
    check(
        "signer PAT",
        &doctor(&["--config", config.to_str().unwrap()]),
        &[pat],
    );
    std::fs::write(
        &config,
        format!(
            "[[app]]\napp_id = 1001\nhost = \"{}\"\nsigner = [\"openssl\", \"dgst\"]\npublic_key = \"{pat}\"\n",
            env.host
        ),
    )
    .unwrap();
    check(
        "public_key PAT",
        &doctor(&["--config", config.to_str().unwrap()]),
        &[pat],
    );

    // A token as a remote URL's user name, and a helper line with an inline password.
    let token = "ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    assert_ok(&env.git(&["init", "--quiet", "repo"]));
    let repo = env.home.join("repo");
    let in_repo = |args: &[&str]| run(env.command("git").current_dir(&repo).args(args), b"");
    assert_ok(&in_repo(&[
        "remote",
        "add",
        "origin",
        &format!(
            "{}/acme/widgets.git",
            env.git_url.replace("://", &format!("://{token}@"))
        ),
    ]));
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper = \"!f() {{ echo username=me; echo password=hunter2pass; }}; f\"\n",
        env.git_url
    ));
    for json in [false, true] {
        let mut cmd = env.command(HELPER);
        cmd.current_dir(&repo).args(["doctor", "--host", &env.host]);
        if json {
            cmd.arg("--json");
        }
        let out = run(&mut cmd, b"");
        check(
            "remote user token",
            &out,
            &[token, "hunter2pass", &token[4..16]],
        );
        assert!(stdout(&out).contains("[masked]"), "{}", stdout(&out));
    }

    // setup: a PIN in a URI with leading white space, and an older helper line carrying one.
    let with_pin = "  pkcs11:token=gh;object=k?module-path=/m.so&pin-value=987654";
    let out = run(
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
    assert_eq!(out.status.code(), Some(1));
    check("setup pin-value", &out, &["987654"]);
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper = {HELPER} --app-id 1001 --private-key 'pkcs11:object=k?module-path=/m.so&pin-value=987654'\n",
        env.git_url
    ));
    let out = run(
        env.command(HELPER).args([
            "setup",
            "--app-id",
            "1001",
            "--private-key",
            env.key_path.to_str().unwrap(),
            "--host",
            &env.host,
        ]),
        b"",
    );
    assert_ok(&out);
    assert!(
        stderr(&out).contains("pin-value=[masked]"),
        "{}",
        stderr(&out)
    );
    check("setup older line", &out, &["987654", "hunter2pass"]);
}

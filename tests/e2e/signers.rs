use crate::support::*;
use local_github::{App, GitHub};
use std::time::{Duration, Instant};

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

/// moto's AWS server (KMS, STS, IAM) on a loopback port, stopped when dropped.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn moto(extra_env: &[(&str, &str)]) -> Option<Moto> {
    if !have(&["python3:moto.server", "python3:boto3"]) {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = std::process::Command::new("python3");
    command
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let moto = Moto {
        child: command.spawn().unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

/// Run a boto3 snippet against moto (`kms`, `iam` clients ready); its stdout.
fn boto3(moto: &Moto, script: &str) -> String {
    let program = format!(
        "import boto3, base64, json\n\
         def client(name, key='testing', secret='testing'):\n    \
             return boto3.client(name, region_name='us-east-1', endpoint_url='{}', aws_access_key_id=key, aws_secret_access_key=secret)\n\
         kms = client('kms')\niam = client('iam')\n{script}",
        moto.url
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert_ok(&out);
    stdout(&out)
}

/// A KMS RSA_2048 SIGN_VERIFY key (and alias/github-app) in moto; the local GitHub trusts its
/// public key for app 1001. Returns (GitHub, key ARN, alias ARN).
pub(crate) fn kms_world(moto: &Moto) -> (GitHub, String, String) {
    let out = boto3(
        moto,
        "k = kms.create_key(KeySpec='RSA_2048', KeyUsage='SIGN_VERIFY')['KeyMetadata']\n\
         kms.create_alias(AliasName='alias/github-app', TargetKeyId=k['KeyId'])\n\
         pub = kms.get_public_key(KeyId=k['KeyId'])['PublicKey']\n\
         print(k['Arn']); print(base64.b64encode(pub).decode())\n",
    );
    let mut lines = out.lines();
    let arn = lines.next().unwrap().to_owned();
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        lines.next().unwrap(),
    )
    .unwrap();
    let gh = world_builder(App::with_key(
        1001,
        "ci-bot",
        local_github::AppKey::from_public_der(&der).unwrap(),
    ))
    .start()
    .unwrap();
    let alias = arn.split(":key/").next().unwrap().to_owned() + ":alias/github-app";
    (gh, arn, alias)
}

pub(crate) fn use_kms(env: &mut Env, gh: &GitHub, moto: &Moto, arn: &str) {
    let host = gh.host();
    env.set_flags(&[
        "--app-id",
        "1001",
        "--private-key",
        arn,
        "--host",
        &host,
        "--cache",
        "file",
    ]);
    env.set_env("AWS_ENDPOINT_URL", &moto.url);
    env.set_env("AWS_EC2_METADATA_DISABLED", "true");
}

#[test]
fn aws_kms_key_clones_and_pushes() {
    let Some(moto) = moto(&[]) else { return };
    let (gh, arn, alias) = kms_world(&moto);
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    env.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    env.set_env(
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    env.set_env("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN");
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_ok(&commit_and_push(&env, "octo-dotfiles"));
    assert_eq!(gh.mint_count(), 1);
    // the alias ARN works too; traces name the credentials' source, never the secrets
    use_kms(&mut env, &gh, &moto, &alias);
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains("credentials AKIDEXAMPLE from the environment (AWS_ACCESS_KEY_ID)"),
        "{err}"
    );
    assert!(
        !err.contains("wJalr") && !err.contains("SESSIONTOKEN"),
        "{err}"
    );
    // exec's command gets the token, not the AWS credentials that sign for the app (issue 17.6).
    let out = env.helper(&["exec", "octo", "--", "env"], b"");
    assert_ok(&out);
    let seen = stdout(&out);
    assert!(seen.contains("GH_TOKEN=ghs_"), "{seen}");
    assert!(
        !seen.contains("AWS_ACCESS_KEY_ID")
            && !seen.contains("wJalr")
            && !seen.contains("SESSIONTOKEN"),
        "{seen}"
    );
    assert!(
        seen.contains("AWS_ENDPOINT_URL="),
        "other AWS settings stay: {seen}"
    );
}

#[test]
fn aws_kms_credentials_from_web_identity_and_profiles() {
    let Some(moto) = moto(&[]) else { return };
    let (gh, arn, _) = kms_world(&moto);
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    // CI OIDC: a web identity token file and a role, exchanged with STS (moto serves it)
    let token = env.home.join("oidc-token");
    write_0600(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9jdG8vZG90ZmlsZXMifQ.c2ln",
    );
    env.set_env(
        "AWS_ROLE_ARN",
        "arn:aws:iam::123456789012:role/github-app-signer",
    );
    env.set_env("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string());
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains("from role arn:aws:iam::123456789012:role/github-app-signer through web identity (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE)"),
        "{err}"
    );
    assert!(!err.contains("c2ln"), "{err}");

    // A named profile in the shared credentials file wins over web identity
    let files = env.home.join(".aws");
    std::fs::create_dir_all(&files).unwrap();
    write_0600(
        &files.join("credentials"),
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n\
         [ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = wJalrProfileSecret\n",
    );
    env.set_env("AWS_PROFILE", "ci");
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains("credentials AKIDPROFILE from profile 'ci' in"),
        "{err}"
    );
    assert!(!err.contains("wJalrProfileSecret"), "{err}");

    // credential_process in ~/.aws/config (how SSO and assumed roles reach the helper)
    env.set_env("AWS_PROFILE", "sso");
    std::fs::write(
        files.join("config"),
        "[profile sso]\ncredential_process = echo '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"s\", \"SessionToken\": \"t\"}'\n",
    )
    .unwrap();
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    assert!(
        stderr(&out).contains("credentials AKIDPROCESS from credential_process of profile 'sso'"),
        "{}",
        stderr(&out)
    );

    // an unknown profile is one line
    env.set_env("AWS_PROFILE", "nope");
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(
        err.contains("AWS_PROFILE 'nope' is in neither ~/.aws/credentials nor ~/.aws/config"),
        "{err}"
    );
}

#[test]
fn aws_kms_checks_signatures_and_names_access_denied() {
    // moto with IAM enforcement after the 8 setup calls below: SigV4 signatures are verified
    // and policies apply, as in AWS.
    let Some(moto) = moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "8")]) else {
        return;
    };
    let (gh, arn, _) = kms_world(&moto); // 3 calls
    let keys = boto3(
        &moto,
        "for user in ('signer', 'nobody'):\n    \
             iam.create_user(UserName=user)\n    \
             k = iam.create_access_key(UserName=user)['AccessKey']\n    \
             print(k['AccessKeyId'], k['SecretAccessKey'])\n\
         iam.put_user_policy(UserName='signer', PolicyName='sign', PolicyDocument=json.dumps(\
             {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['kms:Sign', 'kms:GetPublicKey'], 'Resource': '*'}]}))\n",
    );
    let keys: Vec<(String, String)> = keys
        .lines()
        .map(|l| {
            let (id, secret) = l.split_once(' ').unwrap();
            (id.to_owned(), secret.to_owned())
        })
        .collect();
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    env.set_env("AWS_ACCESS_KEY_ID", &keys[0].0);
    env.set_env("AWS_SECRET_ACCESS_KEY", &keys[0].1);
    token_of(&env.fill("octo/dotfiles.git"));

    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    env.set_env("AWS_ACCESS_KEY_ID", &keys[1].0);
    env.set_env("AWS_SECRET_ACCESS_KEY", &keys[1].1);
    let out = env.fill("octo/dotfiles.git");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "AWS KMS refused Sign with AWS KMS key {arn} (AccessDenied"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("allow kms:Sign on the key for the credentials from the environment (AWS_ACCESS_KEY_ID) (access key {})", keys[1].0)),
        "{err}"
    );
    assert!(!err.contains(&keys[1].1), "{err}");

    env.set_env("AWS_ACCESS_KEY_ID", &keys[0].0);
    env.set_env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wJalrXUtnFEMI");
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(err.contains("AWS did not accept the credentials from the environment (AWS_ACCESS_KEY_ID); refresh them"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert_eq!(gh.mint_count(), 1);
}

#[test]
fn a_cached_get_never_runs_the_signer() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = world();
    let probe = Env::new(&gh, 1001);
    let runs = probe.home.join("signer-runs");
    let signer = format!(
        "[\"sh\", \"-c\", \"echo run >> \\\"$1\\\"; exec openssl dgst -sha256 -sign \\\"$0\\\"\", {}, {}]",
        toml_str(&probe.key_path),
        toml_str(&runs)
    );
    let env = with_signer(&gh, &signer, "");
    let first = token_of(&env.fill("octo/dotfiles.git"));
    let signed = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!(signed >= 1);
    for _ in 0..3 {
        assert_eq!(token_of(&env.fill("octo/dotfiles.git")), first);
    }
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        signed,
        "cached answers ran the signer"
    );
}

#[test]
fn a_cached_get_needs_neither_kms_nor_credentials() {
    let Some(mut moto) = moto(&[]) else { return };
    let (gh, arn, _) = kms_world(&moto);
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    env.set_env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    env.set_env("AWS_SECRET_ACCESS_KEY", "secret");
    let first = token_of(&env.fill("octo/dotfiles.git"));
    // KMS gone and no credentials left: the cached token is still the answer
    let _ = moto.child.kill();
    let _ = moto.child.wait();
    env.set_env("AWS_ACCESS_KEY_ID", "");
    env.set_env("AWS_SECRET_ACCESS_KEY", "");
    let out = env.fill("octo/dotfiles.git");
    assert_eq!(token_of(&out), first);
    assert_eq!(stderr(&out), "");
}

/// A loopback stand-in for the container credentials endpoint and IMDSv2 (token required), run
/// as a real HTTP server process; answers AccessKeyId `key_id`.
const METADATA_SERVER: &str = r#"
import http.server, json, sys
creds = json.dumps({"AccessKeyId": sys.argv[1], "SecretAccessKey": "metadata-secret",
                    "Token": "metadata-session-token", "Expiration": "2099-01-01T00:00:00Z"}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get("x-aws-ec2-metadata-token-ttl-seconds")
        self.answer(200 if ok else 403, b"imds-session" if ok else b"")
    def do_GET(self):
        prefix = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(prefix):
            if self.headers.get("x-aws-ec2-metadata-token") != "imds-session":
                return self.answer(401, b"")
            return self.answer(200, b"signer-role\n" if self.path == prefix else creds)
        if self.path == "/v2/credentials":
            if self.headers.get("authorization") != "container-auth":
                return self.answer(401, b"")
            return self.answer(200, creds)
        self.answer(404, b"")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;

pub(crate) struct Metadata {
    child: std::process::Child,
    pub(crate) url: String,
}

impl Drop for Metadata {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn metadata_server(key_id: &str) -> Metadata {
    use std::io::BufRead;
    let mut child = std::process::Command::new("python3")
        .args(["-c", METADATA_SERVER, key_id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Metadata {
        child,
        url: format!("http://127.0.0.1:{}", line.trim()),
    }
}

#[test]
fn aws_kms_credentials_from_container_and_instance_metadata() {
    let Some(moto) = moto(&[]) else { return };
    let (gh, arn, _) = kms_world(&moto);
    let metadata = metadata_server("AKIDMETADATA");
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");

    env.set_env("AWS_EC2_METADATA_DISABLED", "false");
    env.set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &metadata.url);
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains("credentials AKIDMETADATA from instance metadata (role signer-role)"),
        "{err}"
    );

    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    env.set_env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v2/credentials", metadata.url),
    );
    env.set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth");
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    let err = stderr(&out);
    assert!(
        err.contains("credentials AKIDMETADATA from container metadata"),
        "{err}"
    );
    assert!(
        !err.contains("metadata-secret") && !err.contains("metadata-session-token"),
        "{err}"
    );

    // a container endpoint that is neither https nor loopback is refused before any request
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    env.set_env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "http://metadata.example.com/creds",
    );
    let err = stderr(&env.fill("octo/dotfiles.git"));
    assert!(err.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback or the container metadata address"), "{err}");
}

/// What `doctor` shows: the fingerprint of the key the signer holds equals the one GitHub has for
/// the app — read from the SoftHSM2 token and from KMS's GetPublicKey. (Through the library: the
/// module and the AWS credential lookup read this process's environment, which only this test
/// changes, with variables no other test reads from it.)
#[test]
fn signers_give_the_fingerprint_github_shows() {
    use git_credential_github_app::keyref::{KeyRef, kms_arn::KmsKey, pkcs11_uri::Pkcs11Uri};
    use git_credential_github_app::signer;
    let deadline = Instant::now() + Duration::from_secs(20);
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    if let Some(hsm) = softhsm(&gh, &mut env) {
        // SAFETY: no other test reads SOFTHSM2_CONF from this process (they pass it to their
        // children explicitly), and std serialises environment access.
        unsafe { std::env::set_var("SOFTHSM2_CONF", env.home.join("softhsm2.conf")) };
        let uri = Pkcs11Uri::parse(&format!(
            "pkcs11:token=github;object=gh-app?module-path={}&pin-value=1234",
            hsm.module
        ))
        .unwrap();
        let token = signer::open(&KeyRef::Pkcs11(uri), deadline, &mut |_| {}).unwrap();
        assert_eq!(
            signer::fingerprint(&token.public_key_der().unwrap()),
            gh.app(1001).fingerprint()
        );
        assert_eq!(token.describe(), "PKCS#11 key 'gh-app' on token 'github'");
    }
    if let Some(moto) = moto(&[]) {
        let (kms_gh, arn, _) = kms_world(&moto);
        // SAFETY: as above; the other KMS tests give their children these variables explicitly.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL_KMS", &moto.url);
            std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
        let kms = signer::open(
            &KeyRef::AwsKms(KmsKey::parse(&arn).unwrap()),
            deadline,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            signer::fingerprint(&kms.public_key_der().unwrap()),
            kms_gh.app(1001).fingerprint()
        );
        let signature = kms.sign(b"header.claims").unwrap();
        signer::verify(&kms.public_key_der().unwrap(), b"header.claims", &signature).unwrap();
    }
}

/// Issue 17 item 5: a signer that answers but leaves a background process holding its stdout
/// costs a moment, not the get's whole budget (which the API calls still need).
#[test]
fn a_signer_leaving_a_process_behind_does_not_spend_the_budget() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = world();
    let probe = Env::new(&gh, 1001);
    let signer = format!(
        "[\"sh\", \"-c\", \"sleep 30 & openssl dgst -sha256 -sign \\\"$0\\\"\", {}]",
        toml_str(&probe.key_path)
    );
    let env = with_signer(&gh, &signer, "");
    let mut env = env;
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TIMEOUT", "8s");
    let started = std::time::Instant::now();
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    eprintln!(
        "cold get, signer leaving a process behind: {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

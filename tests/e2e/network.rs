//! The production network path: the helper's own TLS client (rustls with the platform verifier)
//! against the local GitHub over HTTPS with a CA made for the run, trusted the ordinary way
//! (`SSL_CERT_FILE` for the helper, `GIT_SSL_CAINFO` for git), and through a real HTTP proxy
//! (tinyproxy, started here on loopback) with `HTTPS_PROXY` and `NO_PROXY`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use local_github::{App, GitHub};

use crate::support::*;

/// The shared `world`, served over HTTPS.
pub fn https_world() -> GitHub {
    world_builder(App::new(1001, "ci-bot"))
        .https()
        .start()
        .unwrap()
}

/// An environment whose helper trusts the run's CA through `SSL_CERT_FILE` and whose git trusts
/// it through `GIT_SSL_CAINFO`: what a user behind a private CA sets.
pub fn trusting_env(gh: &GitHub) -> Env {
    let mut env = Env::new(gh, 1001);
    let ca = write_ca(gh, &env.home);
    env.set_env("SSL_CERT_FILE", &ca);
    env.set_env("GIT_SSL_CAINFO", &ca);
    env
}

/// Writes the run's CA certificate into `dir`; returns its path.
pub fn write_ca(gh: &GitHub, dir: &Path) -> String {
    let path = dir.join("local-github-ca.pem");
    std::fs::write(&path, gh.ca_pem().expect("an https world")).unwrap();
    path.display().to_string()
}

fn get_input(gh: &GitHub, path: &str) -> String {
    format!("protocol=https\nhost={}\npath={path}\n", gh.host())
}

#[test]
fn clone_and_push_over_https_with_the_ca_in_ssl_cert_file() {
    let gh = https_world();
    let env = trusting_env(&gh);
    assert!(
        env.git_url.starts_with("https://127.0.0.1:"),
        "{}",
        env.git_url
    );
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    let dir = env.home.join("octo-dotfiles").display().to_string();
    std::fs::write(env.home.join("octo-dotfiles/new.txt"), "over TLS\n").unwrap();
    assert_ok(&env.git(&["-C", &dir, "add", "new.txt"]));
    assert_ok(&env.git(&["-C", &dir, "commit", "--quiet", "-m", "tls"]));
    assert_ok(&env.git(&["-C", &dir, "push", "--quiet", "origin", "main"]));
    assert_eq!(gh.mint_count(), 1, "{:?}", gh.stats());
    // Every API call went to the https API URL (the emulator only speaks TLS on this port).
    assert!(gh.requests().iter().any(|r| r.path.starts_with("/api/v3/")));
}

#[test]
fn an_untrusted_certificate_is_one_clear_line() {
    let gh = https_world();
    // No SSL_CERT_FILE: the system store does not know this run's CA.
    let env = Env::new(&gh, 1001);
    let out = env.helper(&["get"], get_input(&gh, "acme/widgets.git").as_bytes());
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "git-credential-github-app: cannot reach https://{host}/api/v3: the server's TLS certificate is not trusted (invalid peer certificate: UnknownIssuer); if a private CA or a TLS-inspecting proxy signs it, add that CA to the system store or point SSL_CERT_FILE at a bundle that has it",
            host = gh.host()
        )
    );
    assert_eq!(gh.mint_count(), 0);
}

/// tinyproxy on a free loopback port, logging every request; killed on drop.
pub struct Tinyproxy {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Tinyproxy {
    pub fn start(dir: &Path) -> Tinyproxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Listen 127.0.0.1\nPort {port}\nTimeout 60\nMaxClients 20\nLogLevel Info\nLogFile \"{}\"\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .args(["-d", "-c", &conf.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tinyproxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Everything tinyproxy logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `CONNECT host:port` requests tinyproxy has seen.
    pub fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("): CONNECT ").map(|(_, rest)| rest.to_owned()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_helper_and_git_go_through_https_proxy_and_skip_it_for_no_proxy() {
    if !have(&["tinyproxy"]) {
        return;
    }
    let gh = https_world();
    let mut env = trusting_env(&gh);
    let proxy = Tinyproxy::start(&env.home);
    env.set_env("HTTPS_PROXY", &proxy.url);
    let target = format!("{} HTTP/1.1", gh.host());

    // The helper alone: its API calls are tunnelled through the proxy.
    let out = env.helper(&["get"], get_input(&gh, "acme/widgets.git").as_bytes());
    assert!(stdout(&out).contains("password=ghs_"), "{}", stderr(&out));
    assert_eq!(
        proxy.connects(),
        vec![target.clone()],
        "helper: one CONNECT"
    );
    assert_eq!(gh.mint_count(), 1);

    // A whole clone through the proxy: git's own connection too.
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert!(proxy.connects().len() >= 2, "{:?}", proxy.connects());

    // NO_PROXY for the host: the helper connects directly (a new owner, so it must call the API).
    env.set_env("NO_PROXY", "127.0.0.1");
    let before = proxy.connects().len();
    let out = env.helper(&["get"], get_input(&gh, "octo/dotfiles.git").as_bytes());
    assert!(stdout(&out).contains("password=ghs_"), "{}", stderr(&out));
    assert_eq!(gh.mint_count(), 2, "the helper reached the API directly");
    assert_eq!(proxy.connects().len(), before, "{:?}", proxy.connects());
}

#[test]
fn no_proxy_cidr_entries_go_direct_and_doctor_never_shows_the_proxy_password() {
    if !have(&["tinyproxy"]) {
        return;
    }
    let gh = https_world();
    let mut env = trusting_env(&gh);
    let proxy = Tinyproxy::start(&env.home);
    // Scheme-less, with a user and password, as curl and git accept it.
    let schemeless = format!("me:hunter2pw@{}", proxy.url.trim_start_matches("http://"));
    env.set_env("HTTPS_PROXY", &schemeless);
    let out = env.helper(&["get"], get_input(&gh, "acme/widgets.git").as_bytes());
    assert!(stdout(&out).contains("password=ghs_"), "{}", stderr(&out));
    assert_eq!(proxy.connects().len(), 1, "{:?}", proxy.connects());
    let doctor_args = [
        "doctor".to_owned(),
        "--app-id".into(),
        "1001".into(),
        "--private-key".into(),
        env.key_path.display().to_string(),
        "--host".into(),
        gh.host(),
        "--api-url".into(),
        format!("https://{}/api/v3", gh.host()),
    ];
    let doctor = run(env.command(HELPER).args(&doctor_args), b"");
    let text = stdout(&doctor);
    assert!(
        text.contains(&format!(
            ", through the proxy in HTTPS_PROXY (me:[masked]@{})",
            proxy.url.trim_start_matches("http://")
        )),
        "{text}"
    );
    assert!(
        !text.contains("hunter2pw") && !stderr(&doctor).contains("hunter2pw"),
        "{text}"
    );

    // NO_PROXY as a CIDR range (curl and git honour it): the API is reached directly.
    env.set_env("NO_PROXY", "10.0.0.0/8,127.0.0.0/8");
    let before = proxy.connects().len();
    let out = env.helper(&["get"], get_input(&gh, "octo/dotfiles.git").as_bytes());
    assert!(stdout(&out).contains("password=ghs_"), "{}", stderr(&out));
    assert_eq!(gh.mint_count(), 2);
    let doctor = run(env.command(HELPER).args(&doctor_args), b"");
    let text = stdout(&doctor);
    assert!(text.contains(", TLS verified, directly)"), "{text}");
    assert_eq!(proxy.connects().len(), before, "{:?}", proxy.connects());
}

#[test]
fn aws_metadata_is_never_asked_through_a_proxy() {
    use crate::signers::{kms_world, metadata_server, moto, use_kms};
    if !have(&["tinyproxy"]) {
        return;
    }
    let Some(moto) = moto(&[]) else { return };
    let (gh, arn, _) = kms_world(&moto);
    let metadata = metadata_server("AKIDMETADATA");
    let mut env = Env::new(&gh, 1001);
    use_kms(&mut env, &gh, &moto, &arn);
    let proxy = Tinyproxy::start(&env.home);
    env.set_env("ALL_PROXY", &proxy.url);
    env.set_env("http_proxy", &proxy.url);
    env.set_env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{}/v2/credentials", metadata.url),
    );
    env.set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth");
    token_of(&env.fill("octo/dotfiles.git"));
    let log = proxy.log();
    let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();
    // KMS went through the proxy; the container credentials did not.
    assert!(
        log.contains(&format!("127.0.0.1:{}", port(&moto.url))),
        "{log}"
    );
    assert!(
        !log.contains(&format!("127.0.0.1:{}", port(&metadata.url))),
        "{log}"
    );

    // Instance metadata (IMDSv2): the same.
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let mut env2 = Env::new(&gh, 1001);
    use_kms(&mut env2, &gh, &moto, &arn);
    env2.set_env("ALL_PROXY", &proxy.url);
    env2.set_env("http_proxy", &proxy.url);
    env2.set_env("AWS_EC2_METADATA_DISABLED", "false");
    env2.set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &metadata.url);
    token_of(&env2.fill("octo/dotfiles.git"));
    assert!(
        !proxy
            .log()
            .contains(&format!("127.0.0.1:{}", port(&metadata.url))),
        "{}",
        proxy.log()
    );
}

/// A host given with its scheme keeps it: `token` on a loopback host served over HTTPS
/// (`--host https://127.0.0.1:PORT`) asks the API over HTTPS and gets the token git got, from
/// the same cache entry (without the scheme a loopback host means plain http).
#[test]
fn a_host_given_with_https_keeps_it_for_commands() {
    let gh = https_world();
    let mut env = trusting_env(&gh);
    let key = env.key_path.display().to_string();
    let host = format!("https://{}", gh.host());
    env.set_flags(&[
        "--app-id",
        "1001",
        "--private-key",
        &key,
        "--host",
        &host,
        "--cache",
        "file",
    ]);
    let fill = run(
        env.command("git").args(["credential", "fill"]),
        get_input(&gh, "octo/dotfiles.git").as_bytes(),
    );
    let git = token_of(&fill);
    let out = env.helper(&["token", "octo"], b"");
    assert_ok(&out);
    assert_eq!(stdout(&out).trim_end(), git, "the token git got");
    assert_eq!(gh.mint_count(), 1);
    let listed = env.helper(&["installations"], b"");
    assert_ok(&listed);
    assert!(stdout(&listed).contains("octo"), "{}", stdout(&listed));
}

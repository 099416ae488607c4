//! Hostile and unlucky cases: secrets pasted into the wrong setting, odd API URLs, a frozen
//! D-Bus, FIFOs and foreign directories in the cache, skewed `Date` headers, hostile server
//! text, a client that keeps stdin open, sudo with someone else's HOME.

use crate::flows::world;
use crate::support::*;

const PEM_BODY: &str = "MIIEpAIBAAKCAQEAzSECRETPEMBODY0123456789";
const PAT: &str = "ghp_SECRETpat0123456789abcdefghijklmnopq";
const CLIENT_SECRET: &str = "c0ffee5ec7e7c0ffee5ec7e70123456789abcdef";

fn pem() -> String {
    format!("-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n")
}

/// Every option and variable, given a PEM, a PAT and a client secret, through the real binary:
/// one line naming the setting, no part of the value.
#[test]
fn secrets_in_the_wrong_setting_are_never_echoed() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let request = format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host());
    let key = env.key_path.display().to_string();
    for secret in [pem(), PAT.to_owned(), CLIENT_SECRET.to_owned()] {
        let secret = secret.as_str();
        let options = [
            "--app-id",
            "--private-key",
            "--installation-id",
            "--api-url",
            "--host",
            "--owner",
            "--cache",
            "--refresh-margin",
            "--timeout",
            "--config",
            "--username",
        ];
        for option in options {
            let mut args = vec!["--app-id", "1001", "--private-key", &key, "--host"];
            let host = gh.host();
            args.push(&host);
            args.extend([option, secret, "get"]);
            let out = run(env.command(HELPER).args(&args), request.as_bytes());
            check(&out, option, secret);
        }
        let variables = [
            "GITHUB_APP_ID",
            "GITHUB_APP_PRIVATE_KEY",
            "GITHUB_APP_PRIVATE_KEY_PATH",
            "GITHUB_APP_INSTALLATION_ID",
            "GITHUB_APP_API_URL",
            "GITHUB_APP_HOST",
            "GIT_CREDENTIAL_GITHUB_APP_CONFIG",
            "GIT_CREDENTIAL_GITHUB_APP_CACHE",
            "GIT_CREDENTIAL_GITHUB_APP_REFRESH_MARGIN",
            "GIT_CREDENTIAL_GITHUB_APP_TIMEOUT",
        ];
        for variable in variables {
            let mut cmd = env.command(HELPER);
            cmd.env("GITHUB_APP_ID", "1001")
                .env("GITHUB_APP_HOST", gh.host())
                .env("GITHUB_APP_PRIVATE_KEY_PATH", &key)
                .env(variable, secret);
            if variable == "GITHUB_APP_PRIVATE_KEY" {
                cmd.env_remove("GITHUB_APP_PRIVATE_KEY_PATH");
            }
            let out = run(cmd.arg("get"), request.as_bytes());
            check(&out, variable, secret);
        }
    }

    #[track_caller]
    fn check(out: &std::process::Output, setting: &str, secret: &str) {
        let err = stderr(out);
        assert!(!out.status.success(), "{setting} accepted a secret: {err}");
        assert!(stdout(out).is_empty(), "{setting}: {}", stdout(out));
        assert_eq!(err.lines().count(), 1, "{setting}: one line: {err}");
        assert!(err.contains(setting), "{setting} is not named: {err}");
        let flat = secret.replace('\n', "");
        for start in (0..flat.len().saturating_sub(8)).step_by(4) {
            let part = &flat[start..start + 8];
            if part.contains("-----") || part.contains("PRIVATE") || part.contains("KEY") {
                continue;
            }
            assert!(!err.contains(part), "{setting} echoes '{part}': {err}");
        }
    }
}

/// `--api-url` with a query, a fragment, or a host that only starts like loopback.
#[test]
fn odd_api_urls_are_refused_with_a_clear_message() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    for (url, expected) in [
        (
            format!("{}?per_page=1", gh.api_url()),
            "git-credential-github-app: --api-url has a query or fragment (?… or #…), which an API base cannot have; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
        (
            format!("{}#x", gh.api_url()),
            "git-credential-github-app: --api-url has a query or fragment (?… or #…), which an API base cannot have; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
        (
            "http://[::1]evil.example/api/v3".to_owned(),
            "git-credential-github-app: --api-url does not have a valid host name; give the REST API base, like https://ghe.example.com/api/v3\n",
        ),
    ] {
        let key = env.key_path.display().to_string();
        let args = [
            "--app-id",
            "1001",
            "--private-key",
            &key,
            "--host",
            &gh.host(),
        ];
        let out = run(
            env.command(HELPER)
                .args(args)
                .args(["--api-url", &url, "get"]),
            format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host()).as_bytes(),
        );
        assert!(!out.status.success());
        assert_eq!(stderr(&out), expected, "{url}");
        assert!(stdout(&out).is_empty());
    }
    assert_eq!(gh.lookup_count() + gh.mint_count(), 0);
    // Nothing was remembered for a refused URL.
    assert!(!env.cache_dir().join("installations").exists());
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// `password_expiry_utc` is an hour from the request on our clock, whatever GitHub's clock or its
/// `Date` header says; never 0, never in the past, never more than the token lives.
#[test]
fn expiry_is_right_whatever_the_date_header_says() {
    const MINT: &str = "/api/v3/app/installations/";
    let gh = world();
    let env = Env::new(&gh, 1001);
    let get = |what: &str| {
        let before = unix_now();
        let out = env.helper(
            &["--cache", "none", "get"],
            format!(
                "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
                gh.host()
            )
            .as_bytes(),
        );
        let after = unix_now();
        assert_ok(&out);
        let expiry: u64 = field(&out, "password_expiry_utc").unwrap().parse().unwrap();
        assert!(
            expiry >= before + 3600 - 2 && expiry <= after + 3600,
            "{what}: expiry {expiry} is not an hour from {before}..{after}: {}",
            stderr(&out)
        );
    };
    // GitHub's whole clock skewed (Date and expires_at agree): far ahead, 2 h ahead, behind.
    for offset in [10 * 365 * 86400_i64, 7200, -7200] {
        gh.set_clock_offset(offset);
        get(&format!("GitHub's clock {offset:+} s"));
    }
    gh.set_clock_offset(0);
    // Only the Date header is off (a proxy, a broken server): expires_at is right on our clock.
    let now = unix_now();
    for (what, date) in [
        ("Date far ahead", http_date(now + 10 * 365 * 86400)),
        ("Date 2 h ahead", http_date(now + 7200)),
        ("Date 1 h behind", http_date(now - 3600)),
        ("Date garbage", "yesterday".to_owned()),
        ("Date empty", String::new()),
    ] {
        let expires_at = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_now() + 3600),
        );
        gh.inject(
            local_github::Fault::new(
                MINT,
                local_github::FaultAction::json(
                    201,
                    serde_json::json!({"token": "ghs_dateTest0123456789abcdefghijklmnopq", "expires_at": expires_at.to_string()}),
                )
                .with_header("Date", date),
            )
            .method("POST")
            .times(1),
        );
        get(what);
    }
}

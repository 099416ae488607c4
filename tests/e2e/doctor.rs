use crate::support::*;
use local_github::{Account, App, GitHub, Installation};
use std::process::Output;

/// The key's fingerprint as GitHub documents it:
/// `openssl rsa -pubout -outform DER | openssl sha256 -binary | base64`.
fn openssl_fingerprint(key: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("openssl rsa -in \"$1\" -pubout -outform DER 2>/dev/null | openssl sha256 -binary | base64")
        .arg("sh")
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success());
    format!("SHA256:{}", String::from_utf8(out.stdout).unwrap().trim())
}

fn doctor(env: &Env, args: &[&str]) -> Output {
    run(
        env.command(HELPER)
            .args(["doctor", "--host", &env.host])
            .args(args),
        b"",
    )
}

/// The `[STATUS] id: first line` of each check.
fn lines(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(str::to_owned)
        .collect()
}

fn line<'a>(lines: &'a [String], id: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l[7..].starts_with(&format!("{id}: ")))
        .unwrap_or_else(|| panic!("no {id} check in {lines:#?}"))
}

#[test]
fn doctor_passes_on_a_working_setup_and_json_says_the_same() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    let fingerprint = openssl_fingerprint(&env.key_path);
    // no app options: doctor checks the helper line git runs
    let out = doctor(&env, &["--repo", "acme/widgets"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "git-credential-github-app doctor for http://{}/ (app from the helper line in file:{}/.gitconfig)\n",
            env.host,
            env.home.display()
        )),
        "{text}"
    );
    let l = lines(&out);
    assert!(
        line(&l, "key").ends_with(&format!(": fingerprint {fingerprint}")),
        "{l:#?}"
    );
    assert_eq!(
        line(&l, "app-auth"),
        "[ OK ] app-auth: GitHub accepts the key for app 1001 'ci-bot' (slug ci-bot)"
    );
    assert_eq!(
        line(&l, "installations"),
        "[ OK ] installations: 2 installation(s):"
    );
    assert!(text.contains(
        "       acme (Organization): installation 11, selected repositories\n       octo (User): installation 12, all repositories\n"
    ));
    assert_eq!(
        line(&l, "repo"),
        "[ OK ] repo: installation 11 (acme) serves acme/widgets, and it is among the installation's repositories"
    );
    assert_eq!(
        line(&l, "reset"),
        "[ OK ] reset: an empty 'helper =' comes before ours: no other helper answers first"
    );
    assert_eq!(
        line(&l, "cache"),
        "[ OK ] cache: file backend: write, read and delete work"
    );
    assert!(line(&l, "clock").starts_with("[ OK ] clock: this machine's clock is within "));
    assert!(l.iter().all(|l| !l.starts_with("[FAIL]")), "{l:#?}");
    let summary = text.lines().last().unwrap();
    let skipped = l.iter().filter(|l| l.starts_with("[SKIP]")).count();
    assert_eq!(
        summary,
        format!(
            "Summary: {} passed, {skipped} skipped, 0 failed",
            l.len() - skipped
        )
    );
    // The cache round trip left nothing behind for status to find, and no token was minted.
    assert_eq!(gh.mint_count(), 0);
    assert!(!text.contains("ghs_"));

    // --json: the same checks, as one object
    let out = doctor(&env, &["--repo", "acme/widgets", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), l.len());
    for (c, text_line) in checks.iter().zip(&l) {
        let tag = match c["status"].as_str().unwrap() {
            "ok" => "[ OK ]",
            "fail" => "[FAIL]",
            "skip" => "[SKIP]",
            other => panic!("{other}"),
        };
        let first = c["detail"].as_str().unwrap().lines().next().unwrap();
        assert_eq!(
            *text_line,
            format!("{tag} {}: {first}", c["id"].as_str().unwrap())
        );
    }
    let key = checks.iter().find(|c| c["id"] == "key").unwrap();
    assert_eq!(key["data"]["fingerprint"], fingerprint.as_str());
    let app = checks.iter().find(|c| c["id"] == "app-auth").unwrap();
    assert_eq!(app["data"]["slug"], "ci-bot");
    assert_eq!(v["summary"]["failed"], 0);
    assert_eq!(v["host"], env.host.as_str());
}

#[test]
fn doctor_names_a_key_that_belongs_to_another_app() {
    if !have(&["openssl"]) {
        return;
    }
    let gh = GitHub::builder()
        .app(App::new(1001, "acme-bot"))
        .app(App::new_unique_key(2002, "octo-bot"))
        .account(Account::org("acme"))
        .installation(Installation::new(11, 1001, "acme").all())
        .start()
        .unwrap();
    // app 1001 configured with app 2002's key
    let other = gh.app(2002).private_key_pem().to_owned();
    let env = Env::with_key(&gh, 1001, &other);
    let fingerprint = openssl_fingerprint(&env.key_path);
    let out = doctor(&env, &["--repo", "acme/widgets"]);
    let l = lines(&out);
    let failed = l.iter().filter(|l| l.starts_with("[FAIL]")).count();
    assert_eq!(out.status.code(), Some(failed as i32), "{}", stdout(&out));
    assert_eq!(failed, 1, "{l:#?}");
    let auth = line(&l, "app-auth");
    assert!(
        auth.starts_with("[FAIL] app-auth: GitHub refused ")
            && auth.contains(&env.key_path.display().to_string())
            && auth.contains(&fingerprint)
            && auth.ends_with(
                "for app 1001: the key does not belong to this app, or was deleted from it; the app's settings page lists its keys' fingerprints"
            ),
        "{auth}"
    );
    assert_eq!(
        line(&l, "installations"),
        "[SKIP] installations: GitHub did not accept the app's key"
    );
    assert_eq!(
        line(&l, "repo"),
        "[SKIP] repo: GitHub did not accept the app's key"
    );
    let skipped = l.iter().filter(|l| l.starts_with("[SKIP]")).count();
    assert!(stdout(&out).ends_with(&format!(
        "Summary: {} passed, {skipped} skipped, 1 failed\n",
        l.len() - skipped - 1
    )));
}

#[test]
fn doctor_flags_extraheader_storing_helper_env_token_remote_user_and_repo_selection() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    // what actions/checkout leaves behind, a plain `store` after ours, and gh's helper
    env.append_gitconfig(&format!(
        "[http \"http://{host}/\"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX3h4eA==\n\
         [credential]\n\thelper = store\n\thelper = !gh auth git-credential\n",
        host = env.host
    ));
    env.set_env("GH_TOKEN", "gho_not_looked_at");
    assert_ok(&env.git(&["init", "--quiet", "work"]));
    let work = env.home.join("work");
    assert_ok(&env.git(&[
        "-C",
        "work",
        "remote",
        "add",
        "origin",
        &format!("http://someone@{}/acme/widgets.git", env.host),
    ]));
    // a token pasted into a URL (as CI scripts do) is never shown
    assert_ok(&env.git(&[
        "-C",
        "work",
        "remote",
        "set-url",
        "--push",
        "origin",
        &format!(
            "http://someone:ghp_pastedTokenValue@{}/acme/widgets.git",
            env.host
        ),
    ]));
    let out = run(
        env.command(HELPER).current_dir(&work).args([
            "--host",
            &env.host,
            "doctor",
            "--repo",
            "acme/secret",
        ]),
        b"",
    );
    let l = lines(&out);
    let text = stdout(&out);
    let failed: Vec<&String> = l.iter().filter(|l| l.starts_with("[FAIL]")).collect();
    assert_eq!(failed.len(), 5, "{text}");
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        line(&l, "extraheader"),
        "[FAIL] extraheader: git sends these headers itself, so it never asks a helper:"
    );
    assert!(text.contains(&format!(
        "       http.http://{}/.extraheader in file:{}/.gitconfig (an Authorization header: actions/checkout persists GITHUB_TOKEN this way)\n",
        env.host,
        env.home.display()
    )), "{text}");
    assert!(
        !text.contains("eC1hY2Nlc3MtdG9rZW46Z2hzX3h4eA"),
        "the header's value is not printed"
    );
    assert_eq!(
        line(&l, "storing-helper"),
        "[FAIL] storing-helper: git hands every token that worked to the helpers after ours, and these keep them:"
    );
    assert!(text.contains(&format!(
        "       'store' (file:{}/.gitconfig) writes them in plain text to ~/.git-credentials\n",
        env.home.display()
    )));
    assert_eq!(
        line(&l, "env-token"),
        format!(
            "[FAIL] env-token: GH_TOKEN is set: the gh helper (file:{}/.gitconfig) answers with it instead of your gh login for owners the app does not serve",
            env.home.display()
        )
    );
    assert!(!text.contains("gho_not_looked_at"));
    assert_eq!(
        line(&l, "remote-username"),
        "[FAIL] remote-username: git sends the user name in these URLs, and the helper leaves a request with a user name other than 'x-access-token' to other helpers (not ours by design):"
    );
    assert!(text.contains(&format!(
        "       remote.origin.url = http://someone@{}/acme/widgets.git (user 'someone')\n",
        env.host
    )));
    assert!(text.contains(&format!(
        "       remote.origin.pushurl = http://someone:[masked]@{}/acme/widgets.git (user 'someone')\n",
        env.host
    )), "{text}");
    assert!(!text.contains("ghp_pastedTokenValue"), "{text}");
    assert!(!stderr(&out).contains("ghp_pastedTokenValue"));
    assert!(
        line(&l, "repo").starts_with(
            "[FAIL] repo: installation 11 (acme) serves 'acme', but acme/secret is not among its repositories (or does not exist)"
        ),
        "{l:#?}"
    );
    assert_eq!(
        line(&l, "helper"),
        format!(
            "[ OK ] helper: git runs these helpers for http://{}/, in order (ours runs {HELPER}):",
            env.host
        )
    );
}

#[test]
fn doctor_without_our_helper_and_with_narrowed_permissions() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    std::fs::write(
        env.home.join(".gitconfig"),
        "[credential]\n\thelper = cache\n",
    )
    .unwrap();
    let key = env.key_path.display().to_string();
    let out = doctor(
        &env,
        &[
            "--app-id",
            "1001",
            "--private-key",
            &key,
            "--cache",
            "file",
            "--permissions",
            "contents:write,metadata:read",
        ],
    );
    let l = lines(&out);
    assert_eq!(
        line(&l, "helper"),
        format!(
            "[FAIL] helper: git runs no git-credential-github-app helper for http://{h}/; run: git-credential-github-app setup --host {h}",
            h = env.host
        )
    );
    assert_eq!(
        line(&l, "reset"),
        "[SKIP] reset: no helper of ours to check"
    );
    assert!(line(&l, "useHttpPath").starts_with("[FAIL] useHttpPath: "));
    assert_eq!(
        line(&l, "permissions"),
        "[ OK ] permissions: tokens are narrowed to contents:write,metadata:read; without workflows, GitHub refuses pushes that touch .github/workflows/ (add workflows:write if you push those)"
    );
    assert_eq!(
        line(&l, "app-auth"),
        "[ OK ] app-auth: GitHub accepts the key for app 1001 'ci-bot' (slug ci-bot)"
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // a bad --repo is a usage mistake, not a check
    let out = doctor(&env, &["--repo", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: --repo takes OWNER/REPO, not 'nope'\n"
    );
}

/// Issue 13: doctor reads GITHUB_APP_HOST like every command; a clock that is off is a warning
/// (the helper corrects for it), in a duration as people write it.
#[test]
fn doctor_honours_github_app_host_and_warns_of_a_clock_it_corrects_for() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GITHUB_APP_HOST", &env.host.clone());
    gh.set_clock_offset(-900);
    let out = run(env.command(HELPER).arg("doctor"), b"");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "git-credential-github-app doctor for http://{}/ (app from the helper line in file:{}/.gitconfig)\n",
            env.host,
            env.home.display()
        )),
        "{text}"
    );
    let l = lines(&out);
    let clock = line(&l, "clock");
    assert!(
        clock.starts_with("[WARN] clock: this machine's clock is 15m ")
            && clock.ends_with(" ahead of GitHub's: the helper dates its JWTs by GitHub's clock, so it works; other tools may not: set the clock (NTP)"),
        "{clock}"
    );
    assert!(
        line(&l, "app-auth").starts_with("[ OK ] app-auth: GitHub accepts the key"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines().last().unwrap().contains(" 1 warned, "),
        "{text}"
    );
}

/// Issue 17 item 5: doctor's --timeout bounds every check, even when the app (and its own
/// --timeout) comes from git's helper line; running out of time is not "GitHub did not accept
/// the key".
#[test]
fn doctor_honours_its_timeout_over_the_helper_lines() {
    use local_github::{Fault, FaultAction};
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--timeout", "60s"]);
    gh.inject(Fault::new("/api/v3/app", FaultAction::delay_ms(20_000)).times(10));
    let started = std::time::Instant::now();
    let out = doctor(&env, &["--timeout", "3s", "--repo", "acme/widgets"]);
    let took = started.elapsed();
    eprintln!("doctor --timeout 3s against a 20 s API: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "doctor took {took:?}"
    );
    let l = lines(&out);
    assert!(
        line(&l, "app-auth").starts_with("[FAIL] app-auth: "),
        "{l:#?}"
    );
    assert_eq!(
        line(&l, "installations"),
        "[SKIP] installations: GitHub did not answer GET /app in time (--timeout)"
    );
    assert!(!stdout(&out).contains("did not accept"), "{}", stdout(&out));
}

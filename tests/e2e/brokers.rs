use crate::support::*;
use local_github::{
    Account, ActionsJob, App, Chinmina, GitHub, Installation, OctoSts, OidcIssuer, TokenExchange,
    buildkite_claims,
};
use serde_json::json;
use std::process::Output;

/// The broker's app (1001) on org acme, all repositories: widgets, gadgets, .github.
fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "octo-sts"))
        .account(Account::org("acme"))
        .repo("acme", "widgets")
        .repo("acme", "gadgets")
        .repo("acme", ".github")
        .installation(
            Installation::new(11, 1001, "acme")
                .all()
                .permissions([("contents", "write"), ("metadata", "read")]),
        )
        .start()
        .unwrap()
}

/// A trust policy for GitHub Actions jobs on main of acme/widgets.
fn policy(gh: &GitHub, issuer: &OidcIssuer, repo: &str, identity: &str, subject: &str) {
    gh.write_file(
        "acme",
        repo,
        &format!(".github/chainguard/{identity}.sts.yaml"),
        &format!(
            "issuer: {}\nsubject_pattern: \"{subject}\"\npermissions:\n  contents: write\n",
            issuer.url()
        ),
    )
    .unwrap();
}

/// A scratch HOME whose git uses `--broker octo-sts` inside a GitHub Actions job of acme/widgets.
fn actions_env(gh: &GitHub, sts: &OctoSts, issuer: &OidcIssuer, identity: &str) -> Env {
    let mut env = Env::new(gh, 1001);
    env.set_flags(&[
        "--broker",
        "octo-sts",
        "--broker-url",
        &sts.url(),
        "--identity",
        identity,
        "--host",
        &gh.host(),
        "--cache",
        "file",
    ]);
    let (url, request_token) = issuer.actions_job(ActionsJob::new("acme/widgets"));
    env.set_env("GITHUB_ACTIONS", "true");
    env.set_env("ACTIONS_ID_TOKEN_REQUEST_URL", &url);
    env.set_env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &request_token);
    env
}

struct Octo {
    gh: GitHub,
    issuer: OidcIssuer,
    sts: OctoSts,
}

fn octo() -> Octo {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    policy(
        &gh,
        &issuer,
        "widgets",
        "ci",
        "repo:acme/widgets:ref:refs/heads/main",
    );
    let sts = OctoSts::start(&gh, 1001).unwrap();
    Octo { gh, issuer, sts }
}

/// The helper's lines on stderr (git's askpass lines left out).
fn said(o: &Output) -> String {
    stderr(o)
        .lines()
        .filter(|l| !l.starts_with("askpass:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[track_caller]
fn no_secrets(o: &Output) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(!all.contains("ghs_"), "a token was shown: {all}");
    assert!(!all.contains("eyJ"), "a JWT was shown: {all}");
}

fn expiry_in(o: &Output) -> i64 {
    field(o, "password_expiry_utc")
        .unwrap()
        .parse::<i64>()
        .unwrap()
        - unix_now()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn octo_sts_with_github_actions_oidc_clones_and_pushes_on_one_exchange() {
    let w = octo();
    let mut env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    // Traced: the trace shows fingerprints, never the OIDC token or the token.
    env.add_flags(&["--verbose"]);
    let clone = env.clone_repo("acme", "widgets");
    assert_ok(&clone);
    no_secrets(&clone);
    assert!(
        stderr(&clone).contains("OIDC token sha256:"),
        "{}",
        stderr(&clone)
    );
    let commit = env.git(&[
        "-C",
        "acme-widgets",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "ci",
    ]);
    assert_ok(&commit);
    let push = env.git(&["-C", "acme-widgets", "push", "-q", "origin", "HEAD:main"]);
    assert_ok(&push);
    no_secrets(&push);
    assert_eq!(
        w.sts.tokens_issued(),
        1,
        "clone and push share one exchange"
    );
    assert_eq!(w.issuer.actions_token_count(), 1);
    assert_eq!(
        w.issuer.actions_audiences(),
        ["127.0.0.1"],
        "audience: the broker's host"
    );
    let e = &w.sts.exchanges()[0];
    assert_eq!(
        e.query,
        "scope=acme/widgets&scopes=acme/widgets&identity=ci"
    );
    // The push landed.
    let log = std::process::Command::new("git")
        .args([
            "--git-dir",
            &w.gh.repo_path("acme", "widgets").display().to_string(),
            "log",
            "--format=%s",
            "-1",
            "main",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "ci");
}

#[test]
fn without_an_expiry_the_answer_claims_at_most_an_hour() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let fill = env.fill("acme/widgets.git");
    let token = token_of(&fill);
    let left = expiry_in(&fill);
    assert!(
        (3590..=3600).contains(&left),
        "password_expiry_utc is {left} s away"
    );
    // The cached answer keeps the same expiry; no second exchange.
    let again = env.fill("acme/widgets.git");
    assert_eq!(token_of(&again), token);
    assert!(expiry_in(&again) <= left);
    assert_eq!(w.sts.tokens_issued(), 1);
}

#[test]
fn eight_concurrent_cold_gets_make_one_exchange() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| token_of(&env.fill("acme/widgets.git"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(w.sts.exchanges().len(), 1, "{:?}", w.sts.exchanges());
    assert_eq!(w.issuer.actions_token_count(), 1);
}

#[test]
fn an_org_policy_gives_one_token_for_the_owners_repositories() {
    let w = octo();
    policy(
        &w.gh,
        &w.issuer,
        ".github",
        "fleet",
        "repo:acme/[^:]+:ref:refs/heads/main",
    );
    let mut env = actions_env(&w.gh, &w.sts, &w.issuer, "fleet");
    env.add_flags(&["--org-scope"]);
    let a = token_of(&env.fill("acme/widgets.git"));
    let b = token_of(&env.fill("acme/gadgets.git"));
    assert_eq!(a, b);
    assert_eq!(w.sts.tokens_issued(), 1);
    assert_eq!(w.sts.exchanges()[0].scope, "acme");
    assert_ok(&env.clone_repo("acme", "gadgets"));
}

#[test]
fn a_refusal_is_one_line_with_the_brokers_message_and_git_falls_through() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "deploy");
    let fill = env.fill("acme/widgets.git");
    assert_eq!(
        said(&fill),
        format!(
            "git-credential-github-app: octo-sts {} identity deploy refused (404): unable to find trust policy for \"deploy\"; leaving this request to other helpers\n",
            w.sts.url()
        )
    );
    assert_eq!(field(&fill, "password").as_deref(), Some("askpass-answer"));
    assert_eq!(w.sts.exchanges().len(), 1, "a 404 is not retried");
    // A policy mismatch: 403 with octo-sts' words.
    policy(
        &w.gh,
        &w.issuer,
        "widgets",
        "release",
        "repo:acme/widgets:ref:refs/tags/.*",
    );
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "release");
    let fill = env.fill("acme/widgets.git");
    assert!(
        said(&fill).contains("refused (403): trust policy: subject \"repo:acme/widgets:ref:refs/heads/main\" did not match \"repo:acme/widgets:ref:refs/tags/.*\""),
        "{}",
        said(&fill)
    );
    assert_eq!(w.sts.exchanges().len(), 2);
}

#[test]
fn a_401_is_retried_once_with_a_fresh_oidc_token_and_5xx_within_the_budget() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    w.sts.fail_next(16, "unable to verify bearer token", 1);
    w.sts.fail_next(14, "unavailable", 2);
    let fill = env.fill("acme/widgets.git");
    token_of(&fill);
    assert_eq!(w.sts.exchanges().len(), 4);
    assert_eq!(
        w.issuer.actions_token_count(),
        4,
        "a fresh OIDC token for every attempt"
    );
    // Two 401s: one retry, then one line, no token.
    let env2 = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    w.sts.fail_next(16, "unable to verify bearer token", 2);
    let fill = env2.fill("acme/gadgets.git");
    assert_eq!(
        said(&fill),
        format!(
            "git-credential-github-app: octo-sts {} identity ci did not accept the OIDC token (401, twice): unable to verify bearer token\n",
            w.sts.url()
        )
    );
    assert_eq!(w.sts.exchanges().len(), 6);
}

#[test]
fn a_missing_oidc_environment_says_which_one_was_looked_for() {
    let w = octo();
    let mut env = Env::new(&w.gh, 1001);
    env.set_flags(&[
        "--broker",
        "octo-sts",
        "--broker-url",
        &w.sts.url(),
        "--identity",
        "ci",
        "--host",
        &w.gh.host(),
        "--cache",
        "file",
    ]);
    let fill = env.fill("acme/widgets.git");
    assert_eq!(
        said(&fill),
        "git-credential-github-app: no OIDC token: looked for GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL), GitLab CI (GITLAB_CI and 127_0_0_1_ID_TOKEN) and Buildkite (BUILDKITE); set oidc = github-actions | gitlab:VARIABLE | buildkite | file:PATH, or oidc_command\n"
    );
    env.add_flags(&["--oidc", "github-actions"]);
    let fill = env.fill("acme/widgets.git");
    assert_eq!(
        said(&fill),
        "git-credential-github-app: no OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set; the workflow job needs `permissions: id-token: write`\n"
    );
    assert!(w.sts.exchanges().is_empty());
}

#[test]
fn erase_drops_the_token_and_revoke_deletes_it_upstream() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let first = token_of(&env.fill("acme/widgets.git"));
    assert_ok(&env.reject("acme/widgets.git", &first));
    let second = token_of(&env.fill("acme/widgets.git"));
    assert_ne!(first, second);
    assert_eq!(w.sts.tokens_issued(), 2);
    let revoke = env.helper(&["revoke", "acme"], b"");
    assert_ok(&revoke);
    no_secrets(&revoke);
    assert!(!w.gh.token_is_valid(&second), "{}", stdout(&revoke));
    assert_eq!(w.gh.count("DELETE", "/api/v3/installation/token"), 1);
    // forget drops what is cached for the owner: the next get exchanges again.
    assert_ok(&env.helper(&["forget", "acme"], b""));
    let third = token_of(&env.fill("acme/widgets.git"));
    assert_ne!(third, second);
    assert_eq!(w.sts.tokens_issued(), 3);
}

#[test]
fn token_exec_and_status_work_for_a_brokered_token() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let token = env.helper(&["token", "acme/widgets"], b"");
    assert_ok(&token);
    let t = stdout(&token).trim().to_owned();
    assert!(w.gh.token_is_valid(&t));
    let exec = env.helper(
        &[
            "exec",
            "acme/widgets",
            "--",
            "sh",
            "-c",
            "test \"$GH_TOKEN\" = \"$GITHUB_TOKEN\" && test -n \"$GH_TOKEN\"",
        ],
        b"",
    );
    assert_ok(&exec);
    let status = env.helper(&["status"], b"");
    assert_ok(&status);
    no_secrets(&status);
    let line = stdout(&status)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let expected = format!(
        "  {} octo-sts {} owner 'acme': token {}, expires ",
        w.gh.host(),
        w.sts.url(),
        git_credential_github_app::secret::fingerprint(&t)
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(
        line.ends_with("cached in file; narrowed to acme/widgets"),
        "{line}"
    );
    assert_eq!(
        w.sts.tokens_issued(),
        1,
        "token, exec and status share the cached token"
    );
}

/// A `buildkite-agent` on PATH that answers `oidc request-token --audience app-token-issuer`
/// with a Buildkite job token of pipeline widgets-ci.
fn fake_buildkite_agent(env: &mut Env, issuer: &OidcIssuer, audience: &str) {
    let bin = env.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let token = issuer.sign(buildkite_claims("acme-bk", "widgets-ci", audience));
    write_0600(&env.home.join("bk-token"), &token);
    let script = format!(
        "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"oidc request-token --audience {audience}\" ] || {{ echo \"unexpected: $*\" >&2; exit 3; }}\ncat '{}'\n",
        env.home.join("bk-token").display()
    );
    std::fs::write(bin.join("buildkite-agent"), script).unwrap();
    chmod(&bin.join("buildkite-agent"), 0o755);
    env.set_env(
        "PATH",
        &format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    env.set_env("BUILDKITE", "true");
}

#[test]
fn chinmina_git_credentials_with_buildkite_oidc_clone_and_push_with_its_expiry() {
    let gh = world();
    gh.set_token_lifetime(900);
    let issuer = OidcIssuer::start().unwrap();
    let ch = Chinmina::start(&gh, 1001, &issuer.url(), "acme-bk").unwrap();
    ch.pipeline("widgets-ci", "acme", "widgets");
    ch.profile("release", [("contents", "write")]);
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&[
        "--broker",
        "chinmina",
        "--broker-url",
        &ch.url(),
        "--profile",
        "release",
        "--audience",
        &ch.audience(),
        "--host",
        &gh.host(),
        "--cache",
        "file",
    ]);
    fake_buildkite_agent(&mut env, &issuer, &ch.audience());
    let fill = env.fill("acme/widgets.git");
    token_of(&fill);
    let left = expiry_in(&fill);
    assert!(
        (880..=900).contains(&left),
        "chinmina's expiry is used: {left}"
    );
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert_ok(&env.git(&[
        "-C",
        "acme-widgets",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "bk",
    ]));
    let push = env.git(&["-C", "acme-widgets", "push", "-q", "origin", "HEAD:main"]);
    assert_ok(&push);
    no_secrets(&push);
    assert_eq!(gh.mint_count(), 1);
    assert!(
        ch.requests()
            .iter()
            .all(|r| r.path == "/git-credentials/release")
    );
    // Another repository than the pipeline's: chinmina's empty answer, git falls through.
    let other = env.fill("acme/gadgets.git");
    assert_eq!(field(&other, "password").as_deref(), Some("askpass-answer"));
    assert_eq!(
        said(&other),
        format!(
            "git-credential-github-app: chinmina {} profile release has no token for owner 'acme' on {}; leaving this request to other helpers\n",
            ch.url(),
            gh.host()
        )
    );
    // A denial shows Chinmina-Denied.
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&[
        "--broker",
        "chinmina",
        "--broker-url",
        &ch.url(),
        "--profile",
        "deploy",
        "--audience",
        &ch.audience(),
        "--host",
        &gh.host(),
        "--cache",
        "file",
    ]);
    fake_buildkite_agent(&mut env, &issuer, &ch.audience());
    let denied = env.fill("acme/widgets.git");
    assert!(
        said(&denied).contains(
            "refused (403): profile deploy not found; leaving this request to other helpers"
        ),
        "{}",
        said(&denied)
    );
}

#[test]
fn chinmina_token_mode_and_gitlab_and_kubernetes_oidc_from_the_config_file() {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    let ch = Chinmina::start(&gh, 1001, &issuer.url(), "acme-bk").unwrap();
    ch.pipeline("widgets-ci", "acme", "widgets");
    let sts = OctoSts::start(&gh, 1001).unwrap();
    policy(
        &gh,
        &issuer,
        "gadgets",
        "gitlab",
        "project_path:acme/gadgets:ref_type:branch:ref:main",
    );
    policy(
        &gh,
        &issuer,
        "gadgets",
        "k8s",
        "system:serviceaccount:ci:runner",
    );
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&["--cache", "file"]);
    let sa_token = env.home.join("sa-token");
    write_0600(
        &sa_token,
        &issuer.sign(json!({"sub": "system:serviceaccount:ci:runner", "aud": "127.0.0.1"})),
    );
    env.set_env(
        "OCTO_ID_TOKEN",
        &issuer.sign(json!({"sub": "project_path:acme/gadgets:ref_type:branch:ref:main", "aud": "127.0.0.1"})),
    );
    env.set_env(
        "BK_TOKEN",
        &issuer.sign(buildkite_claims(
            "acme-bk",
            "widgets-ci",
            "app-token-issuer",
        )),
    );
    let host = gh.host();
    let config = |second: &str| {
        format!(
            "[[broker]]\nkind = \"chinmina\"\nurl = \"{}\"\nmode = \"token\"\noidc_command = [\"sh\", \"-c\", \"printf %s \\\"$BK_TOKEN\\\"\"]\nhost = \"{host}\"\nowners = [\"acme\"]\n\n[[broker]]\nkind = \"octo-sts\"\nurl = \"{}\"\nidentity = \"{second}\"\noidc = \"{}\"\nhost = \"{host}\"\n",
            ch.url(),
            sts.url(),
            if second == "gitlab" {
                "gitlab:OCTO_ID_TOKEN".to_owned()
            } else {
                format!("file:{}", sa_token.display())
            },
        )
    };
    env.write_config(&[], &config("gitlab"));
    // widgets: chinmina's pipeline repository (mode token).
    let w = env.fill("acme/widgets.git");
    token_of(&w);
    assert_eq!(ch.vend_count(), 1);
    assert_eq!(ch.requests()[0].path, "/token");
    // gadgets: chinmina answers for widgets only, so octo-sts, with GitLab's id_tokens variable.
    let g = env.fill("acme/gadgets.git");
    token_of(&g);
    assert_eq!(sts.tokens_issued(), 1);
    assert_eq!(
        sts.exchanges()[0].subject.as_deref(),
        Some("project_path:acme/gadgets:ref_type:branch:ref:main")
    );
    // The same with a Kubernetes projected service-account token in a file.
    env.write_config(&[], &config("k8s"));
    assert_ok(&env.clone_repo("acme", "gadgets"));
    assert_eq!(
        sts.exchanges().last().unwrap().subject.as_deref(),
        Some("system:serviceaccount:ci:runner")
    );
}

#[test]
fn the_rfc_8693_recipe_token_command_clones_with_curl() {
    if !have(&["curl"]) {
        return;
    }
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    let sts = TokenExchange::start(&gh, 1001, &issuer.url()).unwrap();
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&["--cache", "file"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/brokers/rfc8693-token-command.sh");
    let sa_token = env.home.join("sa-token");
    write_0600(
        &sa_token,
        &issuer.sign(json!({"sub": "system:serviceaccount:ci:runner", "aud": "sts"})),
    );
    env.write_config(
        &[],
        &format!(
            "[[broker]]\ntoken_command = [\"sh\", \"{}\", \"{}\"]\noidc = \"file:{}\"\nhost = \"{}\"\n",
            script.display(),
            sts.url(),
            sa_token.display(),
            gh.host()
        ),
    );
    let fill = env.fill("acme/widgets.git");
    token_of(&fill);
    let left = expiry_in(&fill);
    assert!((3590..=3600).contains(&left), "expires_in is used: {left}");
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert_eq!(sts.exchange_count(), 1);
}

#[test]
fn doctor_finds_the_oidc_source_checks_the_audience_and_makes_one_exchange() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let doctor = env.helper(&["doctor", "--repo", "acme/widgets"], b"");
    no_secrets(&doctor);
    let out = stdout(&doctor);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no {id} line in:\n{out}"))
            .to_owned()
    };
    assert!(
        line("OIDC token from").starts_with(
            "[ OK ] oidc: OIDC token from GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL): iss "
        ),
        "{out}"
    );
    assert!(
        line("OIDC token from")
            .contains("sub repo:acme/widgets:ref:refs/heads/main, aud 127.0.0.1, expires in 30"),
        "{out}"
    );
    assert_eq!(
        line("audience is"),
        format!(
            "[ OK ] audience: the OIDC token's audience is 127.0.0.1, as octo-sts {} identity ci expects",
            w.sts.url()
        )
    );
    assert!(
        line("one exchange").starts_with(&format!(
            "[ OK ] exchange: one exchange with octo-sts {} identity ci for acme/widgets: token sha256:",
            w.sts.url()
        )),
        "{out}"
    );
    assert!(line("one exchange").ends_with("(revoked again)"), "{out}");
    assert_eq!(w.sts.tokens_issued(), 1);
    assert!(
        !w.gh
            .token_is_valid(w.sts.exchanges()[0].token.as_deref().unwrap())
    );
    // A GitLab token requested for another audience is named as such.
    let mut env = Env::new(&w.gh, 1001);
    env.set_flags(&[
        "--broker",
        "octo-sts",
        "--broker-url",
        &w.sts.url(),
        "--identity",
        "ci",
        "--oidc",
        "gitlab:OCTO_ID_TOKEN",
        "--host",
        &w.gh.host(),
        "--cache",
        "file",
    ]);
    env.set_env(
        "OCTO_ID_TOKEN",
        &w.issuer
            .sign(json!({"sub": "project_path:acme/widgets", "aud": "https://gitlab.example.com"})),
    );
    let out = stdout(&env.helper(&["doctor"], b""));
    assert!(
        out.contains("[FAIL] audience: the OIDC token's audience is not 127.0.0.1"),
        "{out}"
    );
    assert!(
        out.contains("[SKIP] exchange: give --repo OWNER/REPO to try one exchange"),
        "{out}"
    );
}

/// The figure in docs/brokers.md: N jobs (each a fresh runner: its own HOME and cache) × M git
/// steps against octo-sts, once through the helper's cache and once as octo-sts/action works
/// (a token minted for every step: `--cache none`, one git operation per step). Prints the
/// measured counts (`cargo test --test e2e brokers::figure -- --nocapture`).
#[test]
fn figure_exchanges_for_n_jobs_by_m_git_steps() {
    const JOBS: usize = 4;
    const STEPS: usize = 5;
    let w = octo();
    let run = |extra: &[&str]| {
        let before = w.sts.exchanges().len();
        let oidc_before = w.issuer.actions_token_count();
        let started = std::time::Instant::now();
        for _ in 0..JOBS {
            let mut env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
            env.add_flags(extra);
            for _ in 0..STEPS {
                let url = format!("{}/acme/widgets.git", w.gh.url());
                assert_ok(&env.git(&["ls-remote", "-q", &url]));
            }
        }
        (
            w.sts.exchanges().len() - before,
            w.issuer.actions_token_count() - oidc_before,
            started.elapsed().as_secs_f64() / (JOBS * STEPS) as f64,
        )
    };
    let (cached, cached_oidc, cached_step) = run(&[]);
    let (action, action_oidc, action_step) = run(&["--cache", "none"]);
    eprintln!(
        "{JOBS} jobs x {STEPS} git steps: helper {cached} exchanges ({cached_oidc} OIDC tokens, {:.0} ms a step); one mint per step {action} exchanges ({action_oidc} OIDC tokens, {:.0} ms a step)",
        cached_step * 1000.0,
        action_step * 1000.0
    );
    assert_eq!((cached, cached_oidc), (JOBS, JOBS));
    assert_eq!((action, action_oidc), (JOBS * STEPS, JOBS * STEPS));
}

/// docs/brokers.md's GitHub Actions recipe: no secret, `setup --broker …`, then plain git.
#[test]
fn setup_with_a_broker_writes_a_helper_line_that_clones() {
    let w = octo();
    let env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = CI\n\temail = ci@example.com\n",
    )
    .unwrap();
    let setup = run(
        env.command(HELPER).args([
            "setup",
            "--broker",
            "octo-sts",
            "--broker-url",
            &w.sts.url(),
            "--identity",
            "ci",
            "--host",
            &w.gh.host(),
        ]),
        b"",
    );
    assert_ok(&setup);
    let line = env.git(&[
        "config",
        "--global",
        "--get-all",
        &format!("credential.{}/.helper", w.gh.url()),
    ]);
    assert_eq!(
        stdout(&line),
        format!(
            "\n{HELPER} --host {} --broker octo-sts --broker-url {} --identity ci\n",
            w.gh.host(),
            w.sts.url()
        )
    );
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert_eq!(w.sts.tokens_issued(), 1);
}

#[test]
fn a_token_command_runs_within_the_budget_and_its_stderr_is_masked() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_flags(&["--cache", "file", "--timeout", "2s"]);
    let host = gh.host();
    let script = env.home.join("sts.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$(cat)\" in *repo=slow*) sleep 30 ;; *repo=gadgets*) exit 0 ;; esac\necho 'denied for ghs_0123456789abcdefghijklmnopqrstuvwxyzAB' >&2\nexit 1\n",
    )
    .unwrap();
    env.write_config(
        &[],
        &format!(
            "[[broker]]\ntoken_command = [\"sh\", \"{}\"]\nhost = \"{host}\"\n",
            script.display()
        ),
    );
    let fill = env.fill("acme/widgets.git");
    assert_eq!(
        said(&fill),
        "git-credential-github-app: token_command 'sh' exited with status 1: denied for [masked]\n"
    );
    no_secrets(&fill);
    // Nothing printed: not ours, git asks its next helper.
    let fill = env.fill("acme/gadgets.git");
    assert_eq!(field(&fill, "password").as_deref(), Some("askpass-answer"));
    let started = std::time::Instant::now();
    let fill = env.fill("acme/slow.git");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        said(&fill).contains("did not answer within the time budget and was stopped"),
        "{}",
        said(&fill)
    );
}

#[test]
fn broker_exchanges_go_through_the_proxy_chosen_for_their_url() {
    if !have(&["tinyproxy"]) {
        return;
    }
    let w = octo();
    let mut env = actions_env(&w.gh, &w.sts, &w.issuer, "ci");
    let proxy = crate::network::Tinyproxy::start(&env.home);
    // Plain-http URLs take `http_proxy` (lower case, as curl reads it).
    env.set_env("http_proxy", &proxy.url);
    token_of(&env.fill("acme/widgets.git"));
    // ureq tunnels even plain http through the proxy (CONNECT host:port).
    let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();
    let through = |url: &str| {
        let target = format!("127.0.0.1:{} HTTP/1.1", port(url));
        proxy.connects().iter().filter(|c| **c == target).count()
    };
    assert_eq!(through(&w.sts.url()), 1, "{:?}", proxy.connects());
    assert_eq!(
        through(&w.issuer.url()),
        1,
        "the Actions ID-token request too"
    );
    // NO_PROXY names the host: the next exchange (another repository) goes directly.
    env.set_env("NO_PROXY", "127.0.0.1");
    policy(
        &w.gh,
        &w.issuer,
        "gadgets",
        "ci",
        "repo:acme/widgets:ref:refs/heads/main",
    );
    token_of(&env.fill("acme/gadgets.git"));
    assert_eq!(through(&w.sts.url()), 1, "{:?}", proxy.connects());
    assert_eq!(w.sts.tokens_issued(), 2);
}

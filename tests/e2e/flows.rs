use crate::support::*;
use local_github::{Account, App, GitHub, Installation, TokenFormat};

fn head(repo: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .args([
            "--git-dir",
            &repo.display().to_string(),
            "rev-parse",
            "main",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit_and_push(env: &Env, dir: &str) -> std::process::Output {
    let work = env.home.join(dir);
    std::fs::write(work.join("change.txt"), "pushed through the helper\n").unwrap();
    assert_ok(&env.git(&["-C", dir, "add", "change.txt"]));
    assert_ok(&env.git(&["-C", dir, "commit", "--quiet", "-m", "change"]));
    env.git(&["-C", dir, "push", "--quiet", "origin", "main"])
}

#[test]
fn org_installation_clone_fetch_and_push() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert!(env.home.join("acme-widgets/README.md").exists());
    // one installation lookup (the repository's), one mint
    assert_eq!(
        gh.count("GET", "/api/v3/repos/acme/widgets/installation"),
        1
    );
    assert_eq!(gh.lookup_count(), 1);
    assert_eq!(gh.mint_count(), 1);

    assert_ok(&env.git(&["-C", "acme-widgets", "fetch", "--quiet"]));
    assert_ok(&commit_and_push(&env, "acme-widgets"));
    let local =
        String::from_utf8_lossy(&env.git(&["-C", "acme-widgets", "rev-parse", "HEAD"]).stdout)
            .trim()
            .to_owned();
    assert_eq!(
        head(&gh.repo_path("acme", "widgets")),
        local,
        "the push landed in the bare repository"
    );
    // fetch and push were served from the cache: still one lookup, one mint
    assert_eq!((gh.lookup_count(), gh.mint_count()), (1, 1));
}

#[test]
fn user_installation_clone_and_push() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_ok(&commit_and_push(&env, "octo-dotfiles"));
    assert_eq!(gh.mint_count(), 1);
}

#[test]
fn second_get_makes_no_api_call() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = env.fill("acme/widgets.git");
    assert_ok(&first);
    assert_eq!(field(&first, "username").as_deref(), Some("x-access-token"));
    let token = field(&first, "password").unwrap();
    let expiry: i64 = field(&first, "password_expiry_utc")
        .unwrap()
        .parse()
        .unwrap();
    let issued = gh.tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].token, token);
    assert_eq!(
        issued[0].expires_at, expiry,
        "expiry comes from GitHub's expires_at"
    );
    let before = gh.requests().len();
    let second = env.fill("acme/widgets.git");
    assert_eq!(field(&second, "password").as_deref(), Some(token.as_str()));
    assert_eq!(
        gh.requests().len(),
        before,
        "a cached get makes no request at all"
    );
    assert_eq!(stderr(&second), "");
}

#[test]
fn repository_outside_the_selection_is_refused_by_github() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    // The app is installed on acme, so the helper answers for the owner; the token does not
    // cover acme/secret and GitHub says so.
    let out = env.clone_repo("acme", "secret");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    assert!(!env.home.join("acme-secret").join(".git").exists());
}

#[test]
fn owner_without_installation_falls_through_to_the_next_helper() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper = \"!f() {{ echo username=fallback; echo password=from-next-helper; }}; f\"\n",
        env.git_url
    ));
    let out = env.fill("nobody/thing.git");
    assert_ok(&out);
    assert_eq!(field(&out, "password").as_deref(), Some("from-next-helper"));
    assert!(
        stderr(&out).contains("not installed on 'nobody'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gh.mint_count(), 0);
}

#[test]
fn other_hosts_and_protocols_fall_through_silently() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    for input in [
        "protocol=https\nhost=github.com\npath=acme/widgets.git\n".to_owned(),
        "protocol=http\nhost=127.0.0.1:1\npath=acme/widgets.git\n".to_owned(),
        "protocol=ssh\nhost=github.com\npath=acme/widgets.git\n".to_owned(),
        "protocol=http\nhost=example.com\npath=acme/widgets.git\n".to_owned(),
    ] {
        let out = env.helper(&["get"], input.as_bytes());
        assert_ok(&out);
        assert_eq!(
            (stdout(&out), stderr(&out)),
            (String::new(), String::new()),
            "{input}"
        );
    }
    assert_eq!(gh.requests().len(), 0);
}

#[test]
fn without_a_path_it_says_how_to_enable_use_http_path() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = env.helper(
        &["get"],
        format!("protocol=http\nhost={}\n", env.host).as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("useHttpPath true"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fixed_installation_needs_no_path_and_no_lookup() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--installation-id", "11"]);
    let out = env.helper(
        &["get"],
        format!("protocol=http\nhost={}\n", env.host).as_bytes(),
    );
    assert_ok(&out);
    assert!(field(&out, "password").is_some());
    assert_eq!((gh.lookup_count(), gh.mint_count()), (0, 1));
}

#[test]
fn pkcs1_and_pkcs8_keys_both_work() {
    let gh = world();
    let pkcs1 = gh.app(1001).private_key_pem().to_owned();
    let pkcs8 = gh.app(1001).private_key_pkcs8_pem().to_owned();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    for pem in [pkcs1, pkcs8] {
        let env = Env::with_key(&gh, 1001, &pem);
        assert_ok(&env.clone_repo("octo", "dotfiles"));
    }
    assert_eq!(gh.mint_count(), 2);
}

#[test]
fn client_id_works_as_app_id() {
    let gh = world();
    let client_id = gh.app(1001).client_id();
    let mut env = Env::new(&gh, 1001);
    let key = env.key_path.display().to_string();
    let host = env.host.clone();
    env.set_flags(&[
        "--app-id",
        &client_id,
        "--private-key",
        &key,
        "--host",
        &host,
        "--cache",
        "file",
    ]);
    assert_ok(&env.clone_repo("octo", "dotfiles"));
}

#[test]
fn long_stateless_tokens_work() {
    let gh = world();
    gh.set_token_format(TokenFormat::Stateless);
    let env = Env::new(&gh, 1001);
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    let token = gh.tokens()[0].token.clone();
    assert!(token.len() > 100, "{token}");
    assert_eq!(
        field(&env.fill("octo/dotfiles.git"), "password"),
        Some(token)
    );
}

#[test]
fn environment_configures_an_app() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let host = env.host.clone();
    env.set_flags(&["--host", &host, "--cache", "file"]);
    env.set_env("GITHUB_APP_ID", "1001");
    env.set_env("GITHUB_APP_PRIVATE_KEY", &gh.app(1001).private_key_pem());
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    // the PEM pasted with literal \n, as CI secrets often hold it
    let mut env2 = Env::new(&gh, 1001);
    env2.set_flags(&["--host", &host, "--cache", "none"]);
    env2.set_env("GITHUB_APP_ID", "1001");
    env2.set_env(
        "GITHUB_APP_PRIVATE_KEY",
        &gh.app(1001).private_key_pem().replace('\n', "\\n"),
    );
    assert_ok(&env2.clone_repo("octo", "dotfiles"));
}

#[test]
fn config_file_routes_owners_to_apps() {
    let gh = two_apps();
    let mut env = Env::new(&gh, 1001);
    env.write_config(
        &[("acme.pem", &gh.app(1001).private_key_pem()), ("octo.pem", &gh.app(2002).private_key_pem())],
        &format!(
            "cache = \"file\"\n\n[[app]]\napp_id = 1001\nprivate_key_path = \"acme.pem\"\nhost = \"{h}\"\nowners = [\"acme\"]\n\n\
             [[app]]\napp_id = 2002\nprivate_key_path = \"octo.pem\"\nhost = \"{h}\"\nowners = [\"octo\"]\n",
            h = gh.host()
        ),
    );
    env.set_flags(&[]);
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    let mut minted: Vec<(u64, u64)> = gh
        .tokens()
        .iter()
        .map(|t| (t.installation_id, t.app_id))
        .collect();
    minted.sort();
    assert_eq!(
        minted,
        vec![(11, 1001), (22, 2002)],
        "each owner's token came from its own app"
    );
}

#[test]
fn the_next_app_serves_an_owner_the_first_is_not_installed_on() {
    let gh = two_apps();
    // app 1001 from the environment (any owner), app 2002 from the config file (any owner)
    let mut env = Env::new(&gh, 1001);
    env.write_config(
        &[("octo.pem", &gh.app(2002).private_key_pem())],
        &format!("cache = \"file\"\n[[app]]\napp_id = 2002\nprivate_key_path = \"octo.pem\"\nhost = \"{}\"\n", gh.host()),
    );
    let host = env.host.clone();
    env.set_flags(&["--host", &host]);
    env.set_env("GITHUB_APP_ID", "1001");
    env.set_env(
        "GITHUB_APP_PRIVATE_KEY_PATH",
        &env.key_path.display().to_string(),
    );
    let out = env.fill("octo/dotfiles.git");
    let token = token_of(&out);
    assert_eq!(
        stderr(&out),
        "",
        "another app answered: no complaint about the first"
    );
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    assert_eq!((issued.app_id, issued.installation_id), (2002, 22));
    // the next get goes straight to the right app: no lookup for the app that is not installed
    assert_ok(&env.reject("octo/dotfiles.git", &token));
    gh.clear_log();
    token_of(&env.fill("octo/dotfiles.git"));
    assert_eq!((gh.lookup_count(), gh.mint_count()), (0, 1));
}

#[test]
fn an_owner_without_the_app_is_not_asked_about_again_for_a_while() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = env.fill("nobody/thing.git");
    assert!(
        stderr(&first).contains("not installed on 'nobody'"),
        "{}",
        stderr(&first)
    );
    assert_eq!(gh.lookup_count(), 2, "repository, then user lookup");
    let second = env.fill("nobody/thing.git");
    assert_eq!(
        field(&second, "password").as_deref(),
        Some("askpass-answer")
    );
    assert!(
        !stderr(&second).contains("git-credential-github-app"),
        "remembered: silent: {}",
        stderr(&second)
    );
    assert_eq!(gh.lookup_count(), 2);
}

/// Two apps: 1001 installed on the org `acme`, 2002 on the user `octo`.
fn two_apps() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "acme-bot"))
        .app(App::new_unique_key(2002, "octo-bot"))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .repo("acme", "widgets")
        .repo("octo", "dotfiles")
        .installation(Installation::new(11, 1001, "acme").all())
        .installation(Installation::new(22, 2002, "octo").all())
        .start()
        .unwrap()
}

//! Public repositories and `[public_fallback]`: with `http.<url>.proactiveAuth = basic` git asks
//! the helper before its first request, for every owner; the fallback app's installation answers
//! for owners none of our apps is installed on, so public clones are authenticated (GitHub's
//! limits for anonymous clones are far lower).

use local_github::{Account, App, GitHub, Installation};

use crate::support::*;

/// App 1001 on acme; app 3003 (the fallback) installed only on its own org; `stranger/tool` is a
/// public repository of an account without any installation.
fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .app(App::new(3003, "public-reader"))
        .account(Account::org("acme"))
        .account(Account::org("readers"))
        .account(Account::user("stranger"))
        .repo("acme", "widgets")
        .repo("readers", "home")
        .public_repo("stranger", "tool")
        .repo("stranger", "private")
        .installation(Installation::new(11, 1001, "acme").all())
        .installation(
            Installation::new(33, 3003, "readers")
                .all()
                .permissions([("contents", "read"), ("metadata", "read")]),
        )
        .start()
        .unwrap()
}

fn env_with(gh: &GitHub, fallback: bool) -> Env {
    let mut env = Env::new(gh, 1001);
    let mut toml = format!(
        "cache = \"file\"\n\n[[app]]\napp_id = 1001\nprivate_key_path = \"ci.pem\"\nhost = \"{h}\"\n",
        h = gh.host()
    );
    if fallback {
        toml.push_str(&format!(
            "\n[public_fallback]\napp_id = 3003\nprivate_key_path = \"reader.pem\"\nhost = \"{h}\"\ninstallation_id = 33\n",
            h = gh.host()
        ));
    }
    env.write_config(
        &[
            ("ci.pem", &gh.app(1001).private_key_pem()),
            ("reader.pem", &gh.app(3003).private_key_pem()),
        ],
        &toml,
    );
    env.set_flags(&[]);
    env
}

/// `git clone` with `http.<url>.proactiveAuth = basic` (git ≥ 2.46).
fn proactive_clone(env: &Env, owner: &str, repo: &str) -> std::process::Output {
    proactive_clone_into(env, owner, repo, &format!("{owner}-{repo}"))
}

fn proactive_clone_into(env: &Env, owner: &str, repo: &str, dest: &str) -> std::process::Output {
    let url = format!("{}/{owner}/{repo}.git", env.git_url);
    env.git(&[
        "-c",
        &format!("http.{}/.proactiveAuth=basic", env.git_url),
        "clone",
        "--quiet",
        &url,
        dest,
    ])
}

fn git_requests(gh: &GitHub, owner: &str) -> Vec<local_github::RequestRecord> {
    gh.requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/{owner}/")))
        .collect()
}

#[test]
fn the_fallback_authenticates_public_clones_of_owners_without_an_installation() {
    let gh = world();
    let env = env_with(&gh, true);
    let out = proactive_clone(&env, "stranger", "tool");
    assert_ok(&out);
    assert_eq!(
        stderr(&out),
        "",
        "nothing to say: the fallback is what the user asked for"
    );
    assert!(env.home.join("stranger-tool/README.md").exists());
    // Every request carried the fallback installation's token; none went unauthenticated.
    let requests = git_requests(&gh, "stranger");
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Basic") && r.status == 200),
        "{requests:?}"
    );
    let minted: Vec<(u64, u64)> = gh
        .tokens()
        .iter()
        .map(|t| (t.app_id, t.installation_id))
        .collect();
    assert_eq!(minted, vec![(3003, 33)]);

    // An owner our app is installed on still gets that app's token, also proactively.
    assert_ok(&proactive_clone(&env, "acme", "widgets"));
    assert!(
        gh.tokens()
            .iter()
            .any(|t| (t.app_id, t.installation_id) == (1001, 11))
    );

    // The fallback's token reads public repositories only: a private one stays not found.
    let out = proactive_clone(&env, "stranger", "private");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Repository not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gh.mint_count(), 2, "the fallback token came from the cache");
}

#[test]
fn without_the_fallback_public_clones_stay_anonymous_and_the_helper_silent() {
    let gh = world();
    let env = env_with(&gh, false);
    // Plain git: a public repository never answers 401, so no helper is asked.
    let url = format!("{}/stranger/tool.git", env.git_url);
    let out = env.git(&["clone", "--quiet", &url, "anon"]);
    assert_ok(&out);
    assert_eq!(stderr(&out), "");
    assert!(
        git_requests(&gh, "stranger")
            .iter()
            .all(|r| r.auth_scheme.is_none()),
        "{:?}",
        gh.requests()
    );
    assert_eq!(gh.mint_count(), 0);

    // Asked directly for such an owner, the helper prints nothing (git goes on to other helpers).
    let out = env.helper(
        &["get"],
        format!("protocol=http\nhost={}\npath=stranger/tool.git\n", env.host).as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn without_the_fallback_proactive_auth_makes_git_prompt() {
    // What git 2.47 does when no helper answers a proactive request: it prompts (here the test's
    // askpass answers, and the made-up password is refused). So proactiveAuth for a whole host
    // needs [public_fallback]; docs/configuration.md says so.
    let gh = world();
    let env = env_with(&gh, false);
    let out = proactive_clone(&env, "stranger", "tool");
    assert!(
        stderr(&out).contains("askpass: Username for"),
        "{}",
        stderr(&out)
    );
    assert!(!out.status.success());
    assert_eq!(gh.mint_count(), 0);
}

#[test]
fn a_public_fallback_without_installation_id_is_refused() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    env.write_config(
        &[("reader.pem", &gh.app(3003).private_key_pem())],
        &format!(
            "[public_fallback]\napp_id = 3003\nprivate_key_path = \"reader.pem\"\nhost = \"{}\"\n",
            gh.host()
        ),
    );
    let out = env.helper(
        &["get"],
        format!("protocol=http\nhost={}\npath=stranger/tool.git\n", env.host).as_bytes(),
    );
    assert!(!out.status.success());
    let config = env
        .home
        .join(".config/git-credential-github-app/config.toml");
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: {} [public_fallback]: installation_id is required (the installation whose tokens answer for owners without one of your apps)\n",
            config.display()
        )
    );
}

#[test]
fn a_rejected_fallback_token_is_dropped_and_replaced() {
    let gh = world();
    let env = env_with(&gh, true);
    assert_ok(&proactive_clone(&env, "stranger", "tool"));
    gh.revoke_all_tokens();
    // git sends the cached (now revoked) token, gets 401 and erases it: the helper drops it...
    let out = proactive_clone_into(&env, "stranger", "tool", "second");
    assert!(
        stderr(&out).contains("git rejected token"),
        "{}",
        stderr(&out)
    );
    // ...so the next request gets a fresh fallback token.
    assert_ok(&proactive_clone_into(&env, "stranger", "tool", "third"));
    let fallback_mints = gh.tokens().iter().filter(|t| t.app_id == 3003).count();
    assert_eq!(fallback_mints, 2);
}

/// Issue 17 item 8: when every `[[app]]` lists its owners, `[public_fallback]` still answers for
/// the rest, as the README says.
#[test]
fn the_fallback_answers_owners_outside_every_apps_owner_list() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    env.write_config(
        &[
            ("ci.pem", &gh.app(1001).private_key_pem()),
            ("reader.pem", &gh.app(3003).private_key_pem()),
        ],
        &format!(
            "cache = \"file\"\n\n[[app]]\napp_id = 1001\nprivate_key_path = \"ci.pem\"\nhost = \"{h}\"\nowners = [\"acme\"]\n\n[public_fallback]\napp_id = 3003\nprivate_key_path = \"reader.pem\"\nhost = \"{h}\"\ninstallation_id = 33\n",
            h = gh.host()
        ),
    );
    let mut env = env;
    env.set_flags(&[]);
    let stranger = token_of(&env.fill("stranger/tool.git"));
    let acme = token_of(&env.fill("acme/widgets.git"));
    let minted_for = |token: &str| {
        gh.tokens()
            .iter()
            .find(|t| t.token == token)
            .map(|t| (t.app_id, t.installation_id))
    };
    assert_eq!(
        minted_for(&stranger),
        Some((3003, 33)),
        "the fallback answered"
    );
    assert_eq!(minted_for(&acme), Some((1001, 11)));
}

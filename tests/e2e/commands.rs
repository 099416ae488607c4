use crate::support::*;
use git_credential_github_app::secret::fingerprint;
use local_github::{Account, App, GitHub, Installation};
use std::process::Output;

const MINT: &str = "/api/v3/app/installations/";

/// The helper's lines on stderr (git's askpass lines left out).
fn said(o: &Output) -> String {
    stderr(o)
        .lines()
        .filter(|l| !l.starts_with("askpass:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `git ls-remote` with the credential in the URL (so no helper is asked).
fn ls_remote_with(env: &Env, token: &str, owner: &str, repo: &str) -> Output {
    let url = env
        .git_url
        .replacen("://", &format!("://x-access-token:{token}@"), 1);
    env.git(&["ls-remote", &format!("{url}/{owner}/{repo}.git")])
}

#[test]
fn token_prints_gits_token_minted_once() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let printed = env.helper(&["token", "octo"], b"");
    assert_ok(&printed);
    let token = stdout(&printed).trim_end().to_owned();
    assert_eq!(stdout(&printed), format!("{token}\n"), "the token alone");
    assert!(gh.token_is_valid(&token), "accepted by the API");
    assert_eq!(stderr(&printed), "");
    let git = token_of(&env.fill("octo/dotfiles.git"));
    assert_eq!(git, token, "git gets the same token");
    assert_eq!(gh.mint_count(), 1, "one mint for both");
    // Options after the word, and JSON.
    let json = env.helper(&["token", "octo/dotfiles", "--json"], b"");
    assert_ok(&json);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["token"], token.as_str());
    assert_eq!(v["installation_id"], 12);
    assert_eq!(v["kind"], "installation");
    assert_eq!(v["account"], "octo");
    assert_eq!(v["permissions"]["contents"], "write");
    assert_eq!(v["minted"], false);
    let expires = v["expires_at"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && expires.len() == 20,
        "RFC 3339: {expires}"
    );
    assert_eq!(gh.mint_count(), 1);
    // An owner the app is not installed on: a clear failure, nothing on stdout.
    let none = env.helper(&["token", "nobody"], b"");
    assert_eq!(code(&none), 1);
    assert_eq!(stdout(&none), "");
    assert_eq!(
        stderr(&none),
        format!(
            "git-credential-github-app: app 1001 is not installed on 'nobody' ({})\n",
            gh.host()
        )
    );
    let remembered = env.helper(&["token", "nobody"], b"");
    assert_eq!(
        stderr(&remembered),
        format!(
            "git-credential-github-app: app 1001 is not installed on 'nobody' ({}) (remembered for 5 minutes; to ask GitHub again now, run: git-credential-github-app forget nobody)\n",
            gh.host()
        )
    );
}

#[test]
fn exec_passes_the_token_in_the_environment_and_the_exit_status_back() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = env.helper(
        &[
            "exec",
            "octo",
            "--",
            "sh",
            "-c",
            "test \"$GH_TOKEN\" = \"$GITHUB_TOKEN\" && printf %s \"$GH_TOKEN\"; exit 7",
        ],
        b"",
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let token = stdout(&out);
    assert!(token.starts_with("ghs_"), "{token}");
    assert!(gh.token_is_valid(&token));
    assert_eq!(token_of(&env.fill("octo/notes.git")), token);
    assert_eq!(gh.mint_count(), 1);
    let missing = env.helper(&["exec", "octo"], b"");
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("give the command after --"));
}

#[test]
fn status_shows_fingerprints_and_never_a_token() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    let _ = env.fill("nobody/thing.git");
    let out = env.helper(&["status"], b"");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(!text.contains(&token), "token leaked: {text}");
    assert!(!text.contains(&token[4..16]), "token part leaked: {text}");
    let line = text
        .lines()
        .find(|l| l.contains(&fingerprint(&token)))
        .unwrap_or_else(|| panic!("no line with the fingerprint: {text}"));
    assert!(
        line.starts_with(&format!(
            "  {} app 1001 owner 'octo' installation 12: token {}, expires ",
            gh.host(),
            fingerprint(&token)
        )),
        "{line}"
    );
    assert!(
        line.contains("(in ") && line.ends_with("cached in file"),
        "{line}"
    );
    assert!(
        text.contains("app 1001 owner 'octo': installation 12 (looked up "),
        "{text}"
    );
    assert!(text.contains("app 1001 owner 'nobody': since "), "{text}");
    let json = env.helper(&["status", "--json"], b"");
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["tokens"][0]["fingerprint"], fingerprint(&token).as_str());
    assert_eq!(v["tokens"][0]["installation_id"], 12);
    assert_eq!(v["not_installed"][0]["owner"], "nobody");
    assert!(!stdout(&json).contains(&token));
}

#[test]
fn installations_follow_pagination() {
    let mut builder = GitHub::builder().app(App::new(1001, "ci-bot"));
    for i in 0..101u64 {
        let login = format!("user{i:03}");
        builder = builder
            .account(Account::user(&login))
            .installation(Installation::new(1000 + i, 1001, &login).all());
    }
    let gh = builder.start().unwrap();
    let env = Env::new(&gh, 1001);
    let out = env.helper(&["installations"], b"");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("app 1001 on {}: 101 installations\n", gh.host())),
        "{text}"
    );
    for i in [0u64, 99, 100] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [
                        &(1000 + i).to_string(),
                        &format!("user{i:03}"),
                        "User",
                        "all"
                    ]),
            "installation {i} missing: {text}"
        );
    }
    assert_eq!(
        gh.count("GET", "/api/v3/app/installations"),
        2,
        "two pages of 100"
    );
    let json = env.helper(&["installations", "--json"], b"");
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v[0]["installations"].as_array().unwrap().len(), 101);
}

#[test]
fn revoke_deletes_on_github_and_drops_the_cache() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_ok(&ls_remote_with(&env, &token, "octo", "dotfiles"));
    let out = env.helper(&["revoke", "octo"], b"");
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "revoked token {} (app 1001, owner 'octo', installation 12)\n",
            fingerprint(&token)
        )
    );
    assert_eq!(gh.count("DELETE", "/api/v3/installation/token"), 1);
    assert!(!gh.token_is_valid(&token));
    assert_ne!(
        code(&ls_remote_with(&env, &token, "octo", "dotfiles")),
        0,
        "the old token is refused"
    );
    let fresh = token_of(&env.fill("octo/dotfiles.git"));
    assert_ne!(fresh, token);
    assert_eq!(gh.mint_count(), 2);
    assert_ok(&env.git(&["ls-remote", &format!("{}/octo/dotfiles.git", env.git_url)]));
    let again = env.helper(&["revoke", "nobody"], b"");
    assert_eq!(stdout(&again), "no cached token for 'nobody'\n");
}

#[test]
fn forget_makes_a_newly_installed_app_answer_at_once() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = env.fill("nobody/thing.git");
    assert_eq!(field(&first, "password").as_deref(), Some("askpass-answer"));
    gh.add_installation(Installation::new(77, 1001, "nobody").all());
    let remembered = env.fill("nobody/thing.git");
    assert_eq!(
        field(&remembered, "password").as_deref(),
        Some("askpass-answer"),
        "still remembered as not installed"
    );
    let out = env.helper(&["forget", "nobody"], b"");
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "forgot 0 cached tokens, 0 remembered installations and 1 \"not installed\" record for 'nobody'\n"
    );
    let token = token_of(&env.fill("nobody/thing.git"));
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    assert_eq!(issued.installation_id, 77);
    // forget without an owner: everything, tokens included, and no GitHub call.
    gh.clear_log();
    let all = env.helper(&["forget"], b"");
    assert_eq!(
        stdout(&all),
        "forgot 1 cached token, 1 remembered installation and 0 \"not installed\" records\n"
    );
    assert!(gh.requests().is_empty(), "no GitHub call");
    token_of(&env.fill("nobody/thing.git"));
    assert_eq!(
        (gh.lookup_count(), gh.mint_count()),
        (1, 1),
        "looked up and minted again"
    );
}

#[test]
fn a_repo_scoped_token_is_refused_for_another_repository() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let unscoped = token_of(&env.fill("octo/dotfiles.git"));
    env.add_flags(&["--repo-scoped"]);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_ne!(token, unscoped, "scoped and unscoped tokens never mix");
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    assert_eq!(issued.repositories, ["dotfiles"]);
    assert_ok(&ls_remote_with(&env, &token, "octo", "dotfiles"));
    assert_ne!(code(&ls_remote_with(&env, &token, "octo", "notes")), 0);
    let notes = token_of(&env.fill("octo/notes.git"));
    assert_ne!(notes, token, "each repository its own token");
    assert_eq!(
        token_of(&env.fill("octo/dotfiles.git")),
        token,
        "cached per repository"
    );
    assert_eq!(gh.mint_count(), 3);
    // A repository outside the installation's selection: said plainly, nothing answered.
    gh.add_installation(Installation::new(77, 1001, "nobody").selected(["thing"]));
    let outside = env.fill("nobody/other.git");
    assert_eq!(
        field(&outside, "password").as_deref(),
        Some("askpass-answer")
    );
    let err = stderr(&outside);
    assert!(
        err.contains("limited to repository other:")
            && err.contains("add the repository to the installation's selection"),
        "{err}"
    );
}

#[test]
fn narrowed_permissions_are_sent() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--permissions", "contents:read,metadata:read"]);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    let granted: Vec<(String, String)> = issued.permissions.into_iter().collect();
    assert_eq!(
        granted,
        [
            ("contents".to_owned(), "read".to_owned()),
            ("metadata".to_owned(), "read".to_owned())
        ]
    );
    let bad = env.helper(&["--permissions", "contents", "token", "octo"], b"");
    assert_eq!(code(&bad), 1);
    assert!(stderr(&bad).contains("NAME:LEVEL"), "{}", stderr(&bad));
}

#[test]
fn the_host_comes_from_the_api_url() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    let key = env.key_path.display().to_string();
    env.set_flags(&[
        "--app-id",
        "1001",
        "--private-key",
        &key,
        "--api-url",
        &gh.api_url(),
        "--cache",
        "file",
    ]);
    token_of(&env.fill("octo/dotfiles.git"));
    assert_ok(&env.clone_repo("octo", "dotfiles"));
}

#[test]
fn a_remembered_not_installed_owner_is_named_at_most_once_a_minute() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = env.fill("nobody/thing.git");
    assert_eq!(
        said(&first),
        format!(
            "git-credential-github-app: app 1001 is not installed on 'nobody' ({}); leaving this request to other helpers (remembered for 5 min). If you install the app now, run: git-credential-github-app forget nobody\n",
            gh.host()
        )
    );
    let second = env.fill("nobody/thing.git");
    assert_eq!(said(&second), "", "within the minute: silent");
    // A minute later (the reminder's clock is its file's age).
    for entry in std::fs::read_dir(env.cache_dir().join("notices")).unwrap() {
        let path = entry.unwrap().path();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(61);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let third = env.fill("nobody/thing.git");
    let err = said(&third);
    let prefix = format!(
        "git-credential-github-app: app 1001 is not installed on 'nobody' ({}), as remembered since ",
        gh.host()
    );
    let suffix = " ago); leaving this request to other helpers. If the app was installed since, run: git-credential-github-app forget nobody\n";
    assert!(err.starts_with(&prefix) && err.ends_with(suffix), "{err}");
    assert_eq!(err.lines().count(), 1);
    assert_eq!(field(&third, "password").as_deref(), Some("askpass-answer"));
    assert_eq!(said(&env.fill("nobody/thing.git")), "", "and silent again");
    assert_eq!(gh.lookup_count(), 2, "GitHub asked once");
}

#[test]
fn erase_without_a_password_drops_the_owners_token() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
        gh.host()
    );
    let out = run(
        env.command("git").args(["credential", "reject"]),
        input.as_bytes(),
    );
    assert_ok(&out);
    let fresh = token_of(&env.fill("octo/dotfiles.git"));
    assert_ne!(fresh, token, "dropped: minted again");
    assert_eq!(gh.mint_count(), 2);
    // git rejecting the token we gave it: dropped, and said once.
    let rejected = env.reject("octo/dotfiles.git", &fresh);
    assert_eq!(
        stderr(&rejected),
        format!(
            "git-credential-github-app: git rejected token {} for owner 'octo' on {}; dropped it from the cache, so the next attempt mints a new one\n",
            fingerprint(&fresh),
            gh.host()
        )
    );
    assert_ne!(token_of(&env.fill("octo/dotfiles.git")), fresh);
    assert_eq!(gh.count("POST", MINT), 3);
}

#[test]
fn a_url_with_a_username_is_not_ours_and_the_trace_says_why() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let input = format!(
        "protocol=http\nhost={}\npath=octo/dotfiles.git\nusername=alice\n",
        gh.host()
    );
    let out = env.helper(&["get"], input.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "not answered");
    assert!(
        stderr(&out).contains("not ours: the remote URL names user 'alice': a URL with a username means that user's own credential, so it is left to other helpers by design"),
        "{}",
        stderr(&out)
    );
    assert_eq!(gh.mint_count(), 0);
}

#[test]
fn tokens_without_an_index_record_are_still_found_by_status_and_revoke() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    // As when the record could not be written (or was deleted): the configuration and the
    // remembered installation still lead to the cache entry.
    std::fs::remove_dir_all(env.cache_dir().join("minted")).unwrap();
    let status = env.helper(&["status"], b"");
    let text = stdout(&status);
    assert!(
        text.contains(&format!(
            "app 1001 owner 'octo' installation 12: token {}, expires ",
            fingerprint(&token)
        )),
        "{text}"
    );
    assert!(!text.contains(&token));
    let out = env.helper(&["revoke"], b"");
    assert_eq!(
        stdout(&out),
        format!(
            "revoked token {} (app 1001, owner 'octo', installation 12)\n",
            fingerprint(&token)
        )
    );
    assert!(!gh.token_is_valid(&token));
    assert_ne!(token_of(&env.fill("octo/dotfiles.git")), token);
}

/// `token`, `installations` and `exec` find the app where `doctor` does: with no flag, variable
/// or config file naming one, in the helper line git runs for the host (`GITHUB_APP_HOST` or
/// `--host` says which host).
#[test]
fn commands_find_the_app_in_the_helper_line_git_runs() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let bare = |args: &[&str], host_env: bool| {
        let mut cmd = env.command(HELPER);
        if host_env {
            cmd.env("GITHUB_APP_HOST", &env.host);
        }
        run(cmd.args(args), b"")
    };
    let via_env = bare(&["token", "octo"], true);
    assert_ok(&via_env);
    let token = stdout(&via_env).trim_end().to_owned();
    assert!(gh.token_is_valid(&token));
    let via_flag = bare(&["token", "octo", "--host", &env.host], false);
    assert_eq!(stdout(&via_flag).trim_end(), token, "the same cached token");
    let listed = bare(&["installations"], true);
    assert_ok(&listed);
    assert!(
        stdout(&listed).starts_with("app 1001 on "),
        "{}",
        stdout(&listed)
    );
    let exec = bare(
        &["exec", "octo", "--", "sh", "-c", "test -n \"$GH_TOKEN\""],
        true,
    );
    assert_ok(&exec);
    // github.com has no helper line of ours here: the message says what to do.
    let none = bare(&["token", "octo"], false);
    assert_eq!(code(&none), 1);
    assert_eq!(
        stderr(&none),
        format!(
            "git-credential-github-app: no GitHub App configured for github.com: pass --app-id and --private-key, set GITHUB_APP_ID, list apps in {}, or run setup\n",
            env.home
                .join(".config/git-credential-github-app/config.toml")
                .display()
        )
    );
    assert_eq!(gh.mint_count(), 1);
}

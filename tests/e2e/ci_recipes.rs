//! The CI recipes of docs/ci.md, tried: GitHub Actions' checkout credentials against the helper,
//! submodules across organisations, and the shell steps the Dockerfile / GitLab / devcontainer
//! recipes run (`examples/ci/setup-helper.sh`).

use base64::Engine;
use local_github::{Account, App, GitHub, Installation};

use crate::ecosystems::record_helper_input;
use crate::support::*;

/// Org A (`acme`) and org B (`beta`) both have our app (two installations); `ghactions` is the
/// Actions app, installed on acme for `acme/site` only — the job's `GITHUB_TOKEN`.
fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .app(App::new(15368, "github-actions"))
        .account(Account::org("acme"))
        .account(Account::org("beta"))
        .repo("acme", "site")
        .repo("acme", "tools")
        .repo("beta", "shared")
        .installation(Installation::new(11, 1001, "acme").all())
        .installation(Installation::new(22, 1001, "beta").all())
        .installation(Installation::new(99, 15368, "acme").selected(["site"]))
        .start()
        .unwrap()
}

#[test]
fn actions_checkout_extraheader_wins_over_every_helper_until_removed() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let log = record_helper_input(&env);
    // What actions/checkout leaves behind with persist-credentials: true (the default).
    let github_token = gh.mint_token(99).unwrap().token;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{github_token}"));
    let extraheader = format!(
        "http.{}/.extraheader=AUTHORIZATION: basic {basic}",
        env.git_url
    );
    let url = format!("{}/acme/tools.git", env.git_url);

    let out = env.git(&["-c", &extraheader, "clone", "--quiet", &url, "with-header"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Repository not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "",
        "the header answered; git never asked a helper"
    );

    // persist-credentials: false (or `git config --unset-all http.https://github.com/.extraheader`):
    // the repository's 401 reaches the helper, which answers for acme.
    let out = env.git(&["clone", "--quiet", &url, "without-header"]);
    assert_ok(&out);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .starts_with("== get\n")
    );
    assert!(gh.tokens().iter().any(|t| t.installation_id == 11));
}

/// acme/site with beta/shared as a submodule (relative URL, as GitHub projects write it).
fn site_with_submodule(gh: &GitHub) {
    let env = Env::new(gh, 1001);
    // beta/shared becomes a submodule of acme/site (relative URL, as GitHub projects write it).
    assert_ok(&env.clone_repo("acme", "site"));
    let d = env.home.join("acme-site").display().to_string();
    let sub_url = format!("{}/beta/shared.git", env.git_url);
    assert_ok(&env.git(&[
        "-C",
        &d,
        "-c",
        "protocol.file.allow=never",
        "submodule",
        "add",
        "--quiet",
        &sub_url,
        "vendor/shared",
    ]));
    std::fs::write(
        env.home.join("acme-site/.gitmodules"),
        "[submodule \"vendor/shared\"]\n\tpath = vendor/shared\n\turl = ../../beta/shared.git\n",
    )
    .unwrap();
    assert_ok(&env.git(&["-C", &d, "add", ".gitmodules"]));
    assert_ok(&env.git(&["-C", &d, "commit", "--quiet", "-m", "vendor beta/shared"]));
    assert_ok(&env.git(&["-C", &d, "push", "--quiet", "origin", "main"]));
}

#[test]
fn submodules_in_another_organisation_clone_with_their_own_installation() {
    let gh = world();
    site_with_submodule(&gh);
    // A fresh machine (new HOME, empty cache): one recursive clone, two installations.
    let fresh = Env::new(&gh, 1001);
    let before = gh.mint_count();
    let url = format!("{}/acme/site.git", fresh.git_url);
    let out = fresh.git(&["clone", "--quiet", "--recurse-submodules", &url, "site"]);
    assert_ok(&out);
    assert!(fresh.home.join("site/vendor/shared/README.md").exists());
    assert_eq!(gh.mint_count(), before + 2, "one token per organisation");
    let installations: std::collections::BTreeSet<u64> = gh
        .tokens()
        .iter()
        .filter(|t| t.app_id == 1001)
        .map(|t| t.installation_id)
        .collect();
    assert_eq!(installations, [11, 22].into_iter().collect());
}

/// A HOME with no git configuration but a name, the helper on PATH as `git-credential-github-app`
/// and the app's key in a 0600 file (a CI file variable, a secret mount); returns the PATH.
fn bare_machine(env: &Env) -> String {
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = CI\n\temail = ci@example.com\n",
    )
    .unwrap();
    let bin = env.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(HELPER, bin.join("git-credential-github-app")).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn repo_file(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_dockerfile_build_step_clones_private_sources_and_keeps_no_token() {
    // The Dockerfile's RUN step itself (no docker here): build-steps.sh with the key where the
    // BuildKit secret mount puts it.
    let gh = world();
    site_with_submodule(&gh);
    let env = Env::new(&gh, 1001);
    let path = bare_machine(&env);
    let secret = env.home.join("run/secrets/github_app_key");
    std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
    write_0600(&secret, &gh.app(1001).private_key_pem());
    let before = gh.mint_count();
    let target = env.home.join("src/app");
    let out = run(
        env.command("sh")
            .arg(repo_file("examples/docker/build-steps.sh"))
            .env("PATH", &path)
            .env("GITHUB_APP_ID", "1001")
            .env("GITHUB_APP_PRIVATE_KEY_PATH", &secret)
            .env("GITHUB_APP_HOST", gh.host())
            .env("GCGA_URL", gh.url())
            .env("SOURCE_REPO", format!("{}/acme/site.git", gh.url()))
            .env("TARGET_DIR", &target),
        b"",
    );
    assert_ok(&out);
    assert!(target.join("vendor/shared/README.md").exists());
    assert_eq!(gh.mint_count(), before + 2, "one token per organisation");
    assert!(
        !env.cache_dir().join("tokens").exists(),
        "no token stays in the image's layers"
    );
    let config = std::fs::read_to_string(env.home.join(".gitconfig")).unwrap();
    assert!(config.contains("helper = github-app"), "{config}");
    assert!(!config.contains("BEGIN"), "no key in the configuration");
}

#[test]
fn the_ci_setup_lines_replace_a_checkout_header_and_serve_a_secret_variable() {
    // GitLab CI / GitHub Actions recipe: the key as a masked variable (PEM text), a checkout
    // step's token header already in the global config.
    let gh = world();
    let env = Env::new(&gh, 1001);
    let path = bare_machine(&env);
    let stale = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghs_stale");
    env.append_gitconfig(&format!(
        "[http \"{}/\"]\n\textraheader = AUTHORIZATION: basic {stale}\n",
        gh.url()
    ));
    let vars = |cmd: &mut std::process::Command| {
        cmd.env("PATH", &path)
            .env("GITHUB_APP_ID", "1001")
            .env("GITHUB_APP_PRIVATE_KEY", gh.app(1001).private_key_pem())
            .env("GITHUB_APP_HOST", gh.host())
            .env("GCGA_URL", gh.url());
    };
    let mut setup = env.command("sh");
    setup.arg(repo_file("examples/ci/setup-helper.sh"));
    vars(&mut setup);
    assert_ok(&run(&mut setup, b""));
    let mut clone = env.command("git");
    clone.args([
        "clone",
        "--quiet",
        &format!("{}/beta/shared.git", gh.url()),
        "shared",
    ]);
    vars(&mut clone);
    assert_ok(&run(&mut clone, b""));
    assert!(gh.tokens().iter().any(|t| t.installation_id == 22));
}

/// Where actions/checkout (and other steps) leave the job token's header.
#[derive(Debug, Clone, Copy)]
enum HeaderIn {
    /// `git config --global` (older recipes, other steps).
    Global,
    /// The repository's `.git/config` (actions/checkout v4 and older).
    Repository,
    /// A file under `$RUNNER_TEMP` that `.git/config` includes with `includeIf "gitdir:…"`
    /// (actions/checkout v5 and newer).
    IncludedFile,
}

#[test]
fn the_setup_script_removes_checkouts_header_wherever_checkout_put_it() {
    let gh = world();
    for place in [
        HeaderIn::Global,
        HeaderIn::Repository,
        HeaderIn::IncludedFile,
    ] {
        let env = Env::new(&gh, 1001);
        let path = bare_machine(&env);
        // The checkout: acme/site cloned with the job's GITHUB_TOKEN (the Actions app's
        // installation on acme/site only), its header persisted.
        let github_token = gh.mint_token(99).unwrap().token;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("x-access-token:{github_token}"));
        let header = format!("AUTHORIZATION: basic {basic}");
        let key = format!("http.{}/.extraheader", gh.url());
        let site_url = format!("{}/acme/site.git", gh.url());
        let clone = env.git(&[
            "-c",
            &format!("{key}={header}"),
            "clone",
            "--quiet",
            &site_url,
            "site",
        ]);
        assert_ok(&clone);
        let repo = env.home.join("site");
        let repo_s = repo.display().to_string();
        let runner_temp = env.home.join("runner-temp");
        std::fs::create_dir_all(&runner_temp).unwrap();
        let included = runner_temp.join("git-credentials-0f3c.config");
        let included_s = included.display().to_string();
        match place {
            HeaderIn::Global => assert_ok(&env.git(&["config", "--global", &key, &header])),
            HeaderIn::Repository => {
                assert_ok(&env.git(&["-C", &repo_s, "config", "--local", &key, &header]))
            }
            HeaderIn::IncludedFile => {
                assert_ok(&env.git(&["config", "--file", &included_s, &key, &header]));
                assert_ok(&env.git(&[
                    "-C",
                    &repo_s,
                    "config",
                    "--local",
                    &format!("includeIf.gitdir:{repo_s}/.git.path"),
                    &included_s,
                ]));
            }
        }
        let tools_url = format!("{}/acme/tools.git", gh.url());
        let in_repo = |program: &str, args: &[&str]| {
            let mut cmd = env.command(program);
            cmd.current_dir(&repo)
                .args(args)
                .env("PATH", &path)
                .env("GITHUB_APP_ID", "1001")
                .env("GITHUB_APP_PRIVATE_KEY", gh.app(1001).private_key_pem())
                .env("GITHUB_APP_HOST", gh.host())
                .env("GCGA_URL", gh.url());
            run(&mut cmd, b"")
        };
        // With the header, git never asks a helper: another repository of acme is "not found".
        let out = in_repo("git", &["ls-remote", &tools_url]);
        assert!(!out.status.success(), "{place:?}: {}", stdout(&out));
        // The setup script, run in the repository as a job step would, removes it from where
        // checkout put it, and says where.
        let out = in_repo("sh", &[&repo_file("examples/ci/setup-helper.sh")]);
        assert_ok(&out);
        let from = match place {
            HeaderIn::Global => format!("{}/.gitconfig", env.home.display()),
            HeaderIn::Repository => ".git/config".to_owned(),
            HeaderIn::IncludedFile => included_s.clone(),
        };
        assert_eq!(
            stdout(&out),
            format!("removed {key} from {from}\n"),
            "{place:?}"
        );
        let left = in_repo("git", &["config", "--show-origin", "--get-all", &key]);
        assert_eq!(
            stdout(&left),
            "",
            "{place:?}: the header is gone everywhere"
        );
        // Now the app's token answers, in the repository and for other repositories.
        assert_ok(&in_repo("git", &["ls-remote", &tools_url]));
        assert_ok(&in_repo("git", &["fetch", "--quiet", "origin"]));
    }
}

//! The tools people put on top of git: GitPython, pip `git+https`, cargo git dependencies. Each
//! runs for real against the local GitHub with the helper configured in git.
//!
//! The Python tools are optional on a developer machine (the test says so and returns); CI
//! installs them and sets GCGA_REQUIRE_TOOLS=1, which makes a missing tool a failure.

use crate::support::*;

/// Clone `owner/repo` through the helper, add `files`, commit and push.
pub(crate) fn publish(env: &Env, owner: &str, repo: &str, files: &[(&str, &str)]) {
    assert_ok(&env.clone_repo(owner, repo));
    let dir = env.home.join(format!("{owner}-{repo}"));
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let d = dir.display().to_string();
    assert_ok(&env.git(&["-C", &d, "add", "-A"]));
    assert_ok(&env.git(&["-C", &d, "commit", "--quiet", "-m", "publish"]));
    assert_ok(&env.git(&["-C", &d, "push", "--quiet", "origin", "main"]));
}

#[test]
fn gitpython_clones_through_the_helper() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    if !have(&["python3:git"]) {
        return;
    }
    let url = format!("{}/acme/widgets.git", env.git_url);
    let script = "import git, sys\nrepo = git.Repo.clone_from(sys.argv[1], sys.argv[2])\nprint(repo.head.commit.hexsha)\nprint(sorted(e.path for e in repo.tree().traverse()))\n";
    let dest = env.home.join("gitpython-clone").display().to_string();
    let out = run(
        env.command("python3").args(["-c", script, &url, &dest]),
        b"",
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("README.md"), "{}", stdout(&out));
    assert_eq!(gh.mint_count(), 1);
}

#[test]
fn pip_installs_a_private_git_dependency() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    if !have(&["python3:setuptools", "python3:wheel"]) {
        return;
    }
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"octo-private-lib\"\nversion = \"1.2.3\"\n",
            ),
            ("octo_private_lib/__init__.py", "ANSWER = 42\n"),
        ],
    );
    let target = env.home.join("site");
    let spec = format!("octo-private-lib @ git+{}/octo/dotfiles.git", env.git_url);
    let out = run(
        env.command("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            &target.display().to_string(),
            &spec,
        ]),
        b"",
    );
    assert_ok(&out);
    let check = run(
        env.command("python3").env("PYTHONPATH", &target).args([
            "-c",
            "import octo_private_lib; print(octo_private_lib.ANSWER)",
        ]),
        b"",
    );
    assert_eq!(stdout(&check).trim(), "42", "{}", stderr(&check));
    assert_eq!(
        gh.mint_count(),
        1,
        "clone, push and pip's clone shared one token"
    );
}

#[test]
fn cargo_fetches_a_private_git_dependency() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"octo-private\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
            ),
            ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
        ],
    );
    let project = env.home.join("app");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nocto-private = {{ git = \"{}/octo/dotfiles.git\" }}\n\n[workspace]\n",
            env.git_url
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() { println!(\"{}\", octo_private::answer()); }\n",
    )
    .unwrap();
    // cargo's own git (libgit2) implements only part of the helper protocol; with the git CLI,
    // every helper works. That is what docs/clients.md recommends.
    env.set_env("CARGO_NET_GIT_FETCH_WITH_CLI", "true");
    env.set_env("CARGO_HOME", &env.home.join(".cargo").display().to_string());
    let real_home = std::env::var("HOME").unwrap_or_default();
    let rustup_home =
        std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{real_home}/.rustup"));
    env.set_env("RUSTUP_HOME", &rustup_home);
    let manifest = project.join("Cargo.toml").display().to_string();
    let out = run(
        env.command("cargo")
            .args(["fetch", "--manifest-path", &manifest]),
        b"",
    );
    assert_ok(&out);
    let lock = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("octo-private")
            && lock.contains(&format!("git+{}/octo/dotfiles.git", env.git_url)),
        "{lock}"
    );
    assert_eq!(gh.mint_count(), 1);
}

//! setup and unsetup under attack (issue 17, items 1–3): a helper line git runs as written, never a
//! file from a repository; the user's own lines in setup's section survive; a locked config file;
//! conditional helpers stay conditional; a renamed binary; an IPv6 host; sudo -E.

use crate::support::world;
use crate::support::*;
use std::path::{Path, PathBuf};

/// A plain user config (no helper of ours).
fn plain_gitconfig(env: &Env) -> String {
    let text =
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n";
    std::fs::write(env.home.join(".gitconfig"), text).unwrap();
    text.to_owned()
}

/// A gh-like helper script, as a `!` helper line.
fn gh_like(home: &Path) -> String {
    let path = home.join("gh-like.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 0\ncat >/dev/null\necho username=gh-user\necho password=gho_from_gh_like\n",
    )
    .unwrap();
    chmod(&path, 0o755);
    format!("!{}", path.display())
}

/// This helper binary, copied to `dir/name` (setup writes the path it runs from).
fn copy_helper(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::copy(HELPER, &path).unwrap();
    chmod(&path, 0o755);
    path
}

fn app_args(env: &Env) -> Vec<String> {
    [
        "--app-id",
        "1001",
        "--private-key",
        &env.key_path.display().to_string(),
        "--host",
        &env.host,
        "--cache",
        "file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn helpers(env: &Env, url: &str) -> String {
    stdout(&env.git(&["config", "--get-all", &format!("credential.{url}.helper")]))
}

fn gitconfig(env: &Env) -> String {
    std::fs::read_to_string(env.home.join(".gitconfig")).unwrap()
}

#[test]
fn setup_writes_a_line_git_runs_and_never_a_file_planted_in_the_repository() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let url = format!("http://{}/", env.host);
    for dir in ["my tools", "bin-é"] {
        plain_gitconfig(&env);
        let binary = copy_helper(&env.home.join(dir), "git-credential-github-app");
        let out = run(
            env.command(binary.to_str().unwrap())
                .arg("setup")
                .args(app_args(&env)),
            b"",
        );
        assert_ok(&out);
        let ours = format!(
            "!'{}' --app-id 1001 --private-key {} --host {} --cache file",
            binary.display(),
            env.key_path.display(),
            env.host
        );
        assert!(
            stdout(&out).contains(&format!("        helper = {ours}\n")),
            "{}",
            stdout(&out)
        );
        assert_eq!(helpers(&env, &url), format!("\n{ours}\n"));

        // A repository that commits `git-credential-<that path>`: what git would run for the
        // line as setup wrote it before (`'…' --app-id …`, which git runs as `git credential-'…'`).
        let work = env.home.join(format!("work-{}", dir.replace(' ', "-")));
        assert_ok(&env.git(&["init", "--quiet", work.to_str().unwrap()]));
        let planted = PathBuf::from(format!(
            "{}/git-credential-{}",
            work.display(),
            binary.display()
        ));
        std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
        let marker = env.home.join("planted-ran");
        std::fs::write(
            &planted,
            format!(
                "#!/bin/sh\ntouch '{}'\necho username=x-access-token\necho password=planted\n",
                marker.display()
            ),
        )
        .unwrap();
        chmod(&planted, 0o755);
        let fill = || {
            run(
                env.command("git")
                    .current_dir(&work)
                    .args(["credential", "fill"]),
                format!("protocol=http\nhost={}\npath=acme/widgets.git\n", env.host).as_bytes(),
            )
        };
        token_of(&fill());
        assert!(!marker.exists(), "git ran the planted file");
        let doctor = run(
            env.command(binary.to_str().unwrap())
                .current_dir(&work)
                .args(["doctor", "--host", &env.host]),
            b"",
        );
        let text = stdout(&doctor);
        let helper_line = text.lines().find(|l| l.contains(" helper: ")).unwrap_or("");
        assert!(
            helper_line.starts_with(&format!(
                "[ OK ] helper: git runs these helpers for {url}, in order (ours runs {})",
                binary.display()
            )),
            "{text}"
        );

        // The old way of writing it: git runs the planted file, and doctor says why.
        let old = ours.trim_start_matches('!').to_owned();
        assert_ok(&env.git(&[
            "config",
            "--global",
            "--replace-all",
            &format!("credential.{url}.helper"),
            &old,
            "^[^!]*'|^!",
        ]));
        assert_eq!(helpers(&env, &url), format!("\n{old}\n"));
        assert_eq!(field(&fill(), "password").as_deref(), Some("planted"));
        assert!(marker.exists());
        std::fs::remove_file(&marker).unwrap();
        let doctor = run(
            env.command(binary.to_str().unwrap())
                .current_dir(&work)
                .args(["doctor", "--host", &env.host]),
            b"",
        );
        let text = stdout(&doctor);
        assert!(
            text.contains(&format!(
                "[FAIL] helper: git runs this line as `git credential-{old}`: it looks for 'git-credential-{}' relative to the working tree of the repository it runs in, so a file a repository commits there runs instead of this helper. Run setup again: it writes the line as !'…', which git runs as written\n",
                binary.display()
            )),
            "{text}"
        );
        assert!(!marker.exists(), "doctor ran the planted file");
        // setup again repairs it.
        assert_ok(&run(
            env.command(binary.to_str().unwrap())
                .arg("setup")
                .args(app_args(&env)),
            b"",
        ));
        assert_eq!(helpers(&env, &url), format!("\n{ours}\n"));
        token_of(&fill());
        assert!(!marker.exists());
    }
}

#[test]
fn setup_and_unsetup_keep_the_lines_the_user_wrote_in_the_section_and_the_link_to_dotfiles() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let url = format!("http://{}/", env.host);
    let gh_line = gh_like(&env.home);
    // The README's section, copied, with the user's own lines added; ~/.gitconfig is a link into
    // a dotfiles repository.
    let ours = format!(
        "{HELPER} --app-id 1001 --private-key {} --host {} --cache file",
        env.key_path.display(),
        env.host
    );
    let dotfiles = env.home.join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let text = format!(
        "[user]\n\tname = Test\n\temail = test@example.com\n[credential \"{url}\"]\n\thelper =\n\thelper = {ours}\n\thelper = {gh_line}\n\tusername = alice\n\tuseHttpPath = true\n"
    );
    std::fs::write(dotfiles.join("gitconfig"), &text).unwrap();
    std::fs::remove_file(env.home.join(".gitconfig")).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("gitconfig"), env.home.join(".gitconfig")).unwrap();

    let out = run(env.command(HELPER).arg("setup").args(app_args(&env)), b"");
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("Reconfigured git ("),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        helpers(&env, &url),
        format!("{gh_line}\n\n{ours}\n{gh_line}\n")
    );
    assert_eq!(
        stdout(&env.git(&["config", &format!("credential.{url}.username")])),
        "alice\n"
    );
    // Lines the user adds to the section later.
    assert_ok(&env.git(&[
        "config",
        "--global",
        "--add",
        &format!("credential.{url}.helper"),
        "!later-helper",
    ]));
    assert_ok(&env.git(&[
        "config",
        "--global",
        &format!("credential.{url}.interactive"),
        "false",
    ]));
    // Running setup again keeps them too.
    assert_ok(&run(
        env.command(HELPER).arg("setup").args(app_args(&env)),
        b"",
    ));
    assert_eq!(
        helpers(&env, &url),
        format!("{gh_line}\n!later-helper\n\n{ours}\n{gh_line}\n!later-helper\n")
    );

    let out = run(
        env.command(HELPER).args(["unsetup", "--host", &env.host]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(helpers(&env, &url), format!("{gh_line}\n!later-helper\n"));
    assert_eq!(
        stdout(&env.git(&["config", &format!("credential.{url}.username")])),
        "alice\n"
    );
    assert_eq!(
        stdout(&env.git(&["config", &format!("credential.{url}.interactive")])),
        "false\n"
    );
    assert_eq!(
        stdout(&env.git(&["config", &format!("credential.{url}.useHttpPath")])),
        "true\n"
    );
    // Still a link; the dotfiles file holds the result.
    assert!(
        std::fs::symlink_metadata(env.home.join(".gitconfig"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        !gitconfig(&env).contains("githubAppSetup"),
        "{}",
        gitconfig(&env)
    );
    assert!(!gitconfig(&env).contains(HELPER), "{}", gitconfig(&env));
}

#[test]
fn an_emptied_config_file_is_kept() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let target = env.home.join("dotfiles-gitconfig");
    std::fs::write(&target, "").unwrap();
    std::fs::remove_file(env.home.join(".gitconfig")).unwrap();
    std::os::unix::fs::symlink(&target, env.home.join(".gitconfig")).unwrap();
    assert_ok(&run(
        env.command(HELPER).arg("setup").args(app_args(&env)),
        b"",
    ));
    assert_ok(&run(
        env.command(HELPER).args(["unsetup", "--host", &env.host]),
        b"",
    ));
    assert!(
        std::fs::symlink_metadata(env.home.join(".gitconfig"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}

#[test]
fn concurrent_setups_leave_one_correct_section() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let url = format!("http://{}/", env.host);
    let gh_line = gh_like(&env.home);
    std::fs::write(
        env.home.join(".gitconfig"),
        format!(
            "[user]\n\tname = Test\n[credential \"http://{}\"]\n\thelper =\n\thelper = {gh_line}\n",
            env.host
        ),
    )
    .unwrap();
    let ours = format!(
        "{HELPER} --app-id 1001 --private-key {} --host {} --cache file",
        env.key_path.display(),
        env.host
    );
    for _round in 0..3 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                env.command(HELPER)
                    .arg("setup")
                    .args(app_args(&env))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(
            helpers(&env, &url),
            format!("\n{ours}\n{gh_line}\n"),
            "{}",
            gitconfig(&env)
        );
    }
    assert!(!env.home.join(".gitconfig.lock").exists());
}

#[test]
fn a_helper_an_include_if_adds_for_some_repositories_is_not_repeated_for_all() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let url = format!("http://{}/", env.host);
    std::fs::write(
        env.home.join("work.inc"),
        "[credential]\n\thelper = !work-only-helper\n",
    )
    .unwrap();
    std::fs::write(
        env.home.join(".gitconfig"),
        format!(
            "[user]\n\tname = Test\n[credential]\n\thelper = store\n[includeIf \"gitdir:{}/work/\"]\n\tpath = {}/work.inc\n",
            env.home.display(),
            env.home.display()
        ),
    )
    .unwrap();
    assert_ok(&env.git(&["init", "--quiet", "work/repo"]));
    // setup run from inside a work repository, where git does run the work helper.
    let out = run(
        env.command(HELPER)
            .current_dir(env.home.join("work/repo"))
            .arg("setup")
            .args(app_args(&env)),
        b"",
    );
    assert_ok(&out);
    let ours = format!(
        "{HELPER} --app-id 1001 --private-key {} --host {} --cache file",
        env.key_path.display(),
        env.host
    );
    assert_eq!(helpers(&env, &url), format!("\n{ours}\nstore\n"));
    let note = format!(
        "note: helper '!work-only-helper' (file:{}/work.inc) applies to some repositories only (includeIf)",
        env.home.display()
    );
    assert_eq!(stderr(&out).matches(&note).count(), 1, "{}", stderr(&out));
    // Run from anywhere else, the same: not repeated, and said.
    assert_ok(&run(
        env.command(HELPER).args(["unsetup", "--host", &env.host]),
        b"",
    ));
    let out = run(env.command(HELPER).arg("setup").args(app_args(&env)), b"");
    assert_ok(&out);
    assert_eq!(helpers(&env, &url), format!("\n{ours}\nstore\n"));
    assert_eq!(stderr(&out).matches(&note).count(), 1, "{}", stderr(&out));
}

#[test]
fn a_renamed_binary_and_an_ipv6_host_can_be_set_up_again_and_undone() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let before = plain_gitconfig(&env);
    let renamed = copy_helper(&env.home.join("bin"), "gh-app-helper");
    let renamed = renamed.to_str().unwrap();
    for host in [env.host.as_str(), "[::1]:8080"] {
        let args = [
            "--app-id",
            "1001",
            "--private-key",
            env.key_path.to_str().unwrap(),
            "--host",
            host,
        ];
        let out = run(env.command(renamed).arg("setup").args(args), b"");
        assert_ok(&out);
        assert!(
            stdout(&out).starts_with("Configured git"),
            "{}",
            stdout(&out)
        );
        let once = gitconfig(&env);
        let out = run(env.command(renamed).arg("setup").args(args), b"");
        assert_ok(&out);
        assert!(
            stdout(&out).starts_with("Reconfigured git"),
            "{}",
            stdout(&out)
        );
        assert_eq!(gitconfig(&env), once);
        let out = run(env.command(renamed).args(["unsetup", "--host", host]), b"");
        assert_ok(&out);
        assert!(
            stdout(&out).starts_with("Removed the setup"),
            "{}",
            stdout(&out)
        );
        assert_eq!(gitconfig(&env), before);
    }
}

#[test]
fn setup_under_sudo_e_leaves_the_users_gitconfig_theirs() {
    use std::os::unix::fs::MetadataExt;
    if !root_or_skip("to run setup as under sudo -E") {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    plain_gitconfig(&env);
    // The user's HOME and files belong to uid 4242; we run as root with that HOME.
    let key = env.home.join("app.pem");
    for p in [env.home.as_path(), &env.home.join(".gitconfig"), &key] {
        std::os::unix::fs::chown(p, Some(4242), Some(4242)).unwrap();
    }
    assert_ok(&run(
        env.command(HELPER).arg("setup").args(app_args(&env)),
        b"",
    ));
    let meta = std::fs::metadata(env.home.join(".gitconfig")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4242));
    assert_ok(&run(
        env.command(HELPER).args(["unsetup", "--host", &env.host]),
        b"",
    ));
    let meta = std::fs::metadata(env.home.join(".gitconfig")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4242));
}

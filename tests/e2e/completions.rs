use crate::support::*;
use std::process::Command;

/// What bash offers for the words on a command line, `|` marking the cursor's word (which ends
/// there): the generated script sourced into a real bash, its function run as `complete -F`
/// would run it.
fn bash_offers(script: &std::path::Path, line: &[&str]) -> Vec<String> {
    let driver = r#"
source "$1"; shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
complete -p git-credential-github-app >/dev/null || exit 3
_git_credential_github_app
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = run(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c", driver, "bash"])
            .arg(script)
            .args(line),
        b"",
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    words.sort();
    words
}

#[test]
fn bash_completes_commands_options_and_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(HELPER).args(["completions", "bash"]), b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = dir.path().join("git-credential-github-app");
    std::fs::write(&script, &out.stdout).unwrap();
    let offers = |line: &[&str]| {
        let mut words = vec!["git-credential-github-app"];
        words.extend_from_slice(line);
        bash_offers(&script, &words)
    };
    assert_eq!(offers(&["do"]), ["doctor"]);
    assert_eq!(offers(&["--ca"]), ["--cache"]);
    assert_eq!(offers(&["--app-id", "7", "to"]), ["token"]);
    // A command's own options after its word, the global ones too.
    assert_eq!(offers(&["doctor", "--j"]), ["--json"]);
    assert_eq!(offers(&["doctor", "--rep"]), ["--repo", "--repo-scoped"]);
    assert_eq!(offers(&["setup", "--proa"]), ["--proactive"]);
    // Not another command's.
    assert_eq!(offers(&["token", "--proa"]), Vec::<String>::new());
    assert_eq!(offers(&["token", "--rep"]), ["--repo-scoped"]);
    // A value is not an option or a command: nothing after --app-id, files after --private-key.
    assert_eq!(offers(&["--app-id", ""]), Vec::<String>::new());
    std::fs::write(dir.path().join("app.pem"), "").unwrap();
    let pem = dir.path().join("ap");
    assert_eq!(
        offers(&["--private-key", pem.to_str().unwrap()]),
        [dir.path().join("app.pem").to_str().unwrap()]
    );
    // The word after --app-id is its value, not the command word.
    assert_eq!(offers(&["--app-id", "doctor", "do"]), ["doctor"]);
    assert_eq!(offers(&["completions", "z"]), ["zsh"]);
    assert!(offers(&["-v", "exec", "acme", "--", "gi"]).contains(&"git".to_owned()));
}

#[test]
fn the_man_page_renders_without_warnings() {
    if !have(&["groff"]) {
        return;
    }
    let out = run(Command::new(HELPER).arg("man"), b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("git-credential-github-app.1");
    std::fs::write(&page, &out.stdout).unwrap();
    // -ww: every warning; what man(1) runs to show the page.
    let rendered = run(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-rLL=80n"])
            .arg(&page),
        b"",
    );
    let stderr = String::from_utf8_lossy(&rendered.stderr);
    assert!(rendered.status.success() && stderr.is_empty(), "{stderr}");
    let text = String::from_utf8_lossy(&rendered.stdout);
    // Bold and underline are overstrikes in groff's terminal output: drop them to read the text.
    let plain: String = {
        let mut s = String::new();
        for c in text.chars() {
            if c == '\u{8}' {
                s.pop();
            } else {
                s.push(c);
            }
        }
        s
    };
    for needle in [
        "GIT-CREDENTIAL-GITHUB-APP(1)",
        "NAME",
        "git-credential-github-app - git credential helper that authenticates as a",
        "--app-id ID",
        "--private-key PATH|URI|ARN",
        "GITHUB_APP_ID",
        "doctor [--repo OWNER/REPO] [--json]",
        "App ID or client ID (Iv…) of the GitHub App",
        "SEE ALSO",
    ] {
        assert!(plain.contains(needle), "{needle} not in\n{plain}");
    }
}

/// git's own bash completion runs `_git_credential_github_app` for `git credential-github-app`
/// (its convention for `git-NAME` commands): the same function completes there.
#[test]
fn bash_completes_after_git_credential_github_app() {
    let git_completion = "/usr/share/bash-completion/completions/git";
    if !std::path::Path::new(git_completion).exists() {
        skip(&format!(
            "{git_completion} missing (Debian's git package has it)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(HELPER).args(["completions", "bash"]), b"");
    let script = dir.path().join("git-credential-github-app");
    std::fs::write(&script, &out.stdout).unwrap();
    let driver = r#"
source "$1"; source "$2"
COMP_WORDS=(git credential-github-app "$3"); COMP_CWORD=2
COMP_LINE="git credential-github-app $3"; COMP_POINT=${#COMP_LINE}
__git_wrap__git_main
printf '%s\n' "${COMPREPLY[@]}"
"#;
    for (word, expected) in [("do", "doctor\n"), ("--ca", "--cache\n")] {
        let out = run(
            Command::new("bash")
                .args([
                    "--norc",
                    "--noprofile",
                    "-c",
                    driver,
                    "bash",
                    git_completion,
                ])
                .arg(&script)
                .arg(word),
            b"",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{word}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

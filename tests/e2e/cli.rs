use crate::support::*;

/// Runs argv[2:] with stdin and stderr on a fresh pseudo-terminal and stdout into the file argv[1];
/// prints what reached the terminal and exits with the child's status, or 124 after 20 s.
const ON_A_TERMINAL: &str = r#"
import os, pty, select, sys, time
out_path, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.execv(argv[0], argv)
seen, deadline = b"", time.time() + 20
while True:
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
    if not ready:
        os.kill(pid, 9)
        sys.stdout.buffer.write(seen + b"\n(still waiting after 20 s)\n")
        sys.exit(124)
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_word_typed_in_a_terminal_never_waits_for_stdin() {
    if !have(&["python3"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out_file = env.home.join("stdout.txt");
    for (word, first_line) in [
        (
            "doctr",
            "git-credential-github-app: unknown command 'doctr'; did you mean 'doctor'?".to_owned(),
        ),
        (
            "capability",
            "git-credential-github-app: unknown command 'capability'".to_owned(),
        ),
        (
            "get",
            "git-credential-github-app: get reads a request from git on stdin, not from a terminal (try: git credential fill)".to_owned(),
        ),
        (
            "erase",
            "git-credential-github-app: erase reads a request from git on stdin, not from a terminal (try: git credential fill)".to_owned(),
        ),
    ] {
        let mut cmd = env.command("python3");
        cmd.args(["-c", ON_A_TERMINAL])
            .arg(&out_file)
            .arg(HELPER)
            .args(["--app-id", "1001", word]);
        let out = run(&mut cmd, b"");
        let terminal = stdout(&out).replace("\r\n", "\n");
        assert_eq!(out.status.code(), Some(2), "{word}: {terminal}");
        let mut lines = terminal.lines();
        assert_eq!(lines.next(), Some(first_line.as_str()), "{terminal}");
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("usage: git-credential-github-app [OPTIONS] <get|store|erase>")),
            "{terminal}"
        );
        assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "", "{word}");
    }
    // From a pipe, the unknown word stays silent and succeeds, as git expects.
    let out = run(
        env.command(HELPER).args(["--app-id", "1001", "capability"]),
        b"capability[]=authtype\n",
    );
    assert_ok(&out);
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
}

/// Outside a terminal, an unknown word stays silent as git's protocol wants — unless it is within
/// two edits of a command: then it is a person's typo, named with the command it is close to.
#[test]
fn a_mistyped_command_from_a_pipe_is_named_with_a_suggestion() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    for (args, typed, meant) in [
        (&["doctr"][..], "doctr", "doctor"),
        (&["tokne", "acme"][..], "tokne", "token"),
        (&["--app-id", "1001", "stauts"][..], "stauts", "status"),
    ] {
        let out = run(env.command(HELPER).args(args), b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&out), "");
        let err = stderr(&out);
        let mut lines = err.lines();
        assert_eq!(
            lines.next(),
            Some(
                format!(
                    "git-credential-github-app: unknown command '{typed}'; did you mean '{meant}'?"
                )
                .as_str()
            ),
            "{err}"
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("usage: git-credential-github-app")),
            "{err}"
        );
    }
    // Far from every command: silent, exit 0.
    let out = run(env.command(HELPER).arg("frobnicate"), b"");
    assert_ok(&out);
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
}

#[test]
fn no_word_is_a_usage_error() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = run(env.command(HELPER).args(["--app-id", "1001"]), b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with(
            "git-credential-github-app: no operation or command given\nusage: git-credential-github-app"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_mistake_in_a_command_line_shows_that_commands_usage() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = run(env.command(HELPER).args(["doctor", "--bogus"]), b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: doctor has no option --bogus\nusage: git-credential-github-app doctor [--repo OWNER/REPO] [--json] [--host HOST] [HELPER OPTIONS] (see doctor --help)\n"
    );
    let out = run(env.command(HELPER).args(["setup", "--help"]), b"");
    assert_ok(&out);
    assert!(stdout(&out).starts_with("usage: git-credential-github-app setup [--host HOST]"));
    let out = run(env.command(HELPER).args(["help", "unsetup"]), b"");
    assert_ok(&out);
    assert!(stdout(&out).starts_with("usage: git-credential-github-app unsetup"));
}

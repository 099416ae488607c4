//! The process start the helper does itself on Linux (src/startup.rs, instead of Rust's runtime
//! start-up): closed standard descriptors and a reader that goes away.

use crate::support::*;
use std::io::Write;
use std::process::Stdio;

/// Started with stdout and stderr closed (a careless caller), the helper must not let a file or
/// socket it opens become descriptor 1 or 2: its trace lines would go into the API connection
/// (GitHub would see them, and answer 400) or its answer into a file.
#[test]
fn closed_stdout_and_stderr_never_become_a_file_or_socket_the_helper_uses() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let request = format!("protocol=http\nhost={}\npath=octo/dotfiles.git\n", env.host);
    let mut cmd = env.command("sh");
    cmd.arg("-c")
        .arg("exec \"$@\" >&- 2>&-")
        .arg("sh")
        .arg(HELPER)
        .args(env.flags())
        .args(["--verbose", "get"]);
    let out = run(&mut cmd, request.as_bytes());
    assert_ok(&out);
    assert_eq!(gh.mint_count(), 1);
    // Nothing the helper wrote holds a protocol or trace line.
    let mut paths = vec![env.cache_dir()];
    let mut files = 0;
    while let Some(path) = paths.pop() {
        if path.is_dir() {
            paths.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(
                !text.contains("password=") && !text.contains("git-credential-github-app:"),
                "{}: {text}",
                path.display()
            );
        }
    }
    assert!(files > 0, "the cold get cached nothing");
    // The token it cached is what the next get answers.
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert!(gh.token_is_valid(&token));
    assert_eq!(gh.mint_count(), 1);
}

/// git went away before the answer: the write fails with EPIPE and the helper says so and exits
/// 1 (SIGPIPE is ignored, as Rust programs do), instead of dying of the signal in silence.
#[test]
fn a_reader_that_went_away_is_an_error_not_a_signal() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let mut child = env
        .command(HELPER)
        .args(env.flags())
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The helper is still waiting for its request: close the read end of its stdout first.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    write!(
        stdin,
        "protocol=http\nhost={}\npath=octo/dotfiles.git\n\n",
        env.host
    )
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: cannot answer git: Broken pipe (os error 32)\n"
    );
}

/// Children (`exec`'s command) start with SIGPIPE at its default, as programs expect, although the
/// helper itself ignores it.
#[test]
fn exec_children_start_with_sigpipe_at_its_default() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let out = env.helper(
        &[
            "exec",
            "octo",
            "--",
            "sh",
            "-c",
            "grep '^SigIgn:' /proc/self/status",
        ],
        b"",
    );
    assert_ok(&out);
    let mask = stdout(&out);
    let mask = mask.trim().trim_start_matches("SigIgn:").trim();
    let ignored = u64::from_str_radix(mask, 16).unwrap();
    assert_eq!(
        ignored & (1 << (13 - 1)),
        0,
        "SIGPIPE ignored in the child: {mask}"
    );
}

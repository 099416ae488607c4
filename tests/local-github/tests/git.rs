mod common;

use common::*;
use local_github::{Fault, FaultAction, TokenFormat};

fn token(gh: &local_github::GitHub, app: u64, inst: u64, body: Option<&str>) -> String {
    let r = mint(gh, app, inst, body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["token"].as_str().unwrap().to_string()
}

#[test]
fn clone_with_a_minted_token_and_refusals() {
    let gh = world();
    let dir = tempfile::tempdir().unwrap();
    let t = token(&gh, 1001, 11, None);
    ok(&git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &t, "acme", "widgets"), "w"],
    ));
    let readme = std::fs::read_to_string(dir.path().join("w/README.md")).unwrap();
    assert!(readme.contains("widgets"));
    // Protocol v2 reached http-backend.
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.git_protocol.as_deref() == Some("version=2"))
    );
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.path == "/acme/widgets.git/git-upload-pack" && r.status == 200)
    );
    // Without ".git" too.
    let url = token_url(&gh, &t, "acme", "widgets");
    ok(&git(
        dir.path(),
        &["clone", "-q", url.trim_end_matches(".git"), "w2"],
    ));

    // No credentials: 401 with the Basic challenge.
    gh.clear_log();
    let out = git(
        dir.path(),
        &["clone", "-q", &gh.git_url("acme", "widgets"), "n"],
    );
    assert!(!out.status.success());
    let rec = &gh.requests()[0];
    assert_eq!((rec.status, rec.auth_scheme.as_deref()), (401, None));
    let raw_answer = raw(
        &gh,
        "GET /acme/widgets.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw_answer.starts_with("HTTP/1.1 401"), "{raw_answer}");
    assert!(raw_answer.contains("WWW-Authenticate: Basic realm=\"GitHub\""));

    // A wrong token: 401 with GitHub's message, which git shows as remote: ...
    let out = git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(
                &gh,
                "ghs_wrongwrongwrongwrongwrongwrongwrong",
                "acme",
                "widgets",
            ),
            "x",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Authentication failed"), "{err}");
    assert_eq!(gh.requests().last().unwrap().status, 401);

    // A valid token for a repository outside the installation: 404 "Repository not found."
    let out = git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &t, "acme", "secret"), "s"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(gh.requests().last().unwrap().status, 404);
    let out = git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &t, "acme", "nope"), "s2"],
    );
    assert!(!out.status.success());
    assert_eq!(gh.requests().last().unwrap().status, 404);
}

#[test]
fn push_with_write_lands_in_the_bare_repo_and_read_only_is_refused() {
    let gh = world();
    let dir = tempfile::tempdir().unwrap();
    let t = token(&gh, 1001, 11, None);
    let url = token_url(&gh, &t, "acme", "widgets");
    ok(&git(dir.path(), &["clone", "-q", &url, "w"]));
    let w = dir.path().join("w");
    std::fs::write(w.join("new.txt"), "hello\n").unwrap();
    ok(&git(&w, &["add", "new.txt"]));
    ok(&git(&w, &["commit", "-q", "-m", "add new.txt"]));
    let head = ok(&git(&w, &["rev-parse", "HEAD"]));
    ok(&git(&w, &["push", "-q", "origin", "main"]));
    let bare = gh.repo_path("acme", "widgets");
    assert!(bare.ends_with("acme/widgets.git"));
    assert_eq!(ok(&git(&bare, &["rev-parse", "refs/heads/main"])), head);

    // Read-only token (contents: read): fetch works, push is refused with 403.
    let ro = token(
        &gh,
        1001,
        11,
        Some(r#"{"permissions":{"contents":"read"}}"#),
    );
    ok(&git(
        &w,
        &[
            "remote",
            "set-url",
            "origin",
            &token_url(&gh, &ro, "acme", "widgets"),
        ],
    ));
    ok(&git(&w, &["fetch", "-q", "origin"]));
    std::fs::write(w.join("more.txt"), "more\n").unwrap();
    ok(&git(&w, &["add", "more.txt"]));
    ok(&git(&w, &["commit", "-q", "-m", "more"]));
    let out = git(&w, &["push", "-q", "origin", "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") || err.contains("denied"), "{err}");
    assert_eq!(gh.requests().last().unwrap().status, 403);
    assert_eq!(ok(&git(&bare, &["rev-parse", "refs/heads/main"])), head);
}

#[test]
fn tokens_stop_working_when_expired_revoked_or_uninstalled() {
    let gh = world();
    let dir = tempfile::tempdir().unwrap();
    let clone = |t: &str, name: &str| {
        git(
            dir.path(),
            &["clone", "-q", &token_url(&gh, t, "octo", "dotfiles"), name],
        )
    };
    // Expiry follows the server clock.
    gh.set_token_lifetime(300);
    let t = token(&gh, 1001, 12, None);
    ok(&clone(&t, "a"));
    gh.set_clock_offset(301);
    assert!(!clone(&t, "b").status.success());
    assert_eq!(gh.requests().last().unwrap().status, 401);
    gh.set_clock_offset(0);
    ok(&clone(&t, "c"));
    // Revoked.
    assert!(gh.revoke_token(&t));
    assert!(!clone(&t, "d").status.success());
    // Uninstalled.
    let t = gh.mint_token(12).unwrap().token;
    ok(&clone(&t, "e"));
    gh.uninstall(12);
    assert!(!clone(&t, "f").status.success());
    assert_eq!(gh.requests().last().unwrap().status, 401);
}

#[test]
fn large_chunked_push_lands() {
    let gh = world();
    let dir = tempfile::tempdir().unwrap();
    let t = token(&gh, 1001, 12, None);
    ok(&git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &t, "octo", "dotfiles"), "d"],
    ));
    let d = dir.path().join("d");
    // Incompressible and larger than git's 1 MiB http.postBuffer: sent chunked.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(d.join("big.bin"), data).unwrap();
    ok(&git(&d, &["add", "big.bin"]));
    ok(&git(&d, &["commit", "-q", "-m", "big"]));
    let head = ok(&git(&d, &["rev-parse", "HEAD"]));
    ok(&git(&d, &["push", "-q", "origin", "main"]));
    let bare = gh.repo_path("octo", "dotfiles");
    assert_eq!(ok(&git(&bare, &["rev-parse", "main"])), head);
}

#[test]
fn stateless_tokens_clone() {
    let gh = world();
    gh.set_token_format(TokenFormat::Stateless);
    let dir = tempfile::tempdir().unwrap();
    let t = token(&gh, 1001, 11, None);
    assert!(t.len() > 200);
    ok(&git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &t, "acme", "widgets"), "w"],
    ));
}

#[test]
fn git_faults_and_concurrent_clones() {
    let gh = world();
    let dir = tempfile::tempdir().unwrap();
    let t = token(&gh, 1001, 12, None);
    gh.inject(Fault::new(
        "/octo/dotfiles.git/info/refs",
        FaultAction::text(502, "Bad Gateway"),
    ));
    let url = token_url(&gh, &t, "octo", "dotfiles");
    assert!(
        !git(dir.path(), &["clone", "-q", &url, "x"])
            .status
            .success()
    );
    ok(&git(dir.path(), &["clone", "-q", &url, "y"]));

    let handles: Vec<_> = (0..12)
        .map(|i| {
            let url = url.clone();
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || git(&dir, &["clone", "-q", &url, &format!("c{i}")]))
        })
        .collect();
    for h in handles {
        ok(&h.join().unwrap());
    }
}

use crate::support::*;
use local_github::{Fault, FaultAction};
use std::time::{Duration, Instant};

const MINT: &str = "/api/v3/app/installations/";

#[test]
fn clock_skew_of_15_minutes_either_way_is_corrected_on_the_first_try() {
    for offset in [-900i64, 900] {
        let gh = world();
        // GitHub's clock is `offset` from ours: the same as our clock being off by -offset.
        gh.set_clock_offset(offset);
        let env = Env::new(&gh, 1001);
        let out = env.fill("octo/dotfiles.git");
        token_of(&out);
        assert_eq!(stderr(&out), "", "offset {offset}");
        // git compares the expiry with our clock: it is GitHub's expires_at moved to our clock
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expiry: i64 = field(&out, "password_expiry_utc").unwrap().parse().unwrap();
        assert!(
            (expiry - (now + 3600)).abs() <= 5,
            "offset {offset}: expiry {expiry} vs now {now}"
        );
        let rejected = gh.requests().iter().filter(|r| r.status == 401).count();
        assert!(
            rejected >= 1,
            "offset {offset}: the first JWT should have been rejected"
        );
        // The offset is remembered: a second mint (after erase) needs no retry.
        assert_ok(&env.reject("octo/dotfiles.git", &field(&out, "password").unwrap()));
        gh.clear_log();
        assert_ok(&env.fill("octo/dotfiles.git"));
        assert_eq!(
            gh.requests().iter().filter(|r| r.status == 401).count(),
            0,
            "offset {offset}"
        );
        assert_eq!(gh.count("POST", MINT), 1);
    }
}

#[test]
fn server_errors_and_dropped_connections_are_retried() {
    let gh = world();
    gh.inject(
        Fault::new(MINT, FaultAction::github_error(502, "Server Error"))
            .method("POST")
            .times(1),
    );
    gh.inject(Fault::new(MINT, FaultAction::Drop).method("POST").times(1));
    let env = Env::new(&gh, 1001);
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    assert_eq!(gh.count("POST", MINT), 3, "two failures, then success");
}

#[test]
fn persistent_server_errors_fail_within_the_time_budget() {
    let gh = world();
    gh.inject(
        Fault::new(MINT, FaultAction::github_error(503, "Service Unavailable"))
            .method("POST")
            .times(100),
    );
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--timeout", "3s"]);
    let started = Instant::now();
    let out = env.fill("octo/dotfiles.git");
    let took = started.elapsed();
    assert_eq!(field(&out, "password").as_deref(), Some("askpass-answer"));
    let err = stderr(&out);
    assert!(err.contains("answered 503"), "{err}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(gh.count("POST", MINT) >= 2, "retried");
}

#[test]
fn a_hanging_api_times_out() {
    let gh = world();
    gh.inject(Fault::new("/api/v3/", FaultAction::delay_ms(20_000)).times(10));
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--timeout", "2s"]);
    let started = Instant::now();
    let out = env.fill("octo/dotfiles.git");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}

#[test]
fn short_rate_limits_are_waited_out_and_long_ones_say_when_to_retry() {
    let gh = world();
    gh.inject(
        Fault::new(MINT, FaultAction::github_error(429, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.").with_header("retry-after", 1))
            .method("POST"),
    );
    let env = Env::new(&gh, 1001);
    let started = Instant::now();
    assert_ok(&env.fill("octo/dotfiles.git"));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(gh.count("POST", MINT), 2);

    let gh = world();
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1800;
    let env = Env::new(&gh, 1001);
    gh.inject(
        Fault::new(
            MINT,
            FaultAction::github_error(403, "API rate limit exceeded for installation ID 12.")
                .with_header("x-ratelimit-remaining", 0)
                .with_header("x-ratelimit-reset", reset),
        )
        .method("POST")
        .times(5),
    );
    let started = Instant::now();
    let out = env.fill("octo/dotfiles.git");
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = stderr(&out);
    assert!(
        err.contains("rate-limited") && err.contains("retry after"),
        "{err}"
    );
    assert_eq!(gh.count("POST", MINT), 1, "no retry for a 30-minute wait");
}

#[test]
fn a_failing_mint_falls_back_to_the_cached_token_while_it_is_valid() {
    let gh = world();
    gh.set_token_lifetime(8 * 60); // inside the 10-minute margin, still valid
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--timeout", "2s"]);
    let token = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    gh.inject(
        Fault::new(
            MINT,
            FaultAction::github_error(500, "Internal Server Error"),
        )
        .method("POST")
        .times(100),
    );
    let out = env.fill("octo/dotfiles.git");
    assert_eq!(field(&out, "password"), Some(token));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning:") && err.contains("answering with the cached token"),
        "{err}"
    );
}

#[test]
fn concurrent_cold_gets_mint_exactly_once() {
    let gh = world();
    gh.inject(Fault::new(MINT, FaultAction::delay_ms(300)).method("POST"));
    let env = Env::new(&gh, 1001);
    let n = 24;
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| env.fill("octo/dotfiles.git")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: std::collections::BTreeSet<_> = outputs
        .iter()
        .map(|o| field(o, "password").unwrap())
        .collect();
    assert_eq!(tokens.len(), 1, "all {n} got the same token");
    assert_eq!(gh.mint_count(), 1);
    assert_eq!(gh.lookup_count(), 1);
    assert!(gh.token_is_valid(tokens.iter().next().unwrap()));
}

#[test]
fn a_killed_lock_holder_does_not_block_others() {
    let gh = world();
    gh.inject(Fault::new(MINT, FaultAction::delay_ms(30_000)).method("POST"));
    let env = Env::new(&gh, 1001);
    let mut holder = env.spawn_lock_holder(&gh);
    assert_eq!(gh.lookup_count(), 1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn broken_cache_entries_are_ignored_and_replaced() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    let dir = env.cache_dir().join("tokens");
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let original = std::fs::read(&entry).unwrap();
    type Corrupt<'a> = Box<dyn Fn(&std::path::Path) + 'a>;
    let corruptions: Vec<(&str, Corrupt)> = vec![
        (
            "truncated",
            Box::new(|p| std::fs::write(p, &original[..original.len() / 2]).unwrap()),
        ),
        (
            "garbage",
            Box::new(|p| std::fs::write(p, b"\xff\x00not json").unwrap()),
        ),
        (
            "foreign format",
            Box::new(|p| std::fs::write(p, br#"{"v":9,"something":"else"}"#).unwrap()),
        ),
        ("empty", Box::new(|p| std::fs::write(p, b"").unwrap())),
        ("world readable", Box::new(|p| chmod(p, 0o644))),
    ];
    let mut last = token;
    for (what, corrupt) in corruptions {
        corrupt(&entry);
        let out = env.fill("octo/dotfiles.git");
        assert_ok(&out);
        let next = field(&out, "password").unwrap();
        assert_ne!(next, last, "{what}: a fresh token was minted");
        assert_eq!(stderr(&out), "", "{what}: nothing on stderr without trace");
        let again = env.fill("octo/dotfiles.git");
        assert_eq!(
            field(&again, "password"),
            Some(next.clone()),
            "{what}: the entry was replaced"
        );
        last = next;
    }
}

#[test]
fn an_unusable_secret_service_falls_back_to_the_next_store() {
    let gh = world();
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--cache", "keyring"]);
    env.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    env.set_env("GIT_CREDENTIAL_GITHUB_APP_TRACE", "1");
    let out = env.fill("octo/dotfiles.git");
    assert_ok(&out);
    let token = field(&out, "password").unwrap();
    let err = stderr(&out);
    assert!(err.contains("cannot cache in secret-service"), "{err}");
    // the next store: the kernel keyring, or the file where keyctl is blocked (containers)
    assert!(
        err.contains("cached token") && (err.contains("in keyutils") || err.contains("in file")),
        "{err}"
    );
    let again = env.fill("octo/dotfiles.git");
    assert_eq!(field(&again, "password"), Some(token));
    let err = stderr(&again);
    assert!(err.contains("cache hit in keyutils"), "{err}");
    assert!(
        !err.contains("secret-service"),
        "the broken store is not even asked: {err}"
    );
}

#[test]
fn a_moved_installation_is_looked_up_again() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let first = field(&env.fill("octo/dotfiles.git"), "password").unwrap();
    assert_eq!(gh.lookup_count(), 1);
    // The app is uninstalled and installed again: a new installation id.
    assert!(gh.reinstall(12, 13));
    assert_ok(&env.reject("octo/dotfiles.git", &first));
    let out = env.fill("octo/dotfiles.git");
    token_of(&out);
    assert_eq!(gh.lookup_count(), 2, "looked up once more");
    let new_token = field(&out, "password").unwrap();
    let issued = gh
        .tokens()
        .into_iter()
        .find(|t| t.token == new_token)
        .unwrap();
    assert_eq!(
        issued.installation_id, 13,
        "minted for the new installation"
    );
    // An uninstalled app: the owner falls through, with one line.
    assert!(gh.uninstall(13));
    let token = field(&out, "password").unwrap();
    assert_ok(&env.reject("octo/dotfiles.git", &token));
    let out = env.fill("octo/dotfiles.git");
    assert_eq!(field(&out, "password").as_deref(), Some("askpass-answer"));
    assert!(
        stderr(&out).contains("not installed on 'octo'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn api_failures_are_one_clear_line_naming_owner_and_host() {
    type Setup = Box<dyn Fn(&local_github::GitHub)>;
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "suspended",
            Box::new(|gh| assert!(gh.suspend(12))),
            "suspended",
        ),
        (
            "422",
            Box::new(|gh| {
                gh.inject(Fault::new(MINT, FaultAction::json(422, serde_json::json!({"message": "There is at least one repository that does not exist or is not accessible to the parent installation.", "documentation_url": "https://docs.github.com/rest"}))).method("POST"))
            }),
            "refused a token",
        ),
        (
            "bad credentials",
            Box::new(|gh| {
                gh.inject(
                    Fault::new(MINT, FaultAction::github_error(401, "Bad credentials"))
                        .method("POST")
                        .times(5),
                )
            }),
            "401",
        ),
        (
            "malformed JSON",
            Box::new(|gh| {
                gh.inject(
                    Fault::new(MINT, FaultAction::text(201, "<html>oops</html>")).method("POST"),
                )
            }),
            "not the expected JSON",
        ),
        (
            "no token",
            Box::new(|gh| {
                gh.inject(
                    Fault::new(
                        MINT,
                        FaultAction::json(
                            201,
                            serde_json::json!({"expires_at": "2030-01-01T00:00:00Z"}),
                        ),
                    )
                    .method("POST"),
                )
            }),
            "without a token",
        ),
        (
            "no expiry",
            Box::new(|gh| {
                gh.inject(
                    Fault::new(
                        MINT,
                        FaultAction::json(201, serde_json::json!({"token": "ghs_x"})),
                    )
                    .method("POST"),
                )
            }),
            "without expires_at",
        ),
        (
            "huge answer",
            Box::new(|gh| {
                gh.inject(
                    Fault::new(MINT, FaultAction::text(201, &"x".repeat(6 << 20)))
                        .method("POST")
                        .times(10),
                )
            }),
            "larger than 4 MiB",
        ),
    ];
    for (what, setup, expected) in cases {
        let gh = world();
        let env = Env::new(&gh, 1001);
        setup(&gh);
        let out = env.fill("octo/dotfiles.git");
        assert_eq!(
            field(&out, "password").as_deref(),
            Some("askpass-answer"),
            "{what}: nothing on stdout from the helper"
        );
        let err = stderr(&out);
        let ours: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("git-credential-github-app:"))
            .collect();
        assert_eq!(ours.len(), 1, "{what}: {err}");
        assert!(ours[0].contains(expected), "{what}: {err}");
        assert!(ours[0].contains(&env.host), "{what}: names the host: {err}");
    }
}

#[test]
fn redirects_are_not_followed() {
    // A listener on another port records whether anything arrives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let gh = world();
    gh.inject(
        Fault::new(
            MINT,
            FaultAction::text(307, "").with_header("location", format!("http://{other}/steal")),
        )
        .method("POST")
        .times(5),
    );
    let env = Env::new(&gh, 1001);
    let out = env.fill("octo/dotfiles.git");
    assert_eq!(field(&out, "password").as_deref(), Some("askpass-answer"));
    assert!(stderr(&out).contains("307"), "{}", stderr(&out));
    assert!(
        listener.accept().is_err(),
        "the JWT was sent to the redirect target"
    );
}

#[test]
fn owners_sharing_a_fixed_installation_mint_once() {
    let gh = world();
    gh.inject(Fault::new(MINT, FaultAction::delay_ms(300)).method("POST"));
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--installation-id", "12"]);
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    env.fill(if i % 2 == 0 {
                        "octo/dotfiles.git"
                    } else {
                        "octo-mirror/dotfiles.git"
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens: std::collections::BTreeSet<_> = outputs
        .iter()
        .map(|o| field(o, "password").unwrap())
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!((gh.mint_count(), gh.lookup_count()), (1, 0));
}

/// An answer too large to read is named as such wherever it comes, never as "status 0".
#[test]
fn an_oversized_answer_to_revoke_is_named_not_status_0() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let token = token_of(&env.fill("octo/dotfiles.git"));
    gh.inject(
        Fault::new(
            "/api/v3/installation/token",
            FaultAction::text(500, &"x".repeat(6 << 20)),
        )
        .method("DELETE")
        .times(10),
    );
    let out = env.helper(&["revoke"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "could not revoke token {} (app 1001, owner 'octo', installation 12): {} sent an answer larger than 4 MiB to DELETE /installation/token;",
            git_credential_github_app::secret::fingerprint(&token),
            gh.host()
        )),
        "{err}"
    );
    assert!(!err.contains("answered 0"), "{err}");
}

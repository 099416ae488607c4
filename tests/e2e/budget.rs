use crate::support::*;
use local_github::{Account, App, Fault, FaultAction, GitHub, Installation};
use std::time::{Duration, Instant};

const MINT: &str = "/api/v3/app/installations/";

/// Three apps for the same host; only the third is installed on `octo`.
fn three_apps() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "one"))
        .app(App::new_unique_key(2002, "two"))
        .app(App::new_unique_key(3003, "three"))
        .account(Account::user("octo"))
        .repo("octo", "dotfiles")
        .installation(Installation::new(33, 3003, "octo").all())
        .start()
        .unwrap()
}

fn one_app() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "ci-bot"))
        .account(Account::user("octo"))
        .repo("octo", "dotfiles")
        .installation(Installation::new(12, 1001, "octo").all())
        .start()
        .unwrap()
}

#[test]
fn every_candidate_app_shares_one_time_budget() {
    let gh = three_apps();
    let env = Env::new(&gh, 1001);
    let pem = |id| gh.app(id).private_key_pem().to_owned();
    env.write_config(
        &[
            ("1.pem", &pem(1001)),
            ("2.pem", &pem(2002)),
            ("3.pem", &pem(3003)),
        ],
        &format!(
            "cache = \"file\"\ntimeout = \"3s\"\n\
             [[app]]\napp_id = 1001\nprivate_key_path = \"1.pem\"\nhost = \"{h}\"\n\
             [[app]]\napp_id = 2002\nprivate_key_path = \"2.pem\"\nhost = \"{h}\"\n\
             [[app]]\napp_id = 3003\nprivate_key_path = \"3.pem\"\nhost = \"{h}\"\n",
            h = gh.host()
        ),
    );
    let mut env = env;
    env.set_flags(&[]);
    // Every API answer takes 1.5 s: each app's lookup (repository, then user) takes 3 s.
    gh.inject(Fault::new("/api/v3/", FaultAction::delay_ms(1500)).times(100));
    let started = Instant::now();
    let out = env.helper(
        &["get"],
        format!(
            "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
            gh.host()
        )
        .as_bytes(),
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "took {took:?}: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "", "no answer within the budget");
    assert!(
        stderr(&out).contains("time budget"),
        "says why: {}",
        stderr(&out)
    );
}

#[test]
fn concurrent_gets_against_a_hung_api_end_within_the_budget() {
    let gh = one_app();
    gh.inject(Fault::new("/api/v3/", FaultAction::delay_ms(30_000)).times(100));
    let mut env = Env::new(&gh, 1001);
    env.add_flags(&["--timeout", "3s"]);
    let started = Instant::now();
    let took: Vec<(Duration, std::process::Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let out = env.fill("octo/dotfiles.git");
                    (started.elapsed(), out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (elapsed, out) in &took {
        assert!(
            *elapsed < Duration::from_secs(6),
            "a get took {elapsed:?}: {}",
            stderr(out)
        );
        assert!(
            stderr(out).contains("git-credential-github-app:"),
            "each says why: {}",
            stderr(out)
        );
    }
}

#[test]
#[cfg(unix)]
fn a_stopped_lock_holder_costs_one_extra_token_not_one_per_waiter() {
    let gh = one_app();
    // The holder's mint hangs; later mints are fast.
    gh.inject(Fault::new(MINT, FaultAction::delay_ms(60_000)).method("POST"));
    let env = Env::new(&gh, 1001);
    let mut holder = env.spawn_lock_holder(&gh);
    // Ctrl-Z: the holder keeps its lock and never finishes.
    let pid = rustix::process::Pid::from_raw(holder.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let mut waiters = env;
    waiters.add_flags(&["--timeout", "4s"]);
    let started = Instant::now();
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| waiters.fill("octo/dotfiles.git")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
    let _ = holder.kill();
    let _ = holder.wait();
    let tokens: std::collections::BTreeSet<String> = outputs.iter().map(token_of).collect();
    assert_eq!(tokens.len(), 1, "all 8 waiters got the same token");
    // The waiter that took over minted; the holder's own request may or may not be logged yet.
    let mints = gh.count("POST", MINT);
    assert!(
        (1..=2).contains(&mints),
        "minted {mints} times; twice at worst"
    );
    assert!(took < Duration::from_secs(7), "took {took:?}");
}

//! GitHub App user access tokens under real git: `login` through the device flow (the person
//! approves on the local GitHub's /login/device page), clone and push as the person, refresh
//! under the cross-process lock (separate processes), bad_refresh_token, no login from `get`,
//! and both kinds of token side by side.

use crate::support::*;
use local_github::{Account, App, GitHub, Installation};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// App 1001 (device flow on, contents write) installed on acme (widgets) and octo; octo is a
/// writing member of acme. Polling interval 1 s so that logins take a second.
fn world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "demo-app").with_device_flow(true))
        .app(App::new(2002, "no-device-app"))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .repo("acme", "widgets")
        .repo("acme", "secret")
        .repo("octo", "dotfiles")
        .member("acme", "octo", "write")
        .installation(Installation::new(11, 1001, "acme").selected(["widgets"]))
        .installation(Installation::new(12, 1001, "octo").all())
        .device_flow_timing(1, 900)
        .start()
        .unwrap()
}

/// A HOME whose git uses the helper with app 1001's client ID and no key: user tokens.
fn user_env(gh: &GitHub) -> Env {
    let mut env = Env::new(gh, 1001);
    let client_id = gh.app(1001).client_id();
    env.set_flags(&[
        "--app-id",
        &client_id,
        "--host",
        &gh.host(),
        "--cache",
        "file",
    ]);
    env
}

/// A login in the background: the process, its stderr lines so far, the one-time code, and the
/// rest of its stderr.
type Started = (
    Child,
    Vec<String>,
    String,
    BufReader<std::process::ChildStderr>,
);

// The child goes back to the caller, which waits for it (`finish`).
#[allow(clippy::zombie_processes)]
/// `login` started in the background; returns the process and the stderr lines up to and
/// including the one that carries the one-time code, and the code.
fn start_login_with(env: &Env, args: &[String]) -> Started {
    let mut child = env
        .command(HELPER)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        let read = err.read_line(&mut line).unwrap_or(0);
        if read == 0 || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("login ended or took too long before showing a code: {lines:?}");
        }
        let line = line.trim_end().to_owned();
        lines.push(line.clone());
        if let Some(code) =
            line.strip_prefix("git-credential-github-app: First copy your one-time code: ")
        {
            let code = code.to_owned();
            // The next line names the page.
            let mut next = String::new();
            err.read_line(&mut next).unwrap();
            lines.push(next.trim_end().to_owned());
            return (child, lines, code, err);
        }
    }
}

/// `login` with the env's helper flags and `extra`, started in the background (see
/// [`start_login_with`]).
fn start_login(env: &Env, extra: &[&str]) -> Started {
    let mut args = env_flags(env);
    args.push("login".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    start_login_with(env, &args)
}

fn env_flags(env: &Env) -> Vec<String> {
    env.helper_line()
        .split(' ')
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// What a person does in the browser: open the page, signed in as `login`, enter the code,
/// press Authorize (or Cancel).
fn visit_device_page(gh: &GitHub, code: &str, login: &str, authorize: bool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let page = agent
        .get(&format!("{}/login/device", gh.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("user_code"), "{page}");
    let mut r = agent
        .post(&format!("{}/login/device", gh.url()))
        .send_form([
            ("login", login),
            ("user_code", code),
            ("authorize", if authorize { "true" } else { "false" }),
        ])
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
}

/// The rest of the login's output once it ended.
fn finish(
    mut child: Child,
    mut lines: Vec<String>,
    mut err: BufReader<std::process::ChildStderr>,
) -> (std::process::ExitStatus, Vec<String>, String) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    lines.extend(rest.lines().map(str::to_owned));
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    (child.wait().unwrap(), lines, out)
}

/// Logs `who` in, approving on the page; returns the login's stderr lines.
fn login_as(env: &Env, gh: &GitHub, who: &str) -> Vec<String> {
    let (child, lines, code, err) = start_login(env, &[]);
    visit_device_page(gh, &code, who, true);
    let (status, lines, out) = finish(child, lines, err);
    assert!(status.success(), "{lines:?}");
    assert_eq!(out, "", "nothing on stdout");
    lines
}

#[test]
fn login_then_clone_and_push_as_the_person_with_the_requests_counted() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    gh.clear_log();
    let lines = login_as(&env, &gh, "octo");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[1],
        format!(
            "git-credential-github-app: Then open {}/login/device and enter it to authorize app {client_id} (the code expires in 15m; Ctrl-C stops waiting)",
            gh.url()
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "git-credential-github-app: logged in to {} as octo through app {client_id}; the token expires in 8h, the refresh token in 184 days (kept in a 0600 file)",
            gh.host()
        )
    );
    // The helper's requests (the person's visits to the page aside): device code, the polls,
    // GET /user, GET /user/installations (the owners the person reaches through the app). The
    // code was entered before the first poll: 4 (the figure in docs/).
    let helper_requests: Vec<String> = gh
        .requests()
        .iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("git-credential-github-app/"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        helper_requests,
        [
            "POST /login/device/code",
            "POST /login/oauth/access_token",
            "GET /api/v3/user",
            "GET /api/v3/user/installations"
        ]
    );

    // The first clone asks GitHub's API nothing: the login's token is answered.
    gh.clear_log();
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert!(
        gh.requests()
            .iter()
            .all(|r| !r.path.starts_with("/api/") && !r.path.starts_with("/login/")),
        "{:?}",
        gh.requests()
    );
    // Push lands as octo.
    let repo = env.home.join("acme-widgets");
    std::fs::write(repo.join("by-octo.txt"), "hello").unwrap();
    assert_ok(&env.git(&["-C", repo.to_str().unwrap(), "add", "by-octo.txt"]));
    assert_ok(&env.git(&["-C", repo.to_str().unwrap(), "commit", "-qm", "as octo"]));
    assert_ok(&env.git(&["-C", repo.to_str().unwrap(), "push", "-q", "origin", "main"]));
    // acme/secret: octo may read it, the app is not installed there: git is refused (404).
    let out = env.clone_repo("acme", "secret");
    assert!(!out.status.success());

    // git's answer: the user token with its expiry, never the refresh token.
    let fill = env.fill("acme/widgets.git");
    let password = field(&fill, "password").unwrap();
    assert!(password.starts_with("ghu_"), "{}", stdout(&fill));
    assert!(gh.user_token_is_valid(&password));
    assert!(field(&fill, "password_expiry_utc").is_some());
    assert!(!stdout(&fill).contains("refresh"), "{}", stdout(&fill));
    let refresh_tokens_leaked = std::fs::read_dir(
        env.home
            .join(".local/state/git-credential-github-app/logins"),
    )
    .unwrap()
    .count();
    assert_eq!(refresh_tokens_leaked, 1, "one login file");

    // status --json: the same, as data.
    let json = env.helper(&["status", "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["logins"][0]["user"], "octo");
    assert_eq!(v["logins"][0]["app_id"], client_id.as_str());
    assert!(
        v["logins"][0]["refresh_token_expires_at"]
            .as_str()
            .is_some()
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains("ghu_"));
    // status: who is logged in and both expiries, never a token.
    let status = env.helper(&["status"], b"");
    assert_ok(&status);
    let text = stdout(&status);
    let line = text
        .lines()
        .find(|l| l.contains("logged in as octo"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(&format!(
            "  {} app {client_id}: logged in as octo since ",
            gh.host()
        )),
        "{line}"
    );
    assert!(line.contains("; token expires "), "{line}");
    assert!(
        line.contains("(in 7h 59m)") || line.contains("(in 8h)"),
        "{line}"
    );
    assert!(
        line.contains("; refresh token expires ")
            && line.contains("(in 184 days); kept in a 0600 file"),
        "{line}"
    );
    assert!(
        text.contains(" user token of octo: token sha256:"),
        "{text}"
    );
    assert!(!text.contains(&password), "no token in status");
    let refresh = gh.user_tokens().len();
    assert_eq!(refresh, 1);
    // token and exec hand out the user token.
    let token = env.helper(&["token", "acme/widgets"], b"");
    assert_eq!(stdout(&token).trim(), password, "{}", stderr(&token));
    let exec = env.helper(
        &[
            "exec",
            "acme",
            "--",
            "sh",
            "-c",
            "test \"$GH_TOKEN\" = \"$GITHUB_TOKEN\" && printf %s \"$GH_TOKEN\" | cut -c1-4",
        ],
        b"",
    );
    assert_eq!(stdout(&exec).trim(), "ghu_", "{}", stderr(&exec));

    // revoke cannot end a user token: it says so, keeps it, and does not fail.
    let revoke = env.helper(&["revoke"], b"");
    assert_ok(&revoke);
    assert!(
        stderr(&revoke).contains("skipped user token sha256:")
            && stderr(&revoke).contains("the helper cannot revoke user tokens"),
        "{}",
        stderr(&revoke)
    );
    assert!(gh.user_token_is_valid(&password));

    // logout: the next get falls through to the next helper (askpass here).
    let out = env.helper(&["logout"], b"");
    assert_ok(&out);
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: logged out of {} (app {client_id}, user octo)\n",
            gh.host()
        )
    );
    let fill = env.fill("acme/widgets.git");
    assert!(stderr(&fill).contains("askpass"), "{}", stderr(&fill));
}

#[test]
fn get_never_starts_a_login_and_says_how() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    let fill = env.fill("acme/widgets.git");
    let err = stderr(&fill);
    assert!(
        err.contains(&format!(
            "git-credential-github-app: not logged in to {} with app {client_id}; leaving this request to other helpers. To log in, run: git-credential-github-app login --app-id {client_id} --host {}",
            gh.host(),
            gh.host()
        )),
        "{err}"
    );
    assert!(err.contains("askpass"), "git fell through: {err}");
    assert_eq!(gh.oauth_stats().device_codes, 0, "no device flow from get");
}

#[test]
fn owners_the_person_cannot_reach_through_the_app_fall_through_like_uninstalled_ones() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    gh.add_repo("nobody", "tools").unwrap();
    login_as(&env, &gh, "octo");
    gh.clear_log();
    // The app is not installed on 'nobody': git asks its next helper, and it is remembered.
    let fill = env.fill("nobody/tools.git");
    let err = stderr(&fill);
    assert!(
        err.contains(&format!(
            "git-credential-github-app: app {client_id} is not installed on 'nobody' ({}); leaving this request to other helpers (remembered for 5 min)",
            gh.host()
        )),
        "{err}"
    );
    assert!(err.contains("askpass"), "fell through: {err}");
    assert_eq!(gh.count("GET", "/api/v3/user/installations"), 1);
    let again = env.fill("nobody/tools.git");
    assert!(stderr(&again).contains("askpass"));
    assert_eq!(
        gh.count("GET", "/api/v3/user/installations"),
        1,
        "remembered"
    );
    // Installed after the login: `forget` makes the next request ask again.
    gh.add_installation(Installation::new(13, 1001, "nobody").all());
    gh.add_member("nobody", "octo", "read");
    assert_ok(&env.helper(&["forget", "nobody"], b""));
    let fill = env.fill("nobody/tools.git");
    assert!(
        field(&fill, "password").unwrap().starts_with("ghu_"),
        "{}",
        stderr(&fill)
    );
    assert_eq!(gh.count("GET", "/api/v3/user/installations"), 2);
}

#[test]
fn eight_concurrent_gets_with_an_expired_token_refresh_exactly_once() {
    let gh = world();
    let env = user_env(&gh);
    gh.set_user_token_lifetimes(2, 15_897_600);
    login_as(&env, &gh, "octo");
    let first = gh.user_tokens()[0].token.clone();
    // Later tokens live 8 hours; the login's runs out now.
    gh.set_user_token_lifetimes(28_800, 15_897_600);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!gh.user_token_is_valid(&first));
    let children: Vec<Child> = (0..8)
        .map(|_| {
            env.command("git")
                .args(["credential", "fill"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let input = format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host());
    let outputs: Vec<std::process::Output> = children
        .into_iter()
        .map(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            c.wait_with_output().unwrap()
        })
        .collect();
    let passwords: Vec<String> = outputs
        .iter()
        .map(|o| {
            assert_ok(o);
            field(o, "password").unwrap()
        })
        .collect();
    let stats = gh.oauth_stats();
    assert_eq!(
        (stats.refreshes, stats.refreshed),
        (1, 1),
        "exactly one refresh"
    );
    assert!(
        passwords
            .iter()
            .all(|p| *p == passwords[0] && gh.user_token_is_valid(p))
    );
    assert_ne!(passwords[0], first);
    // The rotated refresh token was stored: a second expiry refreshes again, without a login.
    assert_eq!(gh.oauth_stats().device_codes, 1);
}

#[test]
fn bad_refresh_token_drops_the_login_says_so_once_and_is_never_retried() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    gh.set_user_token_lifetimes(2, 15_897_600);
    login_as(&env, &gh, "octo");
    gh.revoke_refresh_tokens();
    std::thread::sleep(Duration::from_secs(3));
    let fill = env.fill("acme/widgets.git");
    let err = stderr(&fill);
    let line = format!(
        "git-credential-github-app: {} no longer accepts the login's refresh token (bad_refresh_token: used, expired or revoked); log in again with: git-credential-github-app login --app-id {client_id}",
        gh.host()
    );
    assert_eq!(err.matches(&line).count(), 1, "{err}");
    assert!(err.contains("askpass"), "git fell through: {err}");
    assert_eq!(gh.oauth_stats().refreshes, 1);
    // The next get does not try the dead refresh token again.
    let fill = env.fill("acme/widgets.git");
    assert!(stderr(&fill).contains("not logged in"), "{}", stderr(&fill));
    assert_eq!(gh.oauth_stats().refreshes, 1, "never retried");
}

#[test]
fn login_errors_each_have_their_line_and_ctrl_c_stops_cleanly() {
    let gh = world();
    // The device flow is off for app 2002.
    let mut env = Env::new(&gh, 2002);
    let other = gh.app(2002).client_id();
    env.set_flags(&["--app-id", &other, "--host", &gh.host(), "--cache", "file"]);
    let out = env.helper(&["login"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "git-credential-github-app: the device flow is off for app {other} on {}: tick \"Enable Device Flow\" on the app's settings page (General → Identifying and authorizing users), then run login again\n",
            gh.host()
        )
    );

    // The numeric App ID cannot log in.
    let out = run(
        env.command(HELPER)
            .args(["login", "--app-id", "2002", "--host", &gh.host()]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "git-credential-github-app: login needs the app's client ID (Iv…, at the top of the app's settings page), not its numeric App ID 2002\n"
    );

    // Cancel on the page.
    let env = user_env(&gh);
    let (child, lines, code, err) = start_login(&env, &[]);
    visit_device_page(&gh, &code, "octo", false);
    let (status, lines, out) = finish(child, lines, err);
    assert_eq!(status.code(), Some(1));
    assert_eq!(out, "");
    assert!(lines.last().unwrap().contains("was cancelled"), "{lines:?}");

    // Ctrl-C while waiting: stops at once, nothing stored.
    let (child, lines, _code, err) = start_login(&env, &[]);
    let started = Instant::now();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let (status, lines, _) = finish(child, lines, err);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "git-credential-github-app: login stopped (Ctrl-C); nothing was stored"
    );
    assert!(stderr(&env.fill("acme/widgets.git")).contains("not logged in"));
}

#[test]
fn both_kinds_side_by_side_installation_tokens_for_octo_and_the_user_token_for_acme() {
    let gh = world();
    let env = Env::new(&gh, 1001);
    let client_id = gh.app(1001).client_id();
    env.write_config(
        &[("app.pem", &gh.app(1001).private_key_pem())],
        &format!(
            "cache = \"file\"\n\
             [[app]]\napp_id = 1001\nprivate_key_path = \"app.pem\"\nhost = \"{h}\"\nowners = [\"octo\"]\n\
             [[app]]\napp_id = \"{client_id}\"\nuser_tokens = true\nhost = \"{h}\"\nowners = [\"acme\"]\n",
            h = gh.host()
        ),
    );
    let mut env = env;
    env.set_flags(&[]);
    login_as(&env, &gh, "octo");
    let octo = env.fill("octo/dotfiles.git");
    assert!(token_of(&octo).starts_with("ghs_"));
    let acme = env.fill("acme/widgets.git");
    assert!(
        field(&acme, "password").unwrap().starts_with("ghu_"),
        "{}",
        stderr(&acme)
    );
    assert_ok(&env.clone_repo("octo", "dotfiles"));
    assert_ok(&env.clone_repo("acme", "widgets"));
    // Each under its own cache key.
    let cached = std::fs::read_dir(env.cache_dir().join("tokens"))
        .unwrap()
        .count();
    assert_eq!(cached, 2);
}

#[test]
fn a_token_git_rejects_is_refreshed_on_the_next_attempt_not_handed_out_again() {
    let gh = world();
    let env = user_env(&gh);
    login_as(&env, &gh, "octo");
    let first = gh.user_tokens()[0].token.clone();
    // GitHub stops accepting it (the helper still thinks it has 8 hours).
    gh.expire_user_token(&first);
    let out = env.clone_repo("acme", "widgets");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("git rejected token"),
        "git erased it: {}",
        stderr(&out)
    );
    assert_eq!(gh.oauth_stats().refreshes, 0);
    assert_ok(&env.clone_repo("acme", "widgets"));
    let s = gh.oauth_stats();
    assert_eq!((s.refreshes, s.refreshed), (1, 1));
}

#[test]
fn doctor_checks_the_login_the_refresh_tokens_life_and_the_device_flow() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    let line = |out: &std::process::Output, id: &str| -> String {
        stdout(out)
            .lines()
            .find(|l| l.contains(&format!("] {id}: ")))
            .unwrap_or_else(|| panic!("no {id} check: {}", stdout(out)))
            .to_owned()
    };
    let doctor = env.helper(&["doctor"], b"");
    assert_eq!(
        line(&doctor, "login"),
        format!(
            "[FAIL] login: no one is logged in to {h} with app {client_id}: git asks its next helper; run: git-credential-github-app login --app-id {client_id} --host {h}",
            h = gh.host()
        )
    );
    assert_eq!(
        line(&doctor, "device-flow"),
        format!(
            "[ OK ] device-flow: the device flow is enabled for app {client_id} on {}",
            gh.host()
        )
    );
    // A login whose refresh token has ten days left.
    gh.set_user_token_lifetimes(28_800, 10 * 86_400);
    login_as(&env, &gh, "octo");
    gh.set_device_flow(1001, false);
    let doctor = env.helper(&["doctor"], b"");
    assert!(line(&doctor, "login").starts_with(&format!(
        "[ OK ] login: logged in to {} as octo with app {client_id} (the token expires in 8h, the refresh token in 10 days; kept in a 0600 file)",
        gh.host()
    )));
    assert!(
        line(&doctor, "refresh-token").starts_with(
            "[FAIL] refresh-token: the refresh token expires in 10 days: after that git gets no token until you log in again; run: "
        ),
        "{}",
        stdout(&doctor)
    );
    assert_eq!(
        line(&doctor, "user-token"),
        format!(
            "[ OK ] user-token: {} accepts the stored token: GET /user is octo",
            gh.host()
        )
    );
    assert!(
        line(&doctor, "device-flow").contains("tick \"Enable Device Flow\""),
        "{}",
        stdout(&doctor)
    );
    assert!(!stdout(&doctor).contains("ghu_") && !stderr(&doctor).contains("ghu_"));
}

#[test]
fn setup_writes_a_user_token_line_that_git_then_uses_after_login() {
    let gh = world();
    let env = user_env(&gh);
    let client_id = gh.app(1001).client_id();
    // A gitconfig without our helper: setup writes it.
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = Test\n\temail = test@example.com\n",
    )
    .unwrap();
    let out = run(
        env.command(HELPER).args([
            "setup",
            "--app-id",
            &client_id,
            "--host",
            &gh.host(),
            "--cache",
            "file",
        ]),
        b"",
    );
    assert_ok(&out);
    let text = stdout(&out);
    let helper = format!(
        "        helper = {HELPER} --app-id {client_id} --host {} --cache file --user-tokens",
        gh.host()
    );
    assert!(text.contains(&format!("{helper}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "Log in:   git-credential-github-app login --app-id {client_id} --host {}\n",
            gh.host()
        )),
        "{text}"
    );
    // git runs that line: not logged in yet, then the person's token. `login` finds the app in
    // that line (only the host is given).
    assert!(stderr(&env.fill("acme/widgets.git")).contains("not logged in"));
    let (child, lines, code, err) =
        start_login_with(&env, &["login".into(), "--host".into(), gh.host()]);
    visit_device_page(&gh, &code, "octo", true);
    let (status, lines, _) = finish(child, lines, err);
    assert!(status.success(), "{lines:?}");
    let fill = env.fill("acme/widgets.git");
    assert!(
        field(&fill, "password").unwrap().starts_with("ghu_"),
        "{}",
        stderr(&fill)
    );
}

#[test]
fn login_opens_a_browser_only_when_asked() {
    let gh = world();
    let mut env = user_env(&gh);
    let opened = env.home.join("opened.txt");
    let browser = env.home.join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\n", opened.display()),
    )
    .unwrap();
    chmod(&browser, 0o755);
    env.set_env("BROWSER", &browser.display().to_string());
    // Without --open: no browser.
    login_as(&env, &gh, "octo");
    assert!(!opened.exists(), "no browser without --open");
    // With --open: the page, once.
    let (child, lines, code, err) = start_login(&env, &["--open"]);
    visit_device_page(&gh, &code, "octo", true);
    let (status, lines, _) = finish(child, lines, err);
    assert!(status.success(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "git-credential-github-app: opened the page in your browser"),
        "{lines:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !opened.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap(),
        format!("{}/login/device\n", gh.url())
    );
}

#[test]
fn login_and_clone_over_https_with_a_private_ca_as_on_enterprise_server() {
    let gh = GitHub::builder()
        .app(App::new(1001, "demo-app").with_device_flow(true))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .repo("acme", "widgets")
        .member("acme", "octo", "write")
        .installation(Installation::new(11, 1001, "acme").all())
        .device_flow_timing(1, 900)
        .https()
        .start()
        .unwrap();
    let mut env = user_env(&gh);
    assert!(env.git_url.starts_with("https://"), "{}", env.git_url);
    // A loopback host is taken as plain http unless the API URL says otherwise.
    let client_id = gh.app(1001).client_id();
    env.set_flags(&[
        "--app-id",
        &client_id,
        "--api-url",
        &gh.api_url(),
        "--cache",
        "file",
    ]);
    let ca = crate::network::write_ca(&gh, &env.home);
    env.set_env("SSL_CERT_FILE", &ca);
    env.set_env("GIT_SSL_CAINFO", &ca);
    let (child, lines, code, err) = start_login(&env, &[]);
    assert_eq!(
        lines[1],
        format!(
            "git-credential-github-app: Then open https://{}/login/device and enter it to authorize app {} (the code expires in 15m; Ctrl-C stops waiting)",
            gh.host(),
            gh.app(1001).client_id()
        )
    );
    // The page's decision, as the test's HTTP client does not hold the run's CA.
    assert!(gh.decide_device_code(&code, "octo", true));
    let (status, lines, _) = finish(child, lines, err);
    assert!(status.success(), "{lines:?}");
    assert_ok(&env.clone_repo("acme", "widgets"));
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.path == "/login/oauth/access_token" && r.status == 200)
    );
}

#[test]
fn slow_down_adds_five_seconds_to_the_polling_interval() {
    use local_github::{Fault, FaultAction};
    let gh = world();
    let env = user_env(&gh);
    // The first poll is told to slow down (as GitHub does when polled too fast).
    gh.inject(
        Fault::new(
            "/login/oauth/access_token",
            FaultAction::json(
                200,
                serde_json::json!({
                    "error": "slow_down",
                    "error_description": "Too many requests have been made in the same timeframe.",
                    "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
                    "interval": 6
                }),
            ),
        )
        .method("POST"),
    );
    let (child, lines, code, err) = start_login(&env, &[]);
    visit_device_page(&gh, &code, "octo", true);
    let (status, lines, _) = finish(child, lines, err);
    assert!(status.success(), "{lines:?}");
    assert_eq!(
        lines[2],
        format!(
            "git-credential-github-app: {} asked to be polled less often (slow_down); now every 6s",
            gh.host()
        )
    );
    let polls: Vec<u64> = gh
        .requests()
        .iter()
        .filter(|r| r.path == "/login/oauth/access_token")
        .map(|r| r.seq)
        .collect();
    assert_eq!(polls.len(), 2, "one slowed down, one answered");
    let times: Vec<i64> = gh
        .requests()
        .iter()
        .filter(|r| r.path == "/login/oauth/access_token")
        .map(|r| r.time)
        .collect();
    assert!(
        times[1] - times[0] >= 6,
        "waited the new interval: {times:?}"
    );
}

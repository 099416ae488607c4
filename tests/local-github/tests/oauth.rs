//! The device flow, refresh-token rotation, `GET /user` and git access with user tokens.

mod common;

use common::*;
use local_github::{Account, App, GitHub, Installation};
use serde_json::Value;

/// App 1001 (device flow on) installed on acme (widgets only, contents write) and on octo;
/// app 2002 with the device flow off; app 3003 (device flow on) read-only on acme. octo is a
/// writing member of acme, mallory a reading one.
fn user_world() -> GitHub {
    GitHub::builder()
        .app(App::new(1001, "demo-app").with_device_flow(true))
        .app(App::new(2002, "no-device-app"))
        .app(App::new(3003, "reader-app").with_device_flow(true))
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .account(Account::user("mallory"))
        .repo("acme", "widgets")
        .repo("acme", "secret")
        .repo("octo", "dotfiles")
        .repo("mallory", "notes")
        .member("acme", "octo", "write")
        .member("acme", "mallory", "read")
        .installation(Installation::new(11, 1001, "acme").selected(["widgets"]))
        .installation(Installation::new(12, 1001, "octo").all())
        .installation(
            Installation::new(31, 3003, "acme")
                .all()
                .permissions([("contents", "read"), ("metadata", "read")]),
        )
        .device_flow_timing(1, 900)
        .start()
        .unwrap()
}

/// POST a form to a web path; `json` adds `Accept: application/json`.
fn post_form(gh: &GitHub, path: &str, form: &[(&str, &str)], json: bool) -> Resp {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(&format!("{}{path}", gh.url()));
    if json {
        req = req.header("Accept", "application/json");
    }
    let mut resp = req.send_form(form.iter().copied()).unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

fn form_fields(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("%60", "`").replace('+', " "))
        })
        .collect()
}

fn start(gh: &GitHub, app: u64) -> Value {
    let r = post_form(
        gh,
        "/login/device/code",
        &[("client_id", &gh.app(app).client_id())],
        true,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn poll(gh: &GitHub, app: u64, device_code: &str) -> Value {
    post_form(
        gh,
        "/login/oauth/access_token",
        &[
            ("client_id", &gh.app(app).client_id()),
            ("device_code", device_code),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ],
        true,
    )
    .json()
}

fn approve(gh: &GitHub, user_code: &str, login: &str, yes: bool) -> Resp {
    post_form(
        gh,
        "/login/device",
        &[
            ("user_code", user_code),
            ("login", login),
            ("authorize", if yes { "true" } else { "false" }),
        ],
        false,
    )
}

/// A logged-in user: (access token, refresh token).
fn login(gh: &GitHub, app: u64, who: &str) -> (String, String) {
    let code = start(gh, app);
    let r = approve(gh, code["user_code"].as_str().unwrap(), who, true);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = poll(gh, app, code["device_code"].as_str().unwrap());
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    )
}

#[test]
fn device_flow_as_github_runs_it_pending_slow_down_approval_tokens() {
    let gh = user_world();
    let code = start(&gh, 1001);
    assert_eq!(code["device_code"].as_str().unwrap().len(), 40);
    assert_eq!(code["user_code"].as_str().unwrap().len(), 9);
    assert_eq!(
        code["verification_uri"],
        format!("{}/login/device", gh.url())
    );
    assert_eq!(code["expires_in"], 900);
    assert_eq!(code["interval"], 1);
    let device = code["device_code"].as_str().unwrap();

    let v = poll(&gh, 1001, device);
    assert_eq!(v["error"], "authorization_pending");
    assert_eq!(
        v["error_description"],
        "The authorization request is still pending."
    );
    assert!(
        v["error_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/")
    );
    // Polled again at once: slow_down, with the interval raised by 5.
    let v = poll(&gh, 1001, device);
    assert_eq!(v["error"], "slow_down");
    assert_eq!(v["interval"], 6);
    assert_eq!(gh.oauth_stats().slow_downs, 1);

    // The person visits the page, signed in as octo, and authorises.
    let page = call("GET", &format!("{}/login/device", gh.url()), None, None);
    assert!(page.body.contains("user_code"), "{}", page.body);
    let r = approve(&gh, code["user_code"].as_str().unwrap(), "octo", true);
    assert!(
        r.body.contains("Congratulations, you're all set!"),
        "{}",
        r.body
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let v = poll(&gh, 1001, device);
    let access = v["access_token"].as_str().unwrap();
    assert!(access.starts_with("ghu_"), "{v}");
    assert_eq!(v["expires_in"], 28800);
    assert!(v["refresh_token"].as_str().unwrap().starts_with("ghr_"));
    assert_eq!(v["refresh_token_expires_in"], 15897600);
    assert_eq!(
        (v["scope"].as_str(), v["token_type"].as_str()),
        (Some(""), Some("bearer"))
    );
    // The code is used up.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(poll(&gh, 1001, device)["error"], "incorrect_device_code");

    // GET /user with the token names the person; an installation token is refused.
    let me = get(&gh, "/user", Some(&format!("Bearer {access}")));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["login"], "octo");
    let inst = gh.mint_token(11).unwrap().token;
    let r = get(&gh, "/user", Some(&format!("token {inst}")));
    assert_eq!(
        (r.status, r.message()),
        (403, "Resource not accessible by integration".into())
    );
    assert_eq!(get(&gh, "/user", None).status, 401);

    // The app's installations octo can reach: acme (member) and octo (own).
    let r = get(&gh, "/user/installations", Some(&format!("token {access}")));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["total_count"], 2);
    let accounts: Vec<&str> = v["installations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["account"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["acme", "octo"]);
    assert_eq!(v["installations"][0]["id"], 11);
    let r = get(&gh, "/user/installations", Some(&format!("token {inst}")));
    assert_eq!(r.status, 403);
}

#[test]
fn answers_are_form_encoded_unless_json_is_asked_for() {
    let gh = user_world();
    let client_id = gh.app(1001).client_id();
    let r = post_form(
        &gh,
        "/login/device/code",
        &[("client_id", &client_id)],
        false,
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    let f = form_fields(&r.body);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "device_code",
            "user_code",
            "verification_uri",
            "expires_in",
            "interval"
        ]
    );
    let device = &f[0].1;
    let r = post_form(
        &gh,
        "/login/oauth/access_token",
        &[
            ("client_id", &client_id),
            ("device_code", device),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ],
        false,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        form_fields(&r.body)[0],
        ("error".to_string(), "authorization_pending".to_string())
    );
}

#[test]
fn every_error_has_its_string() {
    let gh = user_world();
    // Device flow off in the app's settings.
    let r = post_form(
        &gh,
        "/login/device/code",
        &[("client_id", &gh.app(2002).client_id())],
        true,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"], "device_flow_disabled");
    assert_eq!(
        r.json()["error_description"],
        "Device Flow must be explicitly enabled for this App"
    );
    // An unknown client ID: 404 on the device-code endpoint, incorrect_client_credentials on the
    // token endpoint.
    let r = post_form(
        &gh,
        "/login/device/code",
        &[("client_id", "Iv23liNOPE")],
        true,
    );
    assert_eq!(r.status, 404);
    let v = post_form(
        &gh,
        "/login/oauth/access_token",
        &[
            ("client_id", "Iv23liNOPE"),
            ("device_code", "x"),
            ("grant_type", "refresh_token"),
        ],
        true,
    )
    .json();
    assert_eq!(v["error"], "incorrect_client_credentials");
    assert_eq!(
        v["error_description"],
        "The client_id and/or client_secret passed are incorrect."
    );
    assert_eq!(poll(&gh, 1001, "0123")["error"], "incorrect_device_code");
    let v = post_form(
        &gh,
        "/login/oauth/access_token",
        &[
            ("client_id", &gh.app(1001).client_id()),
            ("grant_type", "password"),
        ],
        true,
    )
    .json();
    assert_eq!(v["error"], "unsupported_grant_type");

    // Denied on the page.
    let code = start(&gh, 1001);
    approve(&gh, code["user_code"].as_str().unwrap(), "octo", false);
    assert_eq!(
        poll(&gh, 1001, code["device_code"].as_str().unwrap())["error"],
        "access_denied"
    );
    // Expired: the server clock moves past expires_in.
    let code = start(&gh, 1001);
    gh.set_clock_offset(901);
    let v = poll(&gh, 1001, code["device_code"].as_str().unwrap());
    assert_eq!(v["error"], "expired_token");
    assert_eq!(v["error_description"], "The `device code` has expired.");
    // A wrong code on the page.
    gh.set_clock_offset(0);
    let r = approve(&gh, "ZZZZ-ZZZZ", "octo", true);
    assert_eq!(r.status, 422);
}

#[test]
fn refresh_rotates_both_tokens_and_a_used_refresh_token_is_bad() {
    let gh = user_world();
    gh.set_user_token_lifetimes(3600, 7200);
    let (access, refresh) = login(&gh, 1001, "octo");
    let refresh_with = |r: &str| {
        post_form(
            &gh,
            "/login/oauth/access_token",
            &[
                ("client_id", &gh.app(1001).client_id()),
                ("grant_type", "refresh_token"),
                ("refresh_token", r),
            ],
            true,
        )
    };
    let r = refresh_with(&refresh);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (
            v["expires_in"].as_i64(),
            v["refresh_token_expires_in"].as_i64()
        ),
        (Some(3600), Some(7200))
    );
    let (access2, refresh2) = (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    );
    assert_ne!(access2, access);
    assert!(
        !gh.user_token_is_valid(&access),
        "the old access token stops working"
    );
    assert!(gh.user_token_is_valid(&access2));
    // The old refresh token is used up: HTTP 200 with bad_refresh_token.
    let r = refresh_with(&refresh);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"], "bad_refresh_token");
    assert_eq!(
        r.json()["error_description"],
        "The refresh token passed is incorrect or expired."
    );
    // The new one works once; an expired one does not.
    gh.set_clock_offset(7200);
    assert_eq!(refresh_with(&refresh2).json()["error"], "bad_refresh_token");
    let s = gh.oauth_stats();
    assert_eq!((s.refreshes, s.refreshed), (3, 1));
}

#[test]
fn git_with_a_user_token_is_what_both_the_user_and_the_app_may_do() {
    let gh = user_world();
    let dir = tempfile::tempdir().unwrap();
    let (octo, _) = login(&gh, 1001, "octo");
    // octo (member, write) through app 1001 (acme: widgets only, contents write).
    ok(&git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &octo, "acme", "widgets"),
            "w",
        ],
    ));
    // acme/secret is not in the installation's selection: not found, though octo may read it.
    let out = git(
        dir.path(),
        &["clone", "-q", &token_url(&gh, &octo, "acme", "secret"), "s"],
    );
    assert!(!out.status.success());
    assert_eq!(gh.requests().last().unwrap().status, 404);
    // Push as octo lands, attributed to the person.
    let w = dir.path().join("w");
    std::fs::write(w.join("x.txt"), "x").unwrap();
    ok(&git(&w, &["add", "x.txt"]));
    ok(&git(&w, &["commit", "-qm", "x"]));
    ok(&git(&w, &["push", "-q", "origin", "main"]));

    // mallory (member, read) through the same app: clone yes, push no.
    let (mallory, _) = login(&gh, 1001, "mallory");
    ok(&git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &mallory, "acme", "widgets"),
            "m",
        ],
    ));
    let m = dir.path().join("m");
    std::fs::write(m.join("y.txt"), "y").unwrap();
    ok(&git(&m, &["add", "y.txt"]));
    ok(&git(&m, &["commit", "-qm", "y"]));
    let out = git(&m, &["push", "-q", "origin", "main"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Permission to acme/widgets.git denied to mallory."),
        "{err}"
    );
    // mallory's own repository: the app is not installed there.
    let out = git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &mallory, "mallory", "notes"),
            "n",
        ],
    );
    assert!(!out.status.success());

    // octo through the read-only app 3003: clone yes, push no (contents: read).
    let (reader, _) = login(&gh, 3003, "octo");
    ok(&git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &reader, "acme", "secret"),
            "r",
        ],
    ));
    let r = dir.path().join("r");
    std::fs::write(r.join("z.txt"), "z").unwrap();
    ok(&git(&r, &["add", "z.txt"]));
    ok(&git(&r, &["commit", "-qm", "z"]));
    let out = git(&r, &["push", "-q", "origin", "main"]);
    assert!(!out.status.success());

    // An expired user token is a bad password.
    gh.expire_user_token(&octo);
    let out = git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &octo, "acme", "widgets"),
            "e",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(gh.requests().last().unwrap().status, 401);
}

#[test]
fn a_world_file_declares_the_device_flow_and_memberships() {
    let dir = tempfile::tempdir().unwrap();
    let world = serde_json::json!({
        "apps": [{"id": 1001, "slug": "demo-app", "generate_key_to": "k.pem", "device_flow": true}],
        "accounts": [
            {"login": "acme", "type": "Organization", "members": {"octo": "write"}},
            {"login": "octo"}
        ],
        "repos": ["acme/widgets"],
        "installations": [{"id": 11, "app_id": 1001, "account": "acme"}],
        "device_interval_secs": 1
    });
    let gh = local_github::WorldFile::parse(&world.to_string())
        .unwrap()
        .into_builder(dir.path())
        .unwrap()
        .start()
        .unwrap();
    assert!(gh.app(1001).device_flow());
    assert_eq!(start(&gh, 1001)["interval"], 1);
    let (octo, _) = login(&gh, 1001, "octo");
    ok(&git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, &octo, "acme", "widgets"),
            "w",
        ],
    ));
}

mod common;

use common::*;
use local_github::{App, Fault, FaultAction, TokenFormat};
use serde_json::json;

const DECODE: &str = "A JSON web token could not be decoded";
const IAT: &str = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
const EXP: &str = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
const TOO_FAR: &str = "'Expiration time' claim ('exp') is too far in the future";

#[test]
fn valid_jwt_gets_the_app_with_github_headers() {
    let gh = world();
    let r = get(&gh, "/app", Some(&bearer(&gh.jwt(1001))));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["id"], 1001);
    assert_eq!(v["slug"], "demo-app");
    assert_eq!(v["client_id"], gh.app(1001).client_id());
    assert!(v["client_id"].as_str().unwrap().starts_with("Iv23li"));
    assert_eq!(v["client_id"].as_str().unwrap().len(), 20);
    assert_eq!(v["html_url"], format!("{}/apps/demo-app", gh.url()));
    assert_eq!(v["installations_count"], 2);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let date = httpdate::parse_http_date(r.header("date").unwrap()).unwrap();
    let skew = date
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - real_now();
    assert!(skew.abs() <= 2);
    assert!(r.header("x-github-request-id").is_some());
    assert_eq!(r.header("x-ratelimit-limit"), Some("5000"));
    assert!(r.header("x-ratelimit-remaining").is_some());
    assert!(r.header("x-ratelimit-reset").is_some());
    // The request log keeps headers of interest but never the credential.
    let rec = gh.requests().pop().unwrap();
    assert_eq!(rec.path, "/api/v3/app");
    assert_eq!(rec.status, 200);
    assert_eq!(rec.auth_scheme.as_deref(), Some("Bearer"));
    assert_eq!(rec.user_agent.as_deref(), Some(UA));
    assert_eq!(rec.accept.as_deref(), Some("application/vnd.github+json"));
    assert_eq!(rec.x_github_api_version.as_deref(), Some("2022-11-28"));
}

#[test]
fn iss_may_be_number_string_or_client_id() {
    let gh = world();
    let app = gh.app(1001);
    let now = gh.now();
    for iss in [json!(1001), json!("1001"), json!(app.client_id())] {
        let jwt = app.sign_jwt(&json!({"iat": now - 60, "exp": now + 540, "iss": iss}));
        let r = get(&gh, "/app", Some(&bearer(&jwt)));
        assert_eq!(r.status, 200, "iss {iss}: {}", r.body);
    }
    // A PKCS#8 copy of the same key signs equally well (jsonwebtoken accepts both).
    let pkcs8 = App::with_key_pem(1001, "demo-app", &app.private_key_pkcs8_pem()).unwrap();
    assert_eq!(pkcs8.fingerprint(), app.fingerprint());
    assert!(
        app.private_key_pem()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert!(
        app.private_key_pkcs8_pem()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(app.fingerprint().starts_with("SHA256:"));
}

#[test]
fn each_jwt_error_has_githubs_string() {
    let gh = world();
    let app = gh.app(1001);
    let other = gh.app(2002);
    let now = gh.now();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            app.sign_jwt(&json!({"iat": now + 120, "exp": now + 500, "iss": "1001"})),
            401,
            IAT,
        ),
        (
            app.sign_jwt(&json!({"iat": now as f64 - 60.5, "exp": now + 500, "iss": "1001"})),
            401,
            IAT,
        ),
        (
            app.sign_jwt(&json!({"exp": now + 500, "iss": "1001"})),
            401,
            IAT,
        ),
        (
            app.sign_jwt(&json!({"iat": now - 700, "exp": now - 100, "iss": "1001"})),
            401,
            EXP,
        ),
        (
            app.sign_jwt(&json!({"iat": now - 60, "exp": "soon", "iss": "1001"})),
            401,
            EXP,
        ),
        (
            app.sign_jwt(&json!({"iat": now - 60, "exp": now + 1200, "iss": "1001"})),
            401,
            TOO_FAR,
        ),
        // Signed with another app's key.
        (
            other.sign_jwt(&json!({"iat": now - 60, "exp": now + 500, "iss": "1001"})),
            401,
            DECODE,
        ),
        (
            app.sign_jwt(&json!({"iat": now - 60, "exp": now + 500, "iss": 999_999})),
            404,
            "Integration not found",
        ),
        (
            app.sign_jwt(&json!({"iat": now - 60, "exp": now + 500, "iss": "Iv23liNOPE"})),
            404,
            "Integration not found",
        ),
        ("not.a.jwt".to_string(), 401, DECODE),
    ];
    for (jwt, status, message) in cases {
        let r = get(&gh, "/app", Some(&bearer(&jwt)));
        assert_eq!(r.status, status, "{message}: {}", r.body);
        let v = r.json();
        assert_eq!(v["message"], message);
        assert_eq!(v["documentation_url"], "https://docs.github.com/rest");
        assert_eq!(v["status"], status.to_string());
    }
    // exp exactly 600 s ahead is fine; the docs' iat = now - 60, exp = now + 600 too.
    for (iat, exp) in [(now, now + 600), (now - 60, now + 600)] {
        let jwt = app.sign_jwt(&json!({"iat": iat, "exp": exp, "iss": "1001"}));
        assert_eq!(get(&gh, "/app", Some(&bearer(&jwt))).status, 200);
    }
    // A JWT must use the Bearer scheme; missing auth cannot be decoded either.
    let r = get(&gh, "/app", Some(&format!("token {}", gh.jwt(1001))));
    assert_eq!((r.status, r.message()), (401, DECODE.to_string()));
    let r = get(&gh, "/app", None);
    assert_eq!((r.status, r.message()), (401, DECODE.to_string()));
    // HS256 is refused even with a plausible payload.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iat": now - 60, "exp": now + 500, "iss": "1001"}),
        &jsonwebtoken::EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    assert_eq!(get(&gh, "/app", Some(&bearer(&hs))).message(), DECODE);
}

#[test]
fn second_key_and_key_removal() {
    let gh = world();
    let pem2 = gh.add_app_key(1001);
    let app2 = App::with_key_pem(1001, "demo-app", &pem2).unwrap();
    let now = gh.now();
    let jwt2 = app2.jwt_at(now);
    assert_eq!(get(&gh, "/app", Some(&bearer(&jwt2))).status, 200);
    assert_eq!(get(&gh, "/app", Some(&bearer(&gh.jwt(1001)))).status, 200);
    assert!(gh.remove_app_key(1001, &app2.fingerprint()));
    assert_eq!(get(&gh, "/app", Some(&bearer(&jwt2))).message(), DECODE);
    // A later key is a new one, not the removed one coming back.
    let pem3 = gh.add_app_key(1001);
    assert_ne!(pem3, pem2);
    assert_eq!(get(&gh, "/app", Some(&bearer(&jwt2))).message(), DECODE);
    assert_eq!(gh.app(1001).keys().len(), 2);
}

#[test]
fn clock_offset_changes_the_verdict_and_the_date_header() {
    let gh = world();
    let app = gh.app(1001);
    // A client whose clock is right, against a server 15 minutes behind: iat is in the future.
    let client_jwt = app.jwt_at(real_now());
    assert_eq!(get(&gh, "/app", Some(&bearer(&client_jwt))).status, 200);
    gh.set_clock_offset(-900);
    let r = get(&gh, "/app", Some(&bearer(&client_jwt)));
    assert_eq!((r.status, r.message()), (401, IAT.to_string()));
    let date = httpdate::parse_http_date(r.header("date").unwrap()).unwrap();
    let server = date
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((server - (real_now() - 900)).abs() <= 2);
    // Re-signing from the Date header works.
    assert_eq!(
        get(&gh, "/app", Some(&bearer(&app.jwt_at(server)))).status,
        200
    );
    // Server 15 minutes ahead: the client's JWT has expired.
    gh.set_clock_offset(900);
    let r = get(&gh, "/app", Some(&bearer(&client_jwt)));
    assert_eq!((r.status, r.message()), (401, EXP.to_string()));
    gh.set_clock_offset(0);
    assert_eq!(get(&gh, "/app", Some(&bearer(&client_jwt))).status, 200);
}

#[test]
fn installation_lookups() {
    let gh = world();
    let auth = bearer(&gh.jwt(1001));
    let a = Some(auth.as_str());
    let cases = [
        ("/repos/acme/widgets/installation", 200, Some(11)),
        ("/repos/ACME/Widgets/installation", 200, Some(11)),
        ("/repos/acme/secret/installation", 404, None),
        ("/repos/acme/missing/installation", 404, None),
        ("/repos/octo/dotfiles/installation", 200, Some(12)),
        ("/repos/octo/missing/installation", 404, None),
        ("/repos/nobody/x/installation", 404, None),
        ("/users/acme/installation", 200, Some(11)),
        ("/users/octo/installation", 200, Some(12)),
        ("/users/nobody/installation", 404, None),
        ("/orgs/acme/installation", 200, Some(11)),
        ("/orgs/octo/installation", 404, None),
        ("/app/installations/11", 200, Some(11)),
        ("/app/installations/31", 404, None),
        ("/app/installations/999", 404, None),
    ];
    for (path, status, id) in cases {
        let r = get(&gh, path, a);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        match id {
            Some(id) => assert_eq!(r.json()["id"], id, "{path}"),
            None => {
                assert_eq!(r.message(), "Not Found");
                assert_eq!(r.json()["status"], "404");
            }
        }
    }
    let v = get(&gh, "/repos/acme/widgets/installation", a).json();
    assert_eq!(v["app_id"], 1001);
    assert_eq!(v["app_slug"], "demo-app");
    assert_eq!(v["client_id"], gh.app(1001).client_id());
    assert_eq!(v["account"]["login"], "acme");
    assert_eq!(v["account"]["type"], "Organization");
    assert_eq!(v["target_type"], "Organization");
    assert_eq!(v["repository_selection"], "selected");
    assert_eq!(
        v["access_tokens_url"],
        format!("{}/app/installations/11/access_tokens", gh.api_url())
    );
    assert_eq!(v["account"]["url"], format!("{}/orgs/acme", gh.api_url()));
    assert_eq!(
        v["permissions"],
        json!({"contents": "write", "metadata": "read"})
    );
    assert_eq!(v["suspended_at"], serde_json::Value::Null);
    let v = get(&gh, "/users/octo/installation", a).json();
    assert_eq!(v["account"]["type"], "User");
    assert_eq!(v["account"]["url"], format!("{}/users/octo", gh.api_url()));
    // base-installation (GET /app/installations/{id}) has no client_id.
    assert!(
        get(&gh, "/app/installations/12", a)
            .json()
            .get("client_id")
            .is_none()
    );
    // Lookups count.
    assert_eq!(gh.lookup_count(), cases.len() + 3);
}

#[test]
fn list_installations_paginates_with_link() {
    let gh = world();
    let auth = bearer(&gh.jwt(1001));
    let r = get(&gh, "/app/installations", Some(&auth));
    assert_eq!(r.status, 200);
    let ids: Vec<u64> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [11, 12]);
    assert!(r.header("link").is_none());
    let r = get(&gh, "/app/installations?per_page=1&page=1", Some(&auth));
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let link = r.header("link").unwrap();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("rel=\"last\""), "{link}");
    let r = get(&gh, "/app/installations?per_page=1&page=2", Some(&auth));
    assert_eq!(r.json()[0]["id"], 12);
    assert!(r.header("link").unwrap().contains("rel=\"prev\""));
}

#[test]
fn minting_returns_the_installation_token_shape() {
    let gh = world();
    let before = gh.now();
    let r = mint(&gh, 1001, 11, None);
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    let token = v["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");
    assert!(token[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    let exp = humantime::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    let exp = exp.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((exp - (before + 3600)).abs() <= 2);
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        v["permissions"],
        json!({"contents": "write", "metadata": "read"})
    );
    assert_eq!(v["repository_selection"], "selected");
    let repos = v["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0]["full_name"], "acme/widgets");
    assert_eq!(repos[0]["name"], "widgets");
    assert_eq!(repos[0]["owner"]["login"], "acme");
    assert_eq!(repos[0]["private"], true);
    assert_eq!(repos[0]["default_branch"], "main");
    assert_eq!(repos[0]["clone_url"], gh.git_url("acme", "widgets"));
    assert_eq!(
        repos[0]["url"],
        format!("{}/repos/acme/widgets", gh.api_url())
    );
    assert_eq!(repos[0]["permissions"]["push"], true);
    assert!(gh.token_is_valid(token));
    assert_eq!(gh.mint_count(), 1);

    // selection "all": no repositories array.
    let v = mint(&gh, 1001, 12, Some("{}")).json();
    assert_eq!(v["repository_selection"], "all");
    assert!(v.get("repositories").is_none());

    // Narrowing by repositories / permissions.
    let r = mint(
        &gh,
        1001,
        12,
        Some(r#"{"repositories":["dotfiles"],"permissions":{"contents":"read"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["repository_selection"], "selected");
    assert_eq!(v["repositories"][0]["full_name"], "octo/dotfiles");
    assert_eq!(
        v["permissions"],
        json!({"contents": "read", "metadata": "read"})
    );
    let rid = v["repositories"][0]["id"].as_u64().unwrap();
    let r = mint(
        &gh,
        1001,
        12,
        Some(&format!(r#"{{"repository_ids":[{rid}]}}"#)),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["repositories"][0]["id"], rid);
}

#[test]
fn minting_errors() {
    let gh = world();
    let r = mint(&gh, 1001, 11, Some(r#"{"repositories":["secret"]}"#));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.message(),
        "There is at least one repository that does not exist or is not accessible to the parent installation."
    );
    assert!(r.json()["documentation_url"].is_string());
    let r = mint(&gh, 1001, 11, Some(r#"{"permissions":{"issues":"write"}}"#));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.message(),
        "The permissions requested are not granted to this installation."
    );
    let r = mint(
        &gh,
        3003,
        31,
        Some(r#"{"permissions":{"contents":"write"}}"#),
    );
    assert_eq!(r.status, 422);
    let r = mint(&gh, 1001, 11, Some("{not json"));
    assert_eq!(
        (r.status, r.message()),
        (400, "Problems parsing JSON".to_string())
    );
    // Another app's installation, and an unknown one.
    assert_eq!(mint(&gh, 2002, 11, None).status, 404);
    let r = mint(&gh, 1001, 999, None);
    assert_eq!((r.status, r.message()), (404, "Not Found".to_string()));
    // Suspended.
    gh.suspend(11);
    let r = mint(&gh, 1001, 11, None);
    assert_eq!(
        (r.status, r.message()),
        (403, "This installation has been suspended".to_string())
    );
    assert_eq!(r.json()["status"], "403");
    let r = get(&gh, "/app/installations/11", Some(&bearer(&gh.jwt(1001))));
    assert!(r.json()["suspended_at"].is_string());
    gh.unsuspend(11);
    assert_eq!(mint(&gh, 1001, 11, None).status, 201);
    // Uninstalled / reinstalled under a new id.
    assert!(gh.reinstall(11, 111));
    assert_eq!(mint(&gh, 1001, 11, None).status, 404);
    let r = get(
        &gh,
        "/repos/acme/widgets/installation",
        Some(&bearer(&gh.jwt(1001))),
    );
    assert_eq!(r.json()["id"], 111);
    assert!(gh.uninstall(111));
    let r = get(
        &gh,
        "/repos/acme/widgets/installation",
        Some(&bearer(&gh.jwt(1001))),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn installation_token_endpoints() {
    let gh = world();
    let token = mint(&gh, 1001, 12, None).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = |p: &str| format!("{}{p}", gh.api_url());
    let r = call(
        "GET",
        &url("/installation/repositories"),
        Some(&format!("token {token}")),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["total_count"], 1);
    assert_eq!(v["repositories"][0]["full_name"], "octo/dotfiles");
    // New repositories appear for "all" installations.
    gh.add_repo("octo", "notes").unwrap();
    let r = call(
        "GET",
        &url("/installation/repositories"),
        Some(&format!("Bearer {token}")),
        None,
    );
    assert_eq!(r.json()["total_count"], 2);
    let r = call("GET", &url("/installation/repositories"), None, None);
    assert_eq!(
        (r.status, r.message()),
        (401, "Requires authentication".to_string())
    );
    // Revoke.
    let r = call(
        "DELETE",
        &url("/installation/token"),
        Some(&format!("token {token}")),
        None,
    );
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(!gh.token_is_valid(&token));
    let r = call(
        "GET",
        &url("/installation/repositories"),
        Some(&format!("token {token}")),
        None,
    );
    assert_eq!(
        (r.status, r.message()),
        (401, "Bad credentials".to_string())
    );
    let r = call(
        "DELETE",
        &url("/installation/token"),
        Some(&format!("token {token}")),
        None,
    );
    assert_eq!(r.status, 401);
    // Rate limit works with any or no auth.
    let r = get(&gh, "/rate_limit", None);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["resources"]["core"]["limit"], 5000);
    assert_eq!(v["rate"], v["resources"]["core"]);
}

#[test]
fn missing_user_agent_is_forbidden() {
    let gh = world();
    let out = raw(
        &gh,
        "GET /api/v3/rate_limit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("Please make sure your request has a User-Agent header"));
    let out = raw(
        &gh,
        "GET /api/v3/rate_limit HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\r\nDate: "));
}

#[test]
fn expect_100_continue_and_keep_alive() {
    let gh = world();
    let jwt = gh.jwt(1001);
    let req = format!(
        "POST /api/v3/app/installations/11/access_tokens HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\n\
         Authorization: Bearer {jwt}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{{}}\
         GET /api/v3/rate_limit HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n"
    );
    let out = raw(&gh, &req);
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created"),
        "{out}"
    );
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&gh);
}

#[test]
fn injected_faults_are_served_then_normal() {
    let gh = world();
    gh.inject(
        Fault::new(
            "/api/v3/app/installations/",
            FaultAction::github_error(502, "Server Error"),
        )
        .method("POST"),
    );
    gh.inject(
        Fault::new(
            "/api/v3/app/installations/",
            FaultAction::github_error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
                .with_header("Retry-After", 7),
        )
        .method("POST"),
    );
    gh.inject(
        Fault::new(
            "/api/v3/app",
            FaultAction::github_error(429, "API rate limit exceeded for installation ID 11.")
                .with_header("x-ratelimit-remaining", 0)
                .with_header("x-ratelimit-reset", 1_900_000_000),
        )
        .method("GET")
        .times(2),
    );
    assert_eq!(gh.pending_faults(), 4);
    let r = mint(&gh, 1001, 11, None);
    assert_eq!(r.status, 502);
    assert!(r.header("date").is_some());
    let r = mint(&gh, 1001, 11, None);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(mint(&gh, 1001, 11, None).status, 201);
    for _ in 0..2 {
        let r = get(&gh, "/app", Some(&bearer(&gh.jwt(1001))));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(r.header("x-ratelimit-reset"), Some("1900000000"));
    }
    assert_eq!(get(&gh, "/app", Some(&bearer(&gh.jwt(1001)))).status, 200);
    assert_eq!(gh.pending_faults(), 0);
    // Delay then normal.
    gh.inject(Fault::new("/api/v3/rate_limit", FaultAction::delay_ms(300)));
    let t = std::time::Instant::now();
    assert_eq!(get(&gh, "/rate_limit", None).status, 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));
    // Drop: the connection closes without an answer.
    gh.inject(Fault::new("/api/v3/rate_limit", FaultAction::Drop));
    let out = raw(
        &gh,
        "GET /api/v3/rate_limit HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\n\r\n",
    );
    assert!(out.is_empty(), "{out}");
    assert_eq!(get(&gh, "/rate_limit", None).status, 200);
    let log = gh.requests();
    let faults: Vec<_> = log.iter().filter_map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        ["respond", "respond", "respond", "respond", "delay", "drop"]
    );
    assert_eq!(
        log.iter()
            .find(|r| r.fault.as_deref() == Some("drop"))
            .unwrap()
            .status,
        0
    );
}

#[test]
fn stateless_tokens_are_long_and_work() {
    let gh = world();
    gh.set_token_format(TokenFormat::Stateless);
    let token = mint(&gh, 1001, 12, None).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("ghs_1001_"), "{token}");
    assert!(token.len() > 200, "{}", token.len());
    let r = call(
        "GET",
        &format!("{}/installation/repositories", gh.api_url()),
        Some(&format!("token {token}")),
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn log_and_counts() {
    let gh = world();
    get(&gh, "/rate_limit", None);
    mint(&gh, 1001, 11, None);
    assert_eq!(gh.count("POST", "/api/v3/app/installations/"), 1);
    assert_eq!(gh.count("GET", "/api/v3/"), 1);
    let stats = gh.stats();
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["mints"], 1);
    // Control endpoints are not logged.
    let r = call("GET", &format!("{}/_emulator/stats", gh.url()), None, None);
    assert_eq!(
        r.json(),
        json!({"requests": 2, "mints": 1, "lookups": 0, "git": 0})
    );
    let r = call(
        "GET",
        &format!("{}/_emulator/requests", gh.url()),
        None,
        None,
    );
    let log = r.json();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[1]["method"], "POST");
    assert_eq!(log[1]["status"], 201);
    assert!(!r.body.contains("eyJ"), "credential leaked into the log");
    let r = call("POST", &format!("{}/_emulator/clear", gh.url()), None, None);
    assert_eq!(r.status, 204);
    assert!(gh.requests().is_empty());
    // Control: clock and faults over HTTP.
    call(
        "POST",
        &format!("{}/_emulator/clock", gh.url()),
        None,
        Some(r#"{"offset_secs": -900}"#),
    );
    assert!((gh.now() - (real_now() - 900)).abs() <= 1);
    call(
        "POST",
        &format!("{}/_emulator/faults", gh.url()),
        None,
        Some(
            r#"{"method":"GET","path_prefix":"/api/v3/rate_limit","status":503,"body":{"message":"x"},"headers":{"Retry-After":"1"}}"#,
        ),
    );
    let r = get(&gh, "/rate_limit", None);
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
}

//! The broker stand-ins: OIDC issuer + Actions ID-token endpoint, octo-sts, chinmina-bridge.

mod common;

use common::*;
use local_github::{ActionsJob, Chinmina, OctoSts, OidcIssuer, buildkite_claims};
use serde_json::json;

const POLICY: &str = "issuer: ISSUER\nsubject: repo:acme/widgets:ref:refs/heads/main\nclaim_pattern:\n  workflow: ci\npermissions:\n  contents: write\n";

fn actions_token(issuer: &OidcIssuer, job: ActionsJob, audience: &str) -> String {
    let (url, request_token) = issuer.actions_job(job);
    let r = call(
        "GET",
        &format!("{url}&audience={audience}"),
        Some(&bearer(&request_token)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["value"].as_str().unwrap().to_string()
}

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

fn exchange(sts: &OctoSts, query: &str, token: Option<&str>) -> Resp {
    call(
        "GET",
        &format!("{}/sts/exchange?{query}", sts.url()),
        token.map(bearer).as_deref(),
        None,
    )
}

#[test]
fn issuer_publishes_discovery_and_jwks_and_actions_tokens() {
    let issuer = OidcIssuer::start().unwrap();
    let d = call(
        "GET",
        &format!("{}/.well-known/openid-configuration", issuer.url()),
        None,
        None,
    );
    assert_eq!(d.json()["issuer"], json!(issuer.url()));
    let jwks = call("GET", d.json()["jwks_uri"].as_str().unwrap(), None, None).json();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    let jwt = actions_token(&issuer, ActionsJob::new("acme/widgets"), "sts.example");
    let c = claims(&jwt);
    assert_eq!(c["sub"], "repo:acme/widgets:ref:refs/heads/main");
    assert_eq!(c["aud"], "sts.example");
    assert_eq!(c["repository_owner"], "acme");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    // Without audience=: GitHub's default, the owner's URL.
    let (url, rt) = issuer.actions_job(ActionsJob::new("acme/widgets"));
    let r = call("GET", &url, Some(&bearer(&rt)), None);
    assert_eq!(
        claims(r.json()["value"].as_str().unwrap())["aud"],
        "https://github.com/acme"
    );
    // A wrong request token is refused.
    assert_eq!(call("GET", &url, Some("Bearer nope"), None).status, 401);
    assert_eq!(
        issuer.actions_audiences(),
        ["sts.example", "https://github.com/acme"]
    );
}

#[test]
fn octo_sts_exchanges_a_trusted_token_for_a_repository_token() {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    gh.write_file(
        "acme",
        "widgets",
        ".github/chainguard/ci.sts.yaml",
        &POLICY.replace("ISSUER", &issuer.url()),
    )
    .unwrap();
    let sts = OctoSts::start(&gh, 1001).unwrap();
    let jwt = actions_token(&issuer, ActionsJob::new("acme/widgets"), &sts.domain());
    let r = exchange(
        &sts,
        "scope=acme/widgets&scopes=acme/widgets&identity=ci",
        Some(&jwt),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        body["expiry"],
        serde_json::Value::Null,
        "octo-sts sets no expiry"
    );
    let token = body["token"].as_str().unwrap();
    assert!(gh.token_is_valid(token));
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    assert_eq!(issued.repositories, ["widgets"]);
    assert_eq!(
        issued.permissions.get("contents").map(String::as_str),
        Some("write")
    );
    assert_eq!(gh.mint_count(), 1);
    // The token clones the repository over git smart HTTP.
    let dir = tempfile::tempdir().unwrap();
    ok(&git(
        dir.path(),
        &[
            "clone",
            "-q",
            &token_url(&gh, token, "acme", "widgets"),
            "w",
        ],
    ));
    assert_eq!(
        sts.exchanges()[0].subject.as_deref(),
        Some("repo:acme/widgets:ref:refs/heads/main")
    );
}

#[test]
fn octo_sts_refuses_as_octo_sts_does() {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    gh.write_file(
        "acme",
        "widgets",
        ".github/chainguard/ci.sts.yaml",
        &POLICY.replace("ISSUER", &issuer.url()),
    )
    .unwrap();
    let sts = OctoSts::start(&gh, 1001).unwrap();
    let good = actions_token(&issuer, ActionsJob::new("acme/widgets"), &sts.domain());
    let q = "scope=acme/widgets&scopes=acme/widgets&identity=ci";
    let cases: Vec<(String, Option<String>, u16, &str)> = vec![
        (q.into(), None, 401, "no authorization header"),
        (
            q.into(),
            Some("not-a-jwt".into()),
            400,
            "invalid bearer token",
        ),
        (
            "identity=ci".into(),
            Some(good.clone()),
            400,
            "scope must be provided",
        ),
        (
            "scope=acme/widgets".into(),
            Some(good.clone()),
            400,
            "identity must be provided",
        ),
        (
            "scopes=acme/widgets&scopes=acme/secret&identity=ci".into(),
            Some(good.clone()),
            400,
            "multiple scopes not supported",
        ),
        (
            "scope=acme/widgets&identity=deploy".into(),
            Some(good.clone()),
            404,
            "unable to find trust policy for \"deploy\"",
        ),
        // Another branch: the subject does not match.
        (
            q.into(),
            Some(actions_token(
                &issuer,
                ActionsJob::new("acme/widgets").git_ref("refs/heads/dev"),
                &sts.domain(),
            )),
            403,
            "trust policy: subject",
        ),
        // The audience must be the service's domain when the policy names none.
        (
            q.into(),
            Some(actions_token(
                &issuer,
                ActionsJob::new("acme/widgets"),
                "elsewhere",
            )),
            403,
            "trust policy: audience",
        ),
    ];
    for (query, token, status, message) in cases {
        let r = exchange(&sts, &query, token.as_deref());
        assert_eq!(r.status, status, "{query}: {}", r.body);
        let m = r.json()["message"].as_str().unwrap().to_string();
        assert!(m.starts_with(message), "{query}: {m}");
        assert!(r.json()["code"].is_u64());
    }
    // A token signed by a key the issuer does not publish.
    let other = OidcIssuer::start_with_key(local_github::AppKey::pooled(9002)).unwrap();
    let mut c = claims(&good);
    c["iss"] = json!(issuer.url());
    let forged = other.sign(c);
    let r = exchange(&sts, q, Some(&forged));
    assert_eq!(r.status, 401);
    assert!(r.message().starts_with("unable to verify bearer token"));
    assert_eq!(gh.mint_count(), 0);
    assert_eq!(sts.tokens_issued(), 0);
}

#[test]
fn octo_sts_org_policy_covers_its_repositories() {
    let gh = world();
    gh.add_repo("acme", ".github").unwrap();
    gh.add_installation(local_github::Installation::new(11, 1001, "acme").all());
    let issuer = OidcIssuer::start().unwrap();
    gh.write_file(
        "acme",
        ".github",
        ".github/chainguard/fleet.sts.yaml",
        &format!(
            "issuer: {}\nsubject_pattern: \"repo:acme/[^:]+:ref:refs/heads/main\"\npermissions:\n  contents: read\nrepositories:\n  - widgets\n  - secret\n",
            issuer.url()
        ),
    )
    .unwrap();
    // `repositories:` in a repository policy is an error (UnmarshalStrict).
    gh.write_file(
        "acme",
        "widgets",
        ".github/chainguard/fleet.sts.yaml",
        &format!(
            "issuer: {}\nsubject: x\nrepositories: [widgets]\n",
            issuer.url()
        ),
    )
    .unwrap();
    let sts = OctoSts::start(&gh, 1001).unwrap();
    let jwt = actions_token(&issuer, ActionsJob::new("acme/tools"), &sts.domain());
    let r = exchange(&sts, "scope=acme&scopes=acme&identity=fleet", Some(&jwt));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let issued = gh.tokens().into_iter().find(|t| t.token == token).unwrap();
    assert_eq!(issued.repositories, ["secret", "widgets"]);
    let r = exchange(
        &sts,
        "scope=acme/widgets&scopes=acme/widgets&identity=fleet",
        Some(&jwt),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.message(),
        "unable to parse trust policy found for \"fleet\""
    );
}

#[test]
fn chinmina_vends_the_pipeline_repository_with_expiry_and_git_credentials() {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    let ch = Chinmina::start(&gh, 1001, &issuer.url(), "acme-bk").unwrap();
    ch.pipeline("widgets-ci", "acme", "widgets");
    let jwt = issuer.sign(buildkite_claims("acme-bk", "widgets-ci", &ch.audience()));
    let post = |path: &str, token: &str, body: &str| {
        call(
            "POST",
            &format!("{}{path}", ch.url()),
            Some(&bearer(token)),
            Some(body),
        )
    };
    let r = post("/token", &jwt, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    assert_eq!(t["repositoryUrl"], json!(gh.git_url("acme", "widgets")));
    assert_eq!(t["permissions"], json!(["contents:read"]));
    assert!(humantime::parse_rfc3339(t["expiry"].as_str().unwrap()).is_ok());
    let token = t["token"].as_str().unwrap().to_string();
    // git-credentials, for the pipeline's repository: the same (cached) token, git's format.
    let ask = format!("protocol=http\nhost={}\npath=acme/widgets.git\n", gh.host());
    let r = post("/git-credentials", &jwt, &ask);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(&format!("password={token}\n")),
        "{}",
        r.body
    );
    assert!(r.body.contains("username=x-access-token\npassword="));
    assert!(r.body.contains("password_expiry_utc="));
    assert_eq!(gh.mint_count(), 1, "chinmina caches vended tokens");
    // Another repository: 200 with an empty body.
    let r = post(
        "/git-credentials",
        &jwt,
        &format!("protocol=http\nhost={}\npath=acme/secret.git\n", gh.host()),
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    // An unknown profile and a bad audience are denied, with the reason in Chinmina-Denied.
    let r = post("/git-credentials/release", &jwt, &ask);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("chinmina-denied"),
        Some("profile release not found")
    );
    let wrong = issuer.sign(buildkite_claims(
        "acme-bk",
        "widgets-ci",
        "chinmina:default",
    ));
    let r = post("/token", &wrong, "");
    assert_eq!(r.status, 401);
    assert!(r.header("chinmina-denied").is_some());
    // A profile with write access mints its own token.
    ch.profile("release", [("contents", "write")]);
    let r = post("/token/release", &jwt, "");
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["token"].as_str().unwrap(), token);
    assert_eq!(ch.vend_count(), 3);
}

#[test]
fn rfc_8693_exchange_answers_as_the_rfc_says() {
    let gh = world();
    let issuer = OidcIssuer::start().unwrap();
    let sts = local_github::TokenExchange::start(&gh, 1001, &issuer.url()).unwrap();
    let jwt = issuer.sign(json!({"sub": "system:serviceaccount:ci:runner", "aud": "sts"}));
    let post = |body: String| {
        let r = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .post(&sts.url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.as_bytes())
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value =
            serde_json::from_str(&r.into_body().read_to_string().unwrap()).unwrap();
        (status, body)
    };
    let (status, body) = post(format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={jwt}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&scope=acme%2Fwidgets"
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert!((3590..=3600).contains(&body["expires_in"].as_i64().unwrap()));
    assert!(gh.token_is_valid(body["access_token"].as_str().unwrap()));
    let (status, body) = post("grant_type=password".into());
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = post(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x.y.z&subject_token_type=urn:ietf:params:oauth:token-type:jwt&scope=acme/widgets".into());
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(sts.exchange_count(), 1);
}

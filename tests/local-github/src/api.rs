//! REST endpoints under `/api/v3`, shaped after GitHub's OpenAPI example bodies
//! (copied into `src/templates/`, see `src/templates/README.md`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Value, json};

use crate::LockExt;
use crate::http::{HttpRequest, HttpResponse};
use crate::jwt;

use crate::model::{RepositorySelection, TokenFormat};
use crate::state::{AccountRec, InstRec, RepoRec, TokenProblem, World, level, rfc3339};
use crate::{Shared, model::AccountType};

pub(crate) const JSON: &str = "application/json; charset=utf-8";
/// documentation_url of the JWT and credential errors (the bodies quoted under "Error strings" in the README).
pub(crate) const DOCS_REST: &str = "https://docs.github.com/rest";

// GitHub's docs page of each operation (the table under "REST operations" in the README).
const DOC_GET_INST: &str =
    "https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app";
const DOC_REPO_INST: &str = "https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app";
const DOC_ORG_INST: &str = "https://docs.github.com/rest/apps/apps#get-an-organization-installation-for-the-authenticated-app";
const DOC_USER_INST: &str =
    "https://docs.github.com/rest/apps/apps#get-a-user-installation-for-the-authenticated-app";
const DOC_MINT: &str =
    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
const DOC_INST_REPOS: &str = "https://docs.github.com/rest/apps/installations#list-repositories-accessible-to-the-app-installation";
const DOC_REVOKE: &str =
    "https://docs.github.com/rest/apps/installations#revoke-an-installation-access-token";

/// 403 body of a suspended installation, as observed in
/// github.com/hcengineering/platform/issues/7639 (2025) and octokit/octokit.rb#1307:
/// `{"documentation_url":"https://docs.github.com/rest/reference/apps#create-an-installation-access-token-for-an-app","message":"This installation has been suspended","status":"403"}`.
pub(crate) const MSG_SUSPENDED: &str = "This installation has been suspended";
const DOC_SUSPENDED: &str =
    "https://docs.github.com/rest/reference/apps#create-an-installation-access-token-for-an-app";
/// 422 when `repositories` names a repository outside the installation: seen in
/// github.com/tibdex/github-app-token/issues/105 (2023).
pub(crate) const MSG_REPOS_NOT_ACCESSIBLE: &str = "There is at least one repository that does not exist or is not accessible to the parent installation.";
/// 422 when `permissions` exceeds the installation's: PyGithub test
/// testGetAccessTokenWithInvalidPermissions (github.com/PyGithub/PyGithub/pull/3539).
pub(crate) const MSG_PERMS_NOT_GRANTED: &str =
    "The permissions requested are not granted to this installation.";
/// GitHub's "Bad credentials" (401; "Error strings" in the README).
pub(crate) const MSG_BAD_CREDENTIALS: &str = "Bad credentials";
/// GitHub's message for an unauthenticated call to an endpoint that needs a token
/// (the `requires_authentication` component response of the OpenAPI description; text as GitHub sends it).
pub(crate) const MSG_REQUIRES_AUTH: &str = "Requires authentication";
/// GitHub's 400 for an unparsable JSON body.
const MSG_BAD_JSON: &str = "Problems parsing JSON";
/// Missing User-Agent: "Request forbidden by administrative rules..." with 403 and text/html
/// (docs "Getting started with the REST API" → User-Agent; quoted in github.com/NetEase/lordofpomelo/issues/27
/// and github.com/tmamb/deep-learning/issues/23). "Headers, versions and rate limits" in the README.
pub(crate) const MSG_NO_USER_AGENT: &str = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.";

struct Templates {
    integration: Value,
    base_installation: Value,
    installation: Value,
    installation_token: Value,
    installation_repositories: Value,
    rate_limit: Value,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let p = |s: &str| serde_json::from_str::<Value>(s).expect("template JSON");
        Templates {
            // GET_app.json 200 example (components/examples/integration)
            integration: p(include_str!("templates/integration.json")),
            // GET_app_installations_{installation_id}.json 200 example (components/examples/base-installation)
            base_installation: p(include_str!("templates/base-installation.json")),
            // GET_repos_{owner}_{repo}_installation.json 200 example (components/examples/installation),
            // identical to the orgs/users variants
            installation: p(include_str!("templates/installation.json")),
            // POST_app_installations_{installation_id}_access_tokens.json 201 example (installation-token)
            installation_token: p(include_str!("templates/installation-token.json")),
            // GET_installation_repositories.json 200 example
            installation_repositories: p(include_str!("templates/installation-repositories.json")),
            // GET_rate_limit.json 200 example (rate-limit-overview)
            rate_limit: p(include_str!("templates/rate-limit-overview.json")),
        }
    })
}

/// `{"message", "documentation_url", "status"}` (GitHub's basic-error schema).
pub(crate) fn error(status: u16, message: &str, doc: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"message": message, "documentation_url": doc, "status": status.to_string()}),
    )
}

pub(crate) fn json_response(status: u16, v: &Value) -> HttpResponse {
    HttpResponse::new(status, JSON, v.to_string())
}

fn not_found(doc: &str) -> HttpResponse {
    error(404, "Not Found", doc)
}

/// Legacy GitHub node id: base64("0{len}:{Type}{id}").
fn node_id(kind: &str, id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("0{}:{kind}{id}", kind.len()))
}

/// URL bases for rendering.
pub(crate) struct Urls<'a> {
    pub api: &'a str,
    pub web: &'a str,
    /// `host:port`
    pub host: &'a str,
}

/// Rewrites every string in `v`: GitHub's hosts become the emulator's and whole path
/// segments in `segments` are replaced.
fn rebase(v: &mut Value, urls: &Urls, segments: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            let (base, rest) = if let Some(r) = s.strip_prefix("https://api.github.com") {
                (urls.api, r)
            } else if let Some(r) = s.strip_prefix("https://github.com") {
                (urls.web, r)
            } else {
                return;
            };
            let rest: Vec<String> = rest
                .split('/')
                .map(|seg| {
                    segments
                        .iter()
                        .find(|(from, _)| *from == seg)
                        .map(|(_, to)| to.to_string())
                        .unwrap_or_else(|| seg.to_string())
                })
                .collect();
            *s = format!("{base}{}", rest.join("/"));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rebase(x, urls, segments)),
        Value::Object(o) => o.values_mut().for_each(|x| rebase(x, urls, segments)),
        _ => {}
    }
}

/// simple-user shape: the user template is the `account` of base-installation (octocat, User),
/// the organisation template the `account` of installation (github, Organization).
pub(crate) fn simple_user(acc: &AccountRec, urls: &Urls) -> Value {
    let t = templates();
    let (mut v, login) = match acc.kind {
        AccountType::User => (t.base_installation["account"].clone(), "octocat"),
        AccountType::Organization => (t.installation["account"].clone(), "github"),
    };
    rebase(&mut v, urls, &[(login, &acc.login)]);
    let kind = acc.kind.as_str();
    v["login"] = json!(acc.login);
    v["id"] = json!(acc.id);
    v["node_id"] = json!(node_id(kind, acc.id));
    v["avatar_url"] = json!(format!("{}/avatars/u/{}?", urls.web, acc.id));
    v["type"] = json!(kind);
    v["site_admin"] = json!(false);
    v
}

fn account_or_placeholder(world: &World, login: &str) -> AccountRec {
    world.account(login).cloned().unwrap_or(AccountRec {
        login: login.to_string(),
        id: 1,
        kind: AccountType::User,
    })
}

/// The `installation` schema. `with_client_id` selects the `installation` example
/// (repos/orgs/users lookups) over `base-installation` (GET /app/installations[/{id}]).
pub(crate) fn installation_json(
    world: &World,
    inst: &InstRec,
    urls: &Urls,
    with_client_id: bool,
) -> Value {
    let t = templates();
    let mut v = if with_client_id {
        t.installation.clone()
    } else {
        t.base_installation.clone()
    };
    let acc = account_or_placeholder(world, &inst.account);
    let app = world.apps.get(&inst.app_id);
    v["id"] = json!(inst.id);
    v["account"] = simple_user(&acc, urls);
    v["repository_selection"] = json!(inst.selection.as_str());
    v["access_tokens_url"] = json!(format!(
        "{}/app/installations/{}/access_tokens",
        urls.api, inst.id
    ));
    v["repositories_url"] = json!(format!("{}/installation/repositories", urls.api));
    v["html_url"] = json!(match acc.kind {
        AccountType::Organization => format!(
            "{}/organizations/{}/settings/installations/{}",
            urls.web, acc.login, inst.id
        ),
        AccountType::User => format!("{}/settings/installations/{}", urls.web, inst.id),
    });
    v["app_id"] = json!(inst.app_id);
    if with_client_id {
        v["client_id"] = json!(app.map(|a| a.client_id.clone()));
    }
    v["target_id"] = json!(acc.id);
    v["target_type"] = json!(acc.kind.as_str());
    v["permissions"] = json!(inst.permissions);
    v["events"] = json!([]);
    v["created_at"] = json!(rfc3339(inst.created_at));
    v["updated_at"] = json!(rfc3339(inst.updated_at));
    v["single_file_name"] = Value::Null;
    v["has_multiple_single_files"] = json!(false);
    v["single_file_paths"] = json!([]);
    v["app_slug"] = json!(app.map(|a| a.slug.clone()));
    match inst.suspended_at {
        Some(at) => {
            v["suspended_at"] = json!(rfc3339(at));
            v["suspended_by"] = simple_user(&acc, urls);
        }
        None => {
            v["suspended_at"] = Value::Null;
            v["suspended_by"] = Value::Null;
        }
    }
    v
}

/// The `repository` schema, from the first repository of a template's `repositories`.
fn repository_json(
    world: &World,
    template: &Value,
    repo: &RepoRec,
    urls: &Urls,
    push: Option<bool>,
    api_version: Option<&str>,
) -> Value {
    let mut v = template["repositories"][0].clone();
    let acc = account_or_placeholder(world, &repo.owner);
    rebase(
        &mut v,
        urls,
        &[
            ("octocat", &repo.owner),
            ("Hello-World", &repo.name),
            ("Hello-World.git", &format!("{}.git", repo.name)),
        ],
    );
    let full = repo.full_name();
    let ts = json!(rfc3339(repo.created_at));
    let o = v.as_object_mut().expect("repository object");
    o.insert("id".into(), json!(repo.id));
    o.insert("node_id".into(), json!(node_id("Repository", repo.id)));
    o.insert("name".into(), json!(repo.name));
    o.insert("full_name".into(), json!(full));
    o.insert("owner".into(), simple_user(&acc, urls));
    o.insert("private".into(), json!(true));
    o.insert("visibility".into(), json!("private"));
    o.insert("description".into(), Value::Null);
    o.insert("homepage".into(), Value::Null);
    o.insert(
        "git_url".into(),
        json!(format!("git://{}/{full}.git", urls.host)),
    );
    o.insert(
        "ssh_url".into(),
        json!(format!("git@{}:{full}.git", urls.host)),
    );
    o.insert(
        "clone_url".into(),
        json!(format!("{}/{full}.git", urls.web)),
    );
    o.insert("svn_url".into(), json!(format!("{}/{full}", urls.web)));
    o.insert("mirror_url".into(), Value::Null);
    for k in [
        "forks_count",
        "stargazers_count",
        "watchers_count",
        "size",
        "open_issues_count",
        "subscribers_count",
        "network_count",
        "forks",
        "open_issues",
        "watchers",
    ] {
        if o.contains_key(k) {
            o.insert(k.into(), json!(0));
        }
    }
    o.insert("default_branch".into(), json!("main"));
    o.insert("is_template".into(), json!(false));
    o.insert("topics".into(), json!([]));
    o.insert("has_pages".into(), json!(false));
    o.insert("license".into(), Value::Null);
    o.insert("pushed_at".into(), ts.clone());
    o.insert("created_at".into(), ts.clone());
    o.insert("updated_at".into(), ts);
    o.remove("temp_clone_token");
    if o.contains_key("custom_properties") {
        o.insert("custom_properties".into(), json!({}));
    }
    match push {
        Some(push) => {
            o.insert(
                "permissions".into(),
                json!({"admin": false, "push": push, "pull": true}),
            );
        }
        None => {
            o.remove("permissions");
        }
    }
    if api_version == Some("2026-03-10") {
        // x-github-breaking-changes of the repository schema ("REST operations" in the README).
        for k in [
            "has_downloads",
            "master_branch",
            "use_squash_pr_title_as_default",
        ] {
            o.remove(k);
        }
    }
    v
}

/// `GET /app` (GET_app.json).
fn app_json(world: &World, app_id: u64, urls: &Urls, started: i64) -> Value {
    let app = &world.apps[&app_id];
    let mut v = templates().integration.clone();
    let owner = match &app.owner {
        Some(login) => account_or_placeholder(world, login),
        None => AccountRec {
            login: format!("{}-owner", app.slug),
            id: 1,
            kind: AccountType::User,
        },
    };
    v["id"] = json!(app.id);
    v["slug"] = json!(app.slug);
    v["client_id"] = json!(app.client_id);
    v["node_id"] = json!(node_id("Integration", app.id));
    v["owner"] = simple_user(&owner, urls);
    v["name"] = json!(app.name);
    v["description"] = json!("");
    v["external_url"] = json!(urls.web);
    v["html_url"] = json!(format!("{}/apps/{}", urls.web, app.slug));
    v["created_at"] = json!(rfc3339(started));
    v["updated_at"] = json!(rfc3339(started));
    v["permissions"] = json!(app.permissions);
    v["events"] = json!([]);
    v["installations_count"] = json!(
        world
            .installations
            .values()
            .filter(|i| i.app_id == app_id)
            .count()
    );
    v
}

/// Parses per_page (default 30, max 100) and page (default 1).
fn paging(req: &HttpRequest) -> (usize, usize) {
    let per_page = req
        .query_param("per_page")
        .and_then(|s| s.parse::<usize>().ok())
        .map(|n| n.clamp(1, 100))
        .unwrap_or(30);
    let page = req
        .query_param("page")
        .and_then(|s| s.parse::<usize>().ok())
        .map(|n| n.max(1))
        .unwrap_or(1);
    (per_page, page)
}

/// `Link` header like the example in GET_app_installations.json (`rel="next"`, `rel="last"`, ...).
fn link_header(url: &str, per_page: usize, page: usize, total: usize) -> Option<String> {
    let last = total.div_ceil(per_page).max(1);
    let mut parts = Vec::new();
    let u = |p: usize| format!("<{url}?per_page={per_page}&page={p}>");
    if page > 1 {
        parts.push(format!("{}; rel=\"prev\"", u(page - 1)));
    }
    if page < last {
        parts.push(format!("{}; rel=\"next\"", u(page + 1)));
        parts.push(format!("{}; rel=\"last\"", u(last)));
    }
    if page > 1 {
        parts.push(format!("{}; rel=\"first\"", u(1)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn page_of<T>(items: Vec<T>, per_page: usize, page: usize) -> Vec<T> {
    items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect()
}

/// Extracts the token from `Authorization: token X` / `Bearer X`.
/// GitHub's temporary per-request override of the token format rollout
/// (`X-GitHub-Stateless-S2S-Token: enabled|disabled`, changelog 2026-05-15); other values are
/// ignored.
fn requested_format(req: &HttpRequest) -> Option<TokenFormat> {
    match req.header("x-github-stateless-s2s-token")?.trim() {
        v if v.eq_ignore_ascii_case("enabled") => Some(TokenFormat::Stateless),
        v if v.eq_ignore_ascii_case("disabled") => Some(TokenFormat::Classic),
        _ => None,
    }
}

fn installation_token(req: &HttpRequest) -> Option<String> {
    let (scheme, v) = req.header("authorization")?.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| v.trim().to_string())
}

/// Routes `/api/v3/...`; `path` is without the `/api/v3` prefix.
pub(crate) fn handle(shared: &Shared, req: &HttpRequest, path: &str, now: i64) -> HttpResponse {
    let urls = shared.urls();
    let api_version = req.header("x-github-api-version");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method.as_str();
    let leeway = shared.iat_leeway();

    // Endpoints that take an installation token (or nothing).
    match (method, segs.as_slice()) {
        ("GET", ["rate_limit"]) => return rate_limit(shared, now, api_version),
        ("GET", ["installation", "repositories"]) => {
            let world = shared.world.guard();
            let Some(tok) = installation_token(req) else {
                return error(401, MSG_REQUIRES_AUTH, DOC_INST_REPOS);
            };
            let (token, inst) = match world.check_token(&tok, now) {
                Ok(v) => v,
                Err(TokenProblem::Suspended) => return error(403, MSG_SUSPENDED, DOC_SUSPENDED),
                Err(_) => return error(401, MSG_BAD_CREDENTIALS, DOCS_REST),
            };
            let repos = world.token_repos(token, inst);
            let total = repos.len();
            let (per_page, page) = paging(req);
            let items: Vec<Value> = page_of(repos, per_page, page)
                .into_iter()
                .map(|r| {
                    repository_json(
                        &world,
                        &templates().installation_repositories,
                        r,
                        &urls,
                        None,
                        api_version,
                    )
                })
                .collect();
            let mut body = templates().installation_repositories.clone();
            body["total_count"] = json!(total);
            body["repositories"] = json!(items);
            body["repository_selection"] = json!(token.repository_selection.as_str());
            let mut r = json_response(200, &body);
            if let Some(link) = link_header(
                &format!("{}/installation/repositories", urls.api),
                per_page,
                page,
                total,
            ) {
                r.set_header("Link", link);
            }
            return r;
        }
        ("DELETE", ["installation", "token"]) => {
            let mut world = shared.world.guard();
            let Some(tok) = installation_token(req) else {
                return error(401, MSG_REQUIRES_AUTH, DOC_REVOKE);
            };
            if let Err(e) = world.check_token(&tok, now) {
                return match e {
                    TokenProblem::Suspended => error(403, MSG_SUSPENDED, DOC_SUSPENDED),
                    _ => error(401, MSG_BAD_CREDENTIALS, DOCS_REST),
                };
            }
            if let Some(t) = world.tokens.get_mut(&tok) {
                t.revoked = true;
            }
            // DELETE_installation_token.json: 204, no body.
            return HttpResponse::empty(204);
        }
        _ => {}
    }

    // Everything else needs the app's JWT.
    let known = matches!(
        (method, segs.as_slice()),
        ("GET", ["app"])
            | ("GET", ["app", "installations"])
            | ("GET", ["app", "installations", _])
            | ("POST", ["app", "installations", _, "access_tokens"])
            | ("GET", ["repos", _, _, "installation"])
            | ("GET", ["users", _, "installation"])
            | ("GET", ["orgs", _, "installation"])
    );
    if !known {
        return not_found(DOCS_REST);
    }
    let mut world = shared.world.guard();
    let app_id = match jwt::verify(&world, req.header("authorization"), now, leeway) {
        Ok(id) => id,
        Err(e) => return error(e.status(), e.message(), DOCS_REST),
    };
    match (method, segs.as_slice()) {
        ("GET", ["app"]) => json_response(200, &app_json(&world, app_id, &urls, shared.started)),
        ("GET", ["app", "installations"]) => {
            let all: Vec<&InstRec> = world
                .installations
                .values()
                .filter(|i| i.app_id == app_id)
                .collect();
            let total = all.len();
            let (per_page, page) = paging(req);
            let items: Vec<Value> = page_of(all, per_page, page)
                .into_iter()
                .map(|i| installation_json(&world, i, &urls, false))
                .collect();
            let mut r = json_response(200, &json!(items));
            if let Some(link) = link_header(
                &format!("{}/app/installations", urls.api),
                per_page,
                page,
                total,
            ) {
                r.set_header("Link", link);
            }
            r
        }
        ("GET", ["app", "installations", id]) => {
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| world.installations.get(&id))
            {
                Some(inst) if inst.app_id == app_id => {
                    json_response(200, &installation_json(&world, inst, &urls, false))
                }
                _ => not_found(DOC_GET_INST),
            }
        }
        ("GET", ["repos", owner, repo, "installation"]) => {
            match world.installation_on(app_id, owner) {
                Some(inst) if world.installation_covers(inst, repo) => {
                    json_response(200, &installation_json(&world, inst, &urls, true))
                }
                _ => not_found(DOC_REPO_INST),
            }
        }
        ("GET", ["users", login, "installation"]) => match world.installation_on(app_id, login) {
            // Works for users and organisations alike, like GitHub.
            Some(inst) => json_response(200, &installation_json(&world, inst, &urls, true)),
            None => not_found(DOC_USER_INST),
        },
        ("GET", ["orgs", login, "installation"]) => {
            let is_org = world
                .account(login)
                .is_some_and(|a| a.kind == AccountType::Organization);
            match world.installation_on(app_id, login) {
                Some(inst) if is_org => {
                    json_response(200, &installation_json(&world, inst, &urls, true))
                }
                _ => not_found(DOC_ORG_INST),
            }
        }
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            mint(shared, &mut world, req, app_id, id, now, &urls, api_version)
        }
        _ => not_found(DOCS_REST),
    }
}

/// POST /app/installations/{id}/access_tokens (POST_app_installations_{installation_id}_access_tokens.json).
#[allow(clippy::too_many_arguments)]
fn mint(
    shared: &Shared,
    world: &mut World,
    req: &HttpRequest,
    app_id: u64,
    id: &str,
    now: i64,
    urls: &Urls,
    api_version: Option<&str>,
) -> HttpResponse {
    let Some(inst) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| world.installations.get(&id))
        .filter(|i| i.app_id == app_id)
        .cloned()
    else {
        return not_found(DOC_MINT);
    };
    if inst.suspended_at.is_some() {
        return error(403, MSG_SUSPENDED, DOC_SUSPENDED);
    }
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return error(400, MSG_BAD_JSON, DOC_MINT),
        }
    };
    // Repositories: by name and/or id; each must be accessible to the installation.
    let mut names: Vec<String> = Vec::new();
    let mut bad_repo = false;
    if let Some(list) = body.get("repositories").filter(|v| !v.is_null()) {
        match list.as_array() {
            Some(a) => {
                for n in a {
                    match n.as_str() {
                        Some(n) if world.installation_covers(&inst, n) => {
                            names.push(world.repo(&inst.account, n).unwrap().name.clone())
                        }
                        _ => bad_repo = true,
                    }
                }
            }
            None => bad_repo = true,
        }
    }
    if let Some(list) = body.get("repository_ids").filter(|v| !v.is_null()) {
        match list.as_array() {
            Some(a) => {
                for rid in a {
                    let found = rid.as_u64().and_then(|rid| {
                        world
                            .installation_repos(&inst)
                            .into_iter()
                            .find(|r| r.id == rid)
                            .map(|r| r.name.clone())
                    });
                    match found {
                        Some(n) => names.push(n),
                        None => bad_repo = true,
                    }
                }
            }
            None => bad_repo = true,
        }
    }
    if bad_repo {
        return validation_error(MSG_REPOS_NOT_ACCESSIBLE);
    }
    names.sort_by_key(|n| n.to_ascii_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    // Permissions: each requested level must be within the installation's.
    let permissions: BTreeMap<String, String> =
        match body.get("permissions").filter(|v| !v.is_null()) {
            None => inst.permissions.clone(),
            Some(Value::Object(req_perms)) => {
                let mut out = BTreeMap::new();
                for (k, v) in req_perms {
                    let Some(v) = v.as_str() else {
                        return validation_error(MSG_PERMS_NOT_GRANTED);
                    };
                    let granted = inst.permissions.get(k).map(|g| level(g)).unwrap_or(0);
                    if level(v) == 0 || level(v) > granted {
                        return validation_error(MSG_PERMS_NOT_GRANTED);
                    }
                    out.insert(k.clone(), v.to_string());
                }
                // GitHub adds metadata:read to repository-scoped tokens (not from the description; see README).
                if inst
                    .permissions
                    .get("metadata")
                    .is_some_and(|m| level(m) >= 1)
                {
                    out.entry("metadata".into())
                        .or_insert_with(|| "read".into());
                }
                out
            }
            Some(_) => return validation_error(MSG_PERMS_NOT_GRANTED),
        };
    let (selection, repositories) = if !names.is_empty() {
        (RepositorySelection::Selected, names)
    } else {
        match inst.selection {
            RepositorySelection::All => (RepositorySelection::All, Vec::new()),
            RepositorySelection::Selected => (
                RepositorySelection::Selected,
                world
                    .installation_repos(&inst)
                    .into_iter()
                    .map(|r| r.name.clone())
                    .collect(),
            ),
        }
    };
    let issued = world.issue_token(
        inst.id,
        permissions,
        selection,
        repositories,
        now,
        shared.token_lifetime(),
        requested_format(req).unwrap_or_else(|| shared.token_format()),
        &shared.stateless_secret,
    );
    let mut v = templates().installation_token.clone();
    let push = issued.permissions.get("contents").map(|v| level(v) >= 2);
    v["token"] = json!(issued.token);
    v["expires_at"] = json!(issued.expires_at_rfc3339);
    v["permissions"] = json!(issued.permissions);
    v["repository_selection"] = json!(issued.repository_selection.as_str());
    let o = v.as_object_mut().unwrap();
    match issued.repository_selection {
        RepositorySelection::Selected => {
            let repos: Vec<Value> = issued
                .repositories
                .iter()
                .filter_map(|n| world.repo(&inst.account, n))
                .map(|r| {
                    repository_json(
                        world,
                        &templates().installation_token,
                        r,
                        urls,
                        Some(push.unwrap_or(false)),
                        api_version,
                    )
                })
                .collect();
            o.insert("repositories".into(), json!(repos));
        }
        RepositorySelection::All => {
            o.remove("repositories");
        }
    }
    json_response(201, &v)
}

/// 422 in the shape of GitHub's validation-error schema.
fn validation_error(message: &str) -> HttpResponse {
    json_response(
        422,
        &json!({"message": message, "documentation_url": DOC_MINT, "status": "422"}),
    )
}

/// GET /rate_limit (GET_rate_limit.json). Does not count against the limit.
fn rate_limit(shared: &Shared, now: i64, api_version: Option<&str>) -> HttpResponse {
    let (limit, used, reset) = shared.rate_snapshot(now);
    let mut v = templates().rate_limit.clone();
    if let Some(res) = v["resources"].as_object_mut() {
        for (name, r) in res.iter_mut() {
            if name == "core" {
                *r = json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset});
            } else {
                r["used"] = json!(0);
                r["remaining"] = r["limit"].clone();
                r["reset"] = json!(reset);
            }
        }
    }
    v["rate"] = v["resources"]["core"].clone();
    if api_version == Some("2026-03-10") {
        // x-github-breaking-changes: remove_rate_limit_rate
        v.as_object_mut().unwrap().remove("rate");
    }
    json_response(200, &v)
}

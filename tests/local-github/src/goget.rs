//! `?go-get=1`: the `go-import` meta tag github.com serves for `/{owner}/{repo}[/...]`, so that
//! `go get HOST/OWNER/REPO` finds the git repository. Like github.com, it answers without
//! credentials and whether or not the repository exists (nothing leaks); the git requests that
//! follow need a token.

use crate::http::{HttpRequest, HttpResponse};

pub(crate) fn is_go_get(req: &HttpRequest) -> bool {
    req.method == "GET" && req.query_param("go-get").as_deref() == Some("1")
}

/// `base` is `http(s)://host[:port]`.
pub(crate) fn handle(base: &str, req: &HttpRequest) -> HttpResponse {
    let mut parts = req.path.trim_start_matches('/').split('/');
    let (Some(owner), Some(repo)) = (parts.next(), parts.next()) else {
        return HttpResponse::new(404, "text/plain; charset=utf-8", "Not Found\n");
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !ok(owner) || !ok(repo) {
        return HttpResponse::new(404, "text/plain; charset=utf-8", "Not Found\n");
    }
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    let root = format!("{host}/{owner}/{repo}");
    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"go-import\" content=\"{root} git {base}/{owner}/{repo}.git\">\n<meta name=\"go-source\" content=\"{root} {base}/{owner}/{repo} {base}/{owner}/{repo}/tree/main{{/dir}} {base}/{owner}/{repo}/blob/main{{/dir}}/{{file}}#L{{line}}\">\n</head>\n<body>\ngo get {root}\n</body>\n</html>\n"
    );
    HttpResponse::new(200, "text/html; charset=utf-8", html)
}

//! Routing: does one of our apps serve this request, and for which owner?
//!
//! Pure: a [`Request`] and the [`Config`] in, a [`Decision`] out. Anything we do not serve (another
//! host, plain http to a non-loopback host, a username that is not ours, an owner no app covers) is
//! [`Decision::NotMine`], so that git falls through to the next helper.

use crate::config::{self, App, Config, Host};
use crate::protocol::{Request, printable};
use crate::source::Target;

/// Where a request goes.
#[derive(Debug)]
pub struct Route<'a> {
    pub app: &'a App,
    /// REST API base URL, no trailing slash.
    pub api_url: String,
    /// The account that owns the repository (lower case), when git sent a path.
    pub owner: Option<String>,
    pub repo: Option<String>,
    /// Further apps (with their API URLs) for this request, tried in order when `app` turns out
    /// not to be installed for the owner.
    pub fallbacks: Vec<(&'a App, String)>,
}

impl<'a> Route<'a> {
    /// The entries to try, in order, with their API URLs: this route's app, then the fallbacks.
    pub fn candidates(&self) -> impl Iterator<Item = (&'a App, &str)> + '_ {
        std::iter::once((self.app, self.api_url.as_str()))
            .chain(self.fallbacks.iter().map(|(app, url)| (*app, url.as_str())))
    }

    /// What the token is wanted for, as the token sources see it.
    pub fn target(&self) -> Target {
        Target {
            host: self.app.host.clone(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
        }
    }

    /// A short description for messages: `owner 'acme' on github.com`.
    pub fn describe(&self) -> String {
        match &self.owner {
            Some(owner) => format!("owner '{owner}' on {}", self.app.host.as_str()),
            None => self.app.host.as_str().to_owned(),
        }
    }
}

#[derive(Debug)]
pub enum Decision<'a> {
    Serve(Route<'a>),
    /// Not ours: print nothing, exit 0. The optional hint goes to stderr.
    NotMine(Option<String>),
    /// Hostile or malformed: print nothing, one line on stderr, fail.
    Refuse(String),
}

pub fn route<'a>(request: &Request, config: &'a Config) -> Decision<'a> {
    let host = Host::normalize(&request.protocol, &request.host);
    match request.protocol.as_str() {
        "https" => {}
        "http" if host.is_loopback() => {}
        _ => return Decision::NotMine(None),
    }
    if request
        .username
        .as_deref()
        .is_some_and(|u| u != config.username)
    {
        return Decision::NotMine(None);
    }
    let candidates: Vec<&App> = config.apps.iter().filter(|a| a.host == host).collect();
    if candidates.is_empty() {
        return Decision::NotMine(None);
    }
    let (owner, repo) = match request.path.as_deref().map(parse_path).transpose() {
        Ok(Some((owner, repo))) => (Some(owner), repo),
        Ok(None) => (None, None),
        Err(why) => return Decision::Refuse(why),
    };
    // With an owner: the apps named for it, then the apps for any owner, in configuration order.
    // Without: only an app for any owner with a fixed installation can answer; an app limited to
    // some owners cannot tell whether this request is one of them.
    let ordered: Vec<&App> = match &owner {
        Some(owner) => {
            let named = candidates
                .iter()
                .filter(|a| a.owners.iter().any(|o| o == owner));
            named
                .chain(candidates.iter().filter(|a| a.owners.is_empty()))
                .copied()
                .collect()
        }
        None => candidates
            .iter()
            .filter(|a| a.serves_without_owner() && a.owners.is_empty())
            .copied()
            .collect(),
    };
    let Some((&app, rest)) = ordered.split_first() else {
        // No app is for this owner (each lists others): `[public_fallback]` answers for the rest.
        if let (Some(_), Some(public)) = (&owner, config.public_fallback.as_ref())
            && public.host == host
        {
            return Decision::Serve(Route {
                app: public,
                api_url: public.api_url(&request.protocol),
                owner,
                repo,
                fallbacks: Vec::new(),
            });
        }
        return Decision::NotMine(owner.is_none().then(|| {
            format!(
                "git sent no repository path, so the owner (and the app installation) for {} is unknown; run: git config --global credential.{}://{}.useHttpPath true",
                host.as_str(),
                request.protocol,
                host.as_str()
            )
        }));
    };
    let fallbacks = rest
        .iter()
        .map(|a| (*a, a.api_url(&request.protocol)))
        .collect();
    Decision::Serve(Route {
        app,
        api_url: app.api_url(&request.protocol),
        owner,
        repo,
        fallbacks,
    })
}

/// The route through `[public_fallback]`, for when no app of `route` is installed on the owner:
/// that app's fixed installation answers, so that git is authenticated for public repositories
/// (with `http.<url>.proactiveAuth`) instead of anonymous. Same host only.
pub fn public_fallback<'a>(
    request: &Request,
    route: &Route<'_>,
    config: &'a Config,
) -> Option<Route<'a>> {
    let app = config.public_fallback.as_ref()?;
    (app.host == route.app.host).then(|| Route {
        app,
        api_url: app.api_url(&request.protocol),
        owner: route.owner.clone(),
        repo: route.repo.clone(),
        fallbacks: Vec::new(),
    })
}

/// Why [`route`] does not serve `request` (it answered [`Decision::NotMine`]), for the trace and
/// for `doctor`.
pub fn not_ours_reason(request: &Request, config: &Config) -> String {
    let host = Host::normalize(&request.protocol, &request.host);
    match request.protocol.as_str() {
        "https" => {}
        "http" if host.is_loopback() => {}
        "http" => {
            return format!(
                "plain http to {} (only https, or http to a loopback host, is served)",
                printable(host.as_str())
            );
        }
        other => return format!("protocol '{}' is not https", printable(other)),
    }
    if let Some(user) = request
        .username
        .as_deref()
        .filter(|u| *u != config.username)
    {
        return format!(
            "the remote URL names user '{}': a URL with a username means that user's own credential, so it is left to other helpers by design (the helper answers only for '{}' or no username)",
            printable(user),
            config.username
        );
    }
    if !config.apps.iter().any(|a| a.host == host) {
        return format!("no configured app serves host {}", printable(host.as_str()));
    }
    match request.path.as_deref() {
        None => {
            "git sent no repository path, and no app for this host has a fixed installation".into()
        }
        Some(path) => format!(
            "no app for {} serves the owner of '{}' (see the apps' owners lists)",
            printable(host.as_str()),
            printable(path)
        ),
    }
}

/// `owner/repo.git[/more]` → (owner, repo). Owner alone is fine; traversal and junk are refused.
fn parse_path(path: &str) -> Result<(String, Option<String>), String> {
    let refuse = |what: &str| {
        Err(format!(
            "refusing repository path '{}': {what}",
            printable(path)
        ))
    };
    let mut segments = path.split('/');
    let owner = segments.next().unwrap_or("");
    let repo = segments.next();
    if !config::is_login(owner) {
        return refuse("the owner is not a GitHub account name");
    }
    let repo = match repo {
        None => None,
        Some(r) => {
            let r = r.strip_suffix(".git").unwrap_or(r);
            if !valid_repo(r) {
                return refuse("the repository is not a GitHub repository name");
            }
            Some(r.to_owned())
        }
    };
    if segments.any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control)) {
        return refuse("it has empty, '.' or '..' segments");
    }
    Ok((owner.to_ascii_lowercase(), repo))
}

/// Repository names: letters, digits, `.`, `-`, `_`, at most 100, never `.` or `..`.
fn valid_repo(repo: &str) -> bool {
    (1..=100).contains(&repo.len())
        && repo != "."
        && repo != ".."
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppId, CacheMode, InstallationSpec, SourceSpec};
    use crate::keyref::KeyRef;
    use std::time::Duration;

    fn app(host: &str, owners: &[&str], installation: Option<u64>) -> App {
        App {
            origin: "test".into(),
            host: Host::parse(host).unwrap(),
            api_url: None,
            owners: owners.iter().map(|s| s.to_string()).collect(),
            source: SourceSpec::Installation(InstallationSpec {
                id: AppId::Numeric(1),
                key: KeyRef::File("/k".into()),
                installation_id: installation,
                permissions: Default::default(),
                repo_scoped: false,
            }),
        }
    }

    fn config(apps: Vec<App>) -> Config {
        Config {
            apps,
            cache: CacheMode::None,
            refresh_margin: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
            username: "x-access-token".into(),
            stateless_tokens: Default::default(),
            public_fallback: None,
        }
    }

    fn req(protocol: &str, host: &str, path: Option<&str>) -> Request {
        Request {
            protocol: protocol.into(),
            host: host.into(),
            path: path.map(Into::into),
            ..Request::default()
        }
    }

    fn served(d: Decision<'_>) -> (String, Option<String>, Option<String>) {
        match d {
            Decision::Serve(r) => (r.api_url, r.owner, r.repo),
            other => panic!("not served: {other:?}"),
        }
    }

    #[test]
    fn serves_configured_hosts_only() {
        let c = config(vec![app("github.com", &[], None)]);
        let r = req("https", "GitHub.com:443", Some("Acme/Widgets.git"));
        assert_eq!(
            served(route(&r, &c)),
            (
                "https://api.github.com".into(),
                Some("acme".into()),
                Some("Widgets".into())
            )
        );
        for (p, h) in [
            ("https", "github.com.evil.com"),
            ("https", "evilgithub.com"),
            ("http", "github.com"),
            ("https", "github.com:8443"),
            ("ssh", "github.com"),
        ] {
            assert!(
                matches!(route(&req(p, h, Some("a/b")), &c), Decision::NotMine(None)),
                "{p} {h}"
            );
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let c = config(vec![
            app("127.0.0.1:8080", &[], None),
            app("localhost:9", &[], None),
        ]);
        assert_eq!(
            served(route(&req("http", "127.0.0.1:8080", Some("o/r")), &c)).0,
            "http://127.0.0.1:8080/api/v3"
        );
        assert!(matches!(
            route(&req("http", "localhost:9", Some("o/r")), &c),
            Decision::Serve(_)
        ));
    }

    #[test]
    fn owners_pick_the_app_and_catch_all_comes_last() {
        let c = config(vec![
            app("github.com", &["acme"], None),
            app("github.com", &[], Some(5)),
        ]);
        let d = route(&req("https", "github.com", Some("ACME/x")), &c);
        assert!(matches!(d, Decision::Serve(r) if r.app.owners == ["acme"]));
        let d = route(&req("https", "github.com", Some("other/x")), &c);
        assert!(matches!(d, Decision::Serve(r) if r.app.serves_without_owner()));
        let only_acme = config(vec![app("github.com", &["acme"], None)]);
        assert!(matches!(
            route(&req("https", "github.com", Some("other/x")), &only_acme),
            Decision::NotMine(None)
        ));
    }

    #[test]
    fn every_app_that_may_serve_the_owner_is_a_candidate_in_order() {
        let c = config(vec![
            app("github.com", &[], None),
            app("github.com", &["acme"], None),
            app("github.com", &[], Some(3)),
        ]);
        match route(&req("https", "github.com", Some("acme/x")), &c) {
            Decision::Serve(r) => {
                let order: Vec<(Vec<String>, Option<u64>)> = r
                    .candidates()
                    .map(|(app, _)| {
                        (
                            app.owners.clone(),
                            app.installation().and_then(|i| i.installation_id),
                        )
                    })
                    .collect();
                assert_eq!(
                    order,
                    vec![
                        (vec!["acme".to_owned()], None),
                        (vec![], None),
                        (vec![], Some(3))
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_path_needs_a_fixed_installation_or_gets_a_hint() {
        let c = config(vec![app("github.com", &[], None)]);
        match route(&req("https", "github.com", None), &c) {
            Decision::NotMine(Some(hint)) => assert!(hint.contains("useHttpPath true"), "{hint}"),
            other => panic!("{other:?}"),
        }
        let fixed = config(vec![app("github.com", &[], Some(9))]);
        assert!(matches!(
            route(&req("https", "github.com", None), &fixed),
            Decision::Serve(_)
        ));
        let fixed_for_acme = config(vec![app("github.com", &["acme"], Some(9))]);
        assert!(matches!(
            route(&req("https", "github.com", None), &fixed_for_acme),
            Decision::NotMine(Some(_))
        ));
    }

    #[test]
    fn foreign_usernames_fall_through() {
        let c = config(vec![app("github.com", &[], None)]);
        let mut r = req("https", "github.com", Some("a/b"));
        r.username = Some("alice".into());
        assert!(matches!(route(&r, &c), Decision::NotMine(None)));
        assert!(
            not_ours_reason(&r, &c).contains("names user 'alice'"),
            "{}",
            not_ours_reason(&r, &c)
        );
        r.username = Some("x-access-token".into());
        assert!(matches!(route(&r, &c), Decision::Serve(_)));
    }

    #[test]
    fn hostile_paths_are_refused() {
        let c = config(vec![app("github.com", &[], None)]);
        for p in [
            "..",
            "../etc",
            "acme/..",
            "acme/.",
            "-acme/x",
            "ac me/x",
            "acme/x\u{1}",
            "acme//x",
            "acme/x/../../y",
            "%2e%2e/x",
            "",
            "acme/x y",
        ] {
            assert!(
                matches!(
                    route(&req("https", "github.com", Some(p)), &c),
                    Decision::Refuse(_)
                ),
                "{p:?}"
            );
        }
        for p in ["acme", "acme/x.git/info/lfs", "a-b/c_d.e", "user_emu/x"] {
            assert!(
                matches!(
                    route(&req("https", "github.com", Some(p)), &c),
                    Decision::Serve(_)
                ),
                "{p:?}"
            );
        }
    }
}

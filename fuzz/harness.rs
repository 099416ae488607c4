//! The fuzz harness, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the stable
//! smoke test (`tests/fuzz_smoke.rs`), which both include this file with `#[path]`.
//!
//! Each entry point takes arbitrary bytes as git's request on stdin and panics if an invariant
//! breaks, so that libFuzzer records a crash and the smoke test fails:
//! - [`request`]: `protocol::parse`, its output invariants, a serialise/parse round trip, and
//!   `route::route` against a fixed config;
//! - [`Fixture::get`]: the whole `get` path (`app::run`) against a state directory prepared once,
//!   with remembered installations and cached tokens, so that many inputs are answered from the
//!   cache. Every private key path points at a missing file, so a route that would mint fails
//!   before any network call.

#![allow(dead_code)] // each includer uses only part of the harness

use git_credential_github_app::app::{self, Io, Outcome};
use git_credential_github_app::cache::Cache;
use git_credential_github_app::config::{
    App, AppId, CacheMode, Config, Host, InstallationSpec, Permissions, SourceSpec,
};
use git_credential_github_app::github::unix_now;
use git_credential_github_app::keyref::KeyRef;
use git_credential_github_app::protocol::{self, Operation, Request};
use git_credential_github_app::route::{self, Decision};
use git_credential_github_app::secret::Expiring;
use git_credential_github_app::secret::Secret;
use git_credential_github_app::source::installation;
use git_credential_github_app::state::State;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const USERNAME: &str = "x-access-token";
const GITHUB_API: &str = "https://api.github.com";
const LOOPBACK_API: &str = "http://127.0.0.1:9/api/v3";
const DAY: u64 = 24 * 3600;
const MARGIN_DAYS: u64 = 365;
/// Lock files are made per owner and never removed by the helper; clear them every this many runs.
const LOCK_SWEEP: u64 = 4096;

/// App 101 serves `acme` and `octo-org` on github.com with a narrowed scope; app 102 is the
/// catch-all there; app 103 serves any owner on the plain-http loopback host `127.0.0.1:9` with a
/// fixed installation, so it also serves requests without a path.
fn apps(key: &Path) -> Vec<App> {
    let app = |id: u64, host: &str, owners: &[&str], installation: Option<u64>, scope: &[_]| App {
        origin: format!("fuzz app {id}"),
        host: Host::parse(host).expect("fixture host"),
        api_url: None,
        owners: owners.iter().map(|o| o.to_string()).collect(),
        source: SourceSpec::Installation(InstallationSpec {
            id: AppId::Numeric(id),
            key: KeyRef::File(key.to_path_buf()),
            installation_id: installation,
            permissions: Permissions::from_table(
                &scope
                    .iter()
                    .map(|(k, v): &(&str, &str)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .expect("fixture permissions"),
            repo_scoped: false,
        }),
    };
    vec![
        app(
            101,
            "github.com",
            &["acme", "octo-org"],
            None,
            &[("contents", "read")],
        ),
        app(102, "github.com", &[], None, &[]),
        app(103, "127.0.0.1:9", &[], Some(7), &[]),
    ]
}

fn config(cache: CacheMode, key: &Path) -> Config {
    Config {
        apps: apps(key),
        cache,
        // Far longer than the helper allows (55 minutes), so that the fixture's "fallback" token
        // stays inside the margin, yet usable, for any fuzz run: no expiry boundary to race.
        refresh_margin: Duration::from_secs(MARGIN_DAYS * DAY),
        timeout: Duration::from_secs(2),
        username: USERNAME.to_owned(),
        stateless_tokens: Default::default(),
        public_fallback: None,
    }
}

/// The config [`request`] routes against (it never reads the key).
fn route_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| config(CacheMode::None, Path::new("/nonexistent/fuzz-app.pem")))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn show(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(512)])
        .escape_debug()
        .to_string()
}

/// Parse `data` as git's request and route it. Returns whether the request was served.
pub fn request(data: &[u8]) -> bool {
    let request = match protocol::parse(data) {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            assert!(
                !has_control(&message),
                "parse error message with a control character: {message:?} for {}",
                show(data)
            );
            return false;
        }
    };
    check_request(&request, data);
    check_route(&request, route::route(&request, route_config()), data)
}

fn check_request(r: &Request, data: &[u8]) {
    assert!(!r.protocol.is_empty(), "empty protocol from {}", show(data));
    assert!(!r.host.is_empty(), "empty host from {}", show(data));
    let fields = [
        ("protocol", Some(r.protocol.as_str())),
        ("host", Some(r.host.as_str())),
        ("path", r.path.as_deref()),
        ("username", r.username.as_deref()),
        ("password", r.password.as_ref().map(Secret::expose)),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            assert!(
                !v.contains(['\r', '\n', '\0']),
                "{name} {v:?} contains CR, LF or NUL, from {}",
                show(data)
            );
        }
    }
    // What was parsed, written back as git would, parses to the same request.
    let mut text = format!("protocol={}\nhost={}\n", r.protocol, r.host);
    for (key, value) in &fields[2..] {
        if let Some(v) = value {
            text.push_str(&format!("{key}={v}\n"));
        }
    }
    match protocol::parse(text.as_bytes()) {
        Ok(again) => assert_eq!(
            &again,
            r,
            "round trip changed the request from {}",
            show(data)
        ),
        Err(e) => panic!(
            "round trip of {r:?} refused ({e}): {:?}, from {}",
            text,
            show(data)
        ),
    }
}

fn valid_owner(o: &str) -> bool {
    (1..=64).contains(&o.len())
        && o.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !o.starts_with(['-', '_'])
        && !o.ends_with('-')
}

fn valid_repo(r: &str) -> bool {
    (1..=100).contains(&r.len())
        && r != "."
        && r != ".."
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn check_route(r: &Request, decision: Decision<'_>, data: &[u8]) -> bool {
    let at = || show(data);
    match decision {
        Decision::Serve(route) => {
            let host = Host::normalize(&r.protocol, &r.host);
            assert_eq!(
                route.app.host,
                host,
                "served by another host's app: {}",
                at()
            );
            assert!(
                r.protocol == "https" || (r.protocol == "http" && host.is_loopback()),
                "served protocol {:?} for {:?}: {}",
                r.protocol,
                host,
                at()
            );
            assert!(
                r.username.as_deref().is_none_or(|u| u == USERNAME),
                "served a foreign username: {}",
                at()
            );
            assert!(
                !route.api_url.ends_with('/')
                    && (route.api_url.starts_with("https://")
                        || (route.api_url.starts_with("http://") && host.is_loopback())),
                "api url {:?}: {}",
                route.api_url,
                at()
            );
            match &route.owner {
                Some(owner) => {
                    assert!(valid_owner(owner), "owner {owner:?}: {}", at());
                    let first = r.path.as_deref().and_then(|p| p.split('/').next());
                    assert_eq!(
                        first.map(str::to_ascii_lowercase).as_deref(),
                        Some(owner.as_str()),
                        "owner is not the path's first segment: {}",
                        at()
                    );
                    assert!(
                        route.app.owners.is_empty() || route.app.owners.contains(owner),
                        "{} does not serve {owner}: {}",
                        route.app.describe(),
                        at()
                    );
                }
                None => assert!(
                    route.app.serves_without_owner() && route.repo.is_none(),
                    "served without an owner or a fixed installation: {}",
                    at()
                ),
            }
            if let Some(repo) = &route.repo {
                assert!(valid_repo(repo), "repo {repo:?}: {}", at());
            }
            true
        }
        Decision::NotMine(hint) => {
            if let Some(hint) = hint {
                assert!(!has_control(&hint), "hint {hint:?}: {}", at());
                assert!(r.path.is_none(), "hint for a request with a path: {}", at());
            }
            false
        }
        Decision::Refuse(why) => {
            assert!(!has_control(&why), "refusal {why:?}: {}", at());
            assert!(r.path.is_some(), "refused without a path: {}", at());
            false
        }
    }
}

/// What a `get` did, for the smoke test's coverage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    Answered,
    Passed,
    Failed,
}

/// A state directory with remembered installations and cached tokens, and the config to use it.
pub struct Fixture {
    pub config: Config,
    pub state: State,
    /// (API URL, app, installation) → the cached token and its expiry.
    tokens: BTreeMap<(String, u64, u64), (String, u64)>,
    /// (API URL, app, owner) → the remembered installation.
    installations: BTreeMap<(String, u64, String), u64>,
    runs: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The fixture for the fuzz targets, made once per process.
    pub fn shared() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Fixture::new)
    }

    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("gcga-fuzz-")
            .tempdir()
            .expect("temp dir");
        let key: PathBuf = dir.path().join("no-such-key.pem");
        let config = config(CacheMode::File, &key);
        let state = State::at(dir.path().join("state"));
        let mut fixture = Fixture {
            config,
            state,
            tokens: BTreeMap::new(),
            installations: BTreeMap::new(),
            runs: AtomicU64::new(0),
            _dir: dir,
        };
        let now = unix_now();
        let fresh = now + (MARGIN_DAYS + 30) * DAY;
        let fallback = now + (MARGIN_DAYS - 30) * DAY; // inside the margin, far from expiry
        let expired = now.saturating_sub(10);
        // (app, owner, installation, token expiry): github.com owners; app 103 has installation 7.
        let remembered: [(u64, &str, u64, Option<u64>); 5] = [
            (101, "acme", 11, Some(fresh)),
            (101, "octo-org", 12, Some(fallback)),
            (102, "user_emu", 21, Some(fresh)),
            (102, "a-b", 22, Some(expired)),
            (102, "nocache", 23, None),
        ];
        for (app, owner, installation, expiry) in remembered {
            fixture.remember(GITHUB_API, app, owner, installation);
            if let Some(expiry) = expiry {
                fixture.cache(GITHUB_API, app, installation, expiry);
            }
        }
        fixture.cache(LOOPBACK_API, 103, 7, fresh);
        fixture
    }

    fn app(&self, id: u64) -> &InstallationSpec {
        let id = AppId::Numeric(id);
        self.config
            .apps
            .iter()
            .filter_map(App::installation)
            .find(|a| a.id == id)
            .expect("app")
    }

    fn remember(&mut self, api: &str, app: u64, owner: &str, installation: u64) {
        let id = AppId::Numeric(app);
        self.state
            .remember_installation(api, &id, owner, installation);
        assert_eq!(
            self.state.installation(api, &id, owner),
            Some(installation),
            "fixture: installation not remembered"
        );
        self.installations
            .insert((api.to_owned(), app, owner.to_owned()), installation);
    }

    fn cache(&mut self, api: &str, app: u64, installation: u64, expires_at: u64) {
        let token = format!("ghs_fuzz{app}i{installation}e{expires_at}");
        let key = installation::cache_key(
            api,
            &AppId::Numeric(app),
            installation,
            &self.app(app).scope(),
        );
        let saved = Cache::new(CacheMode::File, &self.state).save(
            &key,
            &Expiring {
                secret: Secret::new(token.clone()),
                expires_at,
            },
        );
        assert_eq!(saved, ["file"], "fixture: token not cached");
        self.tokens
            .insert((api.to_owned(), app, installation), (token, expires_at));
    }

    /// The token the fixture holds for this request, if `get` may answer with it without minting
    /// (fresh, or a fallback with more than a minute left once minting fails).
    fn expected(&self, data: &[u8]) -> Option<&(String, u64)> {
        let request = protocol::parse(data).ok()?;
        let Decision::Serve(route) = route::route(&request, &self.config) else {
            return None;
        };
        let spec = route.app.installation()?;
        let AppId::Numeric(app) = spec.id else {
            return None;
        };
        let installation = spec.installation_id.or_else(|| {
            let owner = route.owner.clone()?;
            self.installations
                .get(&(route.api_url.clone(), app, owner))
                .copied()
        })?;
        self.tokens
            .get(&(route.api_url.clone(), app, installation))
            .filter(|(_, expiry)| *expiry > unix_now() + 60)
    }

    /// Run `get` on `data` and check what it wrote and returned.
    pub fn get(&self, data: &[u8]) -> Got {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let result = app::run(
            Operation::Get,
            data,
            &self.config,
            &self.state,
            &mut Io {
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        );
        let at = || show(data);
        let got = match &result {
            Ok(Outcome::Answered { minted }) => {
                assert!(!minted, "minted without a key or network: {}", at());
                Got::Answered
            }
            Ok(Outcome::Passed) => Got::Passed,
            Ok(Outcome::Done) => panic!("get finished as Done: {}", at()),
            Err(e) => {
                let message = app::one_line(e);
                assert!(
                    !has_control(&message),
                    "error with a control character: {message:?}: {}",
                    at()
                );
                Got::Failed
            }
        };
        check_answer(&stdout, data);
        let stderr = String::from_utf8(stderr)
            .unwrap_or_else(|e| panic!("stderr is not UTF-8 ({e}): {}", at()));
        for line in stderr.lines() {
            assert!(
                line.starts_with("git-credential-github-app: ") && !has_control(line),
                "stderr line {line:?}: {}",
                at()
            );
        }
        let expected = self.expected(data);
        match (got, expected) {
            (Got::Answered, Some((token, expiry))) => {
                assert_eq!(
                    String::from_utf8_lossy(&stdout),
                    format!(
                        "username={USERNAME}\npassword={token}\npassword_expiry_utc={expiry}\n"
                    ),
                    "answered with the wrong token: {}",
                    at()
                );
                // A token inside the refresh margin is only handed out, with a warning, after
                // minting failed; a fresh one is handed out silently.
                let fallback = *expiry < unix_now() + self.config.refresh_margin.as_secs();
                assert_eq!(
                    stderr.contains("answering with the cached token"),
                    fallback,
                    "fallback warning {stderr:?}: {}",
                    at()
                );
            }
            (Got::Answered, None) => panic!(
                "answered a request the fixture holds no token for: {:?}: {}",
                String::from_utf8_lossy(&stdout),
                at()
            ),
            (_, Some(_)) => panic!(
                "did not answer ({result:?}) though a token is cached: {}",
                at()
            ),
            (_, None) => assert!(stdout.is_empty(), "printed without answering: {}", at()),
        }
        self.sweep_locks();
        got
    }

    fn sweep_locks(&self) {
        if self.runs.fetch_add(1, Ordering::Relaxed) % LOCK_SWEEP == LOCK_SWEEP - 1
            && let Some(root) = self.state.root()
        {
            let _ = std::fs::remove_dir_all(root.join("locks"));
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// stdout is empty or exactly `username=…`, `password=…`, `password_expiry_utc=<digits>`.
fn check_answer(stdout: &[u8], data: &[u8]) {
    if stdout.is_empty() {
        return;
    }
    let text = std::str::from_utf8(stdout)
        .unwrap_or_else(|_| panic!("stdout is not UTF-8: {}", show(data)));
    assert!(
        text.ends_with('\n') && !text.contains('\r'),
        "stdout {text:?}: {}",
        show(data)
    );
    let lines: Vec<&str> = text.lines().collect();
    let ok = match lines[..] {
        [user, password, expiry] => {
            let graphic = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
            user.strip_prefix("username=").is_some_and(graphic)
                && password.strip_prefix("password=").is_some_and(graphic)
                && expiry
                    .strip_prefix("password_expiry_utc=")
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }
        _ => false,
    };
    assert!(ok, "stdout {text:?}: {}", show(data));
}

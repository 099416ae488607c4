//! Package managers fetching private git dependencies through the helper, each for real:
//! cargo's default libgit2 path, Go modules, npm `git+http`, uv `git+`. A missing tool skips
//! visibly, unless GCGA_REQUIRE_TOOLS is set (CI installs them all).
//!
//! cargo (libgit2) and Go need a host without a port, so those two tests serve the local GitHub
//! on the default port of its scheme (80, 443: CI runs as root) and hold a lock while they do.

use std::net::SocketAddr;
use std::sync::Mutex;

use local_github::{App, GitHub};

use crate::clients::publish;
use crate::support::*;

/// One test at a time on the privileged ports.
static DEFAULT_PORTS: Mutex<()> = Mutex::new(());

/// The local GitHub on `addr`; `None` (a recorded skip) when a privileged port cannot be bound
/// outside CI (GCGA_REQUIRE_TOOLS set: then that fails the test).
fn world_on(addr: SocketAddr, https: bool, hostname: Option<&str>) -> Option<GitHub> {
    let mut b = world_builder(App::new(1001, "ci-bot")).addr(addr);
    if https {
        b = b.https();
    }
    if let Some(name) = hostname {
        b = b.hostname(name);
    }
    match b.start() {
        Ok(gh) => Some(gh),
        Err(e) => {
            skip(&format!(
                "cannot serve the local GitHub on {addr} (root needed): {e}"
            ));
            None
        }
    }
}

/// The toolchain's own directories (rustup's) for a cargo run in the scratch HOME.
fn cargo_env(env: &mut Env) {
    env.set_env("CARGO_HOME", &env.home.join(".cargo").display().to_string());
    let real_home = std::env::var("HOME").unwrap_or_default();
    let rustup_home =
        std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{real_home}/.rustup"));
    env.set_env("RUSTUP_HOME", &rustup_home);
}

/// `cargo fetch` (default libgit2 path) of `octo/dotfiles` published on `gh`, with a recording
/// helper; returns cargo's output, the helper input log and the project directory.
fn cargo_fetch(gh: &GitHub) -> (std::process::Output, String, std::path::PathBuf, Env) {
    let mut env = Env::new(gh, 1001);
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"octo-private\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
            ),
            ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
        ],
    );
    // A fresh cache, so the token cargo gets is the helper's answer to libgit2's own request.
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let log = record_helper_input(&env);
    let project = env.home.join("app");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nocto-private = {{ git = \"{}/octo/dotfiles.git\" }}\n\n[workspace]\n",
            gh.url()
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() { println!(\"{}\", octo_private::answer()); }\n",
    )
    .unwrap();
    cargo_env(&mut env);
    let manifest = project.join("Cargo.toml").display().to_string();
    let out = run(
        env.command("cargo")
            .args(["fetch", "--manifest-path", &manifest]),
        b"",
    );
    let input = std::fs::read_to_string(&log).unwrap_or_default();
    (out, input, project, env)
}

#[test]
fn cargo_default_libgit2_fetches_from_a_host_without_a_port() {
    let _port = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // libgit2 sends no `host` for an IP address (cargo then runs no helper: the next test), and
    // it looks up helpers by `scheme://host` only: a DNS name without a port is the shape it
    // fully supports.
    let Some(gh) = world_on(([127, 0, 0, 1], 80).into(), false, Some("localhost")) else {
        return;
    };
    assert_eq!(gh.url(), "http://localhost");
    let (out, input, project, _env) = cargo_fetch(&gh);
    assert_ok(&out);
    let lock = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("git+http://localhost/octo/dotfiles.git"),
        "{lock}"
    );
    // What libgit2 sends: one `get`, no capabilities, no wwwauth, never store or erase.
    assert_eq!(
        input,
        "== get\nprotocol=http\nhost=localhost\npath=octo/dotfiles.git\n"
    );
    assert_eq!(gh.mint_count(), 2, "publish, then libgit2's own request");
    let libgit2 = gh
        .requests()
        .into_iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("libgit2"))
        })
        .collect::<Vec<_>>();
    assert!(
        libgit2
            .iter()
            .any(|r| r.auth_scheme.as_deref() == Some("Basic") && r.status == 200),
        "{libgit2:?}"
    );
}

#[test]
fn cargo_default_libgit2_asks_no_helper_for_an_ip_address() {
    let _port = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gh) = world_on(([127, 0, 0, 1], 80).into(), false, None) else {
        return;
    };
    assert_eq!(gh.url(), "http://127.0.0.1");
    let (out, input, _, _env) = cargo_fetch(&gh);
    // libgit2 gives an IP address no `host`, and cargo's helper lookup then runs nothing at all;
    // cargo's own advice (the git CLI) is the way out, as docs/clients.md says.
    assert!(!out.status.success());
    assert_eq!(input, "", "the helper was never run");
    assert!(
        stderr(&out).contains("net.git-fetch-with-cli"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cargo_default_libgit2_ignores_helpers_scoped_to_a_host_with_a_port() {
    let Some(gh) = world_on(([127, 0, 0, 1], 0).into(), false, Some("localhost")) else {
        return;
    };
    assert!(gh.url().starts_with("http://localhost:"), "{}", gh.url());
    let (out, input, _, _env) = cargo_fetch(&gh);
    assert!(!out.status.success());
    assert_eq!(input, "", "the helper was never run");
}

#[test]
fn go_modules_fetch_a_private_module_over_https() {
    if !have(&["go"]) {
        return;
    }
    let _port = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // A module path has no port: the local GitHub answers `?go-get=1` on 443, over TLS.
    let Some(gh) = world_on(([127, 0, 0, 1], 443).into(), true, None) else {
        return;
    };
    assert_eq!(gh.url(), "https://127.0.0.1");
    let mut env = Env::new(&gh, 1001);
    let ca = crate::network::write_ca(&gh, &env.home);
    env.set_env("SSL_CERT_FILE", &ca); // Go and the helper
    env.set_env("GIT_SSL_CAINFO", &ca); // git
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            ("go.mod", "module 127.0.0.1/octo/dotfiles\n\ngo 1.19\n"),
            (
                "answer.go",
                "package dotfiles\n\n// Answer is what the private module knows.\nfunc Answer() int { return 42 }\n",
            ),
        ],
    );
    let mints_before = gh.mint_count();
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let log = record_helper_input(&env);
    let project = env.home.join("goapp");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("go.mod"),
        "module example.com/goapp\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        project.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"127.0.0.1/octo/dotfiles\"\n)\n\nfunc main() { fmt.Println(dotfiles.Answer()) }\n",
    )
    .unwrap();
    // Private modules go straight to git (no proxy, no checksum database); nothing else may be
    // downloaded at all.
    env.set_env("GOPRIVATE", "127.0.0.1");
    env.set_env("GOPROXY", "off");
    env.set_env("GOFLAGS", "-mod=mod");
    env.set_env("GOPATH", &env.home.join("go").display().to_string());
    let p = project.display().to_string();
    let out = run(
        env.command("go")
            .args(["get", "127.0.0.1/octo/dotfiles"])
            .current_dir(&p),
        b"",
    );
    assert_ok(&out);
    let out = run(env.command("go").args(["run", "."]).current_dir(&p), b"");
    assert_ok(&out);
    assert_eq!(stdout(&out), "42\n");
    assert_git_cli_input(&log, &gh);
    assert_eq!(gh.mint_count(), mints_before + 1);
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.path == "/octo/dotfiles" && r.query == "go-get=1" && r.status == 200),
        "{:?}",
        gh.requests()
    );
}

#[test]
fn npm_installs_a_git_http_dependency() {
    if !have(&["npm"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            (
                "package.json",
                "{\"name\": \"octo-private\", \"version\": \"1.2.3\", \"main\": \"index.js\"}\n",
            ),
            ("index.js", "module.exports.answer = 42;\n"),
        ],
    );
    let mints_before = gh.mint_count();
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let log = record_helper_input(&env);
    let project = env.home.join("npmapp");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        format!(
            "{{\"name\": \"npmapp\", \"version\": \"1.0.0\", \"private\": true, \"dependencies\": {{\"octo-private\": \"git+{}/octo/dotfiles.git\"}}}}\n",
            env.git_url
        ),
    )
    .unwrap();
    let p = project.display().to_string();
    let out = run(
        env.command("npm")
            .args(["install", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&p),
        b"",
    );
    assert_ok(&out);
    let out = run(
        env.command("node")
            .args(["-e", "console.log(require('octo-private').answer)"])
            .current_dir(&p),
        b"",
    );
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    assert_git_cli_input(&log, &gh);
    assert_eq!(gh.mint_count(), mints_before + 1);
}

#[test]
fn uv_installs_a_git_dependency() {
    if !have(&["uv", "python3:setuptools", "python3:wheel"]) {
        return;
    }
    let gh = world();
    let env = Env::new(&gh, 1001);
    publish(
        &env,
        "octo",
        "dotfiles",
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"octo-private-lib\"\nversion = \"1.2.3\"\n",
            ),
            ("octo_private_lib/__init__.py", "ANSWER = 42\n"),
        ],
    );
    let mints_before = gh.mint_count();
    std::fs::remove_dir_all(env.cache_dir()).unwrap();
    let log = record_helper_input(&env);
    let venv = env.home.join("venv");
    let v = venv.display().to_string();
    // The venv sees the system's setuptools, so the build needs no package index.
    let out = run(
        env.command("uv")
            .args(["venv", "--quiet", "--system-site-packages", &v]),
        b"",
    );
    assert_ok(&out);
    let spec = format!("octo-private-lib @ git+{}/octo/dotfiles.git", env.git_url);
    let out = run(
        env.command("uv").env("VIRTUAL_ENV", &v).args([
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            &spec,
        ]),
        b"",
    );
    assert_ok(&out);
    let out = run(
        env.command(&format!("{v}/bin/python")).args([
            "-c",
            "import octo_private_lib; print(octo_private_lib.ANSWER)",
        ]),
        b"",
    );
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    assert_git_cli_input(&log, &gh);
    assert_eq!(gh.mint_count(), mints_before + 1);
}

/// Puts a recording wrapper in front of the helper for `env`'s URL (it replaces the helper list,
/// for git and for libgit2 alike); returns the log: `== ARGS` then the input of each call.
pub fn record_helper_input(env: &Env) -> std::path::PathBuf {
    let log = env.home.join("helper-input.log");
    let wrapper = env.home.join("recording-helper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ninput=$(cat)\nprintf '== %s\\n%s\\n' \"$*\" \"$input\" >> '{log}'\nprintf '%s\\n' \"$input\" | exec {line} \"$@\"\n",
            log = log.display(),
            line = env.helper_line()
        ),
    )
    .unwrap();
    chmod(&wrapper, 0o755);
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper =\n\thelper = {}\n",
        env.git_url,
        wrapper.display()
    ));
    log
}

/// The client ran the git CLI underneath: the helper saw git's full request (capabilities, the
/// challenge) and git's `store` after the token worked.
#[track_caller]
fn assert_git_cli_input(log: &std::path::Path, gh: &GitHub) {
    let input = std::fs::read_to_string(log).unwrap();
    let (scheme, host) = gh
        .url()
        .split_once("://")
        .map(|(s, h)| (s.to_owned(), h.to_owned()))
        .unwrap();
    let first_get = format!(
        "== get\ncapability[]=authtype\ncapability[]=state\nprotocol={scheme}\nhost={host}\npath=octo/dotfiles.git\nwwwauth[]=Basic realm=\"GitHub\"\n"
    );
    assert!(input.starts_with(&first_get), "{input}");
    assert!(input.contains("\n== store\n"), "{input}");
}

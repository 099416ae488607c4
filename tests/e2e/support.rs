//! The harness: a scratch HOME whose git uses the built helper against a local GitHub.

#[path = "../support/skip.rs"]
mod skip_record;
pub use skip_record::skip;

use local_github::{Account, App, GitHub, Installation};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

pub const HELPER: &str = env!("CARGO_BIN_EXE_git-credential-github-app");

/// The world most tests use: app 1001 ("ci-bot") installed on org `acme` for one of its two
/// repositories (widgets, not secret; contents write) and on user `octo` for all of them
/// (dotfiles, notes; contents and issues write), and org `nobody` (thing, other) without it.
pub fn world() -> GitHub {
    world_builder(App::new(1001, "ci-bot")).start().unwrap()
}

/// [`world`] before it starts, with app 1001 given (a key held elsewhere), to serve it over
/// HTTPS or on another address.
pub fn world_builder(app: App) -> local_github::Builder {
    GitHub::builder()
        .app(app)
        .account(Account::org("acme"))
        .account(Account::user("octo"))
        .account(Account::org("nobody"))
        .repo("acme", "widgets")
        .repo("acme", "secret")
        .repo("octo", "dotfiles")
        .repo("octo", "notes")
        .repo("nobody", "thing")
        .repo("nobody", "other")
        .installation(
            Installation::new(11, 1001, "acme")
                .selected(["widgets"])
                .permissions([("contents", "write"), ("metadata", "read")]),
        )
        .installation(Installation::new(12, 1001, "octo").all().permissions([
            ("contents", "write"),
            ("metadata", "read"),
            ("issues", "write"),
        ]))
}

/// A fresh HOME (with its own cache and config dirs) and a git configured to use the helper for
/// the local GitHub.
pub struct Env {
    _dir: TempDir,
    pub home: PathBuf,
    pub key_path: PathBuf,
    pub git_url: String,
    pub host: String,
    flags: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl Env {
    /// App `app_id`'s PKCS#1 key in a 0600 file, the helper with `--cache file`.
    pub fn new(gh: &GitHub, app_id: u64) -> Env {
        let pem = gh.app(app_id).private_key_pem().to_owned();
        Env::with_key(gh, app_id, &pem)
    }

    pub fn with_key(gh: &GitHub, app_id: u64, pem: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("gcga-e2e-")
            .tempdir()
            .unwrap();
        let home = dir.path().canonicalize().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let key_path = home.join("app.pem");
        write_0600(&key_path, pem);
        let flags = vec![
            "--app-id".into(),
            app_id.to_string(),
            "--private-key".into(),
            key_path.display().to_string(),
            "--host".into(),
            gh.host(),
            "--cache".into(),
            "file".into(),
        ];
        let env = Env {
            _dir: dir,
            home,
            key_path,
            git_url: gh.url(),
            host: gh.host(),
            flags,
            extra_env: Vec::new(),
        };
        env.write_gitconfig();
        env
    }

    /// Replace the helper's flags (everything after the binary path).
    pub fn set_flags(&mut self, flags: &[&str]) {
        self.flags = flags.iter().map(|s| s.to_string()).collect();
        self.write_gitconfig();
    }

    /// Add flags to the helper line.
    pub fn add_flags(&mut self, flags: &[&str]) {
        self.flags.extend(flags.iter().map(|s| s.to_string()));
        self.write_gitconfig();
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.into(), value.into()));
    }

    /// The helper's flags (everything after the binary path).
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    pub fn helper_line(&self) -> String {
        let mut line = HELPER.to_owned();
        for f in &self.flags {
            line.push(' ');
            line.push_str(f);
        }
        line
    }

    fn write_gitconfig(&self) {
        let text = format!(
            "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n\
             [credential \"{url}\"]\n\thelper =\n\thelper = {helper}\n\tuseHttpPath = true\n",
            url = self.git_url,
            helper = self.helper_line()
        );
        std::fs::write(self.home.join(".gitconfig"), text).unwrap();
    }

    /// Append raw text to ~/.gitconfig.
    pub fn append_gitconfig(&self, text: &str) {
        let path = self.home.join(".gitconfig");
        let mut current = std::fs::read_to_string(&path).unwrap();
        current.push_str(text);
        std::fs::write(path, current).unwrap();
    }

    /// Write the default config file, with key files (0600) beside it.
    pub fn write_config(&self, keys: &[(&str, &str)], toml: &str) {
        let dir = self.home.join(".config/git-credential-github-app");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in keys {
            write_0600(&dir.join(name), pem);
        }
        std::fs::write(dir.join("config.toml"), toml).unwrap();
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.join(".cache").join("git-credential-github-app")
    }

    /// A command with this HOME and a clean environment (no inherited GitHub App settings, no
    /// session bus, no terminal prompts; askpass answers visibly so "no helper answered" shows).
    /// A `get` for octo/dotfiles.git started in the background, returned once it has looked up
    /// the installation (so it is inside the mint, holding the lock): for tests that stop or kill
    /// a lock holder. The caller makes the mint slow with a fault first.
    pub fn spawn_lock_holder(&self, gh: &GitHub) -> std::process::Child {
        use std::io::Write;
        let mut holder = self
            .command(HELPER)
            .args([
                "--app-id",
                "1001",
                "--private-key",
                &self.key_path.display().to_string(),
                "--host",
                &self.host,
                "--cache",
                "file",
                "get",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = holder.stdin.take().unwrap();
        write!(
            stdin,
            "protocol=http\nhost={}\npath=octo/dotfiles.git\n",
            self.host
        )
        .unwrap();
        drop(stdin);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while gh.lookup_count() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        holder
    }

    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", askpass(&self.home))
            .env("LANG", "C")
            .current_dir(&self.home);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn git(&self, args: &[&str]) -> Output {
        run(self.command("git").args(args), b"")
    }

    /// `git credential fill` for `owner/repo` on the local GitHub.
    pub fn fill(&self, path: &str) -> Output {
        let input = format!("protocol=http\nhost={}\npath={path}\n", self.host);
        run(
            self.command("git").args(["credential", "fill"]),
            input.as_bytes(),
        )
    }

    /// `git credential reject` (git sends `erase` to the helper) for a credential.
    pub fn reject(&self, path: &str, password: &str) -> Output {
        let input = format!(
            "protocol=http\nhost={}\npath={path}\nusername=x-access-token\npassword={password}\n",
            self.host
        );
        run(
            self.command("git").args(["credential", "reject"]),
            input.as_bytes(),
        )
    }

    /// The helper binary itself, with the configured flags plus `args`, fed `stdin`.
    pub fn helper(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.command(HELPER).args(&self.flags).args(args), stdin)
    }

    pub fn clone_repo(&self, owner: &str, repo: &str) -> Output {
        let url = format!("{}/{owner}/{repo}.git", self.git_url);
        self.git(&["clone", "--quiet", &url, &format!("{owner}-{repo}")])
    }
}

pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn askpass(home: &Path) -> PathBuf {
    let path = home.join("askpass.sh");
    if !path.exists() {
        std::fs::write(
            &path,
            "#!/bin/sh\necho \"askpass: $1\" >&2\necho askpass-answer\n",
        )
        .unwrap();
        chmod(&path, 0o755);
    }
    path
}

pub fn write_0600(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    chmod(path, 0o600);
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of `key=` in `git credential fill` output.
pub fn field(o: &Output, key: &str) -> Option<String> {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

/// The installation token the helper answered with (git's fill succeeded, the password is ours).
#[track_caller]
pub fn token_of(o: &Output) -> String {
    assert_ok(o);
    let password = field(o, "password").unwrap_or_default();
    assert!(
        password.starts_with("ghs_"),
        "no token in the answer: {}\n{}",
        stdout(o),
        stderr(o)
    );
    password
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Whether an optional tool is usable. A test that needs one returns early when it is missing,
/// after [`skip`] recorded it (`scripts/test` counts the skips), unless GCGA_REQUIRE_TOOLS is set
/// (CI sets it): then a missing tool fails the test.
#[track_caller]
pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !tool_exists(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!("{} missing (CI installs it)", missing.join(", ")));
    false
}

/// Whether the tests run as root. A test that needs root returns early when not, after [`skip`]
/// recorded it (or failed, under GCGA_REQUIRE_TOOLS).
#[track_caller]
pub fn root_or_skip(what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(&format!("needs root {what}"));
    false
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn tool_exists(tool: &str) -> bool {
    if let Some(module) = tool.strip_prefix("python3:") {
        return Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

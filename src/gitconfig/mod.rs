//! git's own configuration, read and written through the real `git config` command: which
//! credential helpers git will run for a URL (in git's order, with its empty-value resets), and
//! what a helper does with the credentials it is sent.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a config entry comes from, in the order git reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    System,
    Global,
    Local,
    Worktree,
    Command,
}

impl Scope {
    fn parse(text: &str) -> Scope {
        match text {
            "system" => Scope::System,
            "global" => Scope::Global,
            "local" => Scope::Local,
            "worktree" => Scope::Worktree,
            _ => Scope::Command,
        }
    }

    /// The `git config` option that selects this file.
    pub fn option(self) -> &'static str {
        match self {
            Scope::System => "--system",
            Scope::Global => "--global",
            Scope::Local => "--local",
            Scope::Worktree => "--worktree",
            Scope::Command => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Global => "global",
            Scope::Local => "local",
            Scope::Worktree => "worktree",
            Scope::Command => "command",
        }
    }
}

/// One config entry as git sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub scope: Scope,
    /// `file:/home/me/.gitconfig`, `command line:`, …
    pub origin: String,
    /// Section and key lower case, subsection as written: `credential.https://github.com.helper`.
    pub key: String,
    /// `None` for a key written without `=`.
    pub value: Option<String>,
}

impl Entry {
    /// The file the entry is in, when it is in one.
    pub fn file(&self) -> Option<PathBuf> {
        self.origin.strip_prefix("file:").map(PathBuf::from)
    }

    /// The subsection of `section.SUB.key`, or `None` for `section.key`.
    pub fn subsection(&self) -> Option<&str> {
        let (_, rest) = self.key.split_once('.')?;
        let (sub, _) = rest.rsplit_once('.')?;
        Some(sub)
    }

    /// The key's last part, lower case (`helper`, `usehttppath`).
    pub fn name(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }
}

/// `git ARGS` in the current directory; stdout on success, git's own message on failure.
pub fn git(args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .context("cannot run git (is it installed and on PATH?)")?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr);
        let message = message.trim().trim_start_matches("fatal: ").trim();
        bail!(
            "git {} failed: {}",
            args.first().copied().unwrap_or(""),
            if message.is_empty() {
                out.status.to_string()
            } else {
                message.to_owned()
            }
        );
    }
    String::from_utf8(out.stdout).context("git printed something that is not UTF-8")
}

pub mod edit;

/// Entries whose key matches `regex`, from every file git reads (system, global, local, …,
/// included files where they are included), in git's order. `scope` limits it to one file.
pub fn entries(regex: &str, scope: Option<Scope>) -> Result<Vec<Entry>> {
    let mut args = vec!["config"];
    if let Some(s) = scope {
        args.push(s.option());
    }
    args.extend(["--show-scope", "--show-origin", "-z", "--get-regexp", regex]);
    run_entries(&args, None)
}

/// Entries of the system and global files as git reads them outside any repository: a helper
/// an `includeIf "gitdir:…"` adds for some repositories only is not among them.
pub fn unconditional_entries(regex: &str) -> Result<Vec<Entry>> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    run_entries(
        &[
            "config",
            "--show-scope",
            "--show-origin",
            "-z",
            "--get-regexp",
            regex,
        ],
        Some(dir.path()),
    )
}

/// Entries of one file (no includes), in order.
pub fn entries_of_file(file: &Path, regex: &str) -> Result<Vec<Entry>> {
    let file = file.to_string_lossy();
    run_entries(
        &[
            "config",
            "--file",
            &file,
            "--show-scope",
            "--show-origin",
            "-z",
            "--get-regexp",
            regex,
        ],
        None,
    )
}

fn run_entries(args: &[&str], outside: Option<&Path>) -> Result<Vec<Entry>> {
    let mut command = Command::new("git");
    command.args(args);
    if let Some(dir) = outside {
        command
            .current_dir(dir)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap_or(dir));
    }
    let out = command
        .output()
        .context("cannot run git (is it installed and on PATH?)")?;
    // Status 1: no such key. Anything else is git refusing (a broken config file, --local
    // outside a repository).
    match out.status.code() {
        Some(0) => {}
        Some(1) => return Ok(Vec::new()),
        _ => bail!(
            "git config failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("fatal: ")
        ),
    }
    Ok(parse_entries(&String::from_utf8_lossy(&out.stdout)))
}

/// Parse `--show-scope --show-origin -z` output: `scope NUL origin NUL key [LF value] NUL`.
fn parse_entries(text: &str) -> Vec<Entry> {
    let mut fields = text.split('\0');
    let mut entries = Vec::new();
    while let (Some(scope), Some(origin), Some(kv)) = (fields.next(), fields.next(), fields.next())
    {
        let (key, value) = match kv.split_once('\n') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (kv, None),
        };
        entries.push(Entry {
            scope: Scope::parse(scope),
            origin: origin.to_owned(),
            key: key.to_owned(),
            value,
        });
    }
    entries
}

/// Every `credential.helper` and `credential.<url>.helper` entry.
pub fn helper_entries(scope: Option<Scope>) -> Result<Vec<Entry>> {
    entries(r"^credential\.(.*\.)?helper$", scope)
}

/// How a `credential.<pattern>` subsection relates to requests for `scheme://host` (any path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlMatch {
    /// Applies to every request for the host.
    All,
    /// Applies to some paths on the host only.
    SomePaths,
    No,
}

/// git's matching of a credential config URL (full `https://host[:port][/path]`, or partial
/// `host[/path]`; `*` matches one host label; a user name in the pattern needs one in the request,
/// and ours carry none) against `scheme://host[:port]`. `None` (plain `credential.helper`) matches.
pub fn url_matches(pattern: Option<&str>, scheme: &str, host: &str) -> UrlMatch {
    let Some(pattern) = pattern else {
        return UrlMatch::All;
    };
    let (p_scheme, rest) = match pattern.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, pattern),
    };
    if p_scheme.is_some_and(|s| !s.eq_ignore_ascii_case(scheme)) {
        return UrlMatch::No;
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return UrlMatch::No;
    }
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        "443"
    };
    let split = |a: &str| -> (String, String) {
        let a = a.to_ascii_lowercase();
        match a.rsplit_once(':') {
            Some((h, p))
                if p.bytes().all(|b| b.is_ascii_digit())
                    && (!h.starts_with('[') || h.ends_with(']')) =>
            {
                (h.to_owned(), p.to_owned())
            }
            _ => (a, default_port.to_owned()),
        }
    };
    let (p_host, p_port) = split(authority);
    let (host, port) = split(host);
    let p_port = if p_port.is_empty() {
        default_port.to_owned()
    } else {
        p_port
    };
    if p_port != port {
        return UrlMatch::No;
    }
    let p_labels: Vec<&str> = p_host.split('.').collect();
    let labels: Vec<&str> = host.split('.').collect();
    if p_labels.len() != labels.len()
        || p_labels
            .iter()
            .zip(&labels)
            .any(|(p, l)| *p != "*" && p != l)
    {
        return UrlMatch::No;
    }
    if path.trim_matches('/').is_empty() {
        UrlMatch::All
    } else {
        UrlMatch::SomePaths
    }
}

/// The helpers git runs for every request to `scheme://host`, in order, from `entries` (helper
/// entries in git's order): an empty value clears the list so far.
pub fn effective_helpers<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    scheme: &str,
    host: &str,
) -> Vec<&'a Entry> {
    let mut list: Vec<&Entry> = Vec::new();
    for e in entries {
        if e.name() != "helper" || url_matches(e.subsection(), scheme, host) != UrlMatch::All {
            continue;
        }
        match e.value.as_deref() {
            Some("") | None => list.clear(),
            Some(_) => list.push(e),
        }
    }
    list
}

/// How git turns a `credential.helper` value into a command (credential.c): a value starting
/// with `!` is a shell snippet; an absolute path is used verbatim; anything else becomes
/// `git credential-VALUE`. Each is run through `sh -c` with the operation appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation<'a> {
    /// `!…`: the rest, as a shell snippet.
    Shell(&'a str),
    /// An absolute path (and its arguments), verbatim.
    Path(&'a str),
    /// `git credential-…`.
    Dashed(&'a str),
}

impl Invocation<'_> {
    /// The shell command git runs (before it appends the operation).
    pub fn command(&self) -> String {
        match self {
            Invocation::Shell(s) | Invocation::Path(s) => (*s).to_owned(),
            Invocation::Dashed(s) => format!("git credential-{s}"),
        }
    }
}

/// git's `is_absolute_path`: `/…`; on Windows also `\\…` and `C:…`.
pub fn is_absolute_path(text: &str) -> bool {
    let b = text.as_bytes();
    if cfg!(windows) {
        matches!(b.first(), Some(b'/' | b'\\'))
            || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
    } else {
        b.first() == Some(&b'/')
    }
}

/// How git runs `line`.
pub fn invocation(line: &str) -> Invocation<'_> {
    if let Some(rest) = line.strip_prefix('!') {
        Invocation::Shell(rest)
    } else if is_absolute_path(line) {
        Invocation::Path(line)
    } else {
        Invocation::Dashed(line)
    }
}

/// The helper line to write for a program and its arguments: it runs exactly `words`. An
/// absolute path that needs no quoting is written as it is; anything else (a space, `é`, `~`, a
/// Windows path) goes after `!`, shell-quoted: without the `!`, git would run
/// `git credential-'…'`, a name relative to the repository it runs in.
pub fn write_line(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    let line = quoted.join(" ");
    match (words.first(), quoted.first()) {
        (Some(first), Some(q)) if is_absolute_path(first) && first == q => line,
        _ => format!("!{line}"),
    }
}

/// The program git would run for a helper line, found as git and the shell find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// This file (absolute, or found in git's exec path or PATH).
    File(PathBuf),
    /// A path relative to the directory git runs in, the working tree of whatever repository
    /// it is: a file a repository commits there runs.
    InWorkTree(String),
    /// A name found nowhere (exec path, PATH), or a shell builtin/function.
    NotFound(String),
    /// The line does not split into words (an open quote).
    Unparsable,
}

/// The program git runs for `line`, resolved without running anything. `path` is `$PATH`;
/// `exec_path` is git's (`git --exec-path`) for `git credential-NAME`.
pub fn program(line: &str, path: Option<&std::ffi::OsStr>, exec_path: Option<&Path>) -> Program {
    let command = invocation(line).command();
    let Some(words) = shell_words(&command) else {
        return Program::Unparsable;
    };
    let Some(first) = words.first() else {
        return Program::Unparsable;
    };
    // `git credential-X`: git looks for `git-credential-X` (its exec path, then PATH).
    let (name, dirs): (String, Vec<PathBuf>) = match (invocation(line), words.get(1)) {
        (Invocation::Dashed(_), Some(sub)) if first == "git" => (
            format!("git-{sub}"),
            exec_path
                .map(Path::to_path_buf)
                .into_iter()
                .chain(
                    path.map(|p| std::env::split_paths(p).collect::<Vec<_>>())
                        .unwrap_or_default(),
                )
                .collect(),
        ),
        _ => (
            first.clone(),
            path.map(|p| std::env::split_paths(p).collect())
                .unwrap_or_default(),
        ),
    };
    if is_absolute_path(&name) {
        return Program::File(PathBuf::from(name));
    }
    if name.contains('/') || (cfg!(windows) && name.contains('\\')) {
        return Program::InWorkTree(name);
    }
    for dir in dirs {
        for candidate in [dir.join(&name), dir.join(format!("{name}.exe"))] {
            if candidate.is_file() {
                return Program::File(candidate);
            }
        }
    }
    Program::NotFound(name)
}

/// The program a helper line was written to run: its first word (after `!`) when that is an
/// absolute path, else for a bare name `git-credential-NAME` (as found on PATH, when it is).
/// Unlike [`program`], this is what the writer meant, even when git would run something else.
fn intended_program(line: &str) -> Option<PathBuf> {
    let words = shell_words(line.trim_start_matches('!').trim_start())?;
    let first = words.first()?;
    if is_absolute_path(first) {
        return Some(PathBuf::from(first));
    }
    if line.starts_with('!') || first.contains('/') {
        return None;
    }
    match program(first, std::env::var_os("PATH").as_deref(), None) {
        Program::File(p) => Some(p),
        _ => Some(PathBuf::from(format!("git-credential-{first}"))),
    }
}

/// Whether two paths name the same file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
        false
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// Whether a helper line runs this program: the program it names is this very file (whatever
/// it is called: a packaged `gh-app-helper` too), or is called git-credential-github-app.
pub fn is_ours(helper: &str) -> bool {
    let Some(program) = intended_program(helper) else {
        return false;
    };
    if let Ok(me) = std::env::current_exe()
        && same_file(&program, &me)
    {
        return true;
    }
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".exe").unwrap_or(&name);
    name == "git-credential-github-app"
}

/// What a helper does with the credentials git sends it after they worked (`store`): `Some`
/// describes how it keeps them, `None` for a helper that does not keep credentials it did not
/// make.
pub fn stores(helper: &str) -> Option<&'static str> {
    let line = helper.trim();
    if line.starts_with('!') {
        // A shell snippet: gh's `auth git-credential` ignores store; others are unknown.
        return None;
    }
    let word = line.split_whitespace().next().unwrap_or("");
    let word = word.trim_matches(['\'', '"']);
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let base = base.strip_suffix(".exe").unwrap_or(base);
    let name = base.strip_prefix("git-credential-").unwrap_or(base);
    match name {
        "store" => Some("writes them in plain text to ~/.git-credentials"),
        "cache" => Some("keeps them in memory (git credential-cache)"),
        "osxkeychain" => Some("saves them in the macOS keychain"),
        "libsecret" | "gnome-keyring" => Some("saves them in the Secret Service keyring"),
        "wincred" => Some("saves them in the Windows Credential Manager"),
        "manager" | "manager-core" => {
            Some("saves them in its credential store (Git Credential Manager)")
        }
        "oauth" => None,
        _ => None,
    }
}

/// Quote a word for the shell git runs helper lines through.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Split a helper line into words as `sh` would (quotes and backslashes; no expansions).
/// `None` when a quote is not closed.
pub fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// git's version as (major, minor), from `git version`.
pub fn version() -> Result<(String, (u32, u32))> {
    let text = git(&["version"])?;
    let full = text.trim().trim_start_matches("git version ").to_owned();
    let mut parts = full.split(['.', ' ']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => Ok((full, (major, minor))),
        _ => bail!("cannot read git's version from '{}'", text.trim()),
    }
}

/// Whether a `pkcs11:` URI carries its PIN (`pin-value=` in the query).
pub fn has_pin_value(text: &str) -> bool {
    text.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|a| a.trim().to_ascii_lowercase().starts_with("pin-value="))
    })
}

/// A config value as it may be shown on a terminal: control characters escaped, nothing else
/// changed (quotes stay, so a shown line can be pasted back).
pub fn shown(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_debug().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A helper line as it may be shown: the value of any `pin-value=` replaced by `[masked]`.
pub fn mask_pin_values(line: &str) -> String {
    mask_after(line, "pin-value=")
}

/// The value after every `key` (matched ignoring case) replaced by `[masked]`, up to `&`, a
/// quote, `;` or white space.
fn mask_after(line: &str, key: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.to_ascii_lowercase().find(key) {
        let value_start = at + key.len();
        out.push_str(&rest[..value_start]);
        let tail = &rest[value_start..];
        let end = tail
            .find(|c: char| matches!(c, '&' | '\'' | '"' | ';') || c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(if end == 0 { "" } else { "[masked]" });
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A config value (a helper line, a URL) as it may be shown: PKCS#11 `pin-value=`, inline
/// `password=` (a shell helper that echoes one) and the password of any `scheme://user:pass@`
/// masked.
pub fn mask_secrets(line: &str) -> String {
    let masked = mask_after(&mask_after(line, "pin-value="), "password=");
    let mut out = String::with_capacity(masked.len());
    let mut rest = masked.as_str();
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| matches!(c, '/' | '\'' | '"' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => out.push_str(&format!("{name}:[masked]@{host}")),
                None if crate::secret::kind(user).is_some() => {
                    out.push_str(&format!("[masked]@{host}"))
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_match_as_git_matches_them() {
        use UrlMatch::*;
        let m = |p: &str| url_matches(Some(p), "https", "github.com");
        assert_eq!(url_matches(None, "https", "github.com"), All);
        assert_eq!(m("https://github.com"), All);
        assert_eq!(m("https://github.com/"), All);
        assert_eq!(m("HTTPS://GitHub.com:443/"), All);
        assert_eq!(m("github.com"), All);
        assert_eq!(m("https://*.com"), All);
        assert_eq!(m("https://github.com/acme"), SomePaths);
        assert_eq!(m("http://github.com"), No);
        assert_eq!(m("https://gitlab.com"), No);
        assert_eq!(m("https://me@github.com"), No);
        assert_eq!(m("https://github.com:8443"), No);
        assert_eq!(m("https://api.github.com"), No);
        assert_eq!(
            url_matches(Some("http://127.0.0.1:8080/"), "http", "127.0.0.1:8080"),
            All
        );
        assert_eq!(
            url_matches(Some("http://127.0.0.1:8081"), "http", "127.0.0.1:8080"),
            No
        );
    }

    #[test]
    fn resets_clear_the_list_in_order() {
        let e = |key: &str, value: &str| Entry {
            scope: Scope::Global,
            origin: "file:/x".into(),
            key: key.into(),
            value: Some(value.into()),
        };
        let entries = [
            e("credential.helper", "osxkeychain"),
            e("credential.https://github.com.helper", ""),
            e(
                "credential.https://github.com.helper",
                "!gh auth git-credential",
            ),
            e("credential.helper", "store"),
            e("credential.https://gitlab.com.helper", "x"),
            e("credential.https://github.com/acme.helper", "y"),
            e("credential.https://github.com.usehttppath", "true"),
        ];
        let list: Vec<&str> = effective_helpers(&entries, "https", "github.com")
            .iter()
            .filter_map(|e| e.value.as_deref())
            .collect();
        assert_eq!(list, ["!gh auth git-credential", "store"]);
    }

    #[test]
    fn entries_from_git_output() {
        let parsed = parse_entries(
            "global\0file:/h/.gitconfig\0credential.https://github.com.helper\n\0global\0file:/h/.gitconfig\0credential.helper\nstore --file /a b\0local\0file:.git/config\0credential.usehttppath\0",
        );
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].value.as_deref(), Some(""));
        assert_eq!(parsed[0].subsection(), Some("https://github.com"));
        assert_eq!(parsed[1].value.as_deref(), Some("store --file /a b"));
        assert_eq!(parsed[1].subsection(), None);
        assert_eq!(parsed[2].scope, Scope::Local);
        assert_eq!(parsed[2].value, None);
        assert_eq!(parsed[0].file(), Some(PathBuf::from("/h/.gitconfig")));
    }

    #[test]
    fn storing_helpers_and_ours() {
        assert!(stores("store").is_some());
        assert!(stores("store --file ~/x").is_some());
        assert!(stores("/usr/lib/git-core/git-credential-libsecret").is_some());
        assert!(stores("cache --timeout 3600").is_some());
        assert!(stores("manager").is_some());
        assert!(stores("osxkeychain").is_some());
        assert!(stores("!gh auth git-credential").is_none());
        assert!(stores("github-app --app-id 1").is_none());
        assert!(is_ours("'/a b/git-credential-github-app' --app-id 1"));
        assert!(is_ours("github-app --app-id 1"));
        assert!(!is_ours("store"));
    }

    #[test]
    fn words_as_the_shell_splits_them() {
        let words = |l: &str| shell_words(l).unwrap();
        assert_eq!(words("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(
            words("'/a b/x' --k \"v w\" z\\ y"),
            ["/a b/x", "--k", "v w", "z y"]
        );
        assert_eq!(words(&shell_quote("it's")), ["it's"]);
        assert_eq!(words("''"), [""]);
        assert!(shell_words("'open").is_none());
        for w in ["/a b/x", "it's", "", "a\"b", "$HOME"] {
            assert_eq!(words(&shell_quote(w)), [w]);
        }
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(shell_quote("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(shell_quote("/a b/x"), "'/a b/x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn pins_in_helper_lines_are_found_and_masked() {
        let line =
            "/bin/h --private-key 'pkcs11:object=k?module-path=/m.so&pin-value=1234' --app-id 1";
        assert!(has_pin_value(
            "pkcs11:object=k?module-path=/m.so&pin-value=1234"
        ));
        assert!(!has_pin_value("pkcs11:object=k?pin-source=file:/p"));
        assert_eq!(
            mask_pin_values(line),
            "/bin/h --private-key 'pkcs11:object=k?module-path=/m.so&pin-value=[masked]' --app-id 1"
        );
        assert_eq!(mask_pin_values("PIN-VALUE=9&x"), "PIN-VALUE=[masked]&x");
        assert_eq!(mask_pin_values("no pin"), "no pin");
    }

    #[test]
    fn secrets_in_config_values_are_masked() {
        assert_eq!(
            mask_secrets("!f() { echo username=me; echo password=s3cret; }; f"),
            "!f() { echo username=me; echo password=[masked]; }; f"
        );
        assert_eq!(
            mask_secrets("store --file https://u:p@x/y"),
            "store --file https://u:[masked]@x/y"
        );
        assert_eq!(
            mask_secrets("'pkcs11:o=k?pin-value=1234' password="),
            "'pkcs11:o=k?pin-value=[masked]' password="
        );
        assert_eq!(mask_secrets("store"), "store");
        assert_eq!(
            mask_secrets("x https://ghs_0123456789abcdefABCDEF0123456789abcd@github.com/a"),
            "x https://[masked]@github.com/a"
        );
    }

    #[test]
    fn helper_lines_git_runs_as_written() {
        let w =
            |words: &[&str]| write_line(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(w(&["/usr/bin/h", "--app-id", "1"]), "/usr/bin/h --app-id 1");
        assert_eq!(w(&["/a b/h", "--k", "x y"]), "!'/a b/h' --k 'x y'");
        assert_eq!(w(&["/opt/é/h"]), "!'/opt/é/h'");
        for line in ["!'/a b/h' --k 'x y'", "/usr/bin/h --app-id 1"] {
            assert!(matches!(
                invocation(line),
                Invocation::Shell(_) | Invocation::Path(_)
            ));
        }
        // What setup wrote before: git runs `git credential-'/a b/h'`, a path in the work tree.
        assert_eq!(
            program("'/a b/h' --app-id 1", None, None),
            Program::InWorkTree("git-credential-/a b/h".into())
        );
        assert_eq!(
            program("!'/a b/h' --app-id 1", None, None),
            Program::File("/a b/h".into())
        );
        assert_eq!(
            program(
                "nosuchhelper",
                Some(std::ffi::OsStr::new("/nonexistent")),
                None
            ),
            Program::NotFound("git-credential-nosuchhelper".into())
        );
        assert_eq!(program("'open", None, None), Program::Unparsable);
    }
}

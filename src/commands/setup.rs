//! `setup` and `unsetup`: point git at this helper for one host, and undo it.
//!
//! setup writes into its own section of one git config file, spelled with a trailing slash
//! (`[credential "https://github.com/"]`: git matches it exactly like `https://github.com`): the
//! empty `helper =` (it drops the helpers git collected so far), our helper line (written so git
//! runs exactly this binary: `gitconfig::write_line`), then the helpers that reset dropped — the
//! user's own, so owners the app does not serve still get credentials — `useHttpPath = true`, and
//! a record of what it wrote (`githubAppSetup`), so that running it again and unsetup remove just
//! that and never a line the user wrote in the section. The file is changed under its lock, the
//! way git changes it (`gitconfig::edit`), through `git config --file`.

use super::{Args, Command, Context, Opt, Output};
use crate::config::{self, Flags, Host};
use crate::gitconfig::{self, Entry, Scope, shell_quote};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub static SETUP: Command = Command {
    name: "setup",
    summary: "configure git to use this helper for a host (keeps your other helpers after it)",
    usage: "setup [--host HOST] [--global|--local|--system] [--proactive] [HELPER OPTIONS]",
    help: "\
Writes git's config for the host (default github.com), through git config:

    [credential \"https://github.com/\"]
        helper =
        helper = /abs/path/git-credential-github-app --app-id 123456 --private-key /abs/app.pem
        helper = <the helpers git ran for this host before, in their order>
        useHttpPath = true
        githubAppSetup = helpers=3,useHttpPath

The empty line stops helpers configured earlier from answering before this one; they are listed
again after it, so owners the app does not serve still get your usual credentials. The helper
line carries the options given here (--app-id, --private-key, --owner, --cache, …; paths made
absolute); a binary path that needs quoting is written !'/path/…' so git runs it as written. A
loopback host is configured as http://HOST. The last line records what setup wrote: running it
again replaces just that, and lines you add to the section stay. A warning names any helper after
ours that would store the app's tokens (store, cache, …).

OPTIONS:
    --global       write ~/.gitconfig (the default)
    --local        write the current repository's .git/config
    --system       write the system config (/etc/gitconfig, or $GIT_CONFIG_SYSTEM)
    --proactive    also set http.<url>.proactiveAuth = basic (git 2.46 or later), so git asks the
                   helper before the first request and public repositories are fetched with a token
",
    options: &[
        Opt::flag("global"),
        Opt::flag("local"),
        Opt::flag("system"),
        Opt::flag("proactive"),
    ],
    max_positional: 0,
    trailing: false,
    run: run_setup,
};

pub static UNSETUP: Command = Command {
    name: "unsetup",
    summary: "remove what setup wrote for a host, restoring your git config as it was",
    usage: "unsetup [--host HOST] [--global|--local|--system]",
    help: "\
Removes what setup wrote for the host (default github.com) from the chosen git config file, by
its record, and nothing you wrote there; the file itself stays, even if left empty.

OPTIONS:
    --global       ~/.gitconfig (the default)
    --local        the current repository's .git/config
    --system       the system config (/etc/gitconfig, or $GIT_CONFIG_SYSTEM)
",
    options: &[Opt::flag("global"), Opt::flag("local"), Opt::flag("system")],
    max_positional: 0,
    trailing: false,
    run: run_unsetup,
};

/// The host setup configures and the URL of its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    /// `https`, or `http` for a loopback host.
    pub scheme: &'static str,
}

impl Target {
    /// The host given with --host, else the one the app given on the command line serves, else
    /// github.com.
    pub fn from_flags(flags: &Flags) -> Result<Target> {
        let host = match &flags.host {
            Some(text) => Host::parse(text)?,
            None => match config::resolve(flags, &|_| None) {
                Ok(c) if flags.app_id.is_some() => c
                    .apps
                    .first()
                    .map(|a| a.host.clone())
                    .unwrap_or(Host::parse("github.com")?),
                _ => Host::parse("github.com")?,
            },
        };
        let scheme = if host.is_loopback() { "http" } else { "https" };
        Ok(Target { host, scheme })
    }

    /// The host a command works on, resolved as every command resolves it
    /// (`commands::resolve::resolve`: --host, GITHUB_APP_HOST, else the one host the configured
    /// apps serve); without any app configured, [`Target::from_context`].
    pub fn resolve(ctx: &Context) -> Result<Target> {
        match super::resolve::resolve(ctx) {
            Ok(r) => Ok(Target::of(&r)),
            Err(_) => Target::from_context(ctx),
        }
    }

    /// The target of a resolved configuration: its host, with the protocol git uses for it
    /// (the app's API scheme when given, so an HTTPS loopback host stays https).
    pub fn of(resolved: &super::resolve::Resolved) -> Target {
        match resolved
            .config
            .apps
            .iter()
            .find(|a| a.host == resolved.host)
        {
            Some(app) => Target {
                host: resolved.host.clone(),
                scheme: app.git_protocol(),
            },
            None => Target::for_host(resolved.host.clone()),
        }
    }

    /// The target for `host` (http for a loopback host).
    pub fn for_host(host: Host) -> Target {
        let scheme = if host.is_loopback() { "http" } else { "https" };
        Target { host, scheme }
    }

    /// [`Target::from_flags`], with `GITHUB_APP_HOST` when --host is not given.
    pub fn from_context(ctx: &Context) -> Result<Target> {
        let mut flags = ctx.flags.clone();
        if flags.host.is_none() {
            flags.host = ctx.env(config::env::HOST).filter(|v| !v.trim().is_empty());
        }
        Target::from_flags(&flags)
    }

    /// `https://github.com/`: the subsection of setup's own sections.
    pub fn section_url(&self) -> String {
        format!("{}://{}/", self.scheme, self.host.as_str())
    }
}

fn scope_of(args: &Args) -> Result<Scope> {
    match (args.flag("global"), args.flag("local"), args.flag("system")) {
        (_, false, false) => Ok(Scope::Global),
        (false, true, false) => Ok(Scope::Local),
        (false, false, true) => Ok(Scope::System),
        _ => bail!("choose one of --global, --local and --system"),
    }
}

/// The helper line for git: this binary's absolute path and the options given, shell-quoted.
fn helper_line(flags: &Flags) -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot tell where this program is installed: {e}"))?;
    helper_line_for(&exe, flags)
}

/// [`helper_line`] for the program at `exe`.
fn helper_line_for(exe: &Path, flags: &Flags) -> Result<String> {
    let mut words = vec![exe.to_string_lossy().into_owned()];
    let mut add = |name: &str, value: &str| {
        words.push(format!("--{name}"));
        words.push(value.to_owned());
    };
    if let Some(v) = &flags.app_id {
        add("app-id", v);
    }
    if let Some(p) = &flags.private_key {
        let text = p.to_string_lossy();
        if crate::keyref::Written::of(&text) != crate::keyref::Written::Path {
            // A PIN in the URI would be written into the git config (often world-readable) and
            // be in the helper's argv on every run: only a PIN file is taken.
            if crate::gitconfig::has_pin_value(&text) {
                bail!(
                    "the pkcs11: URI carries pin-value, which would be stored in the git config and shown by ps on every run; put the PIN in a file only you can read and use pin-source=file:/path/to/pin instead"
                );
            }
            // A key in a token or in AWS KMS: the URI or ARN as given (shell-quoted below).
            add("private-key", text.trim());
        } else {
            let path = absolute(p)?;
            if !path.is_file() {
                bail!(
                    "no private key file at {}",
                    gitconfig::mask_pin_values(&path.display().to_string())
                );
            }
            add("private-key", &path.to_string_lossy());
        }
    }
    if let Some(v) = &flags.installation_id {
        add("installation-id", v);
    }
    if let Some(v) = &flags.host {
        add("host", v);
    }
    if let Some(v) = &flags.api_url {
        add("api-url", v);
    }
    for o in &flags.owners {
        add("owner", o);
    }
    if let Some(v) = &flags.cache {
        add("cache", v);
    }
    if let Some(v) = &flags.refresh_margin {
        add("refresh-margin", v);
    }
    if let Some(v) = &flags.timeout {
        add("timeout", v);
    }
    if let Some(v) = &flags.username {
        add("username", v);
    }
    if let Some(p) = &flags.config {
        add("config", &absolute(p)?.to_string_lossy());
    }
    if let Some(v) = &flags.permissions {
        add("permissions", v);
    }
    if flags.repo_scoped {
        words.push("--repo-scoped".to_owned());
    }
    if flags.user_tokens {
        words.push("--user-tokens".to_owned());
    }
    let b = &flags.broker;
    for (name, value) in [
        ("broker", &b.broker),
        ("broker-url", &b.url),
        ("identity", &b.identity),
        ("profile", &b.profile),
        ("oidc", &b.oidc),
        ("audience", &b.audience),
    ] {
        if let Some(v) = value {
            words.push(format!("--{name}"));
            words.push(v.clone());
        }
    }
    if b.org_scope {
        words.push("--org-scope".to_owned());
    }
    Ok(gitconfig::write_line(&words))
}

/// `~/x` and relative paths as absolute paths (git runs the helper in other directories).
fn absolute(path: &Path) -> Result<PathBuf> {
    let path = match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    };
    std::path::absolute(&path)
        .map_err(|e| anyhow::anyhow!("cannot make {} absolute: {e}", path.display()))
}

/// The key of setup's record in its section: what it wrote there, so that running it again or
/// `unsetup` removes exactly that and nothing the user added to the section.
const RECORD: &str = "githubAppSetup";

/// setup's section for `target` in one config file, as it stands.
#[derive(Debug, Default)]
struct Section {
    /// `credential.<url>.helper` values, in order.
    helpers: Vec<String>,
    /// Which of them setup wrote (indices into `helpers`).
    written: Vec<usize>,
    /// setup wrote `useHttpPath` / `http.<url>.proactiveAuth`.
    use_http_path: bool,
    proactive: bool,
    /// A record of setup's is there.
    recorded: bool,
}

impl Section {
    fn is_ours(&self) -> bool {
        self.recorded || !self.written.is_empty()
    }
}

fn helper_key(url: &str) -> String {
    format!("credential.{url}.helper")
}

/// Read the section for `url` from the working copy and work out what setup wrote there: the
/// block its record describes (the empty reset, our line, the helpers it repeated), any other
/// line of ours; without a record (an older setup, or a section copied from the README), only
/// our line and the reset just before it — unless the section holds nothing else an older setup
/// did not write.
fn read_section(edit: &gitconfig::edit::Edit, url: &str) -> Result<Section> {
    let escaped = regex_escape(url);
    let credential = edit.entries(&format!("^credential\\.{escaped}\\."))?;
    let http = edit.entries(&format!("^http\\.{escaped}\\."))?;
    let helpers: Vec<String> = credential
        .iter()
        .filter(|e| e.name() == "helper")
        .map(|e| e.value.clone().unwrap_or_default())
        .collect();
    let record = credential
        .iter()
        .find(|e| e.name() == RECORD.to_ascii_lowercase())
        .and_then(|e| e.value.clone());
    let mut section = Section {
        recorded: record.is_some(),
        ..Section::default()
    };
    let ours: Vec<usize> = (0..helpers.len())
        .filter(|&i| gitconfig::is_ours(&helpers[i]))
        .collect();
    if let Some(record) = &record {
        let mut count = 0;
        for part in record.split(',') {
            match part.trim() {
                "useHttpPath" => section.use_http_path = true,
                "proactiveAuth" => section.proactive = true,
                p => {
                    if let Some(n) = p.strip_prefix("helpers=") {
                        count = n.parse().unwrap_or(0);
                    }
                }
            }
        }
        if let Some(&first) = ours.first() {
            let start = if first > 0 && helpers[first - 1].is_empty() {
                first - 1
            } else {
                first
            };
            section.written = (start..(start + count).min(helpers.len())).collect();
        }
    } else if let Some(&first) = ours.first() {
        let legacy = first == 1
            && helpers[0].is_empty()
            && credential.iter().all(|e| {
                e.name() == "helper"
                    || (e.name() == "usehttppath" && e.value.as_deref() == Some("true"))
            })
            && http.iter().all(|e| e.name() == "proactiveauth");
        if legacy {
            section.written = (0..helpers.len()).collect();
            section.use_http_path = credential.iter().any(|e| e.name() == "usehttppath");
            section.proactive = !http.is_empty();
        } else if first > 0 && helpers[first - 1].is_empty() {
            section.written.push(first - 1);
        }
    }
    for i in ours {
        if !section.written.contains(&i) {
            section.written.push(i);
        }
    }
    section.written.sort_unstable();
    section.helpers = helpers;
    Ok(section)
}

/// Remove what setup wrote in the section from the working copy.
fn remove_written(edit: &gitconfig::edit::Edit, url: &str, section: &Section) -> Result<()> {
    let key = helper_key(url);
    if !section.written.is_empty() {
        edit.git(&["--unset-all", &key])?;
        for (i, value) in section.helpers.iter().enumerate() {
            if !section.written.contains(&i) {
                edit.git(&["--add", &key, value])?;
            }
        }
    }
    let unset = |key: String| -> Result<()> {
        // Status 5: it was not there.
        match edit.git(&["--unset-all", &key]) {
            Ok(_) => Ok(()),
            Err(_) if edit.git(&["--get-all", &key]).is_err() => Ok(()),
            Err(e) => Err(e),
        }
    };
    if section.recorded {
        unset(format!("credential.{url}.{RECORD}"))?;
    }
    if section.use_http_path {
        unset(format!("credential.{url}.useHttpPath"))?;
    }
    if section.proactive {
        unset(format!("http.{url}.proactiveAuth"))?;
    }
    Ok(())
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '/' && c != ':' && c != '-' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `entries` without the helper lines setup wrote in `file` (the `written` occurrences of our
/// key there).
fn without_written(entries: Vec<Entry>, file: &Path, url: &str, section: &Section) -> Vec<Entry> {
    let key = helper_key(url);
    let mut seen = 0;
    entries
        .into_iter()
        .filter(|e| {
            if e.key != key || !e.file().is_some_and(|f| gitconfig::same_file(&f, file)) {
                return true;
            }
            seen += 1;
            !section.written.contains(&(seen - 1))
        })
        .collect()
}

/// `--global`, `--local` or `--system` as the user would type it after a command (nothing for
/// the default).
fn scope_option(scope: Scope) -> &'static str {
    match scope {
        Scope::Global => "",
        Scope::Local => " --local",
        Scope::System => " --system",
        _ => "",
    }
}

fn host_option(target: &Target) -> String {
    if target.host.as_str() == "github.com" {
        String::new()
    } else {
        format!(" --host {}", shell_quote(target.host.as_str()))
    }
}

fn run_setup(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let scope = scope_of(args)?;
    let target = Target::resolve(ctx)?;
    let url = target.section_url();
    // A client ID without a key, with no key in the environment either, is a user-token app.
    let user_tokens = ctx.flags.user_tokens
        || (ctx.flags.private_key.is_none()
            && ctx
                .flags
                .app_id
                .as_deref()
                .is_some_and(|id| id.trim().starts_with("Iv"))
            && ctx.env(config::env::PRIVATE_KEY).is_none()
            && ctx.env(config::env::PRIVATE_KEY_PATH).is_none());
    if ctx.flags.app_id.is_some() && ctx.flags.private_key.is_none() && !user_tokens {
        bail!(
            "--app-id needs --private-key PATH here: the helper line must name the key file (the key in {} is not written into git's config)",
            config::env::PRIVATE_KEY
        );
    }
    let config = config::resolve(&ctx.flags, &|n| ctx.env(n))?;
    if !config.apps.iter().any(|a| a.host == target.host) {
        bail!(
            "no GitHub App configured for {}: pass --app-id ID --private-key PATH, or list the app in {}",
            target.host.as_str(),
            ctx.flags
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| config::default_config_path().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "the config file".into())
        );
    }
    let from_env = ctx.flags.app_id.is_none() && ctx.env(config::env::APP_ID).is_some();
    let proactive = args.flag("proactive");
    if proactive {
        let (text, version) = gitconfig::version()?;
        if version < (2, 46) {
            bail!(
                "--proactive needs git 2.46 or later (http.<url>.proactiveAuth); this is git {text}"
            );
        }
    }
    // The host goes into the line whenever it is not github.com (it may have come from
    // GITHUB_APP_HOST, which git's environment need not have).
    let mut flags = Flags {
        user_tokens,
        ..ctx.flags.clone()
    };
    if flags.host.is_none() && target.host.as_str() != "github.com" {
        flags.host = Some(target.host.as_str().to_owned());
    }
    let line = helper_line(&flags)?;

    // Everything from here to the rename happens under the config file's lock.
    let edit = gitconfig::edit::Edit::open(&gitconfig::edit::file_of(scope)?)?;
    let section = read_section(&edit, &url)?;
    let replaced = section.is_ours();
    remove_written(&edit, &url, &section)?;

    // The helpers git runs for this host now, without what setup wrote, up to the end of the file
    // setup appends to: the empty line will drop them, so they are listed again after ours. For
    // the global and system files, as git reads them outside any repository: a helper that an
    // includeIf adds for some repositories must not be repeated for all of them.
    let regex = r"^credential\.(.*\.)?helper$";
    let read = |unconditional: bool| -> Result<Vec<Entry>> {
        let all = if unconditional {
            gitconfig::unconditional_entries(regex)?
        } else {
            gitconfig::helper_entries(None)?
        };
        Ok(without_written(all, &edit.path, &url, &section)
            .into_iter()
            .filter(|e| e.scope <= scope)
            .collect())
    };
    let before = read(scope != Scope::Local)?;
    let here = if scope == Scope::Local {
        Vec::new()
    } else {
        read(false)?
    };
    let kept: Vec<String> =
        gitconfig::effective_helpers(&before, target.scheme, target.host.as_str())
            .into_iter()
            .filter_map(|e| e.value.clone())
            .filter(|v| !gitconfig::is_ours(v))
            .collect();
    // Helpers an includeIf adds for some repositories: those git runs here (setup run inside
    // such a repository), and those in every includeIf'd file of the files setup reads.
    let mut conditional: Vec<Entry> =
        gitconfig::effective_helpers(&here, target.scheme, target.host.as_str())
            .into_iter()
            .filter(|e| {
                e.value.as_deref().is_some_and(|v| !gitconfig::is_ours(v))
                    && !before.iter().any(|b| b == *e)
            })
            .cloned()
            .collect();
    if scope != Scope::Local {
        for e in included_helpers(&target)? {
            let same = |c: &Entry| {
                c.value == e.value
                    && match (c.file(), e.file()) {
                        (Some(a), Some(b)) => gitconfig::same_file(&a, &b),
                        _ => c.origin == e.origin,
                    }
            };
            if !conditional.iter().any(same) {
                conditional.push(e);
            }
        }
    }
    let path_scoped: Vec<&Entry> = before
        .iter()
        .filter(|e| {
            e.value.as_deref().is_some_and(|v| !v.is_empty())
                && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                    == gitconfig::UrlMatch::SomePaths
        })
        .collect();

    let key = helper_key(&url);
    edit.git(&["--add", &key, ""])?;
    edit.git(&["--add", &key, &line])?;
    for helper in &kept {
        edit.git(&["--add", &key, helper])?;
    }
    let mut record = format!("helpers={}", 2 + kept.len());
    let has = |key: &str| edit.git(&["--get-all", key]).is_ok();
    let use_http_path = format!("credential.{url}.useHttpPath");
    if !has(&use_http_path) {
        record.push_str(",useHttpPath");
    }
    edit.git(&[&use_http_path, "true"])?;
    if proactive {
        let proactive_key = format!("http.{url}.proactiveAuth");
        if !has(&proactive_key) {
            record.push_str(",proactiveAuth");
        }
        edit.git(&[&proactive_key, "basic"])?;
    }
    edit.git(&[&format!("credential.{url}.{RECORD}"), &record])?;
    let file = edit.commit()?.display().to_string();

    writeln!(
        o.out,
        "{} git ({file}) for {url}:",
        if replaced {
            "Reconfigured"
        } else {
            "Configured"
        }
    )?;
    writeln!(o.out, "    [credential \"{url}\"]")?;
    writeln!(o.out, "        helper =")?;
    writeln!(o.out, "        helper = {line}")?;
    for helper in &kept {
        writeln!(
            o.out,
            "        helper = {}",
            gitconfig::mask_secrets(helper)
        )?;
    }
    writeln!(o.out, "        useHttpPath = true")?;
    if proactive {
        writeln!(o.out, "    [http \"{url}\"]")?;
        writeln!(o.out, "        proactiveAuth = basic")?;
    }
    let user_lines = section.helpers.len() - section.written.len();
    if user_lines > 0 {
        writeln!(
            o.out,
            "    (and the {user_lines} helper line(s) you wrote in that section, left as they are)"
        )?;
    }
    writeln!(
        o.out,
        "Check it: git-credential-github-app doctor{}",
        host_option(&target)
    )?;
    writeln!(
        o.out,
        "Undo it:  git-credential-github-app unsetup{}{}",
        host_option(&target),
        scope_option(scope)
    )?;
    if user_tokens {
        writeln!(
            o.out,
            "Log in:   git-credential-github-app login --app-id {}{}",
            ctx.flags.app_id.as_deref().unwrap_or_default().trim(),
            host_option(&target)
        )?;
    }
    if from_env {
        writeln!(
            o.err,
            "git-credential-github-app: note: the app comes from {} in this environment; the helper line does not carry it, so git finds the app only where those variables are set",
            config::env::APP_ID
        )?;
    }

    // The helpers that will run after ours, wherever they come from: git sends each of them the
    // token that worked (`store`).
    let after = gitconfig::helper_entries(None)?;
    let effective = gitconfig::effective_helpers(&after, target.scheme, target.host.as_str());
    if !effective
        .iter()
        .any(|e| e.value.as_deref().is_some_and(gitconfig::is_ours))
    {
        let reset = after.iter().rev().find(|e| {
            e.value.as_deref().is_none_or(str::is_empty)
                && !(e.scope == scope && e.subsection() == Some(url.as_str()))
                && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                    == gitconfig::UrlMatch::All
        });
        writeln!(
            o.err,
            "git-credential-github-app: warning: git will not run this helper for {url}: the empty \
             'helper =' in {} comes later and drops it",
            reset.map_or("a later config file", |e| e.origin.as_str())
        )?;
    }
    let mut past_ours = false;
    for e in effective {
        let Some(value) = e.value.as_deref() else {
            continue;
        };
        if gitconfig::is_ours(value) {
            past_ours = true;
            continue;
        }
        if let (true, Some(how)) = (past_ours, gitconfig::stores(value)) {
            writeln!(
                o.err,
                "git-credential-github-app: warning: helper '{}' runs after this one, and git hands \
                 it every token the app mints: it {how}. Tokens expire within an hour; remove that \
                 helper for {url} unless you need it.",
                gitconfig::mask_secrets(value)
            )?;
        }
    }
    // An older helper line of ours (an earlier install.sh wrote one into the user's own section):
    // our reset now comes after it, so it no longer runs; it stays, as unsetup restores it.
    for e in before.iter().filter(|e| {
        e.value.as_deref().is_some_and(gitconfig::is_ours)
            && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                == gitconfig::UrlMatch::All
    }) {
        writeln!(
            o.err,
            "git-credential-github-app: note: an older helper line of ours for {} ({}) no longer runs; \
             remove it if you like: git config {} --unset-all --fixed-value {} {}",
            e.subsection().unwrap_or("every host"),
            e.origin,
            e.scope.option(),
            shell_quote(&e.key),
            gitconfig::mask_secrets(&shell_quote(e.value.as_deref().unwrap_or("")))
        )?;
    }
    for e in path_scoped {
        writeln!(
            o.err,
            "git-credential-github-app: note: helper '{}' for {} ({}) no longer runs for that path; \
             add it again after ours if you need it",
            gitconfig::mask_secrets(e.value.as_deref().unwrap_or("")),
            e.subsection().unwrap_or(""),
            e.origin
        )?;
    }
    for e in conditional {
        writeln!(
            o.err,
            "git-credential-github-app: note: helper '{}' ({}) applies to some repositories only (includeIf), so setup does not repeat it for all of them; in those repositories it no longer runs for {url}: add it after ours in that file if you need it",
            gitconfig::mask_secrets(e.value.as_deref().unwrap_or("")),
            e.origin
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The helpers for every request to the target's host in the files that `includeIf` sections of
/// the system and global config include (whatever their condition).
fn included_helpers(target: &Target) -> Result<Vec<Entry>> {
    let mut found = Vec::new();
    for include in gitconfig::unconditional_entries(r"^includeif\..*\.path$")? {
        let (Some(value), Some(from)) = (include.value.as_deref(), include.file()) else {
            continue;
        };
        let path = match (value.strip_prefix("~/"), dirs::home_dir()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => from
                .parent()
                .map_or_else(|| PathBuf::from(value), |dir| dir.join(value)),
        };
        let Ok(entries) = gitconfig::entries_of_file(&path, r"^credential\.(.*\.)?helper$") else {
            continue;
        };
        found.extend(entries.into_iter().filter(|e| {
            e.value
                .as_deref()
                .is_some_and(|v| !v.is_empty() && !gitconfig::is_ours(v))
                && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                    == gitconfig::UrlMatch::All
        }));
    }
    Ok(found)
}

fn run_unsetup(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let scope = scope_of(args)?;
    let target = Target::resolve(ctx)?;
    let url = target.section_url();
    let file = gitconfig::edit::file_of(scope)?;
    let nothing = |o: &mut Output<'_>| {
        writeln!(
            o.out,
            "Nothing to undo: the {} git config has no setup for {url}.",
            scope.name()
        )
    };
    if !file.exists() {
        nothing(o)?;
        return Ok(ExitCode::SUCCESS);
    }
    let edit = gitconfig::edit::Edit::open(&file)?;
    let section = read_section(&edit, &url)?;
    if !section.is_ours() {
        nothing(o)?;
        return Ok(ExitCode::SUCCESS);
    }
    remove_written(&edit, &url, &section)?;
    // The file stays, even empty: it may be a link into a dotfiles repository.
    let file = edit.commit()?;
    writeln!(
        o.out,
        "Removed the setup for {url} from {}; git's credential config there is as it was before.",
        file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_their_urls() {
        let t = |host: Option<&str>| {
            Target::from_flags(&Flags {
                host: host.map(str::to_owned),
                ..Flags::default()
            })
            .unwrap()
            .section_url()
        };
        assert_eq!(t(None), "https://github.com/");
        assert_eq!(t(Some("ghe.example.com")), "https://ghe.example.com/");
        assert_eq!(t(Some("127.0.0.1:8080")), "http://127.0.0.1:8080/");
        assert_eq!(t(Some("http://localhost:9/")), "http://localhost:9/");
    }

    #[test]
    fn one_scope_at_a_time() {
        let args = |flags: &[&'static str]| Args {
            options: flags.iter().map(|f| (*f, None)).collect(),
            ..Args::default()
        };
        assert_eq!(scope_of(&args(&[])).unwrap(), Scope::Global);
        assert_eq!(scope_of(&args(&["system"])).unwrap(), Scope::System);
        assert_eq!(scope_of(&args(&["local"])).unwrap(), Scope::Local);
        assert!(scope_of(&args(&["local", "system"])).is_err());
    }

    #[test]
    fn a_pin_in_the_uri_is_never_written_into_git_config() {
        for uri in [
            "pkcs11:object=k?module-path=/m.so&pin-value=1234",
            "pkcs11:object=k?PIN-VALUE=1234&module-path=/m.so",
        ] {
            let err = helper_line(&Flags {
                app_id: Some("42".into()),
                private_key: Some(uri.into()),
                ..Flags::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("use pin-source=file:"), "{err}");
            assert!(!err.contains("1234"), "{err}");
        }
    }

    #[test]
    fn key_uris_and_arns_and_least_privilege_pass_through_the_helper_line() {
        let uri = "pkcs11:token=gh;object=app key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/home/me/.pin";
        let arn = "arn:aws:kms:eu-west-1:123456789012:alias/github-app";
        for key in [uri, arn] {
            let line = helper_line(&Flags {
                app_id: Some("42".into()),
                private_key: Some(key.into()),
                permissions: Some("contents:read".into()),
                repo_scoped: true,
                ..Flags::default()
            })
            .unwrap();
            let words = crate::gitconfig::shell_words(&line).unwrap();
            assert_eq!(
                words[1..],
                [
                    "--app-id",
                    "42",
                    "--private-key",
                    key,
                    "--permissions",
                    "contents:read",
                    "--repo-scoped"
                ],
                "{line}"
            );
        }
    }

    #[cfg(windows)]
    #[test]
    fn a_windows_path_with_spaces_is_written_as_git_for_windows_runs_it() {
        // Where a Windows install puts it, and a key in a profile with a space in its name.
        let exe =
            Path::new(r"C:\Program Files\git-credential-github-app\git-credential-github-app.exe");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("First Last").join("app.pem");
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        std::fs::write(&key, "x").unwrap();
        let flags = Flags {
            app_id: Some("42".into()),
            private_key: Some(key.clone()),
            ..Flags::default()
        };
        let line = helper_line_for(exe, &flags).unwrap();
        assert_eq!(
            line,
            format!(
                "!'{}' --app-id 42 --private-key '{}'",
                exe.display(),
                key.display()
            )
        );
        // git runs a `!` line through sh: the program is the .exe, its words come back unchanged.
        assert_eq!(
            gitconfig::program(&line, None, None),
            gitconfig::Program::File(exe.to_path_buf())
        );
        let words = gitconfig::shell_words(&line[1..]).unwrap();
        assert_eq!(
            words,
            [
                exe.to_str().unwrap(),
                "--app-id",
                "42",
                "--private-key",
                key.to_str().unwrap()
            ]
        );
        // This very program, where it runs (a Windows path): the same form.
        let line = helper_line(&flags).unwrap();
        let this = std::env::current_exe().unwrap();
        assert!(
            line.starts_with(&format!("!'{}' ", this.display())),
            "{line}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_helper_line_has_absolute_quoted_paths() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("my app.pem");
        std::fs::write(&key, "x").unwrap();
        let line = helper_line(&Flags {
            app_id: Some("42".into()),
            private_key: Some(key.clone()),
            owners: vec!["acme".into()],
            ..Flags::default()
        })
        .unwrap();
        assert!(line.starts_with('/') || line.starts_with("'/"), "{line}");
        assert!(
            line.ends_with(&format!(
                " --app-id 42 --private-key '{}' --owner acme",
                key.display()
            )),
            "{line}"
        );
    }
}

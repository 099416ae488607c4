//! `setup` and `unsetup`: point git at this helper for one host, and undo it.
//!
//! setup appends its own section to one git config file, spelled with a trailing slash
//! (`[credential "https://github.com/"]`: git matches it exactly like `https://github.com`), so
//! the user's sections are never edited and unsetup can remove exactly what setup wrote. The
//! section holds the empty `helper =` (it drops the helpers git collected so far), our helper
//! line, then the helpers that reset dropped — the user's own, so owners the app does not serve
//! still get credentials — and `useHttpPath = true`. Everything goes through `git config`.

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

The empty line stops helpers configured earlier from answering before this one; they are listed
again after it, so owners the app does not serve still get your usual credentials. The helper
line carries the options given here (--app-id, --private-key, --owner, --cache, …; paths made
absolute). A loopback host is configured as http://HOST. Running it again replaces what it wrote.
A warning names any helper after ours that would store the app's tokens (store, cache, …).

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
Removes the sections setup wrote for the host (default github.com) from the chosen git config
file; the file is left as it was before setup.

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
                bail!("no private key file at {}", path.display());
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
    Ok(words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" "))
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

/// `git config SCOPE ARGS`.
fn git_config(scope: Scope, args: &[&str]) -> Result<String> {
    let mut all = vec!["config", scope.option()];
    all.extend_from_slice(args);
    gitconfig::git(&all)
}

/// setup's sections in `scope` for `target`: (credential entries, http entries).
fn our_entries(scope: Scope, target: &Target) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let url = target.section_url();
    let in_section = |prefix: &str| -> Result<Vec<Entry>> {
        let regex = format!("^{prefix}\\.{}\\.", regex_escape(&url));
        gitconfig::entries(&regex, Some(scope))
    };
    Ok((in_section("credential")?, in_section("http")?))
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

/// Remove setup's sections for `target` from `scope`. `Ok(None)`: there were none. The file the
/// sections were in otherwise.
fn remove_ours(scope: Scope, target: &Target) -> Result<Option<PathBuf>> {
    let url = target.section_url();
    let (credential, http) = our_entries(scope, target)?;
    if credential.is_empty() {
        return Ok(None);
    }
    if !credential
        .iter()
        .any(|e| e.name() == "helper" && e.value.as_deref().is_some_and(gitconfig::is_ours))
    {
        bail!(
            "the {} git config has a [credential \"{url}\"] section that setup did not write; \
             edit it by hand (git config {} --edit)",
            scope.name(),
            scope.option()
        );
    }
    let file = credential.iter().find_map(Entry::file);
    git_config(scope, &["--remove-section", &format!("credential.{url}")])?;
    // setup writes only proactiveAuth there; anything else in that section is the user's.
    if !http.is_empty() && http.iter().all(|e| e.name() == "proactiveauth") {
        git_config(scope, &["--remove-section", &format!("http.{url}")])?;
    }
    Ok(file)
}

fn run_setup(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let scope = scope_of(args)?;
    let target = Target::from_flags(&ctx.flags)?;
    let url = target.section_url();
    if ctx.flags.app_id.is_some() && ctx.flags.private_key.is_none() {
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
    let line = helper_line(&ctx.flags)?;

    // Running again replaces what an earlier setup wrote.
    let replaced = remove_ours(scope, &target)?.is_some();
    // The helpers git runs for this host now, up to the end of the file setup appends to: the
    // empty line will drop them, so they are listed again after ours.
    let before: Vec<Entry> = gitconfig::helper_entries(None)?
        .into_iter()
        .filter(|e| e.scope <= scope)
        .collect();
    let kept: Vec<String> =
        gitconfig::effective_helpers(&before, target.scheme, target.host.as_str())
            .into_iter()
            .filter_map(|e| e.value.clone())
            .filter(|v| !gitconfig::is_ours(v))
            .collect();
    let path_scoped: Vec<&Entry> = before
        .iter()
        .filter(|e| {
            e.value.as_deref().is_some_and(|v| !v.is_empty())
                && gitconfig::url_matches(e.subsection(), target.scheme, target.host.as_str())
                    == gitconfig::UrlMatch::SomePaths
        })
        .collect();

    let key = format!("credential.{url}.helper");
    git_config(scope, &["--add", &key, ""])?;
    git_config(scope, &["--add", &key, &line])?;
    for helper in &kept {
        git_config(scope, &["--add", &key, helper])?;
    }
    git_config(scope, &[&format!("credential.{url}.useHttpPath"), "true"])?;
    if proactive {
        git_config(scope, &[&format!("http.{url}.proactiveAuth"), "basic"])?;
    }

    let file = our_entries(scope, &target)?
        .0
        .iter()
        .find_map(Entry::file)
        .map_or_else(|| scope.name().to_owned(), |f| f.display().to_string());
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
        writeln!(o.out, "        helper = {helper}")?;
    }
    writeln!(o.out, "        useHttpPath = true")?;
    if proactive {
        writeln!(o.out, "    [http \"{url}\"]")?;
        writeln!(o.out, "        proactiveAuth = basic")?;
    }
    writeln!(
        o.out,
        "Check it: git-credential-github-app doctor{}",
        if target.host.as_str() == "github.com" {
            String::new()
        } else {
            format!(" --host {}", target.host.as_str())
        }
    )?;
    writeln!(o.out, "Undo it:  git-credential-github-app unsetup")?;
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
                "git-credential-github-app: warning: helper '{value}' runs after this one, and git hands \
                 it every token the app mints: it {how}. Tokens expire within an hour; remove that \
                 helper for {url} unless you need it."
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
            shell_quote(e.value.as_deref().unwrap_or(""))
        )?;
    }
    for e in path_scoped {
        writeln!(
            o.err,
            "git-credential-github-app: note: helper '{}' for {} ({}) no longer runs for that path; \
             add it again after ours if you need it",
            e.value.as_deref().unwrap_or(""),
            e.subsection().unwrap_or(""),
            e.origin
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_unsetup(ctx: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let scope = scope_of(args)?;
    let target = Target::from_flags(&ctx.flags)?;
    let url = target.section_url();
    match remove_ours(scope, &target)? {
        None => writeln!(
            o.out,
            "Nothing to undo: the {} git config has no setup for {url}.",
            scope.name()
        )?,
        Some(file) => {
            // setup created the file when there was none; an empty one is the same to git.
            if std::fs::metadata(&file).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&file);
            }
            writeln!(
                o.out,
                "Removed the setup for {url} from {}; git's credential config there is as it was before.",
                file.display()
            )?;
        }
    }
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

//! The command line: flags, `--help`, `--version`, the operation git appends, and the process
//! boundary (stdin, stdout, stderr, exit status). The only place that prints the final error.

use crate::app::{self, Io, one_line};
use crate::config::{self, Flags};
use crate::protocol::Operation;
use crate::state::State;
use crate::trace;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

const HELP: &str = "\
git-credential-github-app — git credential helper that authenticates as a GitHub App

git runs it for each HTTPS request that needs credentials. For a configured host it takes the owner
from the repository path, finds the app's installation for that owner, mints an installation token
(cached in the OS keyring or a private file until shortly before it expires) and answers
username=x-access-token with the token. Other hosts and owners are left to the next helper.

USAGE:
    git-credential-github-app [OPTIONS] <get|store|erase>

OPTIONS:
    --app-id ID             App ID or client ID (Iv…) of the GitHub App   [env GITHUB_APP_ID]
    --private-key PATH      the app's private key (.pem)      [env GITHUB_APP_PRIVATE_KEY_PATH,
                            or the PEM text itself in GITHUB_APP_PRIVATE_KEY]
    --installation-id ID    use this installation instead of looking it up [env GITHUB_APP_INSTALLATION_ID]
    --host HOST             host the app serves (default github.com; a GHES or *.ghe.com host)
                                                                          [env GITHUB_APP_HOST]
    --api-url URL           REST API base (default derived from the host)  [env GITHUB_APP_API_URL]
    --owner OWNER           serve only this owner (repeatable; default: any owner with the app)
    --cache MODE            auto (keyring, else file), keyring, file or none   (default auto)
    --refresh-margin DUR    mint a new token when the cached one has less left (default 10m)
    --timeout DUR           time budget for the API calls of one get, retries included (default 30s)
    --username NAME         username to answer with (default x-access-token)
    --config PATH           config file for several apps
                            (default ~/.config/git-credential-github-app/config.toml)
    -v, --verbose           trace each step on stderr, tokens masked
                            [env GIT_CREDENTIAL_GITHUB_APP_TRACE=1 or =/path/to/log]
    -h, --help              this text
    -V, --version           the version

EXAMPLE (~/.gitconfig):
    [credential \"https://github.com\"]
        helper =
        helper = github-app --app-id 123456 --private-key /home/me/.config/my-app.pem
        useHttpPath = true

    Then: git clone https://github.com/acme/private-repo.git
    Check: printf 'protocol=https\\nhost=github.com\\npath=acme/private-repo.git\\n' | git credential fill
";

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Help,
    Version,
    Run(Operation),
    /// An operation this helper does not implement: ignored silently, as git expects.
    Ignore,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<(Flags, Command), String> {
    use lexopt::prelude::*;
    /// The option's value, as UTF-8 text.
    fn text(parser: &mut lexopt::Parser) -> Result<String, String> {
        let value = parser.value().map_err(|e| e.to_string())?;
        value
            .into_string()
            .map_err(|_| "an option value is not UTF-8".to_owned())
    }
    let mut flags = Flags::default();
    let mut command = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("app-id") => flags.app_id = Some(text(&mut parser)?),
            Long("private-key") => flags.private_key = Some(text(&mut parser)?.into()),
            Long("installation-id") => flags.installation_id = Some(text(&mut parser)?),
            Long("host") => flags.host = Some(text(&mut parser)?),
            Long("api-url") => flags.api_url = Some(text(&mut parser)?),
            Long("owner") => flags.owners.push(text(&mut parser)?),
            Long("cache") => flags.cache = Some(text(&mut parser)?),
            Long("refresh-margin") => flags.refresh_margin = Some(text(&mut parser)?),
            Long("timeout") => flags.timeout = Some(text(&mut parser)?),
            Long("username") => flags.username = Some(text(&mut parser)?),
            Long("config") => flags.config = Some(text(&mut parser)?.into()),
            Short('v') | Long("verbose") => flags.verbose = true,
            Short('h') | Long("help") => return Ok((flags, Command::Help)),
            Short('V') | Long("version") => return Ok((flags, Command::Version)),
            Value(op) => {
                // git appends the operation last; a later word replaces an earlier one.
                let op = op.to_string_lossy().into_owned();
                command = Some(match Operation::from_arg(&op) {
                    Some(op) => Command::Run(op),
                    None => Command::Ignore,
                });
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    command
        .map(|c| (flags, c))
        .ok_or_else(|| "no operation given (get, store or erase); see --help".to_owned())
}

/// The whole process: parse argv, read stdin, run, print the one error line, choose the exit code.
pub fn main() -> ExitCode {
    let protected = crate::secret::protect_process();
    install_panic_hook();
    let (flags, command) = match parse_args(std::env::args_os().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("git-credential-github-app: {e}");
            return ExitCode::from(2);
        }
    };
    let op = match command {
        Command::Help => {
            let _ = std::io::stdout().write_all(HELP.as_bytes());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("git-credential-github-app {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Ignore => {
            let _ = read_stdin();
            return ExitCode::SUCCESS;
        }
        Command::Run(op) => op,
    };
    let input = read_stdin();
    if op == Operation::Store {
        return ExitCode::SUCCESS; // nothing to store, nothing to say (git's lib-credential checks stderr)
    }
    trace::init(flags.verbose, std::env::var(config::env::TRACE).ok());
    if let Err(e) = protected {
        trace!("{e}");
    }
    let stdout = &mut std::io::stdout().lock();
    let stderr = &mut std::io::stderr();
    let mut io = Io { stdout, stderr };
    let result = input.map_err(anyhow::Error::from).and_then(|input| {
        let config = config::resolve(&flags, &|name| std::env::var(name).ok())?;
        if config.apps.is_empty() && op == Operation::Get {
            anyhow::bail!(
                "no GitHub App configured: pass --app-id and --private-key, set GITHUB_APP_ID, or list apps in {}",
                config::default_config_path().map_or("the config file".into(), |p| p.display().to_string())
            );
        }
        app::run(op, &input, &config, &State::open(), &mut io)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "git-credential-github-app: {}",
                one_line(&e)
            );
            ExitCode::FAILURE
        }
    }
}

/// Read the request from stdin: to its blank line or end of input, at most one byte past the
/// protocol's size limit (the parser refuses that).
fn read_stdin() -> std::io::Result<Vec<u8>> {
    crate::protocol::read_request(&mut std::io::stdin().lock())
}

/// A bug must not dump a backtrace (or anything else) into git's output: one line, exit 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!("git-credential-github-app: internal error{place}; please report it");
        std::process::exit(101);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Flags, Command), String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn operation_is_the_last_word() {
        let (flags, cmd) = parse(&[
            "--app-id",
            "1",
            "--private-key=/k.pem",
            "--owner",
            "a",
            "--owner",
            "b",
            "get",
        ])
        .unwrap();
        assert!(matches!(cmd, Command::Run(Operation::Get)));
        assert_eq!(flags.app_id.as_deref(), Some("1"));
        assert_eq!(
            flags.private_key.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        assert_eq!(flags.owners, ["a", "b"]);
        assert!(matches!(parse(&["capability"]).unwrap().1, Command::Ignore));
        assert!(matches!(
            parse(&["get", "erase"]).unwrap().1,
            Command::Run(Operation::Erase)
        ));
    }

    #[test]
    fn bad_command_lines() {
        assert!(parse(&[]).unwrap_err().contains("no operation"));
        assert!(parse(&["--nope", "get"]).is_err());
        assert!(parse(&["--app-id"]).is_err());
        assert!(matches!(parse(&["--help"]).unwrap().1, Command::Help));
        assert!(matches!(parse(&["-V"]).unwrap().1, Command::Version));
    }
}

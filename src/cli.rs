//! The command line: flags, `--help`, `--version`, the operation git appends, and the process
//! boundary (stdin, stdout, stderr, exit status). The only place that prints the final error.

use crate::about;
use crate::app::{self, Io, one_line};
use crate::commands::{self, Args, Command, Context, Output};
use crate::config;
use crate::config::flags::{self, Flags};
use crate::protocol::{self, Operation};
use crate::state::State;
use crate::trace;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

const USAGE: &str = "\
USAGE:
    git-credential-github-app [OPTIONS] <get|store|erase>      git runs these (a request on stdin)
    git-credential-github-app [OPTIONS] <COMMAND> [ARGS]       you run these
";

/// The word that says what to do.
#[derive(Clone, Copy)]
enum Word {
    /// An operation git sends.
    Git(Operation),
    /// A command a person types.
    Command(&'static Command),
    /// Anything else. From git it is ignored silently, as git expects (`capability`, future
    /// operations); from a terminal it is a mistake.
    Unknown,
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Word::Git(op) => write!(f, "Git({op:?})"),
            Word::Command(c) => write!(f, "Command({})", c.name),
            Word::Unknown => write!(f, "Unknown"),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Default)]
struct Parsed {
    flags: Flags,
    help: bool,
    version: bool,
    word: Option<Word>,
    /// The word as typed, for messages.
    word_text: String,
    /// The command a word that is none is a typo of (within two edits).
    typo_of: Option<&'static str>,
    args: Args,
}

/// Parse global options, the word, and the command's own options and words, in any order (git
/// appends its operation last; people type the command first).
fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    commands: &[&'static Command],
) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let text = flags::option_text;
    /// A global option from [`flags::GLOBAL`].
    fn global(
        p: &mut Parsed,
        option: Option<&flags::GlobalOption>,
        parser: &mut lexopt::Parser,
    ) -> Result<(), String> {
        let Some(option) = option else {
            return Ok(());
        };
        match option.name {
            flags::Name::Help => p.help = true,
            flags::Name::Version => p.version = true,
            name => {
                let value = match option.value {
                    Some(_) => Some(flags::option_text(parser)?),
                    None => None,
                };
                p.flags.set(name, value);
            }
        }
        Ok(())
    }
    let mut p = Parsed::default();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        if let Some(Word::Command(c)) = p.word
            && c.trailing
            && let Ok(mut raw) = parser.raw_args()
            && raw.peek().is_some_and(|a| a == "--")
        {
            raw.next();
            p.args.trailing = raw.collect();
            break;
        }
        let Some(arg) = parser.next().map_err(|e| e.to_string())? else {
            break;
        };
        match arg {
            Long(name) if flags::find_long(name).is_some() => {
                global(&mut p, flags::find_long(name), &mut parser)?
            }
            Short(c) if flags::find_short(c).is_some() => {
                global(&mut p, flags::find_short(c), &mut parser)?
            }
            Long(name) => {
                // A command's own option, before or after the command word. Before it, any
                // command's spelling is accepted here and checked once the word is known.
                let known: Vec<&'static Command> = match p.word {
                    Some(Word::Command(c)) => vec![c],
                    Some(_) => Vec::new(),
                    None => commands.to_vec(),
                };
                let Some(opt) = known
                    .iter()
                    .flat_map(|c| c.options.iter())
                    .find(|o| o.long == name)
                    .copied()
                else {
                    return Err(match p.word {
                        Some(Word::Command(c)) => format!("{} has no option --{name}", c.name),
                        _ => format!("unknown option --{name}"),
                    });
                };
                let value = match opt.value {
                    Some(_) => Some(text(&mut parser)?),
                    None => None,
                };
                p.args.options.push((opt.long, value));
            }
            Value(word) => {
                let word = word.to_string_lossy().into_owned();
                match p.word {
                    Some(Word::Command(c)) => {
                        if p.args.positional.len() >= c.max_positional {
                            return Err(format!("{} does not take '{word}'", c.name));
                        }
                        p.args.positional.push(word);
                    }
                    None if word == "help" && !p.help => p.help = true,
                    // A mistyped command keeps its place: the words after it are its arguments
                    // (`tokne acme` is about `tokne`).
                    Some(Word::Unknown) if p.typo_of.is_some() => {}
                    // git appends the operation last; a later word replaces an earlier one.
                    _ => {
                        p.word = Some(match Operation::from_arg(&word) {
                            Some(op) => Word::Git(op),
                            None => commands
                                .iter()
                                .copied()
                                .find(|c| c.name == word)
                                .map_or(Word::Unknown, Word::Command),
                        });
                        if let Some(Word::Unknown) = p.word {
                            p.typo_of = typo_of(&word, commands).map(|c| c.name);
                        }
                        p.word_text = word;
                    }
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if !p.args.options.is_empty() {
        match p.word {
            Some(Word::Command(c)) => {
                if let Some((name, _)) = p
                    .args
                    .options
                    .iter()
                    .find(|(name, _)| !c.options.iter().any(|o| o.long == *name))
                {
                    return Err(format!("{} has no option --{name}", c.name));
                }
            }
            _ if p.help => {}
            _ => return Err(format!("unknown option --{}", p.args.options[0].0)),
        }
    }
    Ok(p)
}

/// The command `word` is a typo of: the nearest within two edits (a swap of neighbours counts
/// as one), if any, and only when fewer than half of the word's letters are off — a one- or
/// two-letter word (an operation of a newer git) is no typo of `man`.
fn typo_of(word: &str, commands: &[&'static Command]) -> Option<&'static Command> {
    let letters = word.chars().count();
    commands
        .iter()
        .map(|c| (edit_distance(word, c.name), *c))
        .filter(|(d, _)| *d <= 2 && 2 * d < letters)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
/// adjacent characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The usage lines, for mistakes.
fn usage() -> String {
    let names: Vec<&str> = commands::ALL.iter().map(|c| c.name).collect();
    format!(
        "usage: git-credential-github-app [OPTIONS] <get|store|erase>   (git runs these, a request on stdin)\n   \
         or: git-credential-github-app [OPTIONS] <{}> [ARGS]   (see --help)\n",
        names.join("|")
    )
}

/// The main `--help`: the description, the commands, the global options.
fn help() -> String {
    let mut text = format!(
        "{} — {}\n\n{}\n{USAGE}",
        about::PROGRAM,
        about::SUMMARY,
        about::DESCRIPTION
    );
    let width = commands::ALL
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    text.push_str("\nCOMMANDS (COMMAND --help for each):\n");
    for c in commands::ALL {
        text.push_str(&format!("    {:width$}  {}\n", c.name, c.summary));
    }
    text.push_str("\nOPTIONS (before or after the operation or command):\n");
    text.push_str(&flags::help());
    text.push_str(&format!(
        "\nSET UP (writes the lines below, keeping your other helpers after ours; check with doctor):\n{}\nEXAMPLE (~/.gitconfig):\n{}",
        about::SET_UP,
        about::EXAMPLE
    ));
    text
}

/// `COMMAND --help`.
fn command_help(c: &Command) -> String {
    format!(
        "usage: git-credential-github-app {}\n\n{}\nThe helper's options (--app-id, --private-key, --host, --config, …; see\ngit-credential-github-app --help) are accepted before or after the command word.\n",
        c.usage, c.help
    )
}

/// The whole process: parse argv, read stdin, run, print the one error line, choose the exit code.
pub fn main() -> ExitCode {
    let protected = crate::secret::protect_process();
    install_panic_hook();
    let parsed = match parse_args(std::env::args_os().skip(1), commands::ALL) {
        Ok(parsed) => parsed,
        Err(e) => {
            // The usage of the command named on the line, if any.
            let command = std::env::args_os()
                .skip(1)
                .find_map(|a| a.to_str().and_then(commands::find));
            match command {
                Some(c) => eprintln!(
                    "git-credential-github-app: {e}\nusage: git-credential-github-app {} (see {} --help)",
                    c.usage, c.name
                ),
                None => eprint!("git-credential-github-app: {e}\n{}", usage()),
            }
            return ExitCode::from(2);
        }
    };
    if parsed.version {
        println!("git-credential-github-app {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if parsed.help {
        let text = match parsed.word {
            Some(Word::Command(c)) => command_help(c),
            _ => help(),
        };
        let _ = std::io::stdout().write_all(text.as_bytes());
        return ExitCode::SUCCESS;
    }
    let op = match parsed.word {
        None => {
            eprint!(
                "git-credential-github-app: no operation or command given\n{}",
                usage()
            );
            return ExitCode::from(2);
        }
        Some(Word::Command(c)) => return run_command(c, parsed),
        // A word within two edits of a command is a typo, from a terminal or not: git's own
        // operations are never that close to one, so git is not answered with an error.
        Some(Word::Unknown) if parsed.typo_of.is_some() => {
            let suggestion = parsed.typo_of.unwrap_or_default();
            eprint!(
                "git-credential-github-app: unknown command '{}'; did you mean '{suggestion}'?\n{}",
                protocol::printable(&parsed.word_text),
                usage()
            );
            return ExitCode::from(2);
        }
        // A person typing a word: never wait for a request that will not come.
        Some(word) if std::io::stdin().is_terminal() => {
            match word {
                Word::Git(_) => eprint!(
                    "git-credential-github-app: {} reads a request from git on stdin, not from a terminal (try: git credential fill)\n{}",
                    parsed.word_text,
                    usage()
                ),
                _ => eprint!(
                    "git-credential-github-app: unknown command '{}'\n{}",
                    protocol::printable(&parsed.word_text),
                    usage()
                ),
            }
            return ExitCode::from(2);
        }
        Some(Word::Unknown) => {
            let _ = read_stdin();
            return ExitCode::SUCCESS;
        }
        Some(Word::Git(op)) => op,
    };
    let flags = parsed.flags;
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

/// Run a command: its result on stdout, its messages and its one error line on stderr.
fn run_command(c: &Command, parsed: Parsed) -> ExitCode {
    trace::init(parsed.flags.verbose, std::env::var(config::env::TRACE).ok());
    let ctx = Context {
        flags: parsed.flags,
        getenv: commands::real_env,
    };
    let stdout = &mut std::io::stdout().lock();
    let stderr = &mut std::io::stderr();
    let mut output = Output {
        out: stdout,
        err: stderr,
    };
    let result = (c.run)(&ctx, &parsed.args, &mut output);
    let _ = output.out.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(output.err, "git-credential-github-app: {}", one_line(&e));
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
    use crate::commands::Opt;

    fn nothing(_: &Context, _: &Args, _: &mut Output<'_>) -> anyhow::Result<ExitCode> {
        Ok(ExitCode::SUCCESS)
    }
    static DOC: Command = Command {
        name: "doc",
        summary: "",
        usage: "doc [--repo R] [--json]",
        help: "",
        options: &[Opt::value("repo", "R"), Opt::flag("json")],
        max_positional: 0,
        trailing: false,
        run: nothing,
    };
    static EXEC: Command = Command {
        name: "exec",
        summary: "",
        usage: "exec OWNER -- CMD…",
        help: "",
        options: &[Opt::flag("json")],
        max_positional: 1,
        trailing: true,
        run: nothing,
    };
    const TABLE: &[&Command] = &[&DOC, &EXEC];

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(OsString::from), TABLE)
    }

    fn word(args: &[&str]) -> String {
        format!("{:?}", parse(args).unwrap().word)
    }

    #[test]
    fn operation_is_the_last_word() {
        let p = parse(&[
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
        assert!(matches!(p.word, Some(Word::Git(Operation::Get))));
        assert_eq!(p.flags.app_id.as_deref(), Some("1"));
        assert_eq!(
            p.flags.private_key.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        assert_eq!(p.flags.owners, ["a", "b"]);
        assert_eq!(word(&["capability"]), "Some(Unknown)");
        assert_eq!(word(&["get", "erase"]), "Some(Git(Erase))");
    }

    #[test]
    fn options_before_or_after_the_command_word() {
        for args in [
            &["--app-id", "7", "doc", "--repo", "a/b", "--json"][..],
            &["--repo=a/b", "--json", "doc", "--app-id", "7"],
            &["--json", "--repo", "a/b", "--app-id=7", "doc"],
        ] {
            let p = parse(args).unwrap();
            assert_eq!(format!("{:?}", p.word), "Some(Command(doc))", "{args:?}");
            assert_eq!(p.flags.app_id.as_deref(), Some("7"));
            assert_eq!(p.args.value("repo"), Some("a/b"));
            assert!(p.args.flag("json"));
            assert!(!p.args.flag("repo-x"));
        }
    }

    #[test]
    fn words_and_trailing_arguments() {
        let p = parse(&["exec", "acme", "--json", "--", "gh", "-v", "--json", "--"]).unwrap();
        assert_eq!(p.args.positional, ["acme"]);
        assert!(p.args.flag("json"));
        assert_eq!(p.args.trailing, ["gh", "-v", "--json", "--"]);
        // a global option after the words still counts
        let p = parse(&["exec", "acme", "-v", "--", "x"]).unwrap();
        assert!(p.flags.verbose);
        assert_eq!(p.args.trailing, ["x"]);
        assert!(
            parse(&["exec", "a", "b"])
                .unwrap_err()
                .contains("does not take 'b'")
        );
        assert!(
            parse(&["doc", "x"])
                .unwrap_err()
                .contains("does not take 'x'")
        );
    }

    #[test]
    fn help_for_a_command_or_for_all() {
        let p = parse(&["doc", "--help"]).unwrap();
        assert!(p.help && matches!(p.word, Some(Word::Command(c)) if c.name == "doc"));
        let p = parse(&["-h", "doc"]).unwrap();
        assert!(p.help && matches!(p.word, Some(Word::Command(c)) if c.name == "doc"));
        let p = parse(&["help", "exec"]).unwrap();
        assert!(p.help && matches!(p.word, Some(Word::Command(c)) if c.name == "exec"));
        let p = parse(&["--help"]).unwrap();
        assert!(p.help && p.word.is_none());
    }

    #[test]
    fn bad_command_lines() {
        assert!(parse(&[]).unwrap().word.is_none());
        assert!(parse(&["--nope", "get"]).is_err());
        assert!(parse(&["--app-id"]).is_err());
        assert_eq!(
            parse(&["exec", "--repo", "x"]).unwrap_err(),
            "exec has no option --repo"
        );
        // an option of another command, given before the word
        assert_eq!(
            parse(&["--repo", "x", "exec"]).unwrap_err(),
            "exec has no option --repo"
        );
        // git's operations take no command options
        assert_eq!(
            parse(&["--json", "get"]).unwrap_err(),
            "unknown option --json"
        );
        assert_eq!(
            parse(&["get", "--json"]).unwrap_err(),
            "unknown option --json"
        );
        assert!(parse(&["-V"]).unwrap().version);
    }

    #[test]
    fn a_word_within_two_edits_of_a_command_is_a_typo_of_it() {
        assert_eq!(edit_distance("tokne", "token"), 1);
        assert_eq!(edit_distance("doctr", "doctor"), 1);
        assert_eq!(edit_distance("forgot", "forget"), 1);
        assert_eq!(edit_distance("", "exec"), 4);
        let name = |w: &str| typo_of(w, commands::ALL).map(|c| c.name);
        assert_eq!(name("doctr"), Some("doctor"));
        assert_eq!(name("tokne"), Some("token"));
        assert_eq!(name("stauts"), Some("status"));
        assert_eq!(name("installation"), Some("installations"));
        // git's own words, and words far from any command, are not typos.
        for word in [
            "capability",
            "get",
            "store",
            "erase",
            "fill",
            "approve",
            "reject",
            "x",
            "a",
            "ex",
            "mn",
        ] {
            assert_eq!(name(word), None, "{word}");
        }
        // The typo keeps its place: the word after it is its argument.
        let p = parse_args(["tokne", "acme"].map(OsString::from), commands::ALL).unwrap();
        assert_eq!(p.word_text, "tokne");
        assert_eq!(p.typo_of, Some("token"));
    }

    #[test]
    fn commands_do_not_shadow_global_options() {
        for c in commands::ALL {
            for o in c.options {
                assert!(
                    flags::find_long(o.long).is_none(),
                    "{} --{}",
                    c.name,
                    o.long
                );
            }
            assert!(!["get", "store", "erase", "help"].contains(&c.name));
        }
    }
}

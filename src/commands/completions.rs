//! `completions SHELL`: a completion script for bash, zsh or fish on stdout, written from the
//! same tables the command line is parsed with — the global options ([`GLOBAL`]) and the
//! commands ([`super::ALL`], each with its own options) — so a new option or command completes
//! as soon as it is in its table.

use super::{Args, Command, Context, Opt, Output};
use crate::about::PROGRAM;
use crate::config::flags::{GLOBAL, GlobalOption};
use anyhow::{Result, bail};
use std::fmt::Write as _;
use std::process::ExitCode;

/// The shells a script is written for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

pub static COMMAND: Command = Command {
    name: "completions",
    summary: "print a shell completion script (bash, zsh or fish) for packagers and install.sh",
    usage: "completions <bash|zsh|fish>",
    help: "\
Prints the completion script for the shell on stdout: the commands, their options and the global
options, as this binary knows them. Load it, or install it where the shell looks:

    bash:  git-credential-github-app completions bash > ~/.local/share/bash-completion/completions/git-credential-github-app
    zsh:   git-credential-github-app completions zsh > \"${fpath[1]}/_git-credential-github-app\"
    fish:  git-credential-github-app completions fish > ~/.config/fish/completions/git-credential-github-app.fish

or for this shell only: source <(git-credential-github-app completions bash). install.sh installs
the bash script (and fish's, where ~/.config/fish exists). Regenerate them after an upgrade.
",
    options: &[],
    max_positional: 1,
    trailing: false,
    run,
};

fn run(_: &Context, args: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    let script = match args.positional.first().map(String::as_str) {
        Some("bash") => bash(super::ALL),
        Some("zsh") => zsh(super::ALL),
        Some("fish") => fish(super::ALL),
        Some(other) => bail!(
            "no completions for '{}': choose bash, zsh or fish",
            crate::protocol::printable(other)
        ),
        None => bail!("name the shell; usage: {PROGRAM} {}", COMMAND.usage),
    };
    o.out.write_all(script.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// How an option is spelt on the command line, and what its value is.
struct Spelling {
    /// `--long` or `-c`.
    word: String,
    /// The value's name, for an option that takes one.
    value: Option<&'static str>,
}

impl Spelling {
    /// Whether the value is a file (a path): completed with file names.
    fn is_path(&self) -> bool {
        self.value.is_some_and(|v| v.contains("PATH"))
    }
}

/// Every spelling of the global options that have a flag, in `--help` order.
fn global_spellings() -> Vec<Spelling> {
    let mut out = Vec::new();
    for o in GLOBAL {
        if let Some(c) = o.short {
            out.push(Spelling {
                word: format!("-{c}"),
                value: o.value,
            });
        }
        if let Some(long) = o.long {
            out.push(Spelling {
                word: format!("--{long}"),
                value: o.value,
            });
        }
    }
    out
}

fn command_spelling(o: &Opt) -> Spelling {
    Spelling {
        word: format!("--{}", o.long),
        value: o.value,
    }
}

/// The words a command's positional argument is one of, when they are a closed set.
fn choices(c: &Command) -> &'static [&'static str] {
    if c.name == COMMAND.name { SHELLS } else { &[] }
}

/// A global option's help on one line.
fn one_line(o: &GlobalOption) -> String {
    o.help.replace('\n', " ")
}

/// What a command's own `--long` does: the text beside it in the command's `OPTIONS:` help
/// (with its continuation lines, indented to that text), if it is described there.
pub fn option_help(c: &Command, long: &str) -> Option<String> {
    let mut lines = c.help.lines().skip_while(|l| l.trim_end() != "OPTIONS:");
    let (column, first) = lines.find_map(|line| {
        let rest = line.trim_start().strip_prefix("--")?.strip_prefix(long)?;
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None; // --global for --glob
        }
        let (_, text) = rest.split_once("  ")?;
        let text = text.trim_start();
        Some((line.len() - text.len(), text.trim_end()))
    })?;
    let mut help = first.to_owned();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        if indent != column || line.trim().is_empty() {
            break;
        }
        help.push(' ');
        help.push_str(line.trim());
    }
    Some(help)
}

/// The bash script: a function for `complete -F`.
pub fn bash(commands: &[&Command]) -> String {
    let globals = global_spellings();
    let mut takes_value: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let own: Vec<Spelling> = commands
        .iter()
        .flat_map(|c| c.options.iter().map(command_spelling))
        .collect();
    for s in globals.iter().chain(&own) {
        if s.value.is_some() && !takes_value.contains(&s.word) {
            takes_value.push(s.word.clone());
        }
        if s.is_path() && !paths.contains(&s.word) {
            paths.push(s.word.clone());
        }
    }
    let words = |list: &[String]| list.join(" ");
    let global_words: Vec<String> = globals.iter().map(|s| s.word.clone()).collect();
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    let function = format!("_{}", PROGRAM.replace('-', "_"));
    let mut s = String::new();
    let _ = write!(
        s,
        "\
# bash completion for {PROGRAM}
# Written by `{PROGRAM} completions bash`; regenerate it after an upgrade.
{function}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    local commands='{commands}'
    local global='{global}'
    local takes_value=' {takes_value} '
    local paths=' {paths} '
    local command='' pending='' word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if [[ -n $pending ]]; then
            pending=''
        elif [[ $word == -- && -n $command ]]; then
            # After --: the command to run, then its own arguments.
            if ((i + 1 == COMP_CWORD)); then
                COMPREPLY=($(compgen -c -- \"$cur\"))
            else
                compopt -o default 2>/dev/null
                COMPREPLY=()
            fi
            return
        elif [[ $takes_value == *\" $word \"* ]]; then
            pending=$word
        elif [[ -z $command && $word != -* && \" $commands \" == *\" $word \"* ]]; then
            command=$word
        fi
    done
    if [[ -n $pending ]]; then
        if [[ $paths == *\" $pending \"* ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- \"$cur\"))
        else
            COMPREPLY=()
        fi
        return
    fi
    local options='' choices=''
    case $command in
",
        commands = names.join(" "),
        global = words(&global_words),
        takes_value = words(&takes_value),
        paths = words(&paths),
    );
    for c in commands {
        let options: Vec<String> = c.options.iter().map(|o| format!("--{}", o.long)).collect();
        let _ = writeln!(
            s,
            "        {}) options='{}' choices='{}' ;;",
            c.name,
            options.join(" "),
            choices(c).join(" ")
        );
    }
    let _ = write!(
        s,
        "\
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W \"$global $options\" -- \"$cur\"))
    elif [[ -z $command ]]; then
        COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))
    else
        COMPREPLY=($(compgen -W \"$choices\" -- \"$cur\"))
    fi
}}
complete -F {function} {PROGRAM}
"
    );
    s
}

/// Text inside a zsh `_arguments` spec, itself inside single quotes.
fn zsh_text(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        match ch {
            '\'' => out.push_str("'\\''"),
            '\\' | '[' | ']' | ':' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

/// One `_arguments` spec for an option: `'--long[help]:VALUE:action'`.
fn zsh_spec(s: &Spelling, help: &str, repeatable: bool, exclusive: &[String]) -> String {
    let mut spec = String::from("'");
    if exclusive.len() > 1 {
        let _ = write!(spec, "({})", exclusive.join(" "));
    }
    if repeatable {
        spec.push('*');
    }
    let _ = write!(spec, "{}[{}]", s.word, zsh_text(help));
    if let Some(value) = s.value {
        let action = if s.is_path() { "_files" } else { " " };
        let _ = write!(spec, ":{}:{action}", zsh_text(value));
    }
    spec.push('\'');
    spec
}

/// The zsh script: `#compdef`, for a directory on `$fpath` or for `source`.
pub fn zsh(commands: &[&Command]) -> String {
    let function = format!("_{PROGRAM}");
    let mut s = format!(
        "\
#compdef {PROGRAM}
# zsh completion for {PROGRAM}
# Written by `{PROGRAM} completions zsh`; regenerate it after an upgrade.

{function}() {{
    local curcontext=$curcontext state state_descr line ret=1
    typeset -A opt_args
    local -a global=(
"
    );
    for o in GLOBAL {
        let spellings: Vec<Spelling> = o
            .short
            .map(|c| format!("-{c}"))
            .into_iter()
            .chain(o.long.map(|l| format!("--{l}")))
            .map(|word| Spelling {
                word,
                value: o.value,
            })
            .collect();
        let words: Vec<String> = spellings.iter().map(|s| s.word.clone()).collect();
        let repeatable = o.config_key == Some("owners");
        for sp in &spellings {
            let _ = writeln!(
                s,
                "        {}",
                zsh_spec(sp, &one_line(o), repeatable, &words)
            );
        }
    }
    s.push_str(
        "    )
    _arguments -C -s $global ': :->command' '*:: :->argument' && ret=0
    case $state in
    command)
        local -a commands=(
",
    );
    for c in commands {
        let _ = writeln!(
            s,
            "            '{}:{}'",
            zsh_text(c.name),
            zsh_text(c.summary)
        );
    }
    s.push_str(
        "        )
        _describe -t commands command commands && ret=0
        ;;
    argument)
        curcontext=${curcontext%:*:*}:$service-$words[1]:
        case $words[1] in
",
    );
    for c in commands {
        let mut specs: Vec<String> = c
            .options
            .iter()
            .map(|o| {
                zsh_spec(
                    &command_spelling(o),
                    &option_help(c, o.long).unwrap_or_default(),
                    false,
                    &[],
                )
            })
            .collect();
        let choices = choices(c);
        if !choices.is_empty() {
            specs.push(format!("':{}:({})'", c.name, choices.join(" ")));
        } else if c.max_positional > 0 {
            specs.push("': :'".into());
        }
        if c.trailing {
            specs.push("'*:: :_normal'".into());
        }
        let _ = writeln!(
            s,
            "        {}) _arguments -s $global {} && ret=0 ;;",
            c.name,
            specs.join(" ")
        );
    }
    let _ = write!(
        s,
        "        esac
        ;;
    esac
    return ret
}}

if [[ $funcstack[1] == {function} ]]; then
    {function} \"$@\"
else
    compdef {function} {PROGRAM}
fi
"
    );
    s
}

/// Text inside fish single quotes.
fn fish_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('\n', " ")
}

/// The fish script: `complete` lines, for `~/.config/fish/completions`.
pub fn fish(commands: &[&Command]) -> String {
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    let head = format!("complete -c {PROGRAM}");
    let mut s = format!(
        "\
# fish completion for {PROGRAM}
# Written by `{PROGRAM} completions fish`; regenerate it after an upgrade.
{head} -f
"
    );
    let no_command = format!("not __fish_seen_subcommand_from {}", names.join(" "));
    for c in commands {
        let _ = writeln!(
            s,
            "{head} -n '{no_command}' -a {} -d '{}'",
            c.name,
            fish_text(c.summary)
        );
    }
    let option =
        |s: &mut String, condition: &str, sp: &Spelling, short: Option<char>, help: &str| {
            let mut line = head.clone();
            if !condition.is_empty() {
                let _ = write!(line, " -n '{condition}'");
            }
            if let Some(c) = short {
                let _ = write!(line, " -s {c}");
            }
            if let Some(long) = sp.word.strip_prefix("--") {
                let _ = write!(line, " -l {long}");
            }
            match (sp.value, sp.is_path()) {
                (Some(_), true) => line.push_str(" -r -F"),
                (Some(_), false) => line.push_str(" -x"),
                (None, _) => {}
            }
            if let Some(value) = sp.value {
                let _ = write!(line, " -d '{}: {}'", fish_text(value), fish_text(help));
            } else {
                let _ = write!(line, " -d '{}'", fish_text(help));
            }
            s.push_str(&line);
            s.push('\n');
        };
    for o in GLOBAL {
        let word = match (o.long, o.short) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(c)) => format!("-{c}"),
            (None, None) => continue,
        };
        let sp = Spelling {
            word,
            value: o.value,
        };
        option(&mut s, "", &sp, o.short, &one_line(o));
    }
    for c in commands {
        let condition = format!("__fish_seen_subcommand_from {}", c.name);
        for o in c.options {
            let help = option_help(c, o.long).unwrap_or_default();
            option(&mut s, &condition, &command_spelling(o), None, &help);
        }
        let choices = choices(c);
        if !choices.is_empty() {
            let _ = writeln!(s, "{head} -n '{condition}' -a '{}'", choices.join(" "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of every global option (`--long`, `-c`), and every command and its options,
    /// is in the script (a new row in a table shows up without touching this file).
    fn assert_complete(shell: &str, script: &str, has: impl Fn(&str) -> bool) {
        for o in GLOBAL {
            for word in o
                .long
                .map(|l| format!("--{l}"))
                .into_iter()
                .chain(o.short.map(|c| format!("-{c}")))
            {
                assert!(has(&word), "{shell}: {word}");
            }
        }
        for c in super::super::ALL {
            assert!(script.contains(c.name), "{shell}: {}", c.name);
            for o in c.options {
                assert!(
                    has(&format!("--{}", o.long)),
                    "{shell}: {} --{}",
                    c.name,
                    o.long
                );
            }
        }
    }

    #[test]
    fn every_option_and_command_is_in_each_script() {
        let all = super::super::ALL;
        let script = bash(all);
        // A word in one of the script's lists ('--a --b').
        assert_complete("bash", &script, |w| {
            script.split(['\'', ' ']).any(|word| word == w)
        });
        let script = zsh(all);
        assert_complete("zsh", &script, |w| script.contains(&format!("{w}[")));
        let script = fish(all);
        assert_complete("fish", &script, |w| match w.strip_prefix("--") {
            Some(long) => script.contains(&format!(" -l {long} ")),
            None => script.contains(&format!(" -s {} ", &w[1..])),
        });
    }

    #[test]
    fn bash_knows_which_options_take_a_value_and_which_take_a_file() {
        let script = bash(super::super::ALL);
        let list = |name: &str| {
            let line = script
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("local {name}=")))
                .unwrap_or_else(|| panic!("no {name}"));
            line.split('\'').nth(1).unwrap_or_default().to_owned()
        };
        let takes_value = list("takes_value");
        let paths = list("paths");
        for o in GLOBAL {
            let Some(long) = o.long else { continue };
            let word = format!(" --{long} ");
            assert_eq!(takes_value.contains(&word), o.value.is_some(), "{long}");
        }
        assert!(paths.contains(" --private-key ") && paths.contains(" --config "));
        assert!(!paths.contains(" --app-id "));
        assert!(takes_value.contains(" --repo "), "doctor's --repo");
    }

    #[test]
    fn a_command_option_is_described_from_its_help() {
        let doctor = &super::super::doctor::DOCTOR;
        let help = |c, long| option_help(c, long);
        assert_eq!(
            help(doctor, "repo").as_deref(),
            Some("also check the installation that serves this repository")
        );
        assert_eq!(
            help(doctor, "json").as_deref(),
            Some("the same as one JSON object on stdout")
        );
        assert_eq!(help(doctor, "re"), None);
        // A description over two lines, and the option after it.
        let setup = &super::super::setup::SETUP;
        assert_eq!(
            help(setup, "proactive").as_deref(),
            Some(
                "also set http.<url>.proactiveAuth = basic (git 2.46 or later), so git asks the \
                 helper before the first request and public repositories are fetched with a token"
            )
        );
        assert_eq!(
            help(setup, "system").as_deref(),
            Some("write the system config (/etc/gitconfig, or $GIT_CONFIG_SYSTEM)")
        );
        let fish = fish(super::super::ALL);
        assert!(fish.contains(
            "-n '__fish_seen_subcommand_from doctor' -l json -d 'the same as one JSON object on stdout'"
        ));
    }

    #[test]
    fn quotes_in_help_cannot_end_the_quoting() {
        assert_eq!(zsh_text("it's [a]: b"), "it'\\''s \\[a\\]\\: b");
        assert_eq!(fish_text("it's a \\"), "it\\'s a \\\\");
        for script in [zsh(super::super::ALL), fish(super::super::ALL)] {
            for line in script.lines().filter(|l| !l.starts_with('#')) {
                // Outside escapes, single quotes pair up on every line.
                let unescaped = line.replace("\\\\", "").replace("\\'", "");
                let quotes = unescaped.matches('\'').count();
                assert_eq!(quotes % 2, 0, "{line}");
            }
        }
    }
}

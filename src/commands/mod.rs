//! Commands a person types (`setup`, `doctor`, …), beside the operations git sends (`get`,
//! `store`, `erase`).
//!
//! Each command is a module exposing one [`Command`]: its name, a one-line summary for the main
//! `--help`, its own `--help` text, the options it accepts beyond the global ones, and its `run`
//! function. [`ALL`] lists them; `cli` parses the command line against that list and calls `run`.
//! A command prints its result on `out` (stdout) and messages on `err` (stderr), and returns the
//! exit status; an `Err` becomes one `git-credential-github-app: …` line on stderr and status 1.

pub mod completions;
pub mod exec;
pub mod forget;
pub mod installations;
pub mod man;
mod resolve;
pub mod revoke;
pub mod status;
pub mod token;

use crate::config::Flags;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub mod doctor;
pub mod setup;

/// Every command beside git's operations, in the order the main `--help` lists them.
pub const ALL: &[&Command] = &[
    &setup::SETUP,
    &setup::UNSETUP,
    &doctor::DOCTOR,
    &token::COMMAND,
    &exec::COMMAND,
    &status::COMMAND,
    &installations::COMMAND,
    &revoke::COMMAND,
    &forget::COMMAND,
    &completions::COMMAND,
    &man::COMMAND,
];

/// One command.
pub struct Command {
    /// The word that selects it.
    pub name: &'static str,
    /// One line for the main `--help`.
    pub summary: &'static str,
    /// The synopsis after the program name: `doctor [--repo OWNER/REPO] [--json]`. Also the usage
    /// line printed for a mistake.
    pub usage: &'static str,
    /// The rest of `COMMAND --help`: a description and the command's options. The global options
    /// are appended by `cli`.
    pub help: &'static str,
    /// Options of this command (the global ones are always accepted too).
    pub options: &'static [Opt],
    /// How many words may follow the command word (after `--`, any number more go to
    /// [`Args::trailing`] when `trailing` is set).
    pub max_positional: usize,
    /// Whether `-- WORD…` is accepted (for `exec`).
    pub trailing: bool,
    pub run: fn(&Context, &Args, &mut Output<'_>) -> anyhow::Result<ExitCode>,
}

/// A command's option: `--long` alone, or `--long VALUE` when `value` names the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub long: &'static str,
    pub value: Option<&'static str>,
}

impl Opt {
    pub const fn flag(long: &'static str) -> Opt {
        Opt { long, value: None }
    }
    pub const fn value(long: &'static str, name: &'static str) -> Opt {
        Opt {
            long,
            value: Some(name),
        }
    }
}

/// What the command line gave the command (its own options, in order, and its words).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// `(long name, value)` in command-line order; `value` is `None` for flags.
    pub options: Vec<(&'static str, Option<String>)>,
    /// Words after the command word (at most `max_positional`).
    pub positional: Vec<String>,
    /// Everything after `--`, untouched (only for commands with `trailing`).
    pub trailing: Vec<OsString>,
}

impl Args {
    /// Whether flag `--long` was given.
    pub fn flag(&self, long: &str) -> bool {
        self.options.iter().any(|(name, _)| *name == long)
    }

    /// The last value of `--long VALUE`.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(name, _)| *name == long)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of a repeatable `--long VALUE`, in order.
    pub fn values(&self, long: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(name, _)| *name == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
}

/// What every command gets: the global options (the helper's own flags) and the environment.
pub struct Context {
    /// The global options, exactly as given (not yet merged with environment and config file).
    pub flags: Flags,
    /// The environment, read through this so tests can give their own.
    pub getenv: fn(&str) -> Option<String>,
}

impl Context {
    pub fn env(&self, name: &str) -> Option<String> {
        (self.getenv)(name)
    }
}

/// Where a command writes: its result on `out`, messages for the person on `err`.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// The command called `name`.
pub fn find(name: &str) -> Option<&'static Command> {
    ALL.iter().copied().find(|c| c.name == name)
}

/// The real environment.
pub fn real_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_options_agree_on_taking_a_value() {
        // cli accepts a command's option before the command word by looking it up in every
        // command: two commands must not disagree on whether `--x` takes a value.
        let mut seen: Vec<(&str, Opt)> = Vec::new();
        for (i, c) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|o| o.name != c.name),
                "duplicate {}",
                c.name
            );
            assert!(c.usage.starts_with(c.name), "{}", c.usage);
            for opt in c.options {
                if let Some((other, o)) = seen.iter().find(|(_, o)| o.long == opt.long) {
                    assert_eq!(
                        o.value.is_some(),
                        opt.value.is_some(),
                        "--{} in {} and {other}",
                        opt.long,
                        c.name
                    );
                }
                seen.push((c.name, *opt));
            }
        }
    }
}

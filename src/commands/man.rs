//! `man`: the manual page (roff, section 1) on stdout, written from the tables the command line
//! is parsed with — the global options ([`GLOBAL`]) and the commands ([`super::ALL`]) with their
//! usage and `--help` texts — and the description `--help` prints ([`crate::about`]).

use super::{Args, Command, Context, Output};
use crate::about;
use crate::config::flags::GLOBAL;
use anyhow::Result;
use std::fmt::Write as _;
use std::process::ExitCode;

pub static COMMAND: Command = Command {
    name: "man",
    summary: "print the manual page (roff) for packagers and install.sh",
    usage: "man",
    help: "\
Prints the manual page, in roff, on stdout: the description, the commands with their options,
the global options with their environment variables and config-file keys. Read it now with

    git-credential-github-app man | man -l -

or install it where man looks (install.sh does this):

    git-credential-github-app man > ~/.local/share/man/man1/git-credential-github-app.1
",
    options: &[],
    max_positional: 0,
    trailing: false,
    run,
};

fn run(_: &Context, _: &Args, o: &mut Output<'_>) -> Result<ExitCode> {
    o.out.write_all(page(super::ALL).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Text for roff: backslashes and minus signs escaped, characters beyond ASCII as `\[uXXXX]`,
/// and a line that would start with a control character (`.` or `'`) guarded.
fn roff(text: &str) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        if line.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        for ch in line.chars() {
            match ch {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                c if c.is_ascii() => out.push(c),
                c => {
                    let _ = write!(out, "\\[u{:04X}]", c as u32);
                }
            }
        }
    }
    out
}

/// A help text as one paragraph: its lines joined, runs of spaces made one.
fn prose(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Preformatted text (a `--help` text, an example), kept line for line.
fn verbatim(text: &str) -> String {
    format!(".nf\n{}\n.fi\n", roff(text.trim_end_matches('\n')))
}

/// The whole page.
pub fn page(commands: &[&Command]) -> String {
    let program = roff(about::PROGRAM);
    let mut s = String::new();
    let _ = write!(
        s,
        ".TH {} 1 \"\" \"{program} {}\" \"User Commands\"
.nh
.ad l
.SH NAME
{program} \\- {}
.SH SYNOPSIS
.B {program}
[\\fIOPTIONS\\fR] \\fBget\\fR|\\fBstore\\fR|\\fBerase\\fR
.br
.B {program}
[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]
.SH DESCRIPTION
{}
.PP
git runs the first form, with a request on stdin; people run the commands.
Options may come before or after the operation or command word.
",
        roff(&about::PROGRAM.to_uppercase()),
        roff(env!("CARGO_PKG_VERSION")),
        roff(about::SUMMARY),
        roff(about::DESCRIPTION.trim_end()),
    );
    s.push_str(".SH COMMANDS\n");
    for c in commands {
        let _ = write!(
            s,
            ".SS {}\n\\fB{program}\\fR {}\n.PP\n{}.\n.PP\n{}",
            roff(c.name),
            roff(c.usage),
            roff(c.summary),
            verbatim(c.help)
        );
    }
    s.push_str(".SH OPTIONS\n");
    for o in GLOBAL {
        let Some(long) = o.long else { continue };
        let mut head = String::from(".TP\n");
        if let Some(c) = o.short {
            let _ = write!(head, "\\fB\\-{c}\\fR, ");
        }
        let _ = write!(head, "\\fB\\-\\-{}\\fR", roff(long));
        if let Some(value) = o.value {
            let _ = write!(head, " \\fI{}\\fR", roff(value));
        }
        let _ = writeln!(s, "{head}\n{}", roff(&prose(o.help)));
        let mut also = Vec::new();
        if let Some(env) = o.env {
            also.push(format!("environment \\fB{}\\fR", roff(env)));
        }
        if let Some(key) = o.config_key {
            also.push(format!("config file key \\fB{}\\fR", roff(key)));
        }
        if !also.is_empty() {
            let _ = writeln!(s, ".br\nAlso: {}.", also.join(", "));
        }
    }
    s.push_str(".SH ENVIRONMENT\n");
    for o in GLOBAL {
        let Some(env) = o.env else { continue };
        let _ = writeln!(s, ".TP\n\\fB{}\\fR\n{}", roff(env), roff(&prose(o.help)));
        match o.long {
            Some(long) => {
                let _ = writeln!(s, ".br\nThe same as \\fB\\-\\-{}\\fR.", roff(long));
            }
            None => match o.config_key {
                Some(key) => {
                    let _ = writeln!(
                        s,
                        ".br\nNo flag; also the config file key \\fB{}\\fR.",
                        roff(key)
                    );
                }
                None => s.push_str(".br\nSet only in the environment.\n"),
            },
        }
    }
    let _ = write!(
        s,
        ".SH FILES
.TP
\\fI~/.config/{program}/config.toml\\fR
The config file for several apps (\\fB\\-\\-config\\fR).
.SH EXAMPLES
Set up git for github.com, then check everything between git and GitHub:
.PP
{}.PP
The git config that setup writes, and how to try it:
.PP
{}.SH SEE ALSO
.BR git-credential (1),
.BR gitcredentials (7)
",
        verbatim(about::SET_UP),
        verbatim(about::EXAMPLE),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_command_and_variable_is_on_the_page() {
        let page = page(super::super::ALL);
        for o in GLOBAL {
            if let Some(long) = o.long {
                let spelt = format!("\\fB\\-\\-{}\\fR", roff(long));
                assert!(page.contains(&spelt), "--{long}");
            }
            if let Some(c) = o.short {
                assert!(page.contains(&format!("\\fB\\-{c}\\fR")), "-{c}");
            }
            if let Some(env) = o.env {
                assert!(
                    page.contains(&format!(".TP\n\\fB{}\\fR\n", roff(env))),
                    "{env}"
                );
            }
            if let Some(key) = o.config_key {
                assert!(
                    page.contains(&format!("key \\fB{}\\fR", roff(key))),
                    "{key}"
                );
            }
        }
        for c in super::super::ALL {
            assert!(
                page.contains(&format!(".SS {}\n", roff(c.name))),
                "{}",
                c.name
            );
            for o in c.options {
                assert!(
                    page.contains(&format!("\\-\\-{}", roff(o.long))),
                    "{} --{}",
                    c.name,
                    o.long
                );
            }
        }
    }

    #[test]
    fn text_cannot_become_roff_requests() {
        assert_eq!(roff(".x\n'y\na.b"), "\\&.x\n\\&'y\na.b");
        assert_eq!(roff("a\\b --c (Iv…)"), "a\\eb \\-\\-c (Iv\\[u2026])");
        let page = page(super::super::ALL);
        assert!(page.is_ascii());
        // The only requests are the page's own.
        for line in page.lines().filter(|l| l.starts_with('.')) {
            let request = line.split(' ').next().unwrap_or_default();
            assert!(
                [
                    ".TH", ".nh", ".ad", ".SH", ".SS", ".B", ".BR", ".br", ".PP", ".TP", ".nf",
                    ".fi"
                ]
                .contains(&request),
                "{line}"
            );
        }
    }
}

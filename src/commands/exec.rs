//! `exec OWNER[/REPO] -- CMD…`: run a command with the installation token in `GH_TOKEN` and
//! `GITHUB_TOKEN` (never in its arguments), and pass its exit status through.

use super::{Args, Command, Context, Output, token};
use anyhow::{Context as _, Result, bail};
use std::process::ExitCode;

pub const COMMAND: Command = Command {
    name: "exec",
    summary: "run a command with the owner's token in GH_TOKEN and GITHUB_TOKEN",
    usage: "exec OWNER[/REPO] -- COMMAND [ARG…]",
    help: "\
Runs COMMAND with GH_TOKEN and GITHUB_TOKEN set to the installation token for OWNER (the same
token git gets), so that tools such as gh act as the app:

    git-credential-github-app exec acme -- gh pr list --repo acme/widgets

The token is passed in the environment only, never on a command line. The exit status is
COMMAND's (128 + N when a signal N ended it).
",
    options: &[],
    max_positional: 1,
    trailing: true,
    run,
};

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let Some((program, rest)) = args.trailing.split_first() else {
        bail!(
            "give the command after --; usage: git-credential-github-app {}",
            COMMAND.usage
        );
    };
    let (obtained, _) = token::obtain_for(ctx, args, COMMAND.usage, out)?;
    out.out.flush()?;
    let secret = obtained.token.secret.expose();
    let status = std::process::Command::new(program)
        .args(rest)
        .env("GH_TOKEN", secret)
        .env("GITHUB_TOKEN", secret)
        .status()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from(128 + (signal & 0x7f)).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}

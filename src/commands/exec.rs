//! `exec OWNER[/REPO] -- CMD…`: run a command with the installation token in `GH_TOKEN` and
//! `GITHUB_TOKEN` (never in its arguments), and pass its exit status through.
//!
//! Least privilege stays least: the command gets the token and nothing that could mint another
//! one — the app's settings (`GITHUB_APP_*`, `GIT_CREDENTIAL_GITHUB_APP_*`, among them a key in
//! `GITHUB_APP_PRIVATE_KEY`) are removed from its environment, and so are the AWS credentials
//! when the app's key is in AWS KMS. On unix the helper then becomes the command (`exec`): a
//! signal sent to the helper (SIGTERM from a CI runner) reaches the command itself, and no
//! process of ours is left behind holding the token.

use super::{Args, Command, Context, Output, token};
use crate::keyref::KeyRef;
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

The token is passed in the environment only, never on a command line. COMMAND does not see the
app's settings (GITHUB_APP_*, GIT_CREDENTIAL_GITHUB_APP_*: a key in GITHUB_APP_PRIVATE_KEY could
mint any token), nor the AWS credentials when the key is in AWS KMS; files the key is read from
stay readable to it, as to any program of yours. On unix this program becomes COMMAND, so
signals reach it directly and its exit status is COMMAND's; elsewhere the exit status is
COMMAND's (128 + N when a signal N ended it).
",
    options: &[],
    max_positional: 1,
    trailing: true,
    run,
};

/// AWS settings that hand out credentials: removed from COMMAND's environment when the app's
/// key is in AWS KMS.
const AWS_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

fn run(ctx: &Context, args: &Args, out: &mut Output<'_>) -> Result<ExitCode> {
    let Some((program, rest)) = args.trailing.split_first() else {
        bail!(
            "give the command after --; usage: git-credential-github-app {}",
            COMMAND.usage
        );
    };
    let (obtained, _) = token::obtain_for(ctx, args, COMMAND.usage, out)?;
    let kms = super::resolve::resolve(ctx).is_ok_and(|r| {
        r.config.apps.iter().any(|a| {
            a.installation()
                .is_some_and(|s| matches!(s.key, KeyRef::AwsKms(_)))
        })
    });
    out.out.flush()?;
    out.err.flush()?;
    let secret = obtained.token.secret.expose();
    let mut command = std::process::Command::new(program);
    command.args(rest);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("GITHUB_APP_")
            || text.starts_with("GIT_CREDENTIAL_GITHUB_APP_")
            || (kms && AWS_CREDENTIALS.contains(&text.as_ref()))
        {
            command.env_remove(&name);
        }
    }
    command.env("GH_TOKEN", secret).env("GITHUB_TOKEN", secret);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Only returns when COMMAND could not be started.
        let e = command.exec();
        Err(e).with_context(|| format!("cannot run {}", program.to_string_lossy()))
    }
    #[cfg(not(unix))]
    {
        let status = command
            .status()
            .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
        Ok(exit_code(status))
    }
}

#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

//! `git-credential-github-app`: see `--help`, README.md, and the library's module docs.

fn main() -> std::process::ExitCode {
    git_credential_github_app::cli::main()
}

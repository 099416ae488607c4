//! What the program is, in words: the one description and the one set-up example that `--help`
//! (in `cli`) and the man page (`commands::man`) both print.

/// The program's name, as installed and as git runs it (`credential.helper = github-app`).
pub const PROGRAM: &str = "git-credential-github-app";

/// One line: what it is.
pub const SUMMARY: &str = "git credential helper that authenticates as a GitHub App";

/// What it does, for a person deciding whether it is the right tool.
pub const DESCRIPTION: &str = "\
git runs it for each HTTPS request that needs credentials. For a configured host it takes the owner
from the repository path, finds the app's installation for that owner, mints an installation token
(cached in the OS keyring or a private file until shortly before it expires) and answers
username=x-access-token with the token. Other hosts and owners are left to the next helper.
";

/// How to set it up: the commands, then the git config they write.
pub const SET_UP: &str =
    "    git-credential-github-app setup --app-id 123456 --private-key ~/.config/my-app.pem
    git-credential-github-app doctor
";

/// The git config that `setup` writes, and how to try it.
pub const EXAMPLE: &str = "    [credential \"https://github.com\"]
        helper =
        helper = github-app --app-id 123456 --private-key /home/me/.config/my-app.pem
        useHttpPath = true

    Then: git clone https://github.com/acme/private-repo.git
    Check: printf 'protocol=https\\nhost=github.com\\npath=acme/private-repo.git\\n' | git credential fill
";

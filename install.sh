#!/usr/bin/env bash
# Install git-credential-github-app and, optionally, point git at it for one GitHub host.
#
#   ./install.sh                                   build and install into ~/.local/bin
#   ./install.sh --app-id 123456 --private-key ~/my-app.pem
#                                                  ... and run `git-credential-github-app setup`
#                                                  with those options (git config for github.com)
#   ./install.sh --host ghe.example.com --app-id 7 --private-key ~/ghe-app.pem
#                                                  ... for a GitHub Enterprise Server host
#   ./install.sh --demo                            try it against a local GitHub, no app needed
#
# Options: --prefix DIR (default ~/.local/bin), --binary PATH (install a binary built elsewhere
# instead of building), --help. Every other option goes to setup (see: git-credential-github-app
# setup --help): --installation-id, --owner, --local/--system, --proactive, ... setup keeps the
# helpers you already have for the host after this one; `git-credential-github-app unsetup` undoes it.
# It also writes the bash completion (~/.local/share/bash-completion/completions), the man page
# (~/.local/share/man/man1) and, when ~/.config/fish exists, the fish completion, from the installed
# binary (`completions`, `man`); one line says where.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="${HOME}/.local/bin"
app_id=""
key=""
key_value=""
binary=""

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

setup_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --demo) shift; exec "$here/scripts/demo.sh" "$@" ;;
    -h|--help) usage; exit 0 ;;
    --app-id|--app-id=*) app_id=1; setup_args+=("$1"); shift ;;
    --private-key) key=1; key_value="${2:-}"; setup_args+=("$1"); shift ;;
    --private-key=*) key=1; key_value="${1#*=}"; setup_args+=("$1"); shift ;;
    *) setup_args+=("$1"); shift ;;
  esac
done

if [ -n "$app_id" ] && [ -z "$key" ]; then die "--app-id needs --private-key PATH"; fi
if [ -z "$app_id" ] && [ -n "$key" ]; then die "--private-key needs --app-id ID"; fi
# Without an app (--app-id, or GITHUB_APP_ID for CI) there is nothing to set up: say so before
# building rather than after.
if [ -z "$app_id" ] && [ -z "${GITHUB_APP_ID:-}" ] && [ ${#setup_args[@]} -gt 0 ]; then
  die "${setup_args[0]} is an option of setup, which needs the app: add --app-id ID --private-key PATH (or run without it to only install the binary)"
fi

# What can be checked without the binary is checked before building (a first build takes a
# minute or two): the key file, the given binary, the prefix, git and cargo.
case "$key_value" in
  ""|pkcs11:*|arn:*) ;;
  *)
    key_path="${key_value/#\~/$HOME}"
    [ -f "$key_path" ] || die "no private key file at $key_value (--private-key takes the app's .pem file, a pkcs11: URI or an AWS KMS key ARN)"
    [ -r "$key_path" ] || die "cannot read the private key file $key_value" ;;
esac
if [ -n "$binary" ]; then
  [ -f "$binary" ] && [ -x "$binary" ] || die "--binary $binary is not an executable file"
fi
[ ! -e "$prefix" ] || [ -d "$prefix" ] || die "--prefix $prefix is not a directory"
if [ ${#setup_args[@]} -gt 0 ]; then
  command -v git >/dev/null || die "git not found: setup configures git, install git first"
fi
if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs first"
fi

# 1. Build (or take a given binary). cargo shows its progress (a bar on a terminal, a line per
# crate otherwise).
if [ -z "$binary" ]; then
  echo "Building the release binary (cargo build --release --locked; a first build takes a minute or two)..."
  started=$SECONDS
  (cd "$here" && cargo build --release --locked -p git-credential-github-app)
  echo "Built in $((SECONDS - started)) s."
  binary="${CARGO_TARGET_DIR:-$here/target}/release/git-credential-github-app"
fi
[ -x "$binary" ] || die "no executable at $binary"

# 2. Install.
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
target="$prefix/git-credential-github-app"
install -m 0755 "$binary" "$target.new.$$" && mv -f "$target.new.$$" "$target"
echo "Installed $target ($("$target" --version))"
case ":$PATH:" in
  *":$prefix:"*) ;;
  *) echo "Note: $prefix is not on your PATH; the git config below uses the full path, so git finds it anyway." ;;
esac

# 2b. For this user: the bash completion and the man page (and fish's completion when fish is set
# up), written by the installed binary itself. A file that cannot be written is a note, not an
# error: the helper works without them.
data="${XDG_DATA_HOME:-$HOME/.local/share}"
extras=()
put() { # put FILE ARGS...: the installed binary's output for ARGS, into FILE (atomically)
  local file="$1"; shift
  if mkdir -p "$(dirname "$file")" 2>/dev/null && "$target" "$@" >"$file.new.$$" 2>/dev/null \
    && mv -f "$file.new.$$" "$file"; then
    extras+=("$file")
  else
    rm -f "$file.new.$$" 2>/dev/null || true
    echo "Note: could not write $file (skipped)"
  fi
}
put "${BASH_COMPLETION_USER_DIR:-$data/bash-completion}/completions/git-credential-github-app" completions bash
put "$data/man/man1/git-credential-github-app.1" man
fish_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fish"
if [ -d "$fish_dir" ]; then put "$fish_dir/completions/git-credential-github-app.fish" completions fish; fi
if [ ${#extras[@]} -gt 0 ]; then echo "Installed the shell completion and man page: ${extras[*]}"; fi

# 3. Configure git for the host through the installed binary's own setup command.
if [ ${#setup_args[@]} -gt 0 ]; then
  "$target" setup "${setup_args[@]}" || die "setup failed (the binary is installed; fix the options and run: $target setup ...)"
else
  echo "To use it: $target setup --app-id ID --private-key PATH   (or see docs/configuration.md)"
fi

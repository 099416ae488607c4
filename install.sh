#!/usr/bin/env bash
# Install git-credential-github-app and, optionally, point git at it for one GitHub host.
#
#   ./install.sh                                   build and install into ~/.local/bin
#   ./install.sh --app-id 123456 --private-key ~/my-app.pem
#                                                  ... and configure git for https://github.com
#   ./install.sh --host ghe.example.com --app-id 7 --private-key ~/ghe-app.pem
#                                                  ... for a GitHub Enterprise Server host
#   ./install.sh --demo                            try it against a local GitHub, no app needed
#
# Options: --prefix DIR (default ~/.local/bin), --installation-id ID, --binary PATH (install a
# binary built elsewhere instead of building), --help.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="${HOME}/.local/bin"
app_id=""
key=""
host="github.com"
installation_id=""
binary=""

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --app-id) app_id="${2:?--app-id needs a value}"; shift 2 ;;
    --app-id=*) app_id="${1#*=}"; shift ;;
    --private-key) key="${2:?--private-key needs a path}"; shift 2 ;;
    --private-key=*) key="${1#*=}"; shift ;;
    --host) host="${2:?--host needs a host name}"; shift 2 ;;
    --host=*) host="${1#*=}"; shift ;;
    --installation-id) installation_id="${2:?--installation-id needs a value}"; shift 2 ;;
    --installation-id=*) installation_id="${1#*=}"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --demo) shift; exec "$here/scripts/demo.sh" "$@" ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

if [ -n "$app_id" ] && [ -z "$key" ]; then die "--app-id needs --private-key PATH"; fi
if [ -z "$app_id" ] && [ -n "$key" ]; then die "--private-key needs --app-id ID"; fi

# 1. Build (or take a given binary).
if [ -z "$binary" ]; then
  command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs first"
  echo "Building the release binary (cargo build --release --locked)..."
  (cd "$here" && cargo build --release --locked --quiet -p git-credential-github-app)
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

# 3. Configure git for the host, if an app was given.
if [ -n "$app_id" ]; then
  case "$key" in "~/"*) key="$HOME/${key#\~/}" ;; esac
  [ -r "$key" ] || die "cannot read private key $key"
  key="$(cd "$(dirname "$key")" && pwd)/$(basename "$key")"
  case "$host" in
    http://*|https://*) url="${host%/}" ;;
    *) url="https://${host%/}" ;;
  esac
  # Shell-quote what goes into the helper line (git runs it through sh).
  q() { case "$1" in *[!A-Za-z0-9_./:@%+=,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;; *) printf '%s' "$1" ;; esac; }
  line="$(q "$target") --app-id $(q "$app_id") --private-key $(q "$key")"
  [ "$url" = "https://github.com" ] || line="$line --host $(q "$url")"
  [ -z "$installation_id" ] || line="$line --installation-id $(q "$installation_id")"
  # An empty helper first drops helpers inherited from system config (a stale store, osxkeychain,
  # GCM), then ours; useHttpPath so git tells us the owner. --replace-all makes a rerun idempotent.
  git config --global --replace-all "credential.$url.helper" ""
  git config --global --add "credential.$url.helper" "$line"
  git config --global "credential.$url.useHttpPath" true
  echo "Configured git (~/.gitconfig) for $url:"
  echo "    [credential \"$url\"]"
  echo "        helper ="
  echo "        helper = $line"
  echo "        useHttpPath = true"
  echo "Try: git ls-remote $url/OWNER/REPO.git"
else
  echo "To use it, run again with --app-id ID --private-key PATH, or see README.md (Configuration)."
fi

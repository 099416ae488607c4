#!/usr/bin/env bash
# The whole flow in under a minute, with no GitHub App of your own: start the project's local
# GitHub on loopback with a throwaway app, key, organisation and repository; point a scratch
# HOME's git at it through the helper; clone and push; show what the helper did at each step.
# Nothing outside a temporary directory is touched. Run it as: ./install.sh --demo
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }

step "Building the helper and the local GitHub (cargo build)"
cargo build --quiet --locked -p git-credential-github-app -p local-github
target_dir="${CARGO_TARGET_DIR:-$here/target}"
helper="$target_dir/debug/git-credential-github-app"
emulator="$target_dir/debug/local-github"

tmp="$(mktemp -d)"
server_pid=""
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

step "Starting a local GitHub with app 4242 installed on organisation 'demo-org' (repository 'hello')"
cat >"$tmp/world.json" <<JSON
{
  "apps": [{ "id": 4242, "slug": "demo-app", "generate_key_to": "$tmp/demo-app.pem" }],
  "accounts": [{ "login": "demo-org", "type": "Organization" }],
  "repos": ["demo-org/hello"],
  "installations": [{ "id": 77, "app_id": 4242, "account": "demo-org",
                      "repository_selection": "selected", "repositories": ["hello"],
                      "permissions": { "contents": "write", "metadata": "read" } }]
}
JSON
"$emulator" serve --world "$tmp/world.json" --state-dir "$tmp/server" >"$tmp/url" 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.1; done
url="$(head -1 "$tmp/url")"
[ -n "$url" ] || { cat "$tmp/server.log"; echo "the local GitHub did not start" >&2; exit 1; }
host="${url#http://}"
echo "    $url (REST API at $url/api/v3, git at $url/OWNER/REPO.git)"
echo "    the app's private key: $tmp/demo-app.pem"

step "Configuring git in a scratch HOME to use the helper for $url"
export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/home/.cache" XDG_CONFIG_HOME="$tmp/home/.config"
export GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
unset GITHUB_APP_ID GITHUB_APP_PRIVATE_KEY GITHUB_APP_PRIVATE_KEY_PATH DBUS_SESSION_BUS_ADDRESS
mkdir -p "$HOME"
git config --global user.name "Demo"
git config --global user.email "demo@example.com"
git config --global init.defaultBranch main
# --cache file: the kernel keyring is the user's, not the scratch HOME's, and the demo leaves
# nothing behind outside its temporary directory.
"$helper" setup --app-id 4242 --private-key "$tmp/demo-app.pem" --host "$host" --cache file | show

stats() { curl -s "$url/_emulator/stats" 2>/dev/null || python3 -c "import urllib.request,sys;print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$url/_emulator/stats"; }
traced() { GIT_CREDENTIAL_GITHUB_APP_TRACE="$tmp/trace.log" "$@"; }
explain() {
  grep -E 'served by|→ installation|minted token|cache hit|cached token|not ours' "$tmp/trace.log" \
    | sed 's/^git-credential-github-app: trace: /helper: /' | show
  : >"$tmp/trace.log"
}

step "git clone $url/demo-org/hello.git  (cold: find the installation, mint a token)"
cd "$tmp"
traced git clone --quiet "$url/demo-org/hello.git" hello
ls hello | show
explain
echo "    GitHub API calls so far: $(stats)"

step "git commit and git push  (warm: the token comes from the cache, no API call)"
cd hello
echo "hello from the demo at $(date -u +%H:%M:%S)" >>README.md
git commit --quiet -am "demo change"
traced git push --quiet origin main
explain
echo "    GitHub API calls so far: $(stats)"
git --git-dir "$tmp/server/demo-org/hello.git" log --oneline -1 2>/dev/null | sed 's/^/    server now has: /' || true

step "What git sees (git credential fill)"
printf 'protocol=http\nhost=%s\npath=demo-org/hello.git\n' "$host" | git credential fill \
  | sed -E 's/^(password=.{8}).*/\1… (an installation token)/' | show

step "Checking the whole chain (git-credential-github-app doctor)"
"$helper" doctor --host "$host" --repo demo-org/hello | show || true

echo
echo "Done. With a real app: ./install.sh --app-id YOUR_APP_ID --private-key PATH/TO/app.pem"

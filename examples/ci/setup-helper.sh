#!/bin/sh
# Make git use git-credential-github-app for one host: a CI job, a container build, a devcontainer.
# The CI recipes in docs/ci.md run these same lines; tests/e2e/ci_recipes.rs runs this file.
#
# Needs git-credential-github-app on PATH and the app in the environment:
#   GITHUB_APP_ID                   the App ID or client ID
#   GITHUB_APP_PRIVATE_KEY_PATH     the key file (a CI file variable, a BuildKit secret mount), or
#   GITHUB_APP_PRIVATE_KEY          the PEM text (a CI secret)
#   GITHUB_APP_HOST                 optional, default github.com
# GCGA_URL overrides the URL prefix git matches (default https://$GITHUB_APP_HOST).
set -eu
host="${GITHUB_APP_HOST:-github.com}"
url="${GCGA_URL:-https://$host}"
# An empty helper first drops helpers configured before for this URL; then ours.
git config --global --replace-all "credential.$url.helper" ""
git config --global --add "credential.$url.helper" github-app
git config --global "credential.$url.useHttpPath" true
# A token header left by a checkout step (actions/checkout's persist-credentials) would answer
# every request before any helper is asked: removed from the global config, the repository's
# (when run in one) and any file they include.
sh "$(dirname "$0")/remove-checkout-header.sh" "$url"

#!/bin/sh
# The RUN step of examples/docker/Dockerfile: fetch private sources inside the build with the
# app's key from a BuildKit secret mount. BuildKit does not use the host's credential helpers,
# so the helper runs inside the build. tests/e2e/ci_recipes.rs runs this file as it is.
#
#   SOURCE_REPO   the repository to clone (with its submodules)
#   TARGET_DIR    where (default /src/app)
set -eu
# Nothing from this step may stay in the image: no token cache (the key is a secret mount, gone
# after this RUN), and never a prompt.
export GIT_CREDENTIAL_GITHUB_APP_CACHE=none
export GIT_TERMINAL_PROMPT=0
export GITHUB_APP_PRIVATE_KEY_PATH="${GITHUB_APP_PRIVATE_KEY_PATH:-/run/secrets/github_app_key}"
here="$(dirname "$0")"
setup="$here/setup-helper.sh"                                 # beside it in the image
[ -f "$setup" ] || setup="$here/../ci/setup-helper.sh"        # in this repository
sh "$setup"
git clone --quiet --depth 1 --recurse-submodules --shallow-submodules "$SOURCE_REPO" "${TARGET_DIR:-/src/app}"

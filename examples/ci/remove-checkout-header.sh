#!/bin/sh
# Remove a token header a checkout step left for a URL, wherever git reads it from here: a header
# (http.<url>/.extraheader) is sent with every request, so git never asks a credential helper.
#   actions/checkout v4 and older: in the repository's own config (.git/config);
#   actions/checkout v5 and newer: in a file under $RUNNER_TEMP that .git/config includes
#     (includeIf "gitdir:…"), one per checkout;
#   other steps and older recipes: in the global config.
# Run it in the checked-out repository (the step's working directory); outside a repository only
# the global and system configs are seen. Its submodules are not visited: a checkout with
# submodules and persist-credentials gives each submodule the same header, so check out with
# persist-credentials: false there.
#
#   remove-checkout-header.sh [URL]    URL default: https://${GITHUB_APP_HOST:-github.com}
set -eu
url="${1:-https://${GITHUB_APP_HOST:-github.com}}"
key="http.$url/.extraheader"
# git names the repository's own config relative to the top of its work tree.
top="$(git rev-parse --show-toplevel 2>/dev/null)" && cd "$top"
# One line per value: "file:<path><TAB><value>". A path git had to quote (it starts with a
# double quote) or a value from the command line cannot be edited here: say so and fail.
git config --show-origin --get-all "$key" 2>/dev/null | while IFS= read -r line; do
  origin="${line%%	*}"
  case "$origin" in
    file:\"*|file:)
      echo "remove-checkout-header: cannot edit $origin; remove $key there" >&2
      exit 1 ;;
    file:*)
      git config --file "${origin#file:}" --unset-all "$key"
      echo "removed $key from ${origin#file:}" ;;
    *)
      echo "remove-checkout-header: $key comes from $origin, which this script cannot edit" >&2
      exit 1 ;;
  esac
done

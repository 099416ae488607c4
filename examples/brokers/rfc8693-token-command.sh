#!/bin/sh
# A token_command for an OAuth 2.0 Token Exchange server (RFC 8693) in front of a GitHub App:
# Keycloak, an internal STS, a Vault plugin. In the helper's config file:
#
#   [[broker]]
#   token_command = ["/path/to/rfc8693-token-command.sh", "https://sts.example.com/token"]
#   oidc = "github-actions"          # or gitlab:VARIABLE, buildkite, file:PATH, oidc_command
#
# The helper writes git's request to stdin, one key=value a line: protocol, host, path, owner,
# repo, and oidc_token (a fresh OIDC token for this exchange). The server's JSON answer
# ({"access_token", "expires_in", ...}) is printed as it comes: the helper reads access_token
# and expires_in. The OIDC token goes to curl on its stdin, never in an argument (ps shows those).
set -eu
url=$1
owner= repo= subject=
while IFS='=' read -r key value; do
  case $key in
    owner) owner=$value ;;
    repo) repo=$value ;;
    oidc_token) subject=$value ;;
  esac
done
printf 'grant_type=%s&subject_token_type=%s&scope=%s&subject_token=%s' \
  'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange' \
  'urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token' \
  "$owner%2F$repo" "$subject" |
  curl --silent --show-error --fail-with-body --data @- "$url"

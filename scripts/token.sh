#!/usr/bin/env bash
# Prints an access token for the local stack (scripts/run.sh) from the authorization server, with
# the client_credentials grant of a service client of authz/directory.json (default: the acme
# reporting agent). The shortcut for scripts and curl; MCP clients do the OAuth flow themselves.
#   TOKEN=$(scripts/token.sh [scope])      scope defaults to "mcp:read mcp:write"
set -euo pipefail
AUTHZ_URL="${AUTHZ_URL:-http://127.0.0.1:9100}"
CLIENT_ID="${CLIENT_ID:-acme-reporting-agent}"
CLIENT_SECRET="${CLIENT_SECRET:-acme-reporting-agent-demo-secret-0123456789}"
RESOURCE="${RESOURCE:-http://127.0.0.1:8080/mcp}"
SCOPE="${1:-mcp:read mcp:write}"

response="$(curl -fsS -u "${CLIENT_ID}:${CLIENT_SECRET}" "${AUTHZ_URL}/token" \
  --data-urlencode grant_type=client_credentials \
  --data-urlencode "scope=${SCOPE}" \
  --data-urlencode "resource=${RESOURCE}")"
printf '%s' "$response" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'

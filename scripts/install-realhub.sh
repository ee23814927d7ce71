#!/usr/bin/env bash
# Install a real JupyterHub (6.1.1) and configurable-http-proxy (5.3.0) next to the
# project, for the tests in tests/realhub/ and for `make demo`.
#
#   .venv-hub/   a virtual environment holding only jupyterhub and its dependencies
#                (kept apart from .venv so that nothing leaks into the culler's tests), and
#                jupyter_server + ipykernel for the tests that need real single-user servers
#   .node/       a local npm prefix holding configurable-http-proxy
#
# Idempotent: each part is skipped when it is already installed. Run from the repo root.
set -euo pipefail

HUB_VERSION="6.1.1"
CHP_VERSION="5.3.0"
PYTHON="${PYTHON:-python3}"

cd "$(dirname "$0")/.."

hub_version() {
    # What `jupyterhub --version` reports, read from the package metadata (much faster).
    [ -x .venv-hub/bin/jupyterhub ] || return 0
    .venv-hub/bin/python -c 'import importlib.metadata as m; print(m.version("jupyterhub"))' \
        2>/dev/null || true
}

if [ "$(hub_version)" = "$HUB_VERSION" ]; then
    :
else
    if [ ! -x .venv-hub/bin/python ]; then
        "$PYTHON" -m venv .venv-hub
    fi
    .venv-hub/bin/python -m pip install -qq --disable-pip-version-check \
        "jupyterhub==$HUB_VERSION"
    got="$(.venv-hub/bin/jupyterhub --version)"
    if [ "$got" != "$HUB_VERSION" ]; then
        echo "install-realhub: expected jupyterhub $HUB_VERSION, got '$got'" >&2
        exit 1
    fi
fi

# Real single-user servers for the kernel tests (RealHub(spawner="process")): jupyter_server and
# ipykernel next to the hub, whose own jupyterhub package provides jupyterhub-singleuser.
SERVER_VERSION="2.21.1"
KERNEL_VERSION="7.4.0"
if ! .venv-hub/bin/python - "$SERVER_VERSION" "$KERNEL_VERSION" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
sys.exit(m.version("jupyter_server") != sys.argv[1] or m.version("ipykernel") != sys.argv[2])
PY
then
    .venv-hub/bin/python -m pip install -qq --disable-pip-version-check \
        "jupyter_server==$SERVER_VERSION" "ipykernel==$KERNEL_VERSION"
fi

if [ ! -x .node/node_modules/.bin/configurable-http-proxy ]; then
    command -v npm >/dev/null || { echo "install-realhub: npm not found" >&2; exit 1; }
    mkdir -p .node
    # --loglevel=error hides the EBADENGINE warning that Node 20 triggers (harmless).
    npm install --no-audit --no-fund --loglevel=error --prefix .node \
        "configurable-http-proxy@$CHP_VERSION" >/dev/null
    if [ ! -x .node/node_modules/.bin/configurable-http-proxy ]; then
        echo "install-realhub: configurable-http-proxy did not install" >&2
        exit 1
    fi
fi

#!/usr/bin/env bash
# Install a real JupyterHub (6.1.1, and 5.5.4) and configurable-http-proxy (5.3.0) next to
# the project, for the tests in tests/realhub/ and for `make demo`.
#
#   .venv-hub/      a virtual environment holding only jupyterhub 6.1.1 and its dependencies
#                   (kept apart from .venv so that nothing leaks into the culler's tests)
#   .venv-hub-5.5/  the same with jupyterhub 5.5.4, the last release that still accepts new
#                   server names such as "." (JupyterHub 6 refuses them), for the test that a
#                   name made of dots reaches its own server
#   .node/          a local npm prefix holding configurable-http-proxy
#
# Idempotent: each part is skipped when it is already installed. Run from the repo root.
set -euo pipefail

CHP_VERSION="5.3.0"
PYTHON="${PYTHON:-python3}"

cd "$(dirname "$0")/.."

hub_version() {
    # What `jupyterhub --version` reports, read from the package metadata (much faster).
    [ -x "$1/bin/jupyterhub" ] || return 0
    "$1/bin/python" -c 'import importlib.metadata as m; print(m.version("jupyterhub"))' \
        2>/dev/null || true
}

install_hub() {  # FOLDER VERSION
    local folder="$1" version="$2"
    [ "$(hub_version "$folder")" = "$version" ] && return 0
    if [ ! -x "$folder/bin/python" ]; then
        "$PYTHON" -m venv "$folder"
    fi
    "$folder/bin/python" -m pip install -qq --disable-pip-version-check "jupyterhub==$version"
    got="$("$folder/bin/jupyterhub" --version)"
    if [ "$got" != "$version" ]; then
        echo "install-realhub: expected jupyterhub $version in $folder, got '$got'" >&2
        exit 1
    fi
}

install_hub .venv-hub 6.1.1
install_hub .venv-hub-5.5 5.5.4

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

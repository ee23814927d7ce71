#!/usr/bin/env bash
# Install real JupyterHubs and configurable-http-proxy (5.3.0) next to the project, for the
# tests in tests/realhub/ and tests/hubs/ and for `make demo`.
#
#   bash scripts/install-realhub.sh            JupyterHub 6.1 in .venv-hub, and the proxy
#   bash scripts/install-realhub.sh all        every version of tests/realhub/hub-versions.txt
#   bash scripts/install-realhub.sh 1.5 3.1    those versions (keys of that file)
#
#   .venv-hub*/  one virtual environment per hub version, holding only jupyterhub and its
#                dependencies (kept apart from .venv so that nothing leaks into the culler's
#                tests), each made with the Python and the pins written in hub-versions.txt;
#                .venv-hub (6.1) also holds jupyter_server and ipykernel for real servers
#   .node/       a local npm prefix holding configurable-http-proxy (shared by every hub)
#
# Idempotent: an environment whose hub version and pins match is left alone; the proxy is
# skipped when installed. pip's cache is used as usual. Run from anywhere.
set -euo pipefail

CHP_VERSION="5.3.0"
DEFAULT_KEY="6.1"
cd "$(dirname "$0")/.."
VERSIONS_FILE="tests/realhub/hub-versions.txt"

die() { echo "install-realhub: $*" >&2; exit 1; }

# The interpreter for a PYTHON column: "default", or X.Y (pyenv's, else pythonX.Y on PATH).
find_python() {
    local want="$1" candidate
    if [ "$want" = "default" ]; then
        echo "${PYTHON:-python3}"
        return
    fi
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" \
        "python$want"; do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    die "Python $want not found (pyenv's or python$want on the PATH)"
}

install_hub() {
    local key="$1" python_want="$2" folder="$3"
    shift 3
    local requirements=("$@")
    local wanted="${requirements[0]#jupyterhub==}"
    local stamp="$folder/.realhub-installed"
    local spec="$key $python_want ${requirements[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ] && [ -x "$folder/bin/jupyterhub" ]; then
        return
    fi
    local python
    python="$(find_python "$python_want")"
    echo "install-realhub: JupyterHub $key into $folder ($("$python" --version 2>&1))"
    if [ -x "$folder/bin/python" ] && [ ! -f "$stamp" ] && [ "$key" != "$DEFAULT_KEY" ]; then
        rm -rf "$folder"  # a half-made environment of an earlier, interrupted run
    fi
    if [ ! -x "$folder/bin/python" ]; then
        "$python" -m venv "$folder"
    fi
    rm -f "$stamp"
    "$folder/bin/python" -m pip install -qq --disable-pip-version-check "${requirements[@]}"
    local got
    got="$("$folder/bin/python" -c \
        'import importlib.metadata as m; print(m.version("jupyterhub"))')"
    [ "$got" = "$wanted" ] || die "expected jupyterhub $wanted in $folder, got '$got'"
    # the hub must at least load its application with these pins
    "$folder/bin/jupyterhub" --version >/dev/null || die "jupyterhub $key does not start"
    echo "$spec" >"$stamp"
}

# --- which versions ------------------------------------------------------------------------
keys=("$@")
[ ${#keys[@]} -gt 0 ] || keys=("$DEFAULT_KEY")
if [ "${keys[0]}" = "all" ]; then
    mapfile -t keys < <(awk '!/^#/ && NF { print $1 }' "$VERSIONS_FILE")
fi
for key in "${keys[@]}"; do
    line="$(awk -v k="$key" '!/^#/ && $1 == k' "$VERSIONS_FILE")"
    [ -n "$line" ] || die "no version '$key' in $VERSIONS_FILE"
    # shellcheck disable=SC2086  # the line is split into its columns on purpose
    install_hub $line
done

# Real single-user servers for the kernel tests (RealHub(spawner="process")): jupyter_server and
# ipykernel next to the default hub, whose own jupyterhub package gives jupyterhub-singleuser.
SERVER_VERSION="2.21.1"
KERNEL_VERSION="7.4.0"
if [ -x .venv-hub/bin/python ] && ! .venv-hub/bin/python - "$SERVER_VERSION" "$KERNEL_VERSION" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
sys.exit(m.version("jupyter_server") != sys.argv[1] or m.version("ipykernel") != sys.argv[2])
PY
then
    .venv-hub/bin/python -m pip install -qq --disable-pip-version-check \
        "jupyter_server==$SERVER_VERSION" "ipykernel==$KERNEL_VERSION"
fi

# --- the proxy -----------------------------------------------------------------------------
if [ ! -x .node/node_modules/.bin/configurable-http-proxy ]; then
    command -v npm >/dev/null || die "npm not found"
    mkdir -p .node
    # --loglevel=error hides the EBADENGINE warning that Node 20 triggers (harmless).
    npm install --no-audit --no-fund --loglevel=error --prefix .node \
        "configurable-http-proxy@$CHP_VERSION" >/dev/null
    [ -x .node/node_modules/.bin/configurable-http-proxy ] ||
        die "configurable-http-proxy did not install"
fi

# shellcheck shell=bash disable=SC2034  # (variables for the scripts that source this)
# The helpers every .ci/ script shares (sourced, not run): one PATH, the package names, messages,
# PASS/FAIL counting, checks on a command's output, and Debian package installs.

# Debian's own interpreter and tools only: pyenv first on PATH would hijack python3 (pybuild
# would test with a Python that lacks Debian's packages). .ci/run sources this in a subshell,
# so that `make test` keeps the developer's PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

PKG=jupyterhub-idle-culler-daemon
PYPI_NAME=jupyterhub_idle_culler_daemon
# The reference culler's package on both families: same /usr/bin/jupyterhub-idle-culler.
REFERENCE_PKG=python3-jupyterhub-idle-culler
# Every unit the packages ship (packaging/systemd/).
UNITS=(jupyterhub-idle-culler.service jupyterhub-idle-culler@.service
       jupyterhub-idle-culler-oneshot.service jupyterhub-idle-culler-oneshot.timer)

die() { echo "FAIL: $*" >&2; exit 1; }
step() { echo; echo "=== $*"; }

# For the scripts that run every check and fail at the end: one PASS/FAIL line per check.
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# expect TEXT REGEX WHAT: die unless a line of TEXT matches the extended REGEX.
expect() {
    grep -Eq -- "$2" <<<"$1" || die "expected $3"
}
# refuse TEXT REGEX WHAT: die when a line of TEXT matches the extended REGEX.
refuse() {
    if grep -Eq -- "$2" <<<"$1"; then die "$3"; fi
}

installed() {  # installed PACKAGE: is the Debian package installed (not just its conffiles)?
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# ensure_packages PKG...: the Debian packages that are missing are installed (after one
# apt-get update) under CI=true only; otherwise they are named with the command, and the
# script stops: installing system packages is the administrator's call.
ensure_packages() {
    local missing=() package
    for package in "$@"; do
        installed "$package" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${CI:-}" != true ]; then
        echo "missing Debian packages: ${missing[*]}" >&2
        echo "install them with:  apt-get install --no-install-recommends ${missing[*]}" >&2
        echo "(or run with CI=true to have this script install them)" >&2
        exit 1
    fi
    step "apt-get install ${missing[*]}"
    if [ -z "${_APT_UPDATED:-}" ]; then
        apt-get update -qq
        _APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

project_version() {
    sed -n 's/^__version__ = "\(.*\)"$/\1/p' idle_culler_daemon/__init__.py
}

# stage_sources DIR: copy the project's files (tracked, plus untracked ones git does not ignore)
# into DIR, so that builds never see .venv, build/, stale egg-info or caches.
stage_sources() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' file; do if [ -e "$file" ]; then printf '%s\0' "$file"; fi; done \
            | tar --null --no-recursion -T - -cf - | tar -xf - -C "$dir"
    else  # an unpacked sdist or tarball: take everything but build output and caches
        tar --exclude=./build --exclude=./dist --exclude=./debian --exclude='./.venv*' \
            --exclude=./.node --exclude=__pycache__ --exclude='*.egg-info' \
            --exclude=.pytest_cache -cf - . | tar -xf - -C "$dir"
    fi
}

python_packages() {  # the top-level Python packages the wheel ships (setup.cfg's packages)
    python3 -c 'import configparser, re; c = configparser.ConfigParser(); c.read("setup.cfg"); print(" ".join(re.split(r"[\s,]+", c["options"]["packages"].strip())))'
}

purge_if_present() {  # purge_if_present PACKAGE: purge it when installed or its conffiles are left
    if dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -Eq ' (installed|config-files)$'
    then
        apt-get purge -y -qq "$1" >/dev/null 2>&1 || true
    fi
}

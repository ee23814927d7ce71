# Shared by .ci/build-*.sh and .ci/check-deb-install.sh (sourced, not run).

# Debian's own interpreter and tools only: pyenv first on PATH would hijack python3 (pybuild
# would test with a Python that lacks Debian's packages).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

PKG=jupyterhub-idle-culler-daemon
PYPI_NAME=jupyterhub_idle_culler_daemon

die() { echo "FAIL: $*" >&2; exit 1; }
step() { echo; echo "=== $*"; }

# ensure_packages PKG...: install the Debian packages that are missing, after one apt-get update.
ensure_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
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
            --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache -cf - . \
            | tar -xf - -C "$dir"
    fi
}

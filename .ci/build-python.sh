#!/usr/bin/env bash
# Build the sdist and/or the wheel with `python -m build` (PEP 517, isolated) into dist/, from a
# clean copy of the project's files, and check them: `twine check --strict`, the PEP 625 sdist
# name, the sdist's contents (tests, packaging/, README.md, LICENSE: the RPM and deb builds
# start from it) and the wheel's (the package and the console script, nothing else).
#   usage: .ci/build-python.sh sdist|wheel|all      (run from the repo root)
#   PYTHON=...  an interpreter with `build` and `twine` (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
python=${PYTHON:-$PWD/.venv/bin/python}
. .ci/lib-packaging.sh  # (sets a clean PATH; $python is absolute)

case $what in
    sdist) flags=(--sdist) ;;
    wheel) flags=(--wheel) ;;
    all) flags=() ;;  # the sdist, then the wheel built from the sdist
    *) die "usage: $0 sdist|wheel|all" ;;
esac
"$python" -m build --version >/dev/null 2>&1 || die "$python lacks 'build' (pip install build)"
"$python" -m twine --version >/dev/null 2>&1 || die "$python lacks 'twine' (pip install twine)"
version=$(project_version)

stage=$PWD/build/python-src
stage_sources "$stage"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
step "$python -m build ${flags[*]}"
"$python" -m build "${flags[@]}" --outdir "$out" "$stage" >"$out/build.log" 2>&1 \
    || { cat "$out/build.log" >&2; die "python -m build failed"; }
rm -rf "$stage"

step "twine check --strict"
files=()
for file in "$out"/*.tar.gz "$out"/*.whl; do [ -f "$file" ] && files+=("$file"); done
[ ${#files[@]} -gt 0 ] || die "python -m build made nothing"
"$python" -m twine check --strict "${files[@]}"

sdist=$out/$PYPI_NAME-$version.tar.gz
wheel=$out/$PYPI_NAME-$version-py3-none-any.whl
if [ "$what" != wheel ]; then
    step "sdist: name and contents"
    [ -f "$sdist" ] || die "no $(basename "$sdist") (PEP 625 name); made: ${files[*]}"
    listing=$(tar -tzf "$sdist")
    for needed in README.md LICENSE MANIFEST.in setup.cfg setup.py pyproject.toml \
            idle_culler_daemon/cli.py tests/unit/ tests/packaging/test_manpage.py \
            packaging/make-manpage.py packaging/rpm/$PKG.spec \
            packaging/debian/control packaging/debian/rules packaging/debian/tests/control \
            packaging/systemd/jupyterhub-idle-culler.service \
            packaging/systemd/jupyterhub-idle-culler@.service \
            packaging/systemd/jupyterhub-idle-culler-oneshot.service \
            packaging/systemd/jupyterhub-idle-culler-oneshot.timer \
            packaging/systemd/culler.env.example; do
        grep -q "^$PYPI_NAME-$version/$needed" <<<"$listing" || die "the sdist lacks $needed"
    done
    refuse "$listing" '__pycache__|\.pyc$|/\.venv|/build/|\.egg-info/.*\.pyc' \
        "the sdist carries build debris"
    refuse "$listing" "^$PYPI_NAME-$version/\.ci/" "the sdist carries the CI scripts"
fi
if [ "$what" != sdist ]; then
    step "wheel: contents"
    [ -f "$wheel" ] || die "no $(basename "$wheel"); made: ${files[*]}"
    listing=$("$python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}')
    packages=$(python_packages)
    for package in $packages; do
        expect "$listing" "^$package/__init__\\.py\$" "the Python package $package in the wheel"
    done
    if grep -Ev "^(($(tr ' ' '|' <<<"$packages"))/|$PYPI_NAME-[^/]*\\.dist-info/)" \
            <<<"$listing"; then
        die "the wheel carries files outside its packages and its dist-info"
    fi
    "$python" -m zipfile -e "$wheel" "$out/unpacked"
    grep -q '^jupyterhub-idle-culler = idle_culler_daemon.cli:main$' \
        "$out"/unpacked/*.dist-info/entry_points.txt || die "the wheel lacks the console script"
    step "wheel: metadata (what pip and PyPI show)"
    metadata=$(cat "$out"/unpacked/*.dist-info/METADATA)
    grep -E '^(Home-page|Project-URL|Provides-Extra):' <<<"$metadata" || true
    expect "$metadata" '^Home-page: https://pypi\.org/project/jupyterhub-idle-culler-daemon/$' \
        "the project's own PyPI page as its home page"
    refuse "$metadata" '^(Home-page|Project-URL|Download-URL):.*github\.com/jupyterhub' \
        "the reference's repository given as this project's home"
    # The long description (README.md) tells pip users to remove both, then install this one.
    expect "$metadata" '^pip uninstall -y jupyterhub-idle-culler jupyterhub-idle-culler-daemon$' \
        "the long description to tell pip users the safe order (uninstall both, then install)"
fi
mkdir -p dist
for file in "${files[@]}"; do
    cp "$file" dist/
    echo "OK: dist/$(basename "$file") ($(stat -c %s "$file") bytes)"
done

#!/usr/bin/env bash
# Make the source tarball that the RPM and deb builds start from, with Debian's own python3-build
# (no network): OUTDIR/jupyterhub_idle_culler_daemon-VERSION.tar.gz with a top directory of the
# same name. setuptools 66 (Debian 12) names the sdist with hyphens and setuptools >= 69.3 with
# underscores (PEP 625); the tarball is re-packed under the PEP 625 name either way, so the
# spec's Source0 never depends on the setuptools version. Reproducible (SOURCE_DATE_EPOCH).
#   usage: .ci/make-sdist.sh OUTDIR          (run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

outdir=$(realpath -m "${1:?usage: $0 OUTDIR}")
ensure_packages python3-build python3-setuptools python3-wheel
version=$(project_version)
[ -n "$version" ] || die "cannot read __version__ from idle_culler_daemon/__init__.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

stage_sources "$work/src"
python3 -m build --sdist --no-isolation --outdir "$work/out" "$work/src" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "python3 -m build --sdist failed"; }
made=("$work"/out/*.tar.gz)
[ ${#made[@]} -eq 1 ] || die "expected one sdist, got: ${made[*]}"
mkdir "$work/x"
tar -xzf "${made[0]}" -C "$work/x"
top=("$work"/x/*)
[ ${#top[@]} -eq 1 ] || die "the sdist has more than one top directory"
target="$PYPI_NAME-$version"
[ "$(basename "${top[0]}")" = "$target" ] || mv "${top[0]}" "$work/x/$target"
for needed in README.md LICENSE setup.cfg pyproject.toml packaging/make-manpage.py \
        packaging/rpm/$PKG.spec packaging/debian/control tests/unit \
        packaging/systemd/jupyterhub-idle-culler.service packaging/systemd/culler.env.example; do
    [ -e "$work/x/$target/$needed" ] || die "the sdist lacks $needed (see MANIFEST.in)"
done
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date -d 2026-11-26 +%s)}"
mkdir -p "$outdir"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$work/x" -cf - "$target" | gzip -9n >"$outdir/$target.tar.gz"
echo "$outdir/$target.tar.gz"

#!/usr/bin/env bash
# Build the noarch RPM on Debian and check it: rpmbuild -bb (with %check running tests/unit),
# rpmlint, its requirements, its file list and modes, its scriptlets, and an install into a
# scratch rpm database. Result: dist/jupyterhub-idle-culler-daemon-VERSION-1.ci.noarch.rpm.
# The spec stays Fedora-idiomatic; packaging/rpm/ci-debian.macros supplies stand-ins for the
# Fedora macros Debian's rpm lacks, so this proves the spec's structure, not Fedora acceptance.
#   usage: .ci/build-rpm.sh                  (run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

ensure_packages rpm rpmlint python3-pip python3-installer python3-wheel python3-setuptools \
    python3-build python3-pytest python3-pytest-timeout python3-requests python3-urllib3 \
    python3-dateutil python3-sdnotify groff-base

spec=packaging/rpm/$PKG.spec
top=$PWD/build/rpm
rpmopts=(--define "_topdir $top" --load=packaging/rpm/ci-debian.macros
         --define "_ci_helpers $PWD/packaging/rpm")
rm -rf "$top"
mkdir -p "$top"/{SOURCES,BUILD,BUILDROOT,RPMS,SRPMS} dist

step "spec version and Source0"
version=$(project_version)
spec_version=$(rpmspec -q --srpm --qf '%{version}\n' "${rpmopts[@]}" "$spec")
[ "$spec_version" = "$version" ] \
    || die "the spec says Version: $spec_version, idle_culler_daemon says $version"
source0=$(rpmspec -P "${rpmopts[@]}" "$spec" | sed -n 's/^Source0: *//p')
echo "Source0: $source0"
[ "$(basename "$source0")" = "$PYPI_NAME-$version.tar.gz" ] \
    || die "Source0 is not the PEP 625 name $PYPI_NAME-$version.tar.gz"

step "sdist"
.ci/make-sdist.sh "$top/SOURCES"

step "rpmbuild -bb"
# --nodeps: the BuildRequires are Fedora names that Debian's rpm database does not know.
if ! rpmbuild -bb --nodeps "${rpmopts[@]}" "$spec" >"$top/rpmbuild.log" 2>&1; then
    tail -60 "$top/rpmbuild.log" >&2
    die "rpmbuild failed (log: $top/rpmbuild.log)"
fi
grep -E '^ci_pyproject: imported [1-9]' "$top/rpmbuild.log" \
    || die "%pyproject_check_import imported nothing (log: $top/rpmbuild.log)"
grep -E '^=+ .*[1-9][0-9]* passed.* =+$' "$top/rpmbuild.log" \
    || die "%check ran no tests (log: $top/rpmbuild.log)"
rpms=("$top"/RPMS/noarch/$PKG-"$version"-*.noarch.rpm)
[ ${#rpms[@]} -eq 1 ] && [ -f "${rpms[0]}" ] || die "no RPM was made: ${rpms[*]}"
rpm=${rpms[0]}

step "rpmlint (CI filters: packaging/rpm/ci.rpmlintrc)"
rpmlint -r packaging/rpm/ci.rpmlintrc "$rpm" "$spec" || die "rpmlint reported errors"

step "rpm -qpR: runtime requirements from the dist-info"
requires=$(rpm -qpR "$rpm")
echo "$requires"
for name in requests urllib3 python-dateutil sdnotify; do
    grep -Eq "^python3(\.[0-9]+)?dist\($name\)" <<<"$requires" \
        || die "the RPM does not require $name"
done
grep -q '^python(abi) = ' <<<"$requires" || die "the RPM does not require python(abi)"

step "rpm -qlp: files, modes and flags"
files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm")
echo "$files" | grep -v '/site-packages/' || true
echo "(+ $(grep -c '/site-packages/' <<<"$files") files under site-packages)"
expect() {  # expect REGEX WHAT
    grep -Eq "$1" <<<"$files" || die "the RPM lacks $2"
}
expect '^-rwxr-xr-x +/usr/bin/jupyterhub-idle-culler$' "/usr/bin/jupyterhub-idle-culler (0755)"
for unit in jupyterhub-idle-culler.service 'jupyterhub-idle-culler@.service' \
        jupyterhub-idle-culler-oneshot.service jupyterhub-idle-culler-oneshot.timer; do
    expect "^-rw-r--r-- +/usr/lib/systemd/system/$unit\$" "the unit $unit"
done
expect '^-rw-r--r-- +d? */usr/share/man/man1/jupyterhub-idle-culler\.1(\.gz)?$' "the man page"
expect '^drwxr-xr-x +/etc/jupyterhub-idle-culler$' "the config directory (0755)"
expect '^-rw-r--r-- cn +/etc/jupyterhub-idle-culler/culler\.env$' \
    "culler.env as %config(noreplace)"
expect "^-rw-r--r-- l +/usr/share/licenses/$PKG/LICENSE\$" "the %license file"
expect "^-rw-r--r-- d +/usr/share/doc/$PKG/README\\.md\$" "the %doc README.md"
expect '/usr/lib/python3\.[0-9]+/site-packages/idle_culler_daemon/cli\.py$' "the Python package"
expect '/site-packages/jupyterhub_idle_culler_daemon-[^/]*\.dist-info/METADATA$' "the dist-info"
if grep -Eq '/etc/jupyterhub-idle-culler/(api-token|culler\.conf)' <<<"$files"; then
    die "the RPM owns an administrator's file"
fi

step "rpm -qp --scripts and --conflicts"
scripts=$(rpm -qp --scripts "$rpm")
echo "$scripts"
for pattern in 'systemctl --no-reload preset .*jupyterhub-idle-culler.service' \
        'systemctl --no-reload disable --now .*jupyterhub-idle-culler-oneshot.timer' \
        'systemctl try-restart jupyterhub-idle-culler.service'; do
    grep -Eq "$pattern" <<<"$scripts" || die "no scriptlet matches: $pattern"
done
conflicts=$(rpm -qp --conflicts "$rpm")
echo "$conflicts"
grep -q 'python3-jupyterhub-idle-culler' <<<"$conflicts" || die "no Conflicts with the reference"

step "install into a scratch rpm database (--nodeps --noscripts)"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
rpm --root "$root" --initdb
rpm -i --root "$root" --nodeps --noscripts "$rpm"
rpm --root "$root" -V --nodeps "$PKG" || die "rpm -V found changed files right after installing"
for path in usr/bin/jupyterhub-idle-culler etc/jupyterhub-idle-culler/culler.env \
        usr/lib/systemd/system/jupyterhub-idle-culler.service; do
    [ -e "$root/$path" ] || die "/$path is missing after rpm -i"
done
rpm -e --root "$root" --nodeps --noscripts "$PKG"
[ ! -e "$root/usr/bin/jupyterhub-idle-culler" ] || die "rpm -e left the binary behind"

cp "$rpm" dist/
echo
echo "OK: dist/$(basename "$rpm") ($(stat -c %s "$rpm") bytes)"

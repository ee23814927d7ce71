#!/usr/bin/env bash
# Build the .deb from the sdist with packaging/debian/ as debian/, and check it:
# dpkg-buildpackage -us -uc -b with a clean PATH (pybuild runs tests/unit during the build),
# lintian --fail-on error, its Depends, conffiles, file list and maintainer scripts.
# Result: dist/jupyterhub-idle-culler-daemon_VERSION-1_all.deb (build tree: build/deb/).
#   usage: .ci/build-deb.sh                  (run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

ensure_packages build-essential fakeroot debhelper dh-python pybuild-plugin-pyproject \
    python3-all python3-setuptools python3-build python3-wheel python3-pytest \
    python3-pytest-timeout python3-requests python3-urllib3 python3-dateutil python3-sdnotify \
    lintian groff-base man-db

version=$(project_version)
deb_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "${deb_version%-*}" = "$version" ] \
    || die "packaging/debian/changelog says $deb_version, idle_culler_daemon says $version"

top=$PWD/build/deb
rm -rf "$top"
mkdir -p "$top" dist

step "sdist"
sdist=$(.ci/make-sdist.sh "$top" | tail -1)
tar -xzf "$sdist" -C "$top"
src=$top/$PKG-$version
mv "$top/$PYPI_NAME-$version" "$src"
cp -a packaging/debian "$src/debian"

step "dpkg-checkbuilddeps"
(cd "$src" && dpkg-checkbuilddeps) || die "build dependencies are missing (apt-get build-dep ./)"

step "dpkg-buildpackage -us -uc -b (clean PATH: $PATH)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$top/dpkg-buildpackage.log" 2>&1; then
    tail -60 "$top/dpkg-buildpackage.log" >&2
    die "dpkg-buildpackage failed (log: $top/dpkg-buildpackage.log)"
fi
grep -E '^=+ .*[1-9][0-9]* passed.* =+$' "$top/dpkg-buildpackage.log" \
    || die "the build ran no tests (log: $top/dpkg-buildpackage.log)"
deb=$top/${PKG}_${deb_version}_all.deb
[ -f "$deb" ] || die "no $deb was made"

step "lintian --fail-on error"
lintian --fail-on error --display-info "$deb" || die "lintian reported errors"

step "dpkg-deb --info: Depends and conffiles"
info=$(dpkg-deb --field "$deb" Depends Conflicts Suggests)
echo "$info"
for name in python3-requests python3-urllib3 python3-dateutil python3-sdnotify; do
    grep -Eq "(^|[ ,])$name([ ,(]|$)" <<<"$(dpkg-deb --field "$deb" Depends)" \
        || die "Depends lacks $name"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
echo "conffiles: $conffiles"
[ "$conffiles" = /etc/jupyterhub-idle-culler/culler.env ] \
    || die "the conffiles are not exactly /etc/jupyterhub-idle-culler/culler.env"

step "dpkg-deb --contents"
contents=$(dpkg-deb --contents "$deb" | awk '{print $1, $6}')
echo "$contents" | grep -v '/dist-packages/' || true
expect() {  # expect REGEX WHAT
    grep -Eq "$1" <<<"$contents" || die "the .deb lacks $2"
}
expect '^-rwxr-xr-x \./usr/bin/jupyterhub-idle-culler$' "/usr/bin/jupyterhub-idle-culler"
for unit in jupyterhub-idle-culler.service 'jupyterhub-idle-culler@.service' \
        jupyterhub-idle-culler-oneshot.service jupyterhub-idle-culler-oneshot.timer; do
    expect "^-rw-r--r-- \./lib/systemd/system/$unit\$" "the unit $unit"
done
expect '^-rw-r--r-- \./usr/share/man/man1/jupyterhub-idle-culler\.1\.gz$' "the man page"
expect '^drwxr-xr-x \./etc/jupyterhub-idle-culler/$' "the config directory (0755)"
expect '^-rw-r--r-- \./etc/jupyterhub-idle-culler/culler\.env$' "culler.env"
expect '^-rw-r--r-- \./usr/share/doc/[^ ]*/copyright$' "the copyright file"
expect '/usr/lib/python3/dist-packages/idle_culler_daemon/cli\.py$' "the Python package"
expect '/usr/lib/python3/dist-packages/jupyterhub_idle_culler_daemon-[^/]*\.dist-info/' \
    "the dist-info"
if grep -Eq '/etc/jupyterhub-idle-culler/(api-token|culler\.conf)' <<<"$contents"; then
    die "the .deb ships an administrator's file"
fi

step "maintainer scripts: nothing enabled or started on installation"
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst)
# dh_installsystemd --no-enable: each unit with [Install] gets the "re-enable only if it was
# enabled before" snippet (guarded by debian-installed), never the enable-on-install one.
[ "$(grep -c "deb-systemd-helper debian-installed" <<<"$postinst")" -eq 2 ] \
    || die "the postinst does not use the --no-enable snippet for the service and the timer"
if grep -Eq 'Enables the unit on first installation|deb-systemd-invoke (start|restart) ' \
        <<<"$postinst"; then
    echo "$postinst" >&2
    die "the postinst enables or starts a unit"
fi
grep -q 'deb-systemd-invoke try-restart' <<<"$postinst" \
    || die "the postinst does not try-restart the units on upgrade"
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./prerm | grep -q 'deb-systemd-invoke stop' \
    || die "the prerm does not stop the units on removal"

cp "$deb" dist/
echo
echo "OK: dist/$(basename "$deb") ($(stat -c %s "$deb") bytes)"

#!/usr/bin/env bash
# Build the Debian source and binary packages from the sdist (as the .orig tarball) with
# packaging/debian/ as debian/, and check them: dpkg-buildpackage -us -uc with a clean PATH
# (pybuild runs tests/unit during the build), lintian --pedantic on both (clean, or a tag
# overridden with its reason in packaging/debian), the relations (Depends, Recommends, Conflicts,
# Replaces, Provides), conffiles, the file list (the units where debhelper put them) and the
# maintainer scripts. Result: dist/jupyterhub-idle-culler-daemon_VERSION-1_all.deb; the source
# package (.dsc) stays in build/deb/ for .ci/check-deb-autopkgtest.sh.
#   usage: .ci/build-deb.sh                  (run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

ensure_packages build-essential fakeroot debhelper dh-python pybuild-plugin-pyproject \
    python3-all python3-setuptools python3-build python3-wheel python3-pytest \
    python3-pytest-timeout python3-requests python3-urllib3 python3-dateutil python3-sdnotify \
    python3-prometheus-client lintian groff-base man-db

version=$(project_version)
deb_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "${deb_version%-*}" = "$version" ] \
    || die "packaging/debian/changelog says $deb_version, idle_culler_daemon says $version"

top=$PWD/build/deb
rm -rf "$top"
mkdir -p "$top" dist

step "sdist, as the .orig tarball"
sdist=$(.ci/make-sdist.sh "$top" | tail -1)
cp "$sdist" "$top/${PKG}_$version.orig.tar.gz"
tar -xzf "$sdist" -C "$top"
src=$top/$PKG-$version
mv "$top/$PYPI_NAME-$version" "$src"
cp -a packaging/debian "$src/debian"

step "dpkg-checkbuilddeps"
(cd "$src" && dpkg-checkbuilddeps) || die "build dependencies are missing (apt-get build-dep ./)"

step "dpkg-buildpackage -us -uc: source and binary (clean PATH: $PATH)"
if ! (cd "$src" && dpkg-buildpackage -us -uc) >"$top/dpkg-buildpackage.log" 2>&1; then
    tail -60 "$top/dpkg-buildpackage.log" >&2
    die "dpkg-buildpackage failed (log: $top/dpkg-buildpackage.log)"
fi
grep -E '^=+ .*[1-9][0-9]* passed.* =+$' "$top/dpkg-buildpackage.log" \
    || die "the build ran no tests (log: $top/dpkg-buildpackage.log)"
deb=$top/${PKG}_${deb_version}_all.deb
dsc=$top/${PKG}_${deb_version}.dsc
[ -f "$deb" ] && [ -f "$dsc" ] || die "no $deb and $dsc were made"
changes=$(echo "$top/${PKG}_${deb_version}"_*.changes)

step "lintian --pedantic: the source and the binary package"
# Every tag from error down to pedantic fails; overridden tags (O:) are shown with their reason.
# (lintian 2.116 exits 2 whenever --show-overrides shows one: its output is judged instead.)
lintian --pedantic --show-overrides "$changes" 2>&1 | grep -v '^running with root privileges' \
    | tee "$top/lintian.log" || true
refuse "$(cat "$top/lintian.log")" '^[EWIPX]: ' \
    "lintian reported tags that are not overridden (log: $top/lintian.log)"
for override in pypi-homepage newer-standards-version initial-upload-closes-no-bugs; do
    grep -q "^O: .*$override" "$top/lintian.log" \
        || die "lintian no longer reports $override: drop its override from packaging/debian"
done

step "dpkg-deb --field: relations and conffiles"
fields=$(dpkg-deb --field "$deb" Depends Recommends Suggests Conflicts Replaces Provides)
echo "$fields"
field() { dpkg-deb --field "$deb" "$1"; }
# procps: ExecReload='s /bin/kill.
for name in python3-requests python3-urllib3 python3-dateutil python3-sdnotify procps; do
    expect "$(field Depends)" "(^|[ ,])$name([ ,(]|$)" "Depends: $name"
done
expect "$(field Recommends)" '(^|[ ,])python3-prometheus-client([ ,(]|$)' \
    "Recommends: python3-prometheus-client (the metrics extra)"
# Debian Policy 7.6.2: it replaces the reference's package whole.
expect "$(field Conflicts)" "(^|[ ,])$REFERENCE_PKG([ ,]|$)" "Conflicts: $REFERENCE_PKG"
expect "$(field Replaces)" "(^|[ ,])$REFERENCE_PKG([ ,]|$)" "Replaces: $REFERENCE_PKG"
expect "$(field Provides)" "(^|[ ,])$REFERENCE_PKG \\(= 2\\.0\\.0\\)" "Provides: $REFERENCE_PKG (= 2.0.0)"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
echo "conffiles: $conffiles"
[ "$conffiles" = /etc/jupyterhub-idle-culler/culler.env ] \
    || die "the conffiles are not exactly /etc/jupyterhub-idle-culler/culler.env"

step "dpkg-deb --contents"
contents=$(dpkg-deb --contents "$deb" | awk '{print $1, $6}')
echo "$contents" | grep -v '/dist-packages/[^ ]*/' || true
echo "(+ $(grep -c '/dist-packages/[^ ]*/' <<<"$contents") entries under dist-packages)"
expect "$contents" '^-rwxr-xr-x \./usr/bin/jupyterhub-idle-culler$' "/usr/bin/jupyterhub-idle-culler"
# The units where this debhelper's dh_installsystemd puts them (lib/ on Debian 12, usr/lib/
# on later releases): all four in that one directory.
unitdir=$(sed -n 's|^-rw-r--r-- \./\(\(usr/\)\{0,1\}lib/systemd/system\)/jupyterhub-idle-culler\.service$|\1|p' \
    <<<"$contents")
[ -n "$unitdir" ] || die "the .deb lacks jupyterhub-idle-culler.service"
echo "units in /$unitdir"
for unit in "${UNITS[@]}"; do
    expect "$contents" "^-rw-r--r-- \\./$unitdir/$unit\$" "the unit $unit in /$unitdir"
done
expect "$contents" '^-rw-r--r-- \./usr/share/man/man1/jupyterhub-idle-culler\.1\.gz$' "the man page"
expect "$contents" '^drwxr-xr-x \./etc/jupyterhub-idle-culler/$' "the config directory (0755)"
expect "$contents" '^-rw-r--r-- \./etc/jupyterhub-idle-culler/culler\.env$' "culler.env"
expect "$contents" '^-rw-r--r-- \./usr/share/doc/[^ ]*/copyright$' "the copyright file"
for package in $(python_packages); do
    expect "$contents" "/usr/lib/python3/dist-packages/$package/__init__\\.py\$" \
        "the Python package $package"
done
expect "$contents" '/usr/lib/python3/dist-packages/jupyterhub_idle_culler_daemon-[^/]*\.dist-info/' \
    "the dist-info"
refuse "$contents" '/etc/jupyterhub-idle-culler/(api-token|culler\.conf)' \
    "the .deb ships an administrator's file"

step "maintainer scripts: nothing enabled or started; the template instances restarted too"
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst)
prerm=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./prerm)
# dh_installsystemd --no-enable: each unit with [Install] gets the "re-enable only if it was
# enabled before" snippet (guarded by debian-installed), never the enable-on-install one.
[ "$(grep -c "deb-systemd-helper debian-installed" <<<"$postinst")" -eq 2 ] \
    || die "the postinst does not use the --no-enable snippet for the service and the timer"
refuse "$postinst" 'Enables the unit on first installation|deb-systemd-invoke (start|restart) ' \
    "the postinst enables or starts a unit"
expect "$postinst" "deb-systemd-invoke try-restart .*'jupyterhub-idle-culler\\.service'" \
    "the postinst to try-restart the daemon on upgrade"
expect "$postinst" "deb-systemd-invoke try-restart 'jupyterhub-idle-culler@\\*\\.service'" \
    "the postinst to try-restart the template instances on upgrade"
# (one command over several lines)
expect "$(tr -d '\\\n' <<<"$prerm")" "deb-systemd-invoke stop [^|]*'jupyterhub-idle-culler@\\*\\.service'" \
    "the prerm to stop the units and the template instances on removal"

cp "$deb" dist/
echo
echo "OK: dist/$(basename "$deb") ($(stat -c %s "$deb") bytes); source package: $dsc"

#!/usr/bin/env bash
# Build the noarch RPM on Debian and check it: rpmbuild -bb (with %check running tests/unit),
# rpmlint (no error, no warning), its requirements and weak dependency, what it provides,
# obsoletes and conflicts with, its file list and modes, its scriptlets (the template instances
# restarted on upgrade), and installs into a scratch rpm database with real dependency checks:
# one that replaces the reference culler's package, one that a newer reference refuses.
# Result: dist/jupyterhub-idle-culler-daemon-VERSION-1.ci.noarch.rpm.
# The spec stays Fedora-idiomatic; .ci/rpm/debian.macros supplies stand-ins for the Fedora
# macros Debian's rpm lacks, so this proves the spec's structure, not Fedora acceptance.
#   usage: .ci/build-rpm.sh                  (run from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh

ensure_packages rpm rpmlint python3-pip python3-installer python3-wheel python3-setuptools \
    python3-build python3-pytest python3-pytest-timeout python3-requests python3-urllib3 \
    python3-dateutil python3-sdnotify python3-prometheus-client groff-base

spec=packaging/rpm/$PKG.spec
top=$PWD/build/rpm
rpmopts=(--define "_topdir $top" --load=.ci/rpm/debian.macros --define "_ci_helpers $PWD/.ci/rpm")
rm -rf "$top"
mkdir -p "$top"/{SOURCES,BUILD,BUILDROOT,RPMS,SRPMS} dist

step "spec version, Source0 and Python packages"
version=$(project_version)
spec_version=$(rpmspec -q --srpm --qf '%{version}\n' "${rpmopts[@]}" "$spec")
[ "$spec_version" = "$version" ] \
    || die "the spec says Version: $spec_version, idle_culler_daemon says $version"
source0=$(rpmspec -P "${rpmopts[@]}" "$spec" | sed -n 's/^Source0: *//p')
echo "Source0: $source0"
[ "$(basename "$source0")" = "$PYPI_NAME-$version.tar.gz" ] \
    || die "Source0 is not the PEP 625 name $PYPI_NAME-$version.tar.gz"
packages=$(python_packages)
spec_packages=$(sed -n 's/^%global python_packages //p' "$spec")
echo "setup.cfg packages: $packages; the spec's python_packages: $spec_packages"
[ "$spec_packages" = "$packages" ] \
    || die "the spec's %python_packages ($spec_packages) differ from setup.cfg's ($packages)"

step "sdist"
.ci/make-sdist.sh "$top/SOURCES"

step "rpmbuild -bb"
# --nodeps: the BuildRequires are Fedora names that Debian's rpm database does not know.
if ! rpmbuild -bb --nodeps "${rpmopts[@]}" "$spec" >"$top/rpmbuild.log" 2>&1; then
    tail -60 "$top/rpmbuild.log" >&2
    die "rpmbuild failed (log: $top/rpmbuild.log)"
fi
grep -E '^pyproject_standin: imported [1-9]' "$top/rpmbuild.log" \
    || die "%pyproject_check_import imported nothing (log: $top/rpmbuild.log)"
grep -E '^=+ .*[1-9][0-9]* passed.* =+$' "$top/rpmbuild.log" \
    || die "%check ran no tests (log: $top/rpmbuild.log)"
refuse "$(cat "$top/rpmbuild.log")" '^warning: ' "rpmbuild warned (log: $top/rpmbuild.log)"
rpm=$(echo "$top/RPMS/noarch/$PKG-$version"-*.noarch.rpm)
[ -f "$rpm" ] || die "rpmbuild did not make the RPM: $(ls "$top"/RPMS/noarch)"
release=$(rpm -qp --qf '%{release}' "$rpm")

step "rpmlint (CI filters: .ci/rpm/rpmlintrc)"
rpmlint -r .ci/rpm/rpmlintrc "$rpm" "$spec" | tee "$top/rpmlint.log" \
    || die "rpmlint reported errors"
grep -Eq ' 0 errors, 0 warnings' "$top/rpmlint.log" || die "rpmlint reported warnings"

step "rpm -qpR and --recommends: requirements from the dist-info, the metrics extra recommended"
requires=$(rpm -qpR "$rpm")
echo "$requires"
for name in requests urllib3 python-dateutil sdnotify; do
    expect "$requires" "^python3(\.[0-9]+)?dist\($name\)" "the RPM to require $name"
done
expect "$requires" '^python\(abi\) = ' "the RPM to require python(abi)"
refuse "$requires" 'prometheus' "the RPM requires prometheus-client (only a weak dependency)"
recommends=$(rpm -qp --recommends "$rpm")
echo "recommends: $recommends"
expect "$recommends" '^python3dist\(prometheus-client\) >= 0\.9$' \
    "Recommends: python3dist(prometheus-client) >= 0.9 (the metrics extra)"

step "rpm -qp --provides --obsoletes --conflicts: it takes the reference's place"
relations=$(for tag in provides obsoletes conflicts; do
    rpm -qp --"$tag" "$rpm" | sed "s/^/$tag: /"; done)
echo "$relations"
expect "$relations" "^provides: $REFERENCE_PKG = 2\.0\.1\$" "Provides: $REFERENCE_PKG = 2.0.1"
expect "$relations" "^obsoletes: $REFERENCE_PKG < 2\.0\.1\$" "Obsoletes: $REFERENCE_PKG < 2.0.1"
expect "$relations" "^conflicts: $REFERENCE_PKG\$" "Conflicts: $REFERENCE_PKG"
expect "$relations" "^provides: python3dist\\($PKG\\) = " "the python3dist($PKG) provide"

step "rpm -qlp: files, modes and flags"
files=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm")
echo "$files" | grep -v '/site-packages/[^ ]*/' || true
echo "(+ $(grep -c '/site-packages/[^ ]*/' <<<"$files") files under site-packages)"
expect "$files" '^-rwxr-xr-x +/usr/bin/jupyterhub-idle-culler$' "/usr/bin/jupyterhub-idle-culler (0755)"
for unit in "${UNITS[@]}"; do
    expect "$files" "^-rw-r--r-- +/usr/lib/systemd/system/$unit\$" "the unit $unit"
done
expect "$files" '^-rw-r--r-- +d? */usr/share/man/man1/jupyterhub-idle-culler\.1(\.gz)?$' "the man page"
expect "$files" '^drwxr-xr-x +/etc/jupyterhub-idle-culler$' "the config directory (0755)"
expect "$files" '^-rw-r--r-- cn +/etc/jupyterhub-idle-culler/culler\.env$' \
    "culler.env as %config(noreplace)"
expect "$files" "^-rw-r--r-- d +/usr/share/doc/$PKG/README\\.md\$" "the %doc README.md"
for package in $packages; do
    expect "$files" "/usr/lib/python3\\.[0-9]+/site-packages/$package/__init__\\.py\$" \
        "the Python package $package"
done
expect "$files" '/site-packages/jupyterhub_idle_culler_daemon-[^/]*\.dist-info/METADATA$' "the dist-info"
# The licence once: the dist-info's copy, marked %license; no second one in /usr/share/licenses.
licenses=$(grep -E '^[^ ]+ [a-z]*l[a-z]* ' <<<"$files" || true)
echo "%license: $licenses"
[ "$(grep -c . <<<"$licenses")" -eq 1 ] || die "want exactly one %license file, got: $licenses"
expect "$licenses" '/site-packages/jupyterhub_idle_culler_daemon-[^/]*\.dist-info/(licenses/)?LICENSE$' \
    "the dist-info's LICENSE as the %license file"
refuse "$files" '/usr/share/licenses/' "a second copy of the licence in /usr/share/licenses"
refuse "$files" '/etc/jupyterhub-idle-culler/(api-token|culler\.conf)' "the RPM owns an administrator's file"

step "rpm -qp --scripts: nothing enabled; the daemon and the template instances restarted on upgrade"
scripts=$(rpm -qp --scripts "$rpm")
echo "$scripts"
postun=$(sed -n '/^postuninstall scriptlet/,$p' <<<"$scripts")
preun=$(sed -n '/^preuninstall scriptlet/,/^postuninstall scriptlet/p' <<<"$scripts")
expect "$scripts" 'systemctl --no-reload preset .*jupyterhub-idle-culler\.service' "%post to preset, not enable"
expect "$preun" 'systemctl --no-reload disable --now .*jupyterhub-idle-culler-oneshot\.timer' \
    "%preun to disable and stop the units"
expect "$preun" "systemctl stop 'jupyterhub-idle-culler@\\*\\.service'" \
    "%preun to stop the template instances on removal"
expect "$postun" 'systemctl try-restart jupyterhub-idle-culler\.service' \
    "%postun to try-restart the daemon on upgrade"
expect "$postun" "systemctl try-restart 'jupyterhub-idle-culler@\\*\\.service'" \
    "%postun to try-restart the template instances on upgrade"
refuse "$scripts" 'systemctl (--no-reload )?enable|systemctl start' "a scriptlet enables or starts a unit"

step "installs into a scratch rpm database (real dependency, obsoletes and conflicts checks)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# stub NAME VERSION [PROVIDE...]: a tiny noarch RPM. The reference's stand-in owns
# /usr/bin/jupyterhub-idle-culler, as the real one does.
stub() {
    local name=$1 stub_version=$2 provide; shift 2
    {
        printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: CI stand-in\nLicense: MIT\n' \
            "$name" "$stub_version"
        printf 'BuildArch: noarch\n'
        for provide in "$@"; do printf 'Provides: %s\n' "$provide"; done
        printf '%%description\nCI stand-in.\n%%install\n'
        if [ "$name" = "$REFERENCE_PKG" ]; then
            printf 'mkdir -p %%{buildroot}/usr/bin\necho reference > %%{buildroot}/usr/bin/jupyterhub-idle-culler\n'
            printf '%%files\n/usr/bin/jupyterhub-idle-culler\n'
        else
            printf '%%files\n'
        fi
    } >"$work/$name-$stub_version.spec"
    rpmbuild -bb --quiet --define "_topdir $work/top" --define "_rpmdir $work" \
        --define '_build_name_fmt %%{NAME}-%%{VERSION}.rpm' "$work/$name-$stub_version.spec" \
        >/dev/null 2>&1 || die "could not build the stand-in $name $stub_version"
    echo "$work/$name-$stub_version.rpm"
}
# Everything the RPM requires from the distribution (Python, requests, ...): its requirements
# less rpm's own and those it satisfies itself.
mapfile -t distro < <(rpm -qpR "$rpm" | awk '{print $1}' | grep -v '^rpmlib(' | sort -u \
    | comm -23 - <(rpm -qp --provides "$rpm" | awk '{print $1}' | sort -u))
distro_rpm=$(stub ci-distribution 1 "${distro[@]}")
reference_old=$(stub "$REFERENCE_PKG" 2.0.0)
reference_new=$(stub "$REFERENCE_PKG" 2.1.0)
root=$work/root
rpm --root "$root" --initdb
rpm --root "$root" -i "$distro_rpm" "$reference_old"
echo "before: $(rpm --root "$root" -qa | sort | tr '\n' ' ')"
# rpm -U resolves the dependencies and obsoletes for real; --noscripts: no systemd in here.
rpm --root "$root" -U --noscripts "$rpm" || die "rpm -U over the reference 2.0.0 failed"
after=$(rpm --root "$root" -qa | sort)
echo "after:  $(tr '\n' ' ' <<<"$after")"
refuse "$after" "^$REFERENCE_PKG-" "the reference 2.0.0 is still installed: Obsoletes did not replace it"
expect "$after" "^$PKG-$version-$release\\." "$PKG installed"
rpm --root "$root" -V "$PKG" || die "rpm -V found changed files right after installing"
for path in usr/bin/jupyterhub-idle-culler etc/jupyterhub-idle-culler/culler.env \
        usr/lib/systemd/system/jupyterhub-idle-culler.service; do
    [ -e "$root/$path" ] || die "/$path is missing after rpm -U"
done
refuse "$(cat "$root/usr/bin/jupyterhub-idle-culler")" '^reference$' "the reference's binary is still there"
rpm --root "$root" -e --noscripts "$PKG"
[ ! -e "$root/usr/bin/jupyterhub-idle-culler" ] || die "rpm -e left the binary behind"
rpm --root "$root" -i "$reference_new"
if out=$(rpm --root "$root" -U --test --noscripts "$rpm" 2>&1); then
    die "rpm -U over a newer reference (2.1.0) was accepted"
fi
echo "$out"
expect "$out" "^\s*$REFERENCE_PKG conflicts with $PKG-$version-" \
    "rpm to refuse it because of the Conflicts: $REFERENCE_PKG"

cp "$rpm" dist/
echo
echo "OK: dist/$(basename "$rpm") ($(stat -c %s "$rpm") bytes)"

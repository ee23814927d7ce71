#!/usr/bin/env bash
# Install the built .deb on this machine with apt-get and check it for real: the dependencies
# come from Debian (its urllib3 1.26 and sdnotify 0.3.1), the units are not enabled, the
# installed binary culls a real JupyterHub on loopback (.ci/deb-realhub-check.py), and apt-get
# purge removes everything but the admin's own files. The installed command, man page and
# units are checked by the package's autopkgtest (.ci/check-deb-autopkgtest.sh).
# Leaves the machine as it found it (the package purged, the test's admin files removed).
#   usage: .ci/check-deb-install.sh [DEB]    (default: dist/jupyterhub-idle-culler-daemon_*_all.deb)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh
repo=$PWD

debs=("${1:-}")
[ -n "${debs[0]}" ] || debs=(dist/"${PKG}"_*_all.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || die "want exactly one .deb, got: ${debs[*]}"
deb=$(realpath "${debs[0]}")
confdir=/etc/jupyterhub-idle-culler
binary=/usr/bin/jupyterhub-idle-culler

if installed "$PKG"; then
    die "$PKG is already installed here; remove it first (this check installs and purges it)"
fi
# The files README.md and the units tell the administrator to write there.
admin_files=("$confdir/api-token" "$confdir/culler.conf" "$confdir/servers.env" "$confdir/servers.token")
for leftover in "${admin_files[@]}"; do
    [ ! -e "$leftover" ] || die "$leftover exists already: refusing to touch an admin's files"
done
cleanup() {
    purge_if_present "$PKG"
    rm -f "${admin_files[@]}"
    rmdir "$confdir" 2>/dev/null || true
}
trap cleanup EXIT

ensure_packages systemd

step "apt-get install $deb"
apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "$deb" 2>&1 \
    | grep -Ev "^(\(?Reading|Building|N: Download|debconf: delaying)" || true
installed "$PKG" || die "apt-get did not install $PKG"
dpkg-query -W -f='${Package} ${Version}\n' python3-requests python3-urllib3 python3-dateutil \
    python3-sdnotify
installed procps || die "procps (ExecReload='s /bin/kill) was not installed with the package"
dpkg-query -W -f='${Version}' python3-urllib3 | grep -q '^1\.26\.' \
    || die "expected Debian's python3-urllib3 1.26"
dpkg-query -W -f='${Version}' python3-sdnotify | grep -q '^0\.3\.1' \
    || die "expected Debian's python3-sdnotify 0.3.1"

step "the installed units are not enabled"
for unit in jupyterhub-idle-culler.service jupyterhub-idle-culler-oneshot.timer; do
    state=$(systemctl is-enabled "$unit" 2>&1 || true)
    echo "$unit: $state"
    [ "$state" = disabled ] || die "$unit is '$state' after installation, not disabled"
done

step "the installed binary culls a real JupyterHub (.ci/deb-realhub-check.py)"
python=$repo/.venv/bin/python
[ -x "$python" ] || python=/usr/bin/python3
if [ ! -x .venv-hub/bin/jupyterhub ] || [ ! -x .node/node_modules/.bin/configurable-http-proxy ]
then
    bash scripts/install-realhub.sh
fi
PYTHONPATH="$PWD" "$python" .ci/deb-realhub-check.py "$binary"

step "apt-get purge keeps only the admin's own files"
printf 'not-a-real-token\n' >"$confdir/api-token"
chmod 0600 "$confdir/api-token"
printf '[culler]\ntimeout = 3600\n' >"$confdir/culler.conf"
printf 'CULLER_ARGS=--timeout=3600\n' >"$confdir/servers.env"
install -m 0600 /dev/null "$confdir/servers.token" && echo not-a-real-token >"$confdir/servers.token"
echo "JUPYTERHUB_IDLE_CULLER_TIMEOUT=7200" >>"$confdir/culler.env"  # an edited conffile
owned=$(dpkg -L "$PKG")
apt-get purge -y -o Dpkg::Use-Pty=0 "$PKG" 2>&1 | grep -Ev "^(\(?Reading|Building)" || true
case $(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null || true) in
    ""|"un ") ;;
    *) die "$PKG is not purged: $(dpkg-query -W -f='${Status}' "$PKG")" ;;
esac
while IFS= read -r path; do
    case $path in
        /.|/etc|/lib|/lib/systemd|/lib/systemd/system|/usr|/usr/bin|/usr/lib|/usr/lib/python3\
        |/usr/lib/systemd|/usr/lib/systemd/system|/usr/lib/python3/dist-packages|/usr/share\
        |/usr/share/doc|/usr/share/man|/usr/share/man/man1|/usr/share/lintian\
        |/usr/share/lintian/overrides|"$confdir") continue ;;
    esac
    [ ! -e "$path" ] || die "apt-get purge left $path behind"
done <<<"$owned"
[ ! -e "$confdir/culler.env" ] || die "purge left the conffile culler.env"
for kept in "${admin_files[@]}"; do
    [ -f "$kept" ] || die "apt-get purge removed the admin's $kept"
done
[ "$(cat "$confdir/api-token")" = not-a-real-token ] || die "purge changed the admin's api-token"
# units, enablement state of deb-systemd-helper, man pages, docs, Python files
leftovers=$(find /etc /lib/systemd /usr/lib/systemd /var/lib/systemd /usr/bin /usr/share/man \
    /usr/share/doc /usr/lib/python3/dist-packages \( -name '*jupyterhub-idle-culler*' \
    -o -name '*idle_culler_daemon*' \) -print 2>/dev/null | grep -v "^$confdir\$" || true)
[ -z "$leftovers" ] || die "files left after purge: $leftovers"
ls -la "$confdir"
echo
echo "OK: installed, ran, verified, culled a real hub, purged (admin files kept)"

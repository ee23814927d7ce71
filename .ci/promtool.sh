#!/usr/bin/env bash
# Print the path of a promtool (Prometheus' rule checker), from Debian's own prometheus
# package. The whole package is heavy (96 MB, a service, a system user, a dozen JavaScript
# dependencies) and only its static promtool binary is needed, so it is downloaded with
# `apt-get download` and promtool alone is unpacked into .cache/promtool/ of this checkout;
# nothing is installed. A promtool already on PATH is used as it is.
#
#   PROMTOOL=$(bash .ci/promtool.sh) && "$PROMTOOL" check rules packaging/monitoring/alerts.yml
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
dir=$(pwd)/.cache/promtool
tool=$dir/usr/bin/promtool
if [ ! -x "$tool" ]; then
    work=$(mktemp -d /tmp/promtool.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    chmod 0755 "$work"  # apt-get download runs as _apt where it can
    (cd "$work" && { apt-get download -q prometheus >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get download -q prometheus >/dev/null 2>&1; }; })
    deb=$(ls "$work"/prometheus_*.deb)
    mkdir -p "$dir"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" ./usr/bin/promtool
    echo "promtool: unpacked from $(basename "$deb")" >&2
fi
"$tool" --version >/dev/null
echo "$tool"

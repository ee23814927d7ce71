#!/usr/bin/env bash
# Static checks of packaging/systemd/ (no running systemd needed; < 2 s):
#   1. `systemd-analyze verify --man=no --recursive-errors=yes` on all four units, in a
#      scratch --root holding the distribution's units and a stand-in ExecStart binary:
#      it must exit 0 AND print nothing (verify exits 0 on many parse warnings).
#   2. `systemd-analyze security --offline=yes` on the three services: score <= 1.5
#      (--threshold is in tenths), and no warning on stderr.
#   3. The keys of culler.env.example are exactly the variables the daemon reads:
#      idle_culler_daemon.options.env_names() + JUPYTERHUB_API_URL, JUPYTERHUB_REQUEST_TIMEOUT,
#      JUPYTERHUB_PUBLIC_HUB_URL, JUPYTERHUB_HOST (as tests/packaging/test_units.py).
# tests/packaging/test_units.py checks the same under pytest.
#
# Needs: systemd (systemd-analyze; Debian 12 has it), and an interpreter that can import the
# package (PYTHON; default: .venv/bin/python, else python3). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-packaging.sh  # UNITS, pass/fail

UNITS_DIR=packaging/systemd
SERVICES=(jupyterhub-idle-culler.service jupyterhub-idle-culler@.service
          jupyterhub-idle-culler-oneshot.service)
THRESHOLD_TENTHS=15
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found"; exit 1; }

root=$(mktemp -d /tmp/check-units.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/bin"
# verify resolves dependencies (sysinit.target, network-online.target, ...) in the root.
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "${UNITS[@]/#/$UNITS_DIR/}" "$root/etc/systemd/system/"
# ExecStart and ExecReload's /bin/kill must exist and be executable in the root (merged /usr).
ln -s usr/bin "$root/bin"
for command in jupyterhub-idle-culler kill; do
    printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/$command"
    chmod 0755 "$root/usr/bin/$command"
done

# 1. verify: the template is checked as written and as an instance (%i expanded).
for unit in "${UNITS[@]}" jupyterhub-idle-culler@check.service; do
    if out=$(systemd-analyze verify --man=no --recursive-errors=yes --root="$root" "$unit" 2>&1) \
            && [ -z "$out" ]; then
        pass "verify $unit"
    else
        fail "verify $unit printed:"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
done

# 2. security: --threshold makes it exit non-zero above the limit; warnings go to stderr.
for unit in "${SERVICES[@]}"; do
    errfile="$root/security.err"
    if out=$(systemd-analyze security --offline=yes --no-pager --threshold="$THRESHOLD_TENTHS" \
                 "$UNITS_DIR/$unit" 2>"$errfile"); then rc=0; else rc=$?; fi
    score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
    if [ "$rc" -eq 0 ] && [ -n "$score" ] && [ ! -s "$errfile" ]; then
        pass "security $unit: $score (limit $THRESHOLD_TENTHS tenths)"
    else
        fail "security $unit: score '${score:-?}', rc=$rc, limit $THRESHOLD_TENTHS tenths"
        sed 's/^/    /' "$errfile"
    fi
done

# 3. env-file keys. The hook is idle_culler_daemon.options.env_names().
if out=$(PYTHONPATH=. "$PYTHON" - "$UNITS_DIR/culler.env.example" 2>&1 <<'EOF'
import re
import sys

from idle_culler_daemon.options import env_names

# Variables read besides the JUPYTERHUB_IDLE_CULLER_* ones, documented in the file too.
HUB_VARIABLES = {"JUPYTERHUB_API_URL", "JUPYTERHUB_REQUEST_TIMEOUT", "JUPYTERHUB_PUBLIC_HUB_URL",
                 "JUPYTERHUB_HOST"}
KEY = re.compile(r"^#?([A-Z][A-Z0-9_]*)=")  # "#KEY=default" or "KEY=value"; prose is "# ..."

with open(sys.argv[1], encoding="utf-8") as example:
    keys = [m.group(1) for m in map(KEY.match, example) if m]
expected = set(env_names()) | HUB_VARIABLES
problems = []
if len(keys) != len(set(keys)):
    problems.append("duplicated: %s" % sorted({k for k in keys if keys.count(k) > 1}))
if set(keys) - expected:
    problems.append("not read by the daemon: %s" % sorted(set(keys) - expected))
if expected - set(keys):
    problems.append("missing: %s" % sorted(expected - set(keys)))
print("; ".join(problems) or "%d keys" % len(keys))
sys.exit(1 if problems else 0)
EOF
); then
    pass "culler.env.example keys = env_names() + hub variables ($out)"
else
    fail "culler.env.example keys: $out"
fi

if [ "$failures" -ne 0 ]; then
    echo "check-units: $failures check(s) failed"
    exit 1
fi
echo "check-units: all checks passed"

#!/usr/bin/env bash
# The packaged culler under a real systemd (252): boots this host's own /usr in a throwaway
# systemd-nspawn container (--volatile=yes: empty tmpfs root, host /usr read-only), starts
# the units there against a tiny fake hub on 127.0.0.1 (the container shares the host's
# network) and prints one PASS/FAIL line per check. Exit 0 only when every check passed.
#
# Checks: Type=notify start to active (running); StatusText from the daemon after a pass;
# a dynamic user; the token only through LoadCredential; idle server culled, active kept;
# a healthy daemon under WatchdogSec=3s keeps running, a SIGSTOPped one is killed by the
# watchdog and restarted; `systemctl stop` is clean (Result=success, exit 0); `systemctl
# reload` applies a changed culler.conf without a restart (ActiveState=reloading between
# RELOADING=1 and READY=1); with a broken file `systemctl reload` fails (ExecReload='s
# --check-config), no SIGHUP is sent and the old settings stay; the README's systemd-run
# recipe shows the service's own configuration (culler.env, CULLER_ARGS, the credential); two template
# instances side by side with their own settings and tokens; the timer runs a one-shot
# pass; no token (empty credential) exits 78, a token without the needed scopes fails the
# start itself (READY=1 comes after the preflight) with 78, a missing credential file fails
# with 243, none of them restart; an instance without its env file refuses to start; the
# online sandbox score.
#
# How the project gets into the container: the .deb when dist/ has one (installed on the
# host with apt-get, as a user would), else the fallback: Debian's python3-* dependencies
# and `pip install --no-deps` of this checkout into /usr/local (undone at the end), with
# drop-ins pointing ExecStart at /usr/local/bin.
#
# Needs root, a kernel allowing namespaces/seccomp, and the Debian packages below
# (installed when missing, under CI=true): systemd-container (nspawn), python3 (the fake hub), and for
# the fallback python3-requests python3-urllib3 python3-dateutil python3-sdnotify
# python3-pip python3-setuptools python3-wheel.
# Bounded: the container is killed after CONTAINER_LIMIT_S, every wait has its own limit;
# the whole run takes about a minute. Cleans up (poweroff, kill, umount) on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
. .ci/lib-packaging.sh  # Debian's python3 (not pyenv's), PKG, pass/fail/check, ensure_packages

CONTAINER_LIMIT_S=150
MACHINE=culler-e2e-$$
UNIT=jupyterhub-idle-culler.service
ONESHOT=jupyterhub-idle-culler-oneshot.service
TIMER=jupyterhub-idle-culler-oneshot.timer

started_at=$(date +%s.%N)
elapsed() { python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$started_at"; }
note() { echo "---- $* ($(elapsed)s)"; }
wait_for() {  # wait_for LIMIT_S DESCRIPTION COMMAND...: poll every 0.2 s, bounded
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then fail "$what (not within ${limit}s)"; return 1; fi
        sleep 0.2
    done
    pass "$what"
}

# --- packages --------------------------------------------------------------------------
ensure_packages systemd-container python3

# --- one run at a time (the pip fallback installs into the host's /usr/local) -----------
exec 9>/run/lock/jupyterhub-idle-culler-nspawn-e2e.lock
flock -w 120 9 || { echo "FAIL: another nspawn-e2e run holds the lock"; exit 1; }

# --- state and cleanup -----------------------------------------------------------------
WORK=$(mktemp -d /tmp/nspawn-e2e.XXXXXX)
chmod 0755 "$WORK"
HUB_PID='' TIMEOUT_PID='' NSPAWN_PID='' PID1='' PIP_INSTALLED='' DEB_INSTALLED=''
mounts_before=$(findmnt -rn -o TARGET | sort)

cleanup() {
    local rc=$? deadline leftover
    set +e
    trap - EXIT INT TERM
    if [ -n "$PID1" ] && kill -0 "$PID1" 2>/dev/null; then
        timeout 10 nsenter -t "$PID1" -a -- systemctl poweroff --no-block >/dev/null 2>&1 \
            || kill -s SIGRTMIN+4 "$PID1" 2>/dev/null  # systemd's "poweroff" signal
    fi
    if [ -n "$TIMEOUT_PID" ]; then
        deadline=$((SECONDS + 20))
        while kill -0 "$TIMEOUT_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        if kill -0 "$TIMEOUT_PID" 2>/dev/null; then
            echo "cleanup: the container did not power off; killing it"
            [ -n "$NSPAWN_PID" ] && kill -KILL "$NSPAWN_PID" 2>/dev/null
            [ -n "$PID1" ] && kill -KILL "$PID1" 2>/dev/null
            kill -KILL "$TIMEOUT_PID" 2>/dev/null
        fi
        wait "$TIMEOUT_PID" 2>/dev/null
    fi
    if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null; wait "$HUB_PID" 2>/dev/null; fi
    # Only mounts of this run (nspawn mounts in its own namespace; nothing should show up).
    leftover=$(comm -13 <(printf '%s\n' "$mounts_before") <(findmnt -rn -o TARGET | sort) \
               | grep -e "$WORK" -e nspawn -e "$MACHINE")
    if [ -n "$leftover" ]; then
        echo "FAIL: mounts left behind, unmounting: $leftover"
        printf '%s\n' "$leftover" | sort -r | while read -r target; do umount -l "$target"; done
        rc=1
    fi
    rmdir "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null
    if [ -n "$DEB_INSTALLED" ]; then  # it was not installed before this run
        purge_if_present "$PKG"
    fi
    if [ -n "$PIP_INSTALLED" ]; then
        python3 -m pip uninstall -q -y --break-system-packages --root-user-action=ignore \
            --disable-pip-version-check "$PKG" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
    echo "nspawn-e2e: finished in $(elapsed)s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- install the project on the host -------------------------------------------------
mkdir -p "$WORK/units" "$WORK/etc-culler"
deb=$(ls -t dist/${PKG}_*.deb 2>/dev/null | head -n 1 || true)
if [ -n "$deb" ]; then
    note "installing $deb"
    installed "$PKG" || DEB_INSTALLED=1
    apt-get install -y -qq "./$deb" >/dev/null 2>&1 \
        || { apt-get update -qq && _APT_UPDATED=1 && apt-get install -y -qq "./$deb" >/dev/null; }
    BIN=/usr/bin/jupyterhub-idle-culler
    # Test the units as packaged (where debhelper put them); drop-ins only.
else
    note "no dist/${PKG}_*.deb: pip fallback into /usr/local"
    ensure_packages python3-requests python3-urllib3 python3-dateutil python3-sdnotify \
        python3-pip python3-setuptools python3-wheel
    # Build from a copy, so that build/ and *.egg-info never land in the checkout.
    stage_sources "$WORK/src"
    PIP_INSTALLED=1
    python3 -m pip install -q --break-system-packages --root-user-action=ignore \
        --disable-pip-version-check --no-deps --no-build-isolation --no-cache-dir "$WORK/src"
    BIN=/usr/local/bin/jupyterhub-idle-culler
    cp packaging/systemd/*.service packaging/systemd/*.timer "$WORK/units/"
    # Every ExecStart= and ExecReload= line, each list reset first, with the binary in
    # /usr/local/bin (ExecReload='s --check-config runs it too).
    for unit in "$UNIT" jupyterhub-idle-culler@.service "$ONESHOT"; do
        mkdir -p "$WORK/units/$unit.d"
        {
            echo '[Service]'
            for key in ExecStart ExecReload; do
                grep -q "^$key=" "packaging/systemd/$unit" || continue
                echo "$key="
                sed -n "s|^\($key=[+]\{0,1\}\)/usr/bin/jupyterhub-idle-culler|\1$BIN|p; /^$key=\/bin\//p" \
                    "packaging/systemd/$unit"
            done
        } > "$WORK/units/$unit.d/10-usr-local.conf"
    done
fi
"$BIN" --version >/dev/null || { echo "FAIL: $BIN --version does not run on the host"; exit 1; }
pass "installed: $("$BIN" --version)"

# --- the fake hub ----------------------------------------------------------------------
python3 "$REPO/.ci/tiny_hub.py" --port-file "$WORK/hub.port" --record "$WORK/hub.jsonl" \
    --token tok-main=all --token tok-alpha=all --token tok-beta=all \
    --token tok-noscope=list:users,read:users:activity,read:servers &
HUB_PID=$!
deadline=$((SECONDS + 10))
until [ -s "$WORK/hub.port" ]; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$HUB_PID" 2>/dev/null; then
        echo "FAIL: the fake hub did not start"; exit 1
    fi
    sleep 0.1
done
HUB_URL="http://127.0.0.1:$(cat "$WORK/hub.port")/hub/api"
touch "$WORK/hub.jsonl"
hub_lines() { wc -l < "$WORK/hub.jsonl"; }
hub_saw() {  # hub_saw SINCE_LINE METHOD PATH TOKEN
    tail -n "+$(($1 + 1))" "$WORK/hub.jsonl" \
        | grep -F "\"method\": \"$2\", \"path\": \"$3\", \"token\": \"$4\"" >/dev/null
}
hub_reset() { python3 -c "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'), timeout=5)" "${HUB_URL%/hub/api}/_reset"; }
IDLE_SERVER="/hub/api/users/jürgen/server"
# shellcheck disable=SC2034  # used inside eval strings
ACTIVE_SERVER="/hub/api/users/active/server"

# --- /etc/jupyterhub-idle-culler of the container (read-only bind) ---------------------
(
    cd "$WORK/etc-culler"
    umask 077
    # CULLER_ARGS unquoted, as culler.env.example shows it: the README's recipe must cope.
    printf 'JUPYTERHUB_IDLE_CULLER_URL=%s\nJUPYTERHUB_IDLE_CULLER_CULL_EVERY=2\nCULLER_ARGS=--concurrency=3 --max-stops-per-pass=500\n' \
        "$HUB_URL" > culler.env
    echo tok-main > api-token
    printf 'CULLER_ARGS=--timeout=3600\n' > a.env;                       echo tok-alpha > a.token
    printf 'CULLER_ARGS=--timeout=604800 --cull-every=3\n' > b.env;      echo tok-beta > b.token
    : > empty.env;   : > empty.token                  # empty credential: daemon exits 78
    : > noscope.env; echo tok-noscope > noscope.token # scopes missing: daemon exits 78
    : > gone.env                                      # no gone.token: systemd fails 243
    echo tok-alpha > noenv.token                          # no noenv.env: refused
)
printf 'disable jupyterhub-idle-culler*\n' > "$WORK/e2e.preset"
# How each run of a service ended, recorded by an unsandboxed ("+") ExecStopPost=: an
# inactive unit may be garbage-collected at once, and `systemctl show` then reports a
# fresh unit (Result=success, ExecMainStatus=0) whatever happened.
for unit in "$UNIT" jupyterhub-idle-culler@.service "$ONESHOT"; do
    mkdir -p "$WORK/units/$unit.d"
    printf '[Service]\nExecStopPost=+/bin/sh -c '"'"'echo "%%n $$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS" >> /run/e2e-results'"'"'\n' \
        > "$WORK/units/$unit.d/40-e2e-result.conf"
done

# --- boot ------------------------------------------------------------------------------
# From here on a failing command is a FAIL line, not the end of the run.
set +e
note "booting the container"
timeout --kill-after=10 "$CONTAINER_LIMIT_S" systemd-nspawn -q -D / --volatile=yes \
    --register=no --keep-unit -M "$MACHINE" \
    --bind="$WORK/units:/etc/systemd/system" \
    --bind-ro="$WORK/etc-culler:/etc/jupyterhub-idle-culler" \
    --bind-ro="$WORK/e2e.preset:/etc/systemd/system-preset/00-e2e.preset" \
    --boot --console=passive -- systemd.firstboot=off >"$WORK/nspawn.log" 2>&1 &
TIMEOUT_PID=$!
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
deadline=$((SECONDS + 20))
while [ -z "$PID1" ] && [ "$SECONDS" -lt "$deadline" ]; do
    for NSPAWN_PID in $(children "$TIMEOUT_PID"); do
        for pid in $(children "$NSPAWN_PID"); do
            [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] && PID1=$pid
        done
    done
    [ -n "$PID1" ] || sleep 0.2
done
[ -n "$PID1" ] || { echo "FAIL: no container PID 1"; cat "$WORK/nspawn.log"; exit 1; }

ct() { timeout 60 nsenter -t "$PID1" -a -- "$@"; }
prop() { ct systemctl show -P "$2" "$1"; }
is_state() { [ "$(prop "$1" ActiveState)/$(prop "$1" SubState)" = "$2" ]; }
running_or_degraded() { case $(ct systemctl is-system-running 2>/dev/null) in running|degraded) return 0;; esac; return 1; }
main_pid() { prop "$1" MainPID; }
# Only tools that /usr provides directly: /etc/alternatives (awk, ...) is empty in the container.
uid_of() { ct sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
status_is_pass_summary() { [[ "$(prop "$1" StatusText)" =~ users\ [0-9]+ ]]; }  # status_line() of daemon.py
journal_has() { ct journalctl -q --no-pager -u "$1" | grep -F -- "$2" >/dev/null; }  # no -q: SIGPIPE + pipefail
daemon_said() {  # the daemon's own lines only, not systemd's about the unit
    ct journalctl -q --no-pager -o cat -u "$1" SYSLOG_IDENTIFIER=jupyterhub-idle-culler | grep -F -- "$2" >/dev/null
}
reload() { ct systemctl daemon-reload; }
last_result() { ct sh -c "grep '^$1 ' /run/e2e-results 2>/dev/null | tail -n 1 | cut -d ' ' -f 2-"; }

wait_for 60 "container booted (is-system-running: running or degraded)" running_or_degraded || exit 1
note "booted"
for unit in "$UNIT" jupyterhub-idle-culler@x.service "$ONESHOT" "$TIMER"; do
    check "$unit loaded" [ "$(prop "$unit" LoadState)" = loaded ]
done

# --- the daemon ------------------------------------------------------------------------
note "daemon"
mark=$(hub_lines)
check "systemctl start $UNIT returns (READY=1 reached systemd)" ct systemctl start "$UNIT"
check "Type=notify" [ "$(prop "$UNIT" Type)" = notify ]
check "active (running)" is_state "$UNIT" active/running
wait_for 20 "StatusText is the daemon's pass summary" status_is_pass_summary "$UNIT"
echo "      StatusText=$(prop "$UNIT" StatusText)"
pid=$(main_pid "$UNIT")
uid=$(uid_of "$pid")
check "runs as a dynamic user (uid $uid in 61184..65519)" eval '[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ]'
cred=/run/credentials/$UNIT/api-token
check "credential $cred owned by uid $uid, mode 400" \
    [ "$(ct stat -c '%u %a' "$cred")" = "$uid 400" ]
check "no token in the environment, CREDENTIALS_DIRECTORY set" \
    ct sh -c "tr '\\0' '\\n' < /proc/$pid/environ | grep -q '^CREDENTIALS_DIRECTORY=' \
              && ! tr '\\0' '\\n' < /proc/$pid/environ | grep -q '^JUPYTERHUB_API_TOKEN='"
check "the hub saw the credential's token (GET /user with tok-main)" \
    hub_saw "$mark" GET /hub/api/user tok-main
check "the idle server was culled (DELETE $IDLE_SERVER)" hub_saw "$mark" DELETE "$IDLE_SERVER" tok-main
check "the active server was kept" eval '! hub_saw "$mark" DELETE "$ACTIVE_SERVER" tok-main'
check "WatchdogUSec as shipped (15min)" [ "$(prop "$UNIT" WatchdogUSec)" = 15min ]
score=$(ct systemd-analyze security --no-pager "$UNIT" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
check "online security score ${score:-?} <= 1.5" python3 -c "import sys; sys.exit(not float(sys.argv[1] or 99) <= 1.5)" "${score:-}"

# --- the watchdog ------------------------------------------------------------------------
note "watchdog"
mkdir -p "$WORK/units/$UNIT.d"
printf '[Service]\nWatchdogSec=3s\nTimeoutAbortSec=5s\nRestartSec=1s\n' > "$WORK/units/$UNIT.d/50-e2e-watchdog.conf"
reload
ct systemctl restart "$UNIT"
pid=$(main_pid "$UNIT")
restarts=$(prop "$UNIT" NRestarts)
check "WatchdogSec=3s in force" [ "$(prop "$UNIT" WatchdogUSec)" = 3s ]
sleep 4.5  # one and a half watchdog intervals: only WATCHDOG=1 pings keep it alive
check "a healthy daemon survives 4.5 s of WatchdogSec=3s (pings arrive)" \
    [ "$(main_pid "$UNIT")/$(prop "$UNIT" NRestarts)" = "$pid/$restarts" ]
ct kill -STOP "$pid"
restarted() { [ "$(prop "$UNIT" NRestarts)" -gt "$restarts" ] && is_state "$UNIT" active/running \
              && [ "$(main_pid "$UNIT")" != "$pid" ]; }
wait_for 20 "kill -STOP: the watchdog kills and restarts it (NRestarts > $restarts, running)" restarted
check "the journal says 'Watchdog timeout'" journal_has "$UNIT" "Watchdog timeout"
ended=$(last_result "$UNIT")
check "that run ended with Result=watchdog, killed by SIGABRT ($ended)" \
    eval '[ "$ended" = "watchdog killed ABRT" ] || [ "$ended" = "watchdog dumped ABRT" ]'
rm -f "$WORK/units/$UNIT.d/50-e2e-watchdog.conf"
reload

# --- a clean stop ----------------------------------------------------------------------
note "stop"
wait_for 10 "running again before the stop" is_state "$UNIT" active/running
stop_started=$SECONDS
check "systemctl stop returns" ct systemctl stop "$UNIT"
check "stopped within 10 s (no request in flight)" [ $((SECONDS - stop_started)) -le 10 ]
ended=$(last_result "$UNIT")
check "Result=success, the main process exited 0 (ExecStopPost saw: $ended)" [ "$ended" = "success exited 0" ]
check "the daemon logged its own clean stop" daemon_said "$UNIT" "stopped"
check "inactive (dead)" is_state "$UNIT" inactive/dead

# --- systemctl reload: ExecReload= (SIGHUP), RELOADING=1, READY=1 -----------------------
# Self-contained: starts the stopped daemon with a culler.conf that exists only in this
# block, and leaves it stopped. systemd 252 has no Type=notify-reload: ExecReload= sends
# SIGHUP and the daemon itself answers RELOADING=1 (with MONOTONIC_USEC=), then READY=1.
note "reload"
hub_slow() { python3 -c "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'), timeout=5)" "${HUB_URL%/hub/api}/_slow?seconds=$1"; }
conf=$WORK/etc-culler/culler.conf
hub_reset
mark=$(hub_lines)
printf '[culler]\ntimeout = 604800\n' > "$conf"
chmod 0644 "$conf"  # read by the service's dynamic user
check "start $UNIT with a culler.conf (timeout 7 days)" ct systemctl start "$UNIT"
wait_for 20 "a first pass under the 7-day timeout" status_is_pass_summary "$UNIT"
check "culler.conf is read by default" daemon_said "$UNIT" "config_file=/etc/jupyterhub-idle-culler/culler.conf"
check "the 2-day idle server is kept" eval '! hub_saw "$mark" DELETE "$IDLE_SERVER" tok-main'
exec_reload=$(prop "$UNIT" ExecReload)
check "ExecReload= checks the configuration, then sends SIGHUP" \
    python3 -c "import re, sys; s = sys.argv[1]; c = s.find('--check-config'); k = s.find('/bin/kill'); sys.exit(not (re.search(r'argv\[\]=\S*jupyterhub-idle-culler --check-config', s) and 0 <= c < k and '-HUP' in s[k:]))" \
    "$exec_reload"
pid=$(main_pid "$UNIT")
printf '[culler]\ntimeout = 3600\n' > "$conf"
hub_slow 3  # the reload's preflight (GET /hub/api/) takes 3 s, so systemd can be watched
mark=$(hub_lines)
reload_started=$(date +%s.%N)
{ ct systemctl reload "$UNIT"; echo "$? $(date +%s.%N)" > "$WORK/reload.done"; } &
reload_job=$!
state_is_reloading() { [ "$(prop "$UNIT" ActiveState)" = reloading ]; }
wait_for 3 "ActiveState=reloading while the daemon reloads (after its RELOADING=1)" state_is_reloading
wait "$reload_job"
read -r reload_rc reload_ended < "$WORK/reload.done"
if [ "$reload_rc" != 0 ]; then
    echo "      systemctl reload exited $reload_rc; the unit's last lines:"
    ct journalctl -q --no-pager -o cat -u "$UNIT" -n 8 | sed 's/^/        /' || true
fi
reload_s=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" \
    "$reload_started" "$reload_ended")
check "systemctl reload returned 0 only after the daemon's READY=1 (took ${reload_s}s; its preflight 3 s)" \
    python3 -c "import sys; sys.exit(not (sys.argv[1] == '0' and float(sys.argv[2]) >= 2.9))" \
    "$reload_rc" "$reload_s"
check "active (running) again" is_state "$UNIT" active/running
check "the same main process ($pid): reloaded, not restarted" [ "$(main_pid "$UNIT")" = "$pid" ]
check "the daemon logged the change" daemon_said "$UNIT" "event=reload-changed option=timeout old=604800 new=3600"
wait_for 10 "the new timeout is in force at the next pass (DELETE of the 2-day idle server)" \
    hub_saw "$mark" DELETE "$IDLE_SERVER" tok-main
printf '[culler]\ntimeout = 604800\n[rule:x]\nusers = *\nbogus = 1\n' > "$conf"
reloads_before=$(ct journalctl -q --no-pager -o cat -u "$UNIT" SYSLOG_IDENTIFIER=jupyterhub-idle-culler | grep -c "event=reload" || true)
broken_output=$(ct systemctl reload "$UNIT" 2>&1); broken_rc=$?
echo "      systemctl reload (broken culler.conf) exited $broken_rc: $broken_output"
check "systemctl reload with a broken culler.conf fails (exit $broken_rc)" [ "$broken_rc" -ne 0 ]
check "the journal has --check-config's error naming the bad key" \
    journal_has "$UNIT" "bogus"
ct journalctl -q --no-pager -o cat -u "$UNIT" | grep -F "configuration error" | tail -n 1 | sed 's/^/      /' || true
hub_reset
mark=$(hub_lines)
wait_for 10 "the old timeout (1 h) still applies: the idle server is culled again" \
    hub_saw "$mark" DELETE "$IDLE_SERVER" tok-main
reloads_after=$(ct journalctl -q --no-pager -o cat -u "$UNIT" SYSLOG_IDENTIFIER=jupyterhub-idle-culler | grep -c "event=reload" || true)
check "no SIGHUP reached the daemon (no new reload line: $reloads_before before, $reloads_after after)" \
    [ "$reloads_before" = "$reloads_after" ]
check "still active (running), same main process" \
    eval 'is_state "$UNIT" active/running && [ "$(main_pid "$UNIT")" = "$pid" ]'
echo "      journal of the reloads (systemd's lines and the daemon's):"
ct journalctl -q --no-pager -o short-monotonic -u "$UNIT" \
    | grep -E "Reload|reload" | sed 's/^/        /' || true
ct systemctl stop "$UNIT"
rm -f "$conf"

# --- what the service sees: the README's systemd-run recipe, run as written --------------
note "show-config as the service sees it"
recipe=$(python3 - "$REPO/README.md" "$BIN" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
rest = text[text.index("**What the service sees**"):]
block = re.search(r"^ *```sh\n(.*?)^ *```", rest, flags=re.MULTILINE | re.DOTALL).group(1)
command = " ".join(line.strip().rstrip("\\").strip() for line in block.splitlines())
print(command.replace("/usr/bin/jupyterhub-idle-culler", sys.argv[2]))
PY
)
echo "      $recipe"
shown=$(ct sh -c "$recipe" 2>&1); shown_rc=$?
check "the recipe exits 0 ($shown_rc)" [ "$shown_rc" -eq 0 ]
printf '%s\n' "$shown" | sed 's/^/        /' | head -n 60
shows() { grep -E -- "$1" <<<"$shown" >/dev/null; }
check "it shows the URL from culler.env" shows "url .*${HUB_URL}.*JUPYTERHUB_IDLE_CULLER_URL"
check "it shows both CULLER_ARGS (unquoted in culler.env) as command-line values" \
    eval 'shows "concurrency .*3.*command line" && shows "max_stops_per_pass .*500.*command line"'
check "it finds the token in the service's credential, redacted" \
    eval 'shows "<redacted>.*CREDENTIALS_DIRECTORY|CREDENTIALS_DIRECTORY.*<redacted>" && ! shows tok-main'

# --- a changed token file: `systemctl restart` brings it in ------------------------------
# (culler.env.example and README.md say a restart.) What a reload does with it is printed,
# not relied on: systemd 252 copies the credential again only when a privileged ("+")
# ExecReload= line runs, as the shipped units' --check-config does; with a plain
# ExecReload=/bin/kill it keeps the copy made at start (measured here).
note "token change"
check "start $UNIT (token tok-main)" ct systemctl start "$UNIT"
wait_for 20 "a first pass" status_is_pass_summary "$UNIT"
pid=$(main_pid "$UNIT")
echo tok-beta > "$WORK/etc-culler/api-token"
check "systemctl reload after the token file changed" ct systemctl reload "$UNIT"
echo "      after the reload, the service's credential copy holds: $(ct cat "/run/credentials/$UNIT/api-token")"
check "still active (running), same main process" \
    eval 'is_state "$UNIT" active/running && [ "$(main_pid "$UNIT")" = "$pid" ]'
mark=$(hub_lines)
check "systemctl restart" ct systemctl restart "$UNIT"
wait_for 20 "after the restart the hub sees the new token (tok-beta)" \
    hub_saw "$mark" GET /hub/api/users tok-beta
check "and never the old one after the restart" eval '! hub_saw "$mark" GET /hub/api/users tok-main'
ct systemctl stop "$UNIT"
echo tok-main > "$WORK/etc-culler/api-token"

# --- template instances side by side ---------------------------------------------------
note "template instances"
mark=$(hub_lines)
check "start @a and @b" ct systemctl start jupyterhub-idle-culler@a.service jupyterhub-idle-culler@b.service
check "@a active (running)" is_state jupyterhub-idle-culler@a.service active/running
check "@b active (running)" is_state jupyterhub-idle-culler@b.service active/running
wait_for 20 "@a finished a pass" status_is_pass_summary jupyterhub-idle-culler@a.service
wait_for 20 "@b finished a pass" status_is_pass_summary jupyterhub-idle-culler@b.service
pid_a=$(main_pid jupyterhub-idle-culler@a.service); pid_b=$(main_pid jupyterhub-idle-culler@b.service)
uid_a=$(uid_of "$pid_a"); uid_b=$(uid_of "$pid_b")
check "own processes ($pid_a, $pid_b) and dynamic users ($uid_a, $uid_b; daemon had $uid)" \
    eval '[ "$pid_a" != "$pid_b" ] && [ -n "$uid_a" ] && [ -n "$uid_b" ] && [ "$uid_a" != "$uid_b" ] && [ "$uid_a" != "$uid" ]'
args_b=$(ct sh -c "tr '\\0' '\\n' < /proc/$pid_b/cmdline" | tail -n 2 | paste -sd ' ')
check "@b got its CULLER_ARGS as two arguments ($args_b)" [ "$args_b" = "--timeout=604800 --cull-every=3" ]
check "@a (timeout 1 h, token tok-alpha) culled the 2-day idle server" hub_saw "$mark" DELETE "$IDLE_SERVER" tok-alpha
check "@b (timeout 7 d, token tok-beta) listed users but culled nothing" \
    eval 'hub_saw "$mark" GET /hub/api/users tok-beta && ! hub_saw "$mark" DELETE "$IDLE_SERVER" tok-beta'
ct systemctl stop jupyterhub-idle-culler@a.service jupyterhub-idle-culler@b.service

# --- the timer and the one-shot pass ---------------------------------------------------
note "timer"
hub_reset
mark=$(hub_lines)
# The shipped OnBootSec=5min would not elapse during the test: fire 1 s after start instead
# (an empty assignment resets all the timer's triggers), keeping a repeat trigger.
mkdir -p "$WORK/units/$TIMER.d"
printf '[Timer]\nOnBootSec=\nOnActiveSec=1s\nOnUnitInactiveSec=10min\nRandomizedDelaySec=0\nAccuracySec=1s\n' \
    > "$WORK/units/$TIMER.d/50-e2e-now.conf"
reload
check "start $TIMER" ct systemctl start "$TIMER"
oneshot_done() { [ -n "$(last_result "$ONESHOT")" ]; }
wait_for 20 "the timer started $ONESHOT, which finished" oneshot_done
ended=$(last_result "$ONESHOT")
check "the one-shot pass succeeded and exited 0 ($ended)" [ "$ended" = "success exited 0" ]
check "the one-shot pass culled the idle server with the credential's token" \
    hub_saw "$mark" DELETE "$IDLE_SERVER" tok-main
check "the timer waits for its next run" is_state "$TIMER" active/waiting
ct systemctl stop "$TIMER"

# --- configuration errors: no restart loop ----------------------------------------------
note "configuration errors"
unit_outcome() {  # failed units are kept in memory: these properties are reliable
    echo "$(prop "$1" ActiveState)/$(prop "$1" SubState) NRestarts=$(prop "$1" NRestarts) status=$(prop "$1" ExecMainStatus)"
}
failed_without_restart() {  # UNIT EXPECTED_STATUS
    [ "$(unit_outcome "$1")" = "failed/failed NRestarts=0 status=$2" ]
}
check "@empty (empty credential): start fails" eval '! ct systemctl start jupyterhub-idle-culler@empty.service 2>/dev/null'
check "@gone (credential file missing): start fails" eval '! ct systemctl start jupyterhub-idle-culler@gone.service 2>/dev/null'
noscope_output=$(ct systemctl start jupyterhub-idle-culler@noscope.service 2>&1); noscope_rc=$?
echo "      systemctl start @noscope exited $noscope_rc: $noscope_output"
check "@noscope (scopes missing): start fails (READY=1 comes after the preflight)" [ "$noscope_rc" -ne 0 ]
check "@noenv (env file missing): start fails" eval '! ct systemctl start jupyterhub-idle-culler@noenv.service 2>/dev/null'
wait_for 15 "@noscope (scopes missing) failed with 78" failed_without_restart jupyterhub-idle-culler@noscope.service 78
sleep 1.5  # a restart, if any were scheduled, would show as activating (auto-restart) by now
check "@empty: exit 78, failed, NRestarts=0 ($(unit_outcome jupyterhub-idle-culler@empty.service))" \
    failed_without_restart jupyterhub-idle-culler@empty.service 78
check "@empty: the daemon said why (names the api-token credential)" daemon_said jupyterhub-idle-culler@empty.service "api-token"
check "@gone: exit 243 (CREDENTIALS), failed, NRestarts=0 ($(unit_outcome jupyterhub-idle-culler@gone.service))" \
    failed_without_restart jupyterhub-idle-culler@gone.service 243
check "@noscope: still failed, NRestarts=0 ($(unit_outcome jupyterhub-idle-culler@noscope.service))" \
    failed_without_restart jupyterhub-idle-culler@noscope.service 78
check "@noenv: Result=resources, never ran" \
    [ "$(prop jupyterhub-idle-culler@noenv.service Result)/$(prop jupyterhub-idle-culler@noenv.service ExecMainPID)" = resources/0 ]

if [ "$failures" -ne 0 ]; then
    echo "---- journal of the culler units (last 60 lines)"
    ct journalctl -q --no-pager -u 'jupyterhub-idle-culler*' | tail -n 60 || true
    echo "---- the hub's record"
    cat "$WORK/hub.jsonl"
    echo "nspawn-e2e: $failures check(s) FAILED"
    exit 1
fi
echo "nspawn-e2e: all checks passed"

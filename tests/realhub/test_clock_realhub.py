"""Idle on the hub's clock, on a real JupyterHub 6.1.1 (docs/behaviour.md#the-hubs-clock).

The culler (the installed console script) runs under libfaketime (Debian's ``faketime``) with
its wall clock 2 h ahead of the hub's, then 2 h behind; the monotonic clock is left alone
(``FAKETIME_DONT_FAKE_MONOTONIC=1``), as after an NTP step or a VM resumed from suspend. The
hub's own clock is this machine's; servers are back-dated on it through the harness.
Without ``faketime`` these tests skip, except under CI (``CI=true``), where they fail.
"""

import os
import shutil

import pytest

from tests.support.realhub import culler_command, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600
MINUTE = 60


def faketime():
    found = shutil.which("faketime")
    if found:
        return found
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail("faketime is missing (apt-get install faketime), and CI=true forbids "
                    "skipping", pytrace=False)
    pytest.skip("faketime is not installed (Debian: apt-get install faketime)")


def culled_with_clock(hub, shift):
    """One pass of the culler whose wall clock is ``shift`` (faketime's ``+2h``/``-2h``)."""
    result = hub.run_culler("culler", "--timeout=1h", "--once",
                            command=[faketime(), "-f", shift] + culler_command(),
                            env={"FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    print("culler with its clock %s of the hub's, exit %d:\n%s"
          % (shift, result.returncode, result.stderr))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    return result


def warnings_of(result, event):
    return [line for line in result.stderr.splitlines()
            if "level=WARNING" in line and "event=%s " % event in line]


def started_and_backdated(hub, idle_by_user):
    hub.create_users(list(idle_by_user))
    hub.start_servers(list(idle_by_user))
    for user, idle_s in idle_by_user.items():
        hub.backdate(user, "", last_activity=idle_s, started=idle_s,
                     user_last_activity=idle_s, created=idle_s)


def test_realhub_culler_clock_two_hours_ahead_keeps_servers_idle_30_minutes(realhub):
    # Measured on its own clock, the culler saw 2 h 30 min and stopped the fresh server.
    fresh, old = unique_names("clock-ahead", 2)
    started_and_backdated(realhub, {fresh: 30 * MINUTE, old: 3 * HOUR})
    result = culled_with_clock(realhub, "+2h")
    assert realhub.server_running(fresh) and not realhub.server_running(old)
    (line,) = warnings_of(result, "clock-offset")
    assert " offset_s=-7200 " in line
    assert "event=stop user=%s server=- reason=idle idle_s=108" % old in result.stderr


def test_realhub_culler_clock_two_hours_behind_stops_servers_idle_90_minutes(realhub):
    # Measured on its own clock, the culler saw -30 min and kept the idle server.
    idle, busy = unique_names("clock-behind", 2)
    started_and_backdated(realhub, {idle: 90 * MINUTE, busy: 10 * MINUTE})
    result = culled_with_clock(realhub, "-2h")
    assert not realhub.server_running(idle) and realhub.server_running(busy)
    (line,) = warnings_of(result, "clock-offset")
    assert " offset_s=7200 " in line
    assert "event=stop user=%s server=- reason=idle idle_s=54" % idle in result.stderr

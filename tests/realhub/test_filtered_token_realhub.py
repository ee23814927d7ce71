"""A token whose delete:servers scope is filtered (``delete:servers!group=lab``) on a real hub.

The hub answers 404 "No access to resources or resources not found" to every stop of a server
outside the filter, the same text as for one that does not exist. The server is still running:
the culler must not count it as stopped, and says once which servers it cannot reach.
"""

import pytest

from tests.support.realhub import unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600
FILTERED = ["list:users", "read:users", "read:users:activity", "read:servers",
            "delete:servers!group=lab"]


def test_realhub_servers_outside_a_filtered_scope_are_not_counted_as_stopped(fresh_realhub):
    hub = fresh_realhub(services=[{"name": "lab-culler", "scopes": FILTERED}])
    member, outsider = unique_names("filtered", 2)
    hub.create_users([member, outsider])
    hub.add_to_group("lab", [member])
    for user in (member, outsider):
        hub.start_server(user)
        hub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR)
    result = hub.run_culler("lab-culler", "--timeout=%d" % HOUR, "--once")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert not hub.server_running(member) and hub.server_running(outsider)
    assert " stopped=1 " in result.stderr and " unreachable=1 " in result.stderr
    unreachable = [line for line in result.stderr.splitlines() if "stop-unreachable" in line]
    assert len(unreachable) == 1 and outsider in unreachable[0], result.stderr
    assert "stop user=%s server=- reason=idle" % member in result.stderr

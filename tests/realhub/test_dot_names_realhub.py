"""Names made of dots on a real hub: the DELETE must reach the server it names.

"." and ".." are dot segments: sent as they are, the HTTP stack removes them, and
``DELETE /users/alice/servers/.`` becomes ``DELETE /users/alice/servers/``, which the hub
routes to alice's *default* server (and ``servers/..`` to ``DELETE /users/alice``, the user).
JupyterHub 6 refuses such names for new servers but keeps those made before; 5.x still
accepts them, so this runs on JupyterHub 5.5 (`.venv-hub-5.5`, made by `make hub`), and
proves that tornado decodes the culler's ``%2E`` back to ".".
"""

import pytest

from tests.support.realhub import CULLER_SCOPES

pytestmark = pytest.mark.realhub

HOUR = 3600


@pytest.fixture
def hub5(fresh_realhub):
    hub = fresh_realhub(services=[{"name": "culler", "scopes": CULLER_SCOPES}], hub="5.5")
    assert hub.admin_api("GET", "/").json()["version"].startswith("5.")
    return hub


def test_realhub_5_servers_named_dots_are_stopped_and_the_active_default_server_kept(hub5):
    hub5.create_users(["alice", "bob"])
    for name in ("", ".", ".."):
        hub5.start_server("alice", name)
    hub5.start_server("bob", ".")
    for user, name in (("alice", "."), ("alice", ".."), ("bob", ".")):
        hub5.backdate(user, name, last_activity=2 * HOUR, started=2 * HOUR)
    result = hub5.run_culler("culler", "--timeout=%d" % HOUR, "--once")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert hub5.user_exists("alice") and hub5.server_running("alice", "")  # active: kept
    for user, name in (("alice", "."), ("alice", ".."), ("bob", ".")):
        assert not hub5.server_running(user, name), (user, name)
        assert hub5.server_exists(user, name)  # stopped, not removed
    assert 'stop user=alice server=. reason=idle' in result.stderr


def test_realhub_5_remove_named_servers_removes_only_the_dot_server(hub5):
    hub5.create_users(["carol"])
    for name in ("", ".", "lab"):
        hub5.start_server("carol", name)
    hub5.backdate("carol", ".", last_activity=2 * HOUR, started=2 * HOUR)
    result = hub5.run_culler("culler", "--timeout=%d" % HOUR, "--once",
                             "--remove-named-servers")
    assert result.returncode == 0, result.stderr
    servers = hub5.user_model("carol")["servers"]
    assert "." not in servers and hub5.server_running("carol", "")
    assert hub5.server_running("carol", "lab")

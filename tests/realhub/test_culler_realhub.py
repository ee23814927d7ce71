"""The culler against a real JupyterHub 6.1.1 with configurable-http-proxy, on loopback.

Idle and active servers, --cull-users and a token without delete:servers are tested on every
hub version, 6.1 included, in test_hub_versions.py."""

import sys
import time

import pytest

from tests.support.realhub import CULLER_SCOPES, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600


def culled(hub, *args, service="culler"):
    result = hub.run_culler(service, "--timeout=%d" % HOUR, "--once", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_realhub_named_server_removed_only_with_remove_named_servers(realhub):
    kept, removed = unique_names("named", 2)
    realhub.create_users([kept, removed])
    realhub.start_server(kept, "lab")
    realhub.backdate(kept, "lab", last_activity=2 * HOUR, started=2 * HOUR)
    assert culled(realhub).returncode == 0
    assert not realhub.server_running(kept, "lab") and realhub.server_exists(kept, "lab")
    realhub.start_server(removed, "lab")
    realhub.backdate(removed, "lab", last_activity=2 * HOUR, started=2 * HOUR)
    assert culled(realhub, "--remove-named-servers").returncode == 0
    assert not realhub.server_exists(removed, "lab")


@pytest.mark.parametrize("prefix", ["a+b", "c@d.org", "zoë", "c#d"])
def test_realhub_user_names_that_need_quoting(realhub, prefix):
    (name,) = unique_names(prefix)
    bystander = None
    if "#" in prefix:  # `base#d` unquoted would have deleted user `base`
        (bystander,) = unique_names("quoting-bystander")
        name = bystander + "#d"
    realhub.create_users([name] + ([bystander] if bystander else []))
    realhub.start_server(name)
    realhub.backdate(name, "", last_activity=2 * HOUR, started=2 * HOUR,
                     user_last_activity=2 * HOUR, created=3 * HOUR)
    if bystander:
        realhub.start_server(bystander)
    result = culled(realhub, "--cull-users")
    assert result.returncode == 0, result.stderr
    assert not realhub.user_exists(name)
    if bystander:
        assert realhub.user_exists(bystander) and realhub.server_running(bystander)


def test_realhub_dry_run_changes_nothing(realhub):
    idle, never = unique_names("dry", 2)
    realhub.create_users([idle, never])
    realhub.start_server(idle, "lab")
    realhub.backdate(idle, "lab", last_activity=2 * HOUR, started=2 * HOUR,
                     user_last_activity=2 * HOUR, created=3 * HOUR)
    realhub.backdate(never, None, created=2 * HOUR)
    result = culled(realhub, "--cull-users", "--remove-named-servers", "--dry-run")
    assert result.returncode == 0
    assert realhub.server_running(idle, "lab") and realhub.user_exists(never)
    assert "would-stop user=%s server=lab" % idle in result.stderr
    assert any(line.split()[:3] == ["would-delete", never, "-"] for line in
               result.stdout.splitlines())


@pytest.mark.parametrize("service,scope", [("culler-no-delete-servers", "delete:servers"),
                                           ("culler-no-read-servers", "read:servers"),
                                           ("culler-no-delete-users", "delete:users")])
def test_realhub_missing_scope_exits_78_naming_it(realhub, service, scope):
    (idle,) = unique_names("scope")
    realhub.create_users([idle])
    realhub.start_server(idle)
    realhub.backdate(idle, "", last_activity=2 * HOUR, started=2 * HOUR)
    args = ["--cull-users"] if scope == "delete:users" else []
    result = culled(realhub, *args, service=service)
    assert result.returncode == 78, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "level=ERROR " in line]
    assert len(error_lines) == 1 and scope in error_lines[0]
    assert realhub.server_running(idle)


def test_realhub_hub_managed_service_culls(fresh_realhub):
    command = [sys.executable, "-m", "idle_culler_daemon", "--timeout=%d" % HOUR,
               "--cull-every=1", "--remove-named-servers"]
    hub = fresh_realhub(services=[{"name": "managed-culler", "scopes": CULLER_SCOPES,
                                   "command": command}])
    idle, active = unique_names("managed", 2)
    hub.create_users([idle, active])
    hub.start_server(idle, "lab")
    hub.start_server(active)
    hub.backdate(idle, "lab", last_activity=2 * HOUR, started=2 * HOUR)
    deadline = time.monotonic() + 30
    while hub.server_exists(idle, "lab") and time.monotonic() < deadline:
        time.sleep(0.2)  # the service runs on its own schedule: poll the hub, bounded
    assert not hub.server_exists(idle, "lab"), hub.log_tail(40)
    assert hub.server_running(active)

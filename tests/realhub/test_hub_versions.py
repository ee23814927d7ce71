"""The culler on every supported JupyterHub (tests/realhub/hub-versions.txt), run as
``python -m jupyterhub_idle_culler``.

Which versions: $REALHUB_VERSIONS ("all", or keys like "1.5,6.1"); by default only 6.1, the
hub of `make test`. `make test-hubs` runs them all, in sequence, one hub start per version for
all of its scenarios (a module-scoped fixture).

The hub-managed scenario is Zero-to-JupyterHub's: the hub starts the culler with the chart's
command line (tests/support/ztjh.py) and role. Its first pass runs when the hub starts, before
a test can prepare anything, and the next one only 600 s later: the test ends that process,
and the hub starts it again (it polls its managed services every second here) with the same
command line, whose first pass then sees the prepared users.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.realhub.fixtures import require_realhub, running_hub
from tests.support import hubversions, ztjh
from tests.support.realhub import CULLER_SCOPES, RealHub, module_command, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600
CULLER_BIN = str(Path(sys.executable).parent)  # `python3` of the chart's command: ours
ZTJH_VALUES = {"users": True, "admin_users": False}  # cull.users: true, cull.adminUsers: false


def services_for(version):
    """The culler for standalone runs, the chart's managed culler, and a token that may not
    stop servers (lacks delete:servers on hubs with scopes; a non-admin service before 2.0)."""
    return [
        {"name": "culler", "scopes": CULLER_SCOPES},
        {"name": "kernel-checker", "scopes": CULLER_SCOPES + ["tokens"]},
        {"name": "no-delete-servers",
         "scopes": [s for s in CULLER_SCOPES if s != "delete:servers"] if version.has_scopes
         else []},
        {"name": ztjh.SERVICE_NAME, "scopes": ztjh.role_scopes(users=ZTJH_VALUES["users"]),
         "command": lambda hub: ztjh.cull_command(hub.ports["hub"], **ZTJH_VALUES),
         "environment": {"PATH": CULLER_BIN + os.pathsep + "/usr/bin:/bin"}},
    ]


@pytest.fixture(scope="module", params=hubversions.selected(), ids=lambda v: "hub-" + v.key)
def versioned_hub(request, tmp_path_factory):
    version = request.param
    require_realhub(version)
    hub = RealHub(tmp_path_factory.mktemp("hub-" + version.key), services_for(version),
                  hub=version, slow_stop_timeout=1, slow_spawn_timeout=1,
                  service_poll_interval=1)
    with running_hub(hub, managed_passes=1):  # the chart's culler's first pass, on no one
        yield hub


def culled(hub, *args, service="culler"):
    result = hub.run_culler(service, "--timeout=%d" % HOUR, "--once", *args,
                            command=module_command())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_hub_versions_idle_servers_stopped_active_kept(versioned_hub):
    hub = versioned_hub
    idle, active, named_idle, named_active = unique_names("srv", 4)
    hub.create_users([idle, active, named_idle, named_active])
    hub.start_server(idle)
    hub.start_server(active)
    hub.start_server(named_idle, "lab")
    hub.start_server(named_active, "lab")
    hub.backdate(idle, "", last_activity=2 * HOUR, started=2 * HOUR)
    hub.backdate(named_idle, "lab", last_activity=2 * HOUR, started=2 * HOUR)
    result = culled(hub)
    assert result.returncode == 0, result.stderr
    assert not hub.server_running(idle) and hub.server_running(active)
    assert not hub.server_running(named_idle, "lab") and hub.server_running(named_active, "lab")
    assert "stop user=%s server=- reason=idle" % idle in result.stderr
    assert "stop user=%s server=lab reason=idle" % named_idle in result.stderr
    # the preflight copes with what GET /user answers: scopes from 2.0, none before
    expected = "scopes=ok" if hub.has_scopes else 'scopes="not-reported'
    assert "preflight hub_version=%s %s" % (hub.hub_version.version, expected) in result.stderr


def test_hub_versions_cull_users_deletes_idle_users_and_keeps_admins(versioned_hub):
    hub = versioned_hub
    with_server, never_started, fresh, admin = unique_names("cu", 4)
    hub.create_users([with_server, never_started, fresh])
    hub.create_users([admin], admin=True)
    hub.start_server(with_server)
    hub.start_server(admin)
    for user in (with_server, admin):
        hub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR,
                     user_last_activity=2 * HOUR, created=3 * HOUR)
    hub.backdate(never_started, None, created=2 * HOUR)
    result = culled(hub, "--cull-users", "--cull-admin-users=false")
    assert result.returncode == 0, result.stderr
    assert not hub.user_exists(with_server)
    assert not hub.user_exists(never_started)
    assert hub.user_exists(fresh)
    assert hub.user_exists(admin) and not hub.server_running(admin)


def test_hub_versions_token_that_may_not_stop_servers_exits_78(versioned_hub):
    hub = versioned_hub
    (idle,) = unique_names("scope")
    hub.create_users([idle])
    hub.start_server(idle)
    hub.backdate(idle, "", last_activity=2 * HOUR, started=2 * HOUR)
    result = culled(hub, service="no-delete-servers")
    assert hub.server_running(idle)
    assert result.returncode == 78, result.stderr
    errors = [line for line in result.stderr.splitlines() if "level=ERROR " in line]
    assert len(errors) == 1
    assert ("delete:servers" if hub.has_scopes else "admin") in errors[0]


def test_hub_versions_what_a_kernel_check_sends_a_server_cannot_act_beyond_its_user(
        versioned_hub):
    """mallory's server records what the culler's client sends it (the in-hub responder,
    through the real proxy); with that Authorization, mallory can list no users and cannot
    stop victim's server, on every hub version (1.5 and 2.3 ignore the asked scopes: the
    token then has mallory's own rights, which she has anyway)."""
    import requests

    from idle_culler_daemon.config import HubSettings
    from idle_culler_daemon.hub import HubClient

    hub = versioned_hub
    mallory, victim = unique_names("mal", 2)
    hub.create_users([mallory, victim])
    hub.start_server(mallory)
    hub.start_server(victim)
    url = (hub.server_model(mallory) or {}).get("url") or "/user/%s/" % mallory
    client = HubClient(HubSettings(api_url=hub.api_url, token=hub.token("kernel-checker"),
                                   read_timeout=10, server_url_base=hub.public_url))
    try:
        token = client.server_token(mallory, "", 60)
        assert client.server_status(url, token)["realhub"] is True
        recorded = [entry for entry in hub.admin_api("GET", "/_realhub/recorded",
                                                     check=True).json()
                    if entry["path"] == url + "api/status"]  # not the hub's own "api" check
        assert len(recorded) == 1
        sent = recorded[0]["authorization"]
        assert sent == "token " + token.value and hub.token("kernel-checker") not in sent
        assert recorded[0]["query"] == "no_track_activity=1" and not recorded[0]["cookie"]

        def as_mallory(method, path):
            return requests.request(method, hub.api_url + path, timeout=30,
                                    headers={"Authorization": sent})
        assert as_mallory("GET", "/users").status_code == 403
        assert as_mallory("DELETE", "/users/%s/server" % victim).status_code in (403, 404)
        assert hub.server_running(victim)
        client.revoke_token(mallory, token.id)
        assert as_mallory("GET", "/users/%s" % mallory).status_code == 403  # revoked
    finally:
        client.close()


def test_hub_versions_zero_to_jupyterhub_managed_service_culls(versioned_hub):
    hub = versioned_hub
    idle, named_idle, active, never, admin = unique_names("ztjh", 5)
    hub.create_users([idle, named_idle, active, never])
    hub.create_users([admin], admin=True)
    for user, server in ((idle, ""), (named_idle, "lab"), (active, ""), (admin, "")):
        hub.start_server(user, server)
    for user, server in ((idle, ""), (named_idle, "lab"), (admin, "")):
        hub.backdate(user, server, last_activity=2 * HOUR, started=2 * HOUR,
                     user_last_activity=2 * HOUR, created=3 * HOUR)
    hub.backdate(never, None, created=2 * HOUR)

    (first,) = hub.service_pids(ztjh.SERVICE_NAME)
    mark = hub.log_size()
    os.kill(first, signal.SIGTERM)  # the hub starts it again: a first pass, now
    log = hub.wait_for_log("pass-done", since=mark, timeout=30)
    deadline = time.monotonic() + 10
    while not (pids := hub.service_pids(ztjh.SERVICE_NAME)) and time.monotonic() < deadline:
        time.sleep(0.1)  # (it is running: the hub started it before its pass was logged)
    (second,) = pids
    assert second != first
    with open("/proc/%d/cmdline" % second, "rb") as f:
        argv = f.read().decode().split("\0")[:-1]
    assert argv == ztjh.cull_command(hub.ports["hub"], **ZTJH_VALUES)

    assert "stop user=%s server=- reason=idle" % idle in log, log
    assert "stop user=%s server=lab reason=idle" % named_idle in log, log
    assert not hub.server_running(named_idle, "lab")
    assert hub.server_running(active)
    assert not hub.user_exists(idle) and not hub.user_exists(never)
    assert hub.user_exists(admin) and not hub.server_running(admin)
    assert hub.user_exists(active)


def test_ztjh_default_values_give_the_charts_command_line():
    assert ztjh.cull_command() == [
        "python3", "-m", "jupyterhub_idle_culler", "--url=http://localhost:8081/hub/api",
        "--timeout=3600", "--cull-every=600", "--concurrency=10"]
    assert ztjh.cull_command(users=True, admin_users=False, remove_named_servers=True,
                             max_age=86400)[-4:] == [
        "--cull-users", "--cull-admin-users=false", "--remove-named-servers", "--max-age=86400"]


def test_hub_versions_file_and_its_readme_table_agree():
    readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in hubversions.VERSIONS}
    assert sorted(rows) == sorted(hubversions.VERSIONS)
    for key, version in hubversions.VERSIONS.items():
        assert "| %s |" % version.version in rows[key].replace(" (newest 5.x)", "")
        assert "`%s`" % version.folder in rows[key]
        for pin in version.pins:
            assert pin in rows[key], (key, pin)
        assert version.pins or "none" in rows[key]
    assert hubversions.get().folder == ".venv-hub"  # `make test` and `make demo` use it


def test_hub_versions_selection_from_the_environment():
    assert [v.key for v in hubversions.selected({})] == [hubversions.DEFAULT]
    assert [v.key for v in hubversions.selected({"REALHUB_VERSIONS": "all"})] == list(
        hubversions.VERSIONS)
    assert [v.key for v in hubversions.selected({"REALHUB_VERSIONS": "1.5, 6.1"})] == [
        "1.5", "6.1"]
    with pytest.raises(ValueError, match="no JupyterHub '9.9'"):
        hubversions.selected({"REALHUB_VERSIONS": "9.9"})
    assert not hubversions.get("1.5").has_scopes and hubversions.get("2.3").has_scopes

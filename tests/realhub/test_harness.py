"""Self-test of the real-hub harness: the hub starts, users and servers are made, timestamps
can be back-dated, and nothing is left running once the hub stops."""

from __future__ import annotations

import socket
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
import requests

from tests.support.realhub import ADMIN_SERVICE, CULLER_SCOPES, RealHub, parse_ts, q, unique_names

pytestmark = pytest.mark.realhub

AWKWARD_NAMES = ["a+b", "c@d.org", "zoë", "c#d", "x y"]


def _close_to(stamp: str | None, expected: datetime, slack_s: float = 30) -> bool:
    return stamp is not None and abs((parse_ts(stamp) - expected).total_seconds()) < slack_s


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_harness_hub_answers_with_version_and_service_scopes(realhub):
    root = realhub.admin_api("GET", "/")
    assert root.status_code == 200 and root.json()["version"] == "6.1.1"
    me = realhub.api("culler", "GET", "/user").json()
    assert me["kind"] == "service" and me["name"] == "culler"
    assert set(CULLER_SCOPES) <= set(me["scopes"])
    assert realhub.api_url.startswith("http://127.0.0.1:") and realhub.api_url.endswith("/hub/api")


def test_harness_awkward_user_names_are_created_and_their_servers_start(realhub):
    realhub.create_users(AWKWARD_NAMES)
    for name in AWKWARD_NAMES:
        assert realhub.user_exists(name), name
        server = realhub.start_server(name)
        # the hub escapes the path with its own safe set ("@" stays): compare unquoted
        assert server["ready"] and unquote(server["url"]) == f"/user/{name}/"
        assert realhub.server_running(name)
    # "c#d" is a distinct user; an unquoted path would have addressed user "c"
    assert not realhub.user_exists("c")
    # every running server answers through the proxy too
    for name in AWKWARD_NAMES:
        r = requests.get(f"{realhub.public_url}/user/{q(name)}/api", timeout=5)
        assert r.status_code == 200, name


def test_harness_backdate_shows_in_models_seen_by_the_culler_token(realhub):
    (name,) = unique_names("idle")
    realhub.create_users([name])
    realhub.start_server(name)
    realhub.start_server(name, "lab")
    now = datetime.now(timezone.utc)
    stored = realhub.backdate(
        name, "", last_activity=7200, started=7300, user_last_activity=7200, created=9000
    )
    assert _close_to(stored["last_activity"], now - timedelta(seconds=7200))
    realhub.backdate(name, "lab", last_activity=now - timedelta(hours=3))

    model = realhub.user_model(name)
    assert _close_to(model["last_activity"], now - timedelta(seconds=7200))
    assert _close_to(model["created"], now - timedelta(seconds=9000))
    default, lab = model["servers"][""], model["servers"]["lab"]
    assert _close_to(default["last_activity"], now - timedelta(seconds=7200))
    assert _close_to(default["started"], now - timedelta(seconds=7300))
    assert _close_to(lab["last_activity"], now - timedelta(hours=3))
    assert default["ready"] and lab["ready"]

    # the culler's own token sees the same through the listing it uses
    listing = realhub.api("culler", "GET", "/users", params={"state": "ready"}).json()
    seen = {u["name"]: u for u in listing}
    assert _close_to(seen[name]["servers"]["lab"]["last_activity"], now - timedelta(hours=3))

    # posting activity only moves forward again; None clears a field
    realhub.touch(name, "lab")
    assert _close_to(realhub.server_model(name, "lab")["last_activity"], datetime.now(timezone.utc))
    realhub.backdate(name, "lab", last_activity=None)
    assert realhub.server_model(name, "lab")["last_activity"] is None


def test_harness_backdate_needs_an_admin_token(realhub):
    (name,) = unique_names("guarded")
    realhub.create_users([name])
    r = realhub.api("culler", "POST", "/_realhub/backdate", json={"user": name, "created": None})
    assert r.status_code == 403


def test_harness_named_server_stop_keeps_it_and_remove_deletes_it(realhub):
    (name,) = unique_names("named")
    realhub.create_users([name])
    realhub.start_server(name, "nb-1")
    assert realhub.stop_server(name, "nb-1").status_code == 204
    assert realhub.server_exists(name, "nb-1") and not realhub.server_running(name, "nb-1")
    realhub.start_server(name, "nb-1")
    assert realhub.stop_server(name, "nb-1", remove=True).status_code == 204
    assert not realhub.server_exists(name, "nb-1")


def test_harness_slow_stop_answers_202_and_blocks_user_deletion(realhub):
    (name,) = unique_names("slow")
    realhub.create_users([name])
    realhub.start_server(name)
    realhub.set_behaviour(name, stop_delay=2)  # the shared hub's slow_stop_timeout is 1 s
    r = realhub.api("culler", "DELETE", f"/users/{q(name)}/server")
    assert r.status_code == 202
    assert realhub.server_model(name)["pending"] == "stop"
    assert realhub.api("culler", "DELETE", f"/users/{q(name)}").status_code == 400
    realhub.wait_server(name, ready=False, timeout=10)
    assert realhub.api("culler", "DELETE", f"/users/{q(name)}").status_code == 204
    assert not realhub.user_exists(name)


def test_harness_groups_and_admins(realhub):
    admin_name, member = unique_names("grp", 2)
    realhub.create_users([admin_name], admin=True)
    realhub.create_users([member])
    realhub.add_to_group("teachers", [admin_name, member])
    assert realhub.user_model(admin_name)["admin"] is True
    assert "teachers" in realhub.user_model(member)["groups"]
    # groups are visible to the culler token only with read:users:groups
    seen = realhub.api("culler", "GET", f"/users/{q(member)}").json()
    assert "teachers" in seen["groups"]


def test_harness_many_servers_start_quickly(realhub):
    names = unique_names("bulk", 60)
    realhub.create_users(names)
    started = time.monotonic()
    realhub.start_servers(names)
    assert time.monotonic() - started < 20
    assert all(f"/user/{n}/" in realhub.running_prefixes() for n in names[:5])


def test_harness_stop_leaves_no_process_and_frees_ports(fresh_realhub, tmp_path):
    marker_file = tmp_path / "service-ran"
    code = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(marker_file)!r}).write_text(os.environ['JUPYTERHUB_API_URL']); "
        "time.sleep(300)"
    )
    hub = fresh_realhub(
        services=[
            {"name": "culler", "scopes": CULLER_SCOPES},
            {"name": "managed", "scopes": ["list:users"], "command": [sys.executable, "-c", code]},
        ]
    )
    hub.create_users(["solo"])
    hub.start_server("solo")
    deadline = time.monotonic() + 10
    while not marker_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_file.read_text() == hub.api_url  # the hub started the managed service
    children = hub.leftover_pids()
    assert len(children) >= 3  # hub, proxy, managed service
    ports = dict(hub.ports)

    hub.stop()

    assert not hub.running and hub.leftover_pids() == []
    assert not any(_port_open(p) for p in ports.values())
    hub.stop()  # twice is harmless


def test_harness_restart_without_cleanup_keeps_servers_and_back_dated_activity(fresh_realhub):
    hub = fresh_realhub(cleanup_servers=False)
    hub.create_users(["keeper"])
    hub.start_server("keeper")
    hub.backdate("keeper", last_activity=5000)
    before = hub.server_model("keeper")["last_activity"]
    hub.restart()
    after = hub.server_model("keeper")
    assert after["ready"] and after["last_activity"] == before


def test_harness_start_failure_raises_with_log_and_leaves_nothing(tmp_path, monkeypatch):
    # a hub that cannot start reports the log instead of hanging
    from tests.support import realhub as harness

    if not harness.installed()[0]:
        pytest.skip("real JupyterHub not installed")
    monkeypatch.setattr(harness, "CONFIG_FILE", tmp_path / "missing_config.py")
    hub = RealHub(tmp_path / "state", start_timeout=20)
    with pytest.raises(harness.RealHubError):
        hub.start()
    hub.stop()
    assert hub.leftover_pids() == []
    assert ADMIN_SERVICE not in hub.services


def test_harness_missing_install_skips_or_fails_under_ci(monkeypatch):
    from . import fixtures

    monkeypatch.setattr(fixtures, "installed",
                        lambda hub=None: (False, "missing .venv-hub/bin/jupyterhub"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing .venv-hub"):
        fixtures.require_realhub()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        fixtures.require_realhub()


def test_harness_extra_config_runs_after_the_hub_configuration(fresh_realhub, tmp_path):
    extra = tmp_path / "extra_config.py"
    extra.write_text("c.JupyterHub.api_page_max_limit = 7\n")
    hub = fresh_realhub(extra_config=extra)
    hub.create_users(unique_names("page", 9))
    r = hub.admin_api(
        "GET",
        "/users",
        params={"limit": 100},
        headers={"Accept": "application/jupyterhub-pagination+json"},
        check=True,
    )
    assert r.json()["_pagination"]["limit"] == 7 and len(r.json()["items"]) == 7

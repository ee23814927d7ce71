"""Quick tests of the fake hub itself, through plain ``requests`` on loopback.

They pin the JupyterHub behaviours the culler's tests rely on (short ``state=ready`` pages,
``total``/``next``, a wrong ``next.url``, stop and delete answers) and the test machinery
(faults, records, concurrency counters, bounded shutdown).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support.fakehub import (
    CULLER_SCOPES,
    PAGINATION_MEDIA_TYPE,
    FakeHub,
    active_user,
    idle_user,
    inactive_user,
    pending_user,
    population,
    user_with_servers,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
PAGINATED = {"Accept": PAGINATION_MEDIA_TYPE}
QUICK = (1.0, 2.0)  # (connect, read) timeouts for requests that should answer at once
# A body cut short of its Content-Length: urllib3 2.x raises (ChunkedEncodingError), 1.26 returns
# the short body and JSON parsing fails (ValueError).
CUT_SHORT = (requests.exceptions.ChunkedEncodingError, ValueError)


pytestmark = pytest.mark.timeout(10)


class BoundedSession(requests.Session):
    """A Session whose requests time out unless told otherwise: a broken fake cannot hang us."""

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", QUICK)
        return super().request(method, url, **kwargs)


def session_for(hub: FakeHub) -> requests.Session:
    session = BoundedSession()
    session.headers["Authorization"] = f"token {hub.token}"
    return session


def list_page(session: requests.Session, hub: FakeHub, **params: object) -> dict:
    response = session.get(f"{hub.api_url}/users", params=params, headers=PAGINATED, timeout=QUICK)
    assert response.status_code == 200, response.text
    return response.json()


def names(items: list) -> list:
    return [item["name"] for item in items]


# -- API surface -----------------------------------------------------------------------------


def test_fakehub_version_needs_no_token_and_self_model_reports_scopes(make_fake_hub):
    hub = make_fake_hub(version="5.3.0", scopes=["admin:users", "list:users"])
    assert requests.get(f"{hub.api_url}/", timeout=QUICK).json() == {"version": "5.3.0"}
    me = session_for(hub).get(f"{hub.api_url}/user", timeout=QUICK).json()
    assert me["kind"] == "service"
    assert "delete:users" in me["scopes"]  # expanded like the hub does
    assert "delete:servers" not in me["scopes"]


def test_fakehub_self_model_omits_scopes_when_the_hub_does_not_report_them(fake_hub):
    me = session_for(fake_hub).get(f"{fake_hub.api_url}/user", timeout=QUICK).json()
    assert "scopes" not in me


def test_fakehub_refuses_missing_or_wrong_token_with_403(fake_hub):
    anonymous = requests.get(f"{fake_hub.api_url}/users", timeout=QUICK)
    wrong = requests.get(
        f"{fake_hub.api_url}/users", headers={"Authorization": "token nope"}, timeout=QUICK
    )
    assert anonymous.status_code == wrong.status_code == 403
    assert wrong.json()["status"] == 403
    assert requests.get(f"{fake_hub.api_url}/user", timeout=QUICK).status_code == 403


def test_fakehub_user_model_has_jupyterhub_shape(fake_hub):
    fake_hub.add(idle_user("ann", 600, NOW, groups=["staff"]))
    fake_hub.add(user_with_servers("bob", {"": 5, "gpu": 60}, NOW))
    fake_hub.add_user("cy", servers={"": {"ready": False, "pending": "stop"}})
    items = list_page(session_for(fake_hub), fake_hub)["items"]
    ann, bob, cy = items
    assert ann["kind"] == "user" and ann["groups"] == ["staff"]
    assert ann["last_activity"] == "2024-05-01T11:50:00Z"
    assert ann["server"] == "/user/ann/" and ann["pending"] is None
    server = ann["servers"][""]
    assert server["ready"] is True and server["pending"] is None
    assert server["started"] == "2024-05-01T11:50:00Z"
    assert server["progress_url"] == "/hub/api/users/ann/server/progress"
    assert set(server) >= {"name", "ready", "pending", "started", "last_activity", "url",
                           "progress_url", "user_options"}
    assert bob["servers"]["gpu"]["url"] == "/user/bob/gpu/"
    assert cy["server"] is None and cy["pending"] == "stop"
    assert cy["servers"][""]["ready"] is False


def test_fakehub_user_model_is_filtered_by_scopes(make_fake_hub):
    hub = make_fake_hub(scopes=["list:users", "read:users:activity", "delete:servers"])
    hub.add(user_with_servers("ann", {"gpu": 600}, NOW))
    (ann,) = list_page(session_for(hub), hub)["items"]
    # Without read:servers the hub sends no `servers` key: named servers are invisible.
    assert set(ann) == {"kind", "name", "last_activity"}


# -- listing and pagination ------------------------------------------------------------------


def test_fakehub_ready_pages_are_filtered_after_offset_and_limit(fake_hub):
    fake_hub.add(
        idle_user("u0", 10, NOW),
        pending_user("u1", "spawn", NOW),
        inactive_user("u2", 10, NOW),
        pending_user("u3", "spawn", NOW),
        idle_user("u4", 10, NOW),
        active_user("u5", NOW),
        inactive_user("u6", 10, NOW),
    )
    session = session_for(fake_hub)
    first = list_page(session, fake_hub, state="ready", limit=2)
    # The hub selects the 5 users with a running or pending server, slices, then drops u1.
    assert names(first["items"]) == ["u0"]
    assert first["_pagination"]["total"] == 5
    assert first["_pagination"]["next"]["offset"] == 2
    second = list_page(session, fake_hub, state="ready", limit=2, offset=2)
    assert names(second["items"]) == ["u4"]
    last = list_page(session, fake_hub, state="ready", limit=2, offset=4)
    assert names(last["items"]) == ["u5"]
    assert last["_pagination"]["next"] is None


def test_fakehub_next_url_points_at_a_wrong_origin(fake_hub):
    fake_hub.add(*population(3, now=NOW))
    page = list_page(session_for(fake_hub), fake_hub, state="ready", limit=1)
    url = page["_pagination"]["next"]["url"]
    assert url.startswith("https://hub.invalid:1/hub/api/users?")
    assert "state=ready" in url and "offset=1" in url and "limit=1" in url


def test_fakehub_inactive_listing_excludes_pending_and_running_users(fake_hub):
    fake_hub.add(inactive_user("a", 10), pending_user("b"), active_user("c"), inactive_user("d", 1))
    page = list_page(session_for(fake_hub), fake_hub, state="inactive")
    assert names(page["items"]) == ["a", "d"]
    assert page["_pagination"]["total"] == 2


def test_fakehub_limit_is_clamped_and_a_bad_offset_is_400(make_fake_hub):
    hub = make_fake_hub(page_default=2, page_max=3)
    hub.add(*population(5, now=NOW))
    session = session_for(hub)
    assert list_page(session, hub)["_pagination"]["limit"] == 2
    assert list_page(session, hub, limit=500)["_pagination"]["limit"] == 3
    assert list_page(session, hub, limit=0)["_pagination"]["limit"] == 1
    bad = session.get(f"{hub.api_url}/users", params={"offset": "x"}, headers=PAGINATED)
    assert bad.status_code == 400


def test_fakehub_without_pagination_header_answers_a_plain_list_of_max_size(make_fake_hub):
    hub = make_fake_hub(page_max=3)
    hub.add(*population(5, now=NOW))
    answer = session_for(hub).get(f"{hub.api_url}/users", timeout=QUICK).json()
    assert isinstance(answer, list) and len(answer) == 3


def test_fakehub_legacy_versions_drop_pagination_and_state_filter(make_fake_hub):
    old = make_fake_hub(version="1.5.0")
    older = make_fake_hub(version="1.2.2")
    for hub in (old, older):
        hub.add(active_user("a"), inactive_user("b", 10), active_user("c"))
    old_page = session_for(old).get(
        f"{old.api_url}/users", params={"state": "ready", "limit": 1}, headers=PAGINATED
    ).json()
    assert names(old_page) == ["a", "c"]  # a plain list, no pagination, state honoured
    older_page = session_for(older).get(
        f"{older.api_url}/users", params={"state": "ready"}, headers=PAGINATED
    ).json()
    assert names(older_page) == ["a", "b", "c"]  # < 1.3: state ignored


# -- stopping and deleting -------------------------------------------------------------------


def test_fakehub_stop_default_server_answers_204_and_bumps_user_activity(make_fake_hub):
    hub = make_fake_hub(clock=lambda: NOW)
    hub.add(idle_user("ann", 3600, NOW - timedelta(days=1)))
    response = session_for(hub).delete(f"{hub.api_url}/users/ann/server", timeout=QUICK)
    assert response.status_code == 204
    assert hub.user("ann").last_activity == NOW
    assert hub.server("ann").active is False
    assert hub.stopped_servers() == [("ann", "")]
    assert list_page(session_for(hub), hub, state="ready")["items"] == []


def test_fakehub_stop_named_server_with_and_without_remove(fake_hub):
    fake_hub.add(user_with_servers("ann", {"keep": 60, "drop": 60}, NOW))
    session = session_for(fake_hub)
    assert session.delete(f"{fake_hub.api_url}/users/ann/servers/keep").status_code == 204
    removed = session.delete(f"{fake_hub.api_url}/users/ann/servers/drop", json={"remove": True})
    assert removed.status_code == 204
    assert fake_hub.server("ann", "drop") is None
    assert fake_hub.server("ann", "keep") is not None  # stopped, still known to the hub
    stopped = session.get(
        f"{fake_hub.api_url}/users/ann", params={"include_stopped_servers": "1"}
    ).json()
    assert list(stopped["servers"]) == ["keep"]
    assert stopped["servers"]["keep"]["stopped"] is True


def test_fakehub_stop_path_segments_are_percent_decoded(fake_hub):
    fake_hub.add(user_with_servers("c#d/e f", {"gpu 1": 60}, NOW), active_user("c"))
    response = session_for(fake_hub).delete(
        f"{fake_hub.api_url}/users/c%23d%2Fe%20f/servers/gpu%201", timeout=QUICK
    )
    assert response.status_code == 204
    (record,) = fake_hub.records("DELETE")
    assert record.path == "/hub/api/users/c%23d%2Fe%20f/servers/gpu%201"
    assert (record.user, record.server) == ("c#d/e f", "gpu 1")
    assert fake_hub.server("c").active  # the user `c` was not touched


def test_fakehub_stop_errors_for_unknown_and_default_removal(fake_hub):
    fake_hub.add(active_user("ann"))
    session = session_for(fake_hub)
    assert session.delete(f"{fake_hub.api_url}/users/nobody/server").status_code == 404
    missing = session.delete(f"{fake_hub.api_url}/users/ann/servers/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "ann has no server named 'nope'"
    default = session.delete(f"{fake_hub.api_url}/users/ann/server", json={"remove": True})
    assert default.status_code == 400


def test_fakehub_slow_stop_202_leaves_server_pending_until_finished(fake_hub):
    fake_hub.add(idle_user("ann", 3600, NOW))
    fake_hub.set_stop_outcome("ann", "", 202)
    session = session_for(fake_hub)
    assert session.delete(f"{fake_hub.api_url}/users/ann/server").status_code == 202
    assert session.delete(f"{fake_hub.api_url}/users/ann/server").status_code == 202
    assert list_page(session, fake_hub, state="ready")["items"] == []
    (ann,) = list_page(session, fake_hub, state="active")["items"]
    assert ann["servers"][""]["pending"] == "stop" and ann["servers"][""]["ready"] is False
    assert session.delete(f"{fake_hub.api_url}/users/ann").status_code == 400
    assert fake_hub.finish_stop("ann")
    assert list_page(session, fake_hub, state="inactive")["_pagination"]["total"] == 1
    assert session.delete(f"{fake_hub.api_url}/users/ann").status_code == 204


def test_fakehub_stop_outcomes_are_counted_and_patterned(fake_hub):
    fake_hub.add(active_user("ann"), active_user("bob"))
    fake_hub.set_stop_outcome("a*", "", 503, count=1)
    fake_hub.set_stop_outcome("bob", "", 403)
    session = session_for(fake_hub)
    statuses = [session.delete(f"{fake_hub.api_url}/users/ann/server").status_code for _ in "12"]
    assert statuses == [503, 204]
    forbidden = session.delete(f"{fake_hub.api_url}/users/bob/server")
    assert forbidden.status_code == 403
    assert "requires any of [delete:servers]" in forbidden.json()["message"]
    assert fake_hub.server("bob").ready  # an error answer changes nothing


def test_fakehub_stop_without_delete_servers_scope_is_403(make_fake_hub):
    hub = make_fake_hub(scopes=["list:users", "read:servers"])
    hub.add(active_user("ann"))
    response = session_for(hub).delete(f"{hub.api_url}/users/ann/server", timeout=QUICK)
    assert response.status_code == 403
    assert response.json() == {
        "status": 403,
        "message": "Action is not authorized with current scopes; requires any of [delete:servers]",
    }


def test_fakehub_delete_user_answers_204_404_and_400_while_a_server_is_alive(make_fake_hub):
    hub = make_fake_hub(scopes=CULLER_SCOPES)
    hub.add(inactive_user("gone", 10), active_user("busy"))
    session = session_for(hub)
    assert session.delete(f"{hub.api_url}/users/gone").status_code == 204
    assert session.delete(f"{hub.api_url}/users/gone").status_code == 404
    assert session.delete(f"{hub.api_url}/users/busy").status_code == 400
    assert hub.deleted_users() == ["gone"]
    assert hub.user_names() == ["busy"]


def test_fakehub_raw_user_model_is_served_verbatim(fake_hub):
    raw = {"name": "odd", "last_activity": "yesterday", "servers": {"": {"ready": True}}}
    fake_hub.add_raw_user(raw)
    fake_hub.add_raw_user(["not", "a", "dict"], name="weird", ready=False, active=False)
    session = session_for(fake_hub)
    assert list_page(session, fake_hub, state="ready")["items"] == [raw]
    assert list_page(session, fake_hub, state="inactive")["items"] == [["not", "a", "dict"]]
    assert session.delete(f"{fake_hub.api_url}/users/odd/server").status_code == 204
    assert list_page(session, fake_hub, state="ready")["items"] == []


# -- faults ----------------------------------------------------------------------------------


def test_fakehub_status_fault_fires_count_times_with_retry_after(fake_hub):
    fake_hub.faults.add("GET /users", 429, count=2, retry_after=3)
    session = session_for(fake_hub)
    answers = [session.get(f"{fake_hub.api_url}/users", timeout=QUICK) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert [record.fault for record in fake_hub.records()] == ["status", "status", None]


def test_fakehub_fault_skip_and_query_select_one_page(fake_hub):
    fake_hub.add(*population(4, now=NOW))
    fake_hub.faults.add("GET /users", 502, query={"offset": "2"})
    fault = fake_hub.faults.add("DELETE /users/*/server", 503, skip=1)
    session = session_for(fake_hub)
    assert session.get(f"{fake_hub.api_url}/users?offset=0&limit=2").status_code == 200
    assert session.get(f"{fake_hub.api_url}/users?offset=2&limit=2").status_code == 502
    assert session.delete(f"{fake_hub.api_url}/users/user-0/server").status_code == 204
    assert session.delete(f"{fake_hub.api_url}/users/user-1/server").status_code == 503
    assert (fault.seen, fault.hits, fault.exhausted) == (2, 1, True)


@pytest.mark.parametrize("kind", ["reset", "drop"])
def test_fakehub_connection_faults_close_without_answering(fake_hub, kind):
    fake_hub.faults.add("GET /users", kind)
    session = session_for(fake_hub)
    with pytest.raises(requests.ConnectionError):
        session.get(f"{fake_hub.api_url}/users", timeout=QUICK)
    assert session.get(f"{fake_hub.api_url}/users", timeout=QUICK).status_code == 200
    assert fake_hub.records()[0].status is None
    assert fake_hub.connection_count == 2


def test_fakehub_delay_fault_outlasts_the_client_read_timeout(fake_hub):
    fake_hub.add(active_user("ann"))
    fake_hub.faults.add("DELETE /users/ann/server", "delay", delay=0.25)
    with pytest.raises(requests.ReadTimeout):
        session_for(fake_hub).delete(f"{fake_hub.api_url}/users/ann/server", timeout=(1, 0.1))
    # The hub still stops the server after the delay, as a slow real hub would.
    assert fake_hub.wait_until(lambda: fake_hub.records()[0].ended is not None, timeout=2)
    assert fake_hub.server("ann").active is False


def test_fakehub_trickle_defeats_the_read_timeout_until_it_ends(fake_hub):
    fake_hub.faults.add("GET /users", "trickle", interval=0.01, duration=0.4)
    started = time.monotonic()
    with pytest.raises(CUT_SHORT):
        session_for(fake_hub).get(f"{fake_hub.api_url}/users", timeout=(1, 0.25)).json()
    assert time.monotonic() - started >= 0.4  # every read got a byte within 0.25 s


def test_fakehub_truncated_short_and_malformed_bodies(fake_hub):
    fake_hub.add(*population(3, now=NOW))
    fake_hub.faults.add("GET /users", "truncated")
    fake_hub.faults.add("GET /users", "malformed")
    fake_hub.faults.add("GET /users", "short_body", keep=5)
    session = session_for(fake_hub)
    for _ in range(2):
        response = session.get(f"{fake_hub.api_url}/users", headers=PAGINATED, timeout=QUICK)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            json.loads(response.text)
    with pytest.raises(CUT_SHORT):
        session.get(f"{fake_hub.api_url}/users", timeout=QUICK).json()


def test_fakehub_restart_refuses_connections_then_serves_on_the_same_port(fake_hub):
    port = fake_hub.port
    fake_hub.faults.add("GET /users", "restart", down_for=0.4)
    session = session_for(fake_hub)
    with pytest.raises(requests.ConnectionError):
        session.get(f"{fake_hub.api_url}/users", timeout=QUICK)
    assert fake_hub.wait_until(lambda: fake_hub.restarts == 1, timeout=2)
    with pytest.raises(requests.ConnectionError):  # nobody listens while it is down
        requests.get(f"{fake_hub.api_url}/", timeout=QUICK)
    assert fake_hub.wait_until(lambda: fake_hub.listening, timeout=2)
    assert session.get(f"{fake_hub.api_url}/users", timeout=QUICK).status_code == 200
    assert fake_hub.port == port


# -- observation -----------------------------------------------------------------------------


def test_fakehub_records_requests_and_keepalive_connections(fake_hub):
    fake_hub.add(user_with_servers("ann", {"gpu": 60}, NOW))
    session = session_for(fake_hub)
    session.get(f"{fake_hub.api_url}/users", params={"state": "ready"}, headers=PAGINATED)
    session.delete(f"{fake_hub.api_url}/users/ann/servers/gpu", json={"remove": True})
    session.get(f"{fake_hub.api_url}/")
    requests.get(f"{fake_hub.api_url}/", timeout=QUICK)
    listing, stop, _, _ = fake_hub.records()
    assert (listing.route, listing.query, listing.status) == ("list_users", {"state": "ready"}, 200)
    assert listing.headers["accept"] == PAGINATION_MEDIA_TYPE
    assert listing.headers["authorization"] == f"token {fake_hub.token}"
    assert (stop.route, stop.json, stop.status) == ("stop_server", {"remove": True}, 204)
    assert listing.ended <= stop.started
    # The session reused one connection; the bare request opened a second one.
    assert fake_hub.connection_count == 2
    first, second = fake_hub.connections()
    assert first.requests == 3 and second.requests == 1
    assert listing.peer_port == stop.peer_port == first.peer_port != second.peer_port


def test_fakehub_counts_concurrent_deletes_with_a_hold_fault(fake_hub):
    fake_hub.add(*population(4, idle_every=1, now=NOW))
    hold = fake_hub.faults.add("DELETE /users/*", "hold", count=None)

    def stop(name: str) -> int:
        url = f"{fake_hub.api_url}/users/{name}/server"
        auth = {"Authorization": f"token {fake_hub.token}"}
        return requests.delete(url, headers=auth, timeout=QUICK).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(stop, name) for name in fake_hub.user_names()]
        assert fake_hub.wait_until(lambda: fake_hub.in_flight("DELETE") == 4, timeout=2)
        hold.release()
        assert [future.result(timeout=2) for future in futures] == [204] * 4
    assert fake_hub.max_concurrent_deletes == 4
    assert fake_hub.in_flight() == 0


def test_fakehub_timeline_tells_whether_lists_came_before_deletes(fake_hub):
    fake_hub.add(idle_user("ann", 3600, NOW), idle_user("bob", 3600, NOW))
    session = session_for(fake_hub)
    list_page(session, fake_hub, state="ready")
    session.delete(f"{fake_hub.api_url}/users/ann/server")
    assert fake_hub.timeline().lists_before_deletes
    list_page(session, fake_hub, state="ready")
    assert not fake_hub.timeline().lists_before_deletes


def test_fakehub_latency_delays_list_pages(fake_hub):
    fake_hub.latency.list_users = 0.15
    started = time.monotonic()
    session_for(fake_hub).get(f"{fake_hub.api_url}/users", timeout=QUICK)
    assert time.monotonic() - started >= 0.15
    assert fake_hub.records()[0].duration >= 0.15


def test_fakehub_close_ends_held_hanging_and_idle_connections_quickly():
    before = set(threading.enumerate())
    hub = FakeHub().start()
    hub.faults.add("GET /users", "hang", count=None)
    hub.faults.add("DELETE /users/*", "hold", count=None)
    idle = session_for(hub)
    idle.get(f"{hub.api_url}/")  # leaves a keep-alive connection open
    errors = []

    def call(method: str, path: str) -> None:
        try:
            requests.request(method, f"{hub.api_url}{path}", timeout=(1, 5))
        except requests.RequestException as error:
            errors.append(error)

    callers = [
        threading.Thread(target=call, args=("GET", "/users")),
        threading.Thread(target=call, args=("DELETE", "/users/x/server")),
    ]
    for caller in callers:
        caller.start()
    assert hub.wait_until(lambda: hub.in_flight() == 2, timeout=2)
    started = time.monotonic()
    hub.close()
    assert time.monotonic() - started < 1.0
    for caller in callers:
        caller.join(2)
    idle.close()
    assert len(errors) == 2
    assert set(threading.enumerate()) <= before
    assert hub.errors == []


def test_fakehub_builders_use_the_injected_now():
    ann = idle_user("ann", 90, NOW, age_s=300)
    assert ann.servers[""].last_activity == NOW - timedelta(seconds=90)
    assert ann.servers[""].started == NOW - timedelta(seconds=300)
    assert ann.created == NOW - timedelta(seconds=300)
    bob = inactive_user("bob", 50, NOW)
    assert bob.servers == {} and bob.last_activity == NOW - timedelta(seconds=50)
    crowd = population(4, idle_every=2, idle_s=100, now=NOW)
    assert [user.last_activity for user in crowd] == [NOW - timedelta(seconds=100), NOW] * 2


@pytest.mark.parametrize("raw_path,user,server", [
    ("/hub/api/users/alice/servers/%2E", "alice", "."),
    ("/hub/api/users/alice/servers/%2E%2E", "alice", ".."),
    ("/hub/api/users/%2E/server", ".", ""),
    ("/hub/api/users/alice/servers/", "alice", ""),  # servers/([^/]*): the default server
    ("/hub/api/users/a%2Fb/servers/c%23d", "a/b", "c#d"),
    ("/hub/api/users/a+b/servers/x%20y", "a+b", "x y"),  # no '+' for space in a path
])
def test_fakehub_routes_raw_paths_as_jupyterhub_does(raw_path, user, server):
    # JupyterHub's tornado routes match the raw path (/users/([^/]+)/servers/([^/]*)) and
    # unescape each group; checked on JupyterHub 5.5 by tests/realhub/test_dot_names_realhub.py
    # for %2E. http.client sends the path as written (no dot-segment removal).
    import http.client
    with FakeHub() as hub:
        connection = http.client.HTTPConnection(hub.host, hub.port, timeout=5)
        try:
            connection.request("DELETE", raw_path, headers={"Authorization": "token " + hub.token})
            connection.getresponse().read()
        finally:
            connection.close()
        record = hub.records()[-1]
        assert (record.route, record.user, record.server) == ("stop_server", user, server)

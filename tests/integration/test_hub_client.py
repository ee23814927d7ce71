"""HubClient against the loopback fake hub: request shape, retries, timeouts, pagination."""

import time
from dataclasses import replace

import pytest

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.errors import (
    HubAuthError,
    HubError,
    HubHTTPError,
    HubProtocolError,
    HubUnavailable,
)
from idle_culler_daemon.hub import HubClient, RetryPolicy, StopResult
from tests.support.fakehub import active_user, idle_user, user_with_servers

FAST_RETRIES = RetryPolicy(connect_timeout=0.5, backoff_factor=0.01)


def client(hub, retries=FAST_RETRIES.retries, **overrides):
    settings = dict(api_url=hub.api_url, token=hub.token, read_timeout=0.5)
    settings.update(overrides)
    return HubClient(HubSettings(**settings), replace(FAST_RETRIES, retries=retries))


def test_client_sends_token_user_agent_and_pagination_accept(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    page = client(fake_hub).users_page("ready", 0)
    record = fake_hub.records(route="list_users")[-1]
    assert record.headers["authorization"] == "token " + fake_hub.token
    assert record.headers["user-agent"].startswith("jupyterhub-idle-culler-daemon/")
    assert "jupyterhub-pagination+json" in record.headers["accept"]
    assert [item["name"] for item in page.items] == ["ann"]


def test_client_rebuilds_next_page_from_its_own_base_url(fake_hub):
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(120)])
    hub = client(fake_hub, page_size=50)
    first = hub.users_page("ready", 0)
    assert first.next_offset == 50 and first.total == 120 and first.limit == 50
    second = hub.users_page("ready", first.next_offset)
    assert second.items[0]["name"] == "u050"
    assert all(r.path.startswith("/hub/api/users") for r in fake_hub.records(route="list_users"))


@pytest.mark.parametrize("status", [502, 503, 504])
def test_client_retries_gateway_errors(fake_hub, status):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET /users", status, count=2)
    assert len(client(fake_hub).users_page("ready", 0).items) == 1
    assert len(fake_hub.records(route="list_users")) == 3


def test_client_does_not_retry_500(fake_hub):
    fake_hub.faults.add("GET /users", 500, count=1)
    with pytest.raises(HubUnavailable):
        client(fake_hub).users_page("ready", 0)
    assert len(fake_hub.records(route="list_users")) == 1


def test_client_retries_delete_on_503_then_reports_stopped(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("DELETE /users/ann/server", 503, count=1)
    assert client(fake_hub).stop_server("ann", "", False) is StopResult.STOPPED
    assert len(fake_hub.records(route="stop_server")) == 2


def test_client_gives_up_after_three_retries(fake_hub):
    fake_hub.faults.add("GET /users", 503, count=None)
    with pytest.raises(HubUnavailable):
        client(fake_hub).users_page("ready", 0)
    assert len(fake_hub.records(route="list_users")) == 4


def test_client_honours_retry_after_on_429(fake_hub):
    fake_hub.faults.add("GET /users", 429, count=1, retry_after=1)
    started = time.monotonic()
    client(fake_hub).users_page("ready", 0)
    assert time.monotonic() - started >= 0.9


def test_client_read_timeout_is_retried_then_unavailable(fake_hub):
    fake_hub.faults.add("GET /users", "hang", count=None, delay=2)
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="Timeout|timed out|longer than"):
        client(fake_hub, read_timeout=0.2, retries=1).users_page("ready", 0)
    assert time.monotonic() - started < 2


def test_client_a_page_that_never_finishes_hits_the_body_deadline(fake_hub):
    fake_hub.faults.add("GET /users", "trickle", count=None, interval=0.05)
    with pytest.raises(HubUnavailable, match="longer than"):
        client(fake_hub, read_timeout=0.5).users_page("ready", 0)


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_client_bad_json_is_a_protocol_error(fake_hub, kind):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET /users", kind, count=None, keep=10)
    with pytest.raises((HubProtocolError, HubUnavailable)):
        client(fake_hub).users_page("ready", 0)


def test_client_connection_reset_is_retried(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET /users", "reset", count=1)
    assert len(client(fake_hub).users_page("ready", 0).items) == 1


def test_client_403_is_an_auth_error_with_the_hubs_message(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.scopes = ["list:users", "read:users:activity", "read:servers"]
    with pytest.raises(HubAuthError, match="delete:servers") as info:
        client(fake_hub).stop_server("ann", "", False)
    assert info.value.status == 403


def test_client_quotes_every_path_segment(fake_hub):
    for name in ("c#d", "a+b", "zoë", "x/y", "c"):
        fake_hub.add(idle_user(name, 3600, server_name="lab?1"))
    hub = client(fake_hub)
    assert hub.stop_server("c#d", "lab?1", True) is StopResult.STOPPED
    assert hub.delete_user("c#d").value == "deleted"
    assert fake_hub.user("c") is not None and fake_hub.user("c#d") is None
    assert hub.stop_server("zoë", "lab?1", False) is StopResult.STOPPED
    assert hub.stop_server("x/y", "lab?1", False) is StopResult.STOPPED


def test_client_remove_body_only_for_named_servers(fake_hub):
    fake_hub.add(idle_user("ann", 3600, server_name="lab"), active_user("bob"))
    hub = client(fake_hub)
    hub.stop_server("ann", "lab", True)
    hub.stop_server("bob", "", True)
    bodies = [r.json for r in fake_hub.records(route="stop_server")]
    assert bodies == [{"remove": True}, None]


def test_client_version_and_whoami(fake_hub):
    hub = client(fake_hub)
    assert hub.version() == "6.1.1"
    assert hub.whoami()["kind"] == "service"


@pytest.mark.parametrize("status,expected", [(204, "stopped"), (202, "pending"),
                                             (400, "pending"), (404, "gone")])
def test_client_stop_status_table(fake_hub, status, expected):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.set_stop_outcome("ann", "", status)
    assert client(fake_hub).stop_server("ann", "", False).value == expected


def test_client_delete_user_status_table(fake_hub):
    fake_hub.add(idle_user("ann", 3600), idle_user("bob", 3600))
    hub = client(fake_hub)
    assert hub.delete_user("ann").value == "busy"  # a server is still running: 400
    assert hub.delete_user("nobody").value == "gone"
    hub.stop_server("bob", "", False)
    assert hub.delete_user("bob").value == "deleted"


def test_client_makes_no_retry_once_cancelled(fake_hub):
    import threading
    cancel = threading.Event()
    cancel.set()
    fake_hub.faults.add("GET /users", 503, count=None)
    settings = HubSettings(api_url=fake_hub.api_url, token=fake_hub.token, read_timeout=0.5)
    with pytest.raises(HubUnavailable):
        HubClient(settings, FAST_RETRIES, cancel=cancel).users_page("ready", 0)
    assert len(fake_hub.records(route="list_users")) == 1


@pytest.mark.parametrize("route,call", [
    ("DELETE /users/ann/server", lambda hub: hub.stop_server("ann", "", False)),
    ("DELETE /users/ann", lambda hub: hub.delete_user("ann")),
    ("GET /users", lambda hub: hub.users_page("ready", 0)),
])
@pytest.mark.parametrize("before", [0, 200, 290, 296, 299, 310])
def test_client_error_text_keeps_no_piece_of_a_token_the_hub_echoes(fake_hub, route, call,
                                                                    before):
    # The hub's message is cut to length for the log: the token must go before the cut, or
    # the cut leaves a prefix of it that nothing can recognise any more.
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add(route, 500, count=None,
                        message="x" * before + fake_hub.token + " was refused")
    with pytest.raises(HubError) as info:
        call(client(fake_hub))
    text = str(info.value)
    assert not any(fake_hub.token[i:i + 6] in text for i in range(len(fake_hub.token) - 5)), text


@pytest.mark.parametrize("user,server", [(".", ""), ("..", ""), ("alice", "."),
                                         ("alice", ".."), (".", ".."), ("...", "."),
                                         ("%2E", "%2e%2E")])
def test_client_names_made_of_dots_reach_their_own_server(fake_hub, user, server):
    # "." and ".." are dot segments: sent as such, the HTTP stack removes them, and
    # DELETE /users/alice/servers/. becomes DELETE /users/alice/servers/ - alice's default
    # server, as a real hub routes it.
    others = {"alice", "server", "users"} - {user}
    fake_hub.add(*[user_with_servers(name, {"": 3600, ".": 3600, "..": 3600})
                   for name in others], user_with_servers(user, {"": 3600, server: 3600}))
    hub = client(fake_hub)
    assert hub.stop_server(user, server, False) is StopResult.STOPPED
    assert fake_hub.stopped_servers() == [(user, server)]
    record = fake_hub.records(route="stop_server")[-1]
    assert (record.user, record.server) == (user, server)
    hub.stop_server(user, "", False)
    hub.stop_server(user, server, False)  # gone by now
    assert hub.delete_user(user).value == "deleted"
    assert fake_hub.user(user) is None
    assert all(len(fake_hub.user(name).servers) == 3 for name in others)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("route,call", [
    ("DELETE /users/ann/server", lambda hub: hub.stop_server("ann", "", False)),
    ("DELETE /users/ann/servers/lab", lambda hub: hub.stop_server("ann", "lab", True)),
    ("DELETE /users/ann", lambda hub: hub.delete_user("ann")),
])
def test_client_a_redirected_delete_is_an_error_and_is_not_followed(fake_hub, status, route,
                                                                    call):
    # Followed, a 302 turns the DELETE into a GET of the new place, whose 200 read as
    # "stopped"; and a 307 repeats the DELETE somewhere the culler never chose.
    fake_hub.add(user_with_servers("ann", {"": 3600, "lab": 3600}))
    fake_hub.faults.add(route, status, count=None, location=fake_hub.api_url + "/")
    with pytest.raises(HubHTTPError) as info:
        call(client(fake_hub))
    assert info.value.status == status and "redirect" in str(info.value)
    assert len(fake_hub.records()) == 1 and fake_hub.user("ann") is not None


NO_ACCESS = "No access to resources or resources not found"  # JupyterHub 2-6, filtered scope


@pytest.mark.parametrize("route,call", [
    ("DELETE /users/ann/server", lambda hub: hub.stop_server("ann", "", False)),
    ("DELETE /users/ann/servers/lab", lambda hub: hub.stop_server("ann", "lab", False)),
    ("DELETE /users/ann", lambda hub: hub.delete_user("ann")),
])
def test_client_404_of_a_filtered_token_is_unreachable_not_gone(fake_hub, route, call):
    # delete:servers!group=lab: the hub answers 404 for every user outside the group, with
    # the same text as for one that does not exist. The server is still there.
    fake_hub.add(user_with_servers("ann", {"": 3600, "lab": 3600}))
    fake_hub.faults.add(route, 404, count=None, message=NO_ACCESS)
    assert call(client(fake_hub)).value == "unreachable"


def test_client_404_of_the_handler_is_still_gone(fake_hub):
    fake_hub.add(user_with_servers("ann", {"": 3600}))
    hub = client(fake_hub)
    assert hub.stop_server("ann", "lab", False) is StopResult.GONE  # "ann has no server..."
    assert hub.stop_server("nobody", "", False) is StopResult.GONE   # "Not Found"
    assert hub.delete_user("nobody").value == "gone"


def test_client_logs_one_line_of_its_own_per_failed_attempt(fake_hub, caplog):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET /users", 503, count=2)
    fake_hub.faults.add("DELETE /users/ann/server", 429, count=None, retry_after=0)
    hub = client(fake_hub)
    with caplog.at_level("WARNING"):
        assert len(hub.users_page("ready", 0).items) == 1
        with pytest.raises(HubUnavailable):
            hub.stop_server("ann", "", False)
    lines = [record.getMessage() for record in caplog.records
             if record.name == "idle_culler_daemon.transport"]
    assert len(lines) == 2 + 4, lines
    listing, stopping = lines[:2], lines[2:]
    assert listing[0].startswith('hub-attempt-failed request="GET /hub/api/users?offset=0&'
                                 'state=ready&limit=10000" hub=http://127.0.0.1:%d attempt=1 '
                                 'attempts=4 error="HTTP 503"' % fake_hub.port)
    assert "attempt=2 attempts=4" in listing[1] and 'detail="trying again"' in listing[1]
    assert [line.split("attempt=")[1].split()[0] for line in stopping] == ["1", "2", "3", "4"]
    assert 'error="HTTP 429"' in stopping[0] and "retry_in_s=-" in stopping[-1]
    assert 'detail="giving up"' in stopping[-1]


def test_client_asks_for_the_largest_page_by_default(fake_hub):
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(250)])
    page = client(fake_hub).users_page("ready", 0)
    record = fake_hub.records(route="list_users")[-1]
    assert int(record.query.get("limit", "0")) >= 200
    assert len(page.items) == 200 and page.next_offset == 200


def test_client_every_request_has_a_timeout_follows_no_redirect_and_the_token_stays_home(
        fake_hub, monkeypatch):
    # Whatever the method, each request reaches requests' Session.send with both timeouts
    # and redirects off, and only those to the API carry the hub's token.
    import requests
    fake_hub.add(idle_user("ann", 3600), idle_user("bob", 3600))
    sent = []
    original = requests.Session.send

    def spy(session, request, **kwargs):
        sent.append((request.url, dict(request.headers), kwargs))
        return original(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", spy)
    hub = client(fake_hub, server_url_base=fake_hub.url)
    hub.version()
    hub.whoami()
    hub.users_page("ready", 0)
    token = hub.server_token("ann", "", 60)
    hub.server_status("/user/ann/", token)
    hub.server_kernels("/user/ann/", token)
    hub.revoke_token("ann", token.id)
    hub.stop_server("bob", "", False)
    hub.delete_user("bob")
    assert len(sent) == 9
    for url, headers, kwargs in sent:
        assert kwargs["timeout"] == (FAST_RETRIES.connect_timeout, 0.5)
        assert kwargs["allow_redirects"] is False
        home = url.startswith(fake_hub.api_url + "/")
        assert (headers.get("Authorization") == "token " + fake_hub.token) is home, url

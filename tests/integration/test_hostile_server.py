"""What a user's server controls cannot reach further than that user: HubClient against a
scripted loopback server playing a hostile single-user server (and another host), with the fake
hub as the hub. The hub's token goes to the hub's API and nowhere else; a server's answer is
bounded in size and time, asked once, never followed, and leaves no cookie behind."""

import time
from datetime import datetime, timedelta, timezone

import pytest

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.errors import HubError, HubHTTPError, HubProtocolError, HubUnavailable
from idle_culler_daemon.hub import HubClient, RetryPolicy, ServerToken
from tests.support.fakehub import idle_user
from tests.support.hostile import HostileServer, reply

MINTED = ServerToken(id="7", value="minted-for-mallory-0123456789")
NO_RETRIES = RetryPolicy(retries=0, connect_timeout=0.5)
STATUS = b'{"started": "2026-01-01T00:00:00Z", "last_activity": "2026-01-01T00:00:00Z", ' \
         b'"kernels": 0, "connections": 0}'


FAST = RetryPolicy(connect_timeout=0.5, backoff_factor=0.01)


def client(hub, proxy, read_timeout=0.5, policy=FAST):
    return HubClient(HubSettings(api_url=hub.api_url, token=hub.token,
                                 read_timeout=read_timeout, server_url_base=proxy), policy)


def carried_token(server, token):
    return [r.target for r in server.requests
            if token in " ".join("%s: %s" % kv for kv in r.headers.items())]


@pytest.fixture
def mallory():
    with HostileServer(reply(200, STATUS)) as server:
        yield server


def test_hub_token_never_leaves_for_a_server_or_another_host(fake_hub, mallory):
    fake_hub.add(idle_user("ann", 3600))
    with HostileServer(reply(200, STATUS)) as other:
        hub = client(fake_hub, mallory.url)
        hub.server_status("/user/mallory/", MINTED)
        hub.server_kernels("/user/mallory/", MINTED)
        hub.server_status(mallory.url + "/user/mallory/", MINTED)
        for hostile in ("//127.0.0.1:%d/user/x/" % other.port, other.url + "/user/x/",
                        "/user/b/../", "/user/b/%2e%2E/", "\\\\127.0.0.1:%d\\" % other.port):
            with pytest.raises(HubProtocolError):
                hub.server_status(hostile, MINTED)
        hub.users_page("ready", 0)
        hub.stop_server("ann", "", False)
        assert other.requests == []
    assert len(mallory.requests) == 3 and not carried_token(mallory, fake_hub.token)
    assert all(r.headers["authorization"] == "token " + MINTED.value for r in mallory.requests)
    assert all(r.target.endswith("?no_track_activity=1") for r in mallory.requests)
    # on the hub's own host, only its API gets the token
    for record in fake_hub.records():
        if not record.path.startswith("/hub/api/"):
            assert fake_hub.token not in record.headers.get("authorization", "")


def test_a_server_that_redirects_is_not_followed(fake_hub, mallory):
    with HostileServer(reply(200, STATUS)) as other:
        mallory.answer = reply(302, b"", {"Location": other.url + "/hub/api/users"})
        with pytest.raises(HubHTTPError) as info:
            client(fake_hub, mallory.url).server_status("/user/mallory/", MINTED)
        assert info.value.status == 302 and other.requests == []


def test_cookies_a_server_sets_are_never_sent_anywhere(fake_hub, mallory):
    # the proxy's host serves every user's server: mallory's cookie must not go with bob's
    fake_hub.add(idle_user("ann", 3600))
    mallory.answer = reply(200, STATUS, {"Set-Cookie": "big=%s; Path=/" % ("x" * 4000)})
    hub = client(fake_hub, mallory.url)
    hub.server_status("/user/mallory/", MINTED)
    hub.server_status("/user/bob/", MINTED)
    hub.server_status(mallory.url + "/user/bob/", MINTED)
    hub.users_page("ready", 0)
    assert len(mallory.requests) == 3
    assert all("cookie" not in r.headers for r in mallory.requests)
    assert all("cookie" not in r.headers for r in fake_hub.records())


def test_a_hub_cookie_is_not_kept_either():
    with HostileServer(reply(200, b"[]", {"Set-Cookie": "s=1; Path=/"})) as cookie_hub:
        settings = HubSettings(api_url=cookie_hub.url + "/hub/api", token="t" * 20,
                               read_timeout=0.5)
        other = HubClient(settings, NO_RETRIES)
        other.users_page("ready", 0)
        other.users_page("ready", 0)
        assert [("cookie" in r.headers) for r in cookie_hub.requests] == [False, False]


def endless(chunk=64 * 1024, limit=64 * 1024 * 1024):
    def answer(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\n\r\n[" )
        while request.sent < limit:
            conn.sendall(b" " * chunk)
            request.sent += chunk
        request.done = True
    return answer


def test_a_server_answer_over_one_mib_is_refused_without_reading_it_all(fake_hub, mallory):
    mallory.answer = endless()
    started = time.monotonic()
    with pytest.raises(HubProtocolError, match="MiB|large"):
        client(fake_hub, mallory.url, read_timeout=5).server_status("/user/mallory/", MINTED)
    assert time.monotonic() - started < 5
    assert fake_hub.wait_until(lambda: mallory.closing.is_set() or mallory.requests[0].sent,
                               timeout=2)
    assert not mallory.requests[0].done


def test_a_declared_length_over_the_cap_is_refused_before_reading(fake_hub, mallory):
    def answer(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n{")
    mallory.answer = answer
    with pytest.raises(HubProtocolError, match="MiB|large"):
        client(fake_hub, mallory.url).server_status("/user/mallory/", MINTED)


def test_a_server_answer_compressed_against_our_ask_is_refused(fake_hub, mallory):
    import zlib
    bomb = zlib.compress(b" " * (8 * 2 ** 20))
    mallory.answer = reply(200, bomb, {"Content-Encoding": "deflate"})
    with pytest.raises(HubProtocolError, match="compressed"):
        client(fake_hub, mallory.url).server_status("/user/mallory/", MINTED)
    assert mallory.requests[0].headers["accept-encoding"] == "identity"


def trickled_headers(interval=0.1, lines=25):
    """Header lines 0.1 s apart (well within a 0.5 s read timeout), 2.5 s in all."""
    def answer(conn, request):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for n in range(lines):
            if request.closing.wait(interval):
                return
            conn.sendall(b"X-Slow-%d: 1\r\n" % n)
        conn.sendall(b"Content-Length: 2\r\n\r\n{}")
    return answer


def test_headers_trickled_under_the_read_timeout_still_meet_one_deadline(fake_hub, mallory):
    mallory.answer = trickled_headers()
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="longer than"):
        client(fake_hub, mallory.url, read_timeout=0.5).server_status("/user/mallory/",
                                                                      MINTED)
    assert time.monotonic() - started < 1.5


def test_hub_headers_trickled_meet_the_deadline_too():
    with HostileServer(trickled_headers()) as slow_hub:
        settings = HubSettings(api_url=slow_hub.url + "/hub/api", token="t" * 20,
                               read_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(HubUnavailable, match="longer than"):
            HubClient(settings, NO_RETRIES).users_page("ready", 0)
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("form", ["path", "url"])
def test_a_server_is_asked_once_whatever_its_retry_after(fake_hub, mallory, form):
    mallory.answer = reply(503, b"{}", {"Retry-After": "1"})
    url = "/user/mallory/" if form == "path" else mallory.url + "/user/mallory/"
    started = time.monotonic()
    with pytest.raises(HubError):
        client(fake_hub, mallory.url).server_status(url, MINTED)
    assert len(mallory.requests) == 1 and time.monotonic() - started < 0.9


def test_deeply_nested_json_is_a_bad_answer_from_a_server_or_the_hub(fake_hub, mallory):
    mallory.answer = reply(200, b"[" * 100000)
    with pytest.raises(HubProtocolError):
        client(fake_hub, mallory.url).server_status("/user/mallory/", MINTED)
    with HostileServer(reply(200, b"[" * 100000)) as deep_hub:
        settings = HubSettings(api_url=deep_hub.url + "/hub/api", token="t" * 20,
                               read_timeout=0.5)
        with pytest.raises(HubProtocolError):
            HubClient(settings, NO_RETRIES).users_page("ready", 0)


def test_a_hub_page_over_its_cap_is_refused(monkeypatch):
    import idle_culler_daemon.hub as hub_module
    monkeypatch.setattr(hub_module, "HUB_ANSWER_CAP", 1024 * 1024)
    with HostileServer(endless()) as big_hub:
        settings = HubSettings(api_url=big_hub.url + "/hub/api", token="t" * 20,
                               read_timeout=5)
        with pytest.raises(HubProtocolError, match="MiB|large"):
            HubClient(settings, NO_RETRIES).users_page("ready", 0)
        assert not big_hub.requests[0].done


def test_page_date_is_the_hubs_clock(fake_hub):
    fake_hub.clock_offset = timedelta(hours=-2)
    page = client(fake_hub, None).users_page("ready", 0)
    expected = datetime.now(timezone.utc) - timedelta(hours=2)
    assert page.date is not None and page.date.tzinfo is not None
    assert abs((page.date - expected).total_seconds()) < 3


@pytest.mark.parametrize("date", [None, "yesterday", "Tue, 99 Foo 2026 25:61:00 GMT"])
def test_page_date_is_none_when_absent_or_unparsable(date):
    def answer(conn, request):
        head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
        if date:
            head += "Date: %s\r\n" % date
        conn.sendall(head.encode() + b"\r\n[]")
    with HostileServer(answer) as hub:
        settings = HubSettings(api_url=hub.url + "/hub/api", token="t" * 20, read_timeout=0.5)
        assert HubClient(settings, NO_RETRIES).users_page("ready", 0).date is None


def test_server_token_is_minted_for_that_server_and_revoked(fake_hub):
    fake_hub.add(idle_user("ann", 3600, server_name="lab"))
    hub = client(fake_hub, fake_hub.url)
    token = hub.server_token("ann", "lab", 300)
    assert token.value not in repr(token) and token.id
    record = fake_hub.records(route="create_token")[-1]
    assert record.path == "/hub/api/users/ann/tokens"
    assert record.json["scopes"] == ["access:servers!server=ann/lab"]
    assert record.json["expires_in"] == 300 and "idle-culler" in record.json["note"]
    assert hub.server_status("/user/ann/lab/", token)["kernels"] == 0
    asked = fake_hub.records(route="server_status")[-1]
    assert asked.headers["authorization"] == "token " + token.value
    hub.revoke_token("ann", token.id)
    hub.revoke_token("ann", token.id)  # 404 the second time: fine
    assert [r.path for r in fake_hub.records(route="revoke_token")] == [
        "/hub/api/users/ann/tokens/" + token.id] * 2
    with pytest.raises(HubError):
        hub.server_status("/user/ann/lab/", token)  # revoked


def test_a_minted_token_reaches_only_its_own_server(fake_hub):
    fake_hub.add(idle_user("ann", 3600), idle_user("bob", 3600))
    hub = client(fake_hub, fake_hub.url)
    token = hub.server_token("ann", "", 300)
    assert hub.server_status("/user/ann/", token)["kernels"] == 0
    with pytest.raises(HubError):
        hub.server_status("/user/bob/", token)


def test_server_token_refused_is_an_auth_error(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.scopes = ["list:users", "read:servers"]
    from idle_culler_daemon.errors import HubAuthError
    with pytest.raises(HubAuthError):
        client(fake_hub, fake_hub.url).server_token("ann", "", 300)


def test_the_socket_under_a_finished_answer_is_reused(fake_hub):
    # the deadline of one answer never cuts the connection the next request reuses
    fake_hub.add(idle_user("ann", 3600))
    hub = client(fake_hub, None, read_timeout=0.3)
    for _ in range(3):
        hub.users_page("ready", 0)
        time.sleep(0.35)
    assert fake_hub.connection_count == 1


"""The two Sessions are built once: the hub's retries, the servers' none, neither holds a
credential; a server's URL is a path under the proxy's (cookies, redirects and the token's
destination are checked by behaviour in tests/integration/test_hostile_server.py)."""

import pytest

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.errors import HubProtocolError
from idle_culler_daemon.hub import server_api_url
from idle_culler_daemon.transport import build_server_session, build_session

SETTINGS = HubSettings(api_url="https://hub.example.org/hub/api", token="secret-token",
                       server_url_base="https://hub.example.org")


def test_build_session_holds_no_token_and_its_adapter_retries():
    session = build_session(SETTINGS)
    assert session.auth is None and "Authorization" not in session.headers
    assert "secret-token" not in repr(vars(session))
    assert session.get_adapter("https://hub.example.org/hub/api/users").max_retries.total == 3
    assert session.headers["User-Agent"].startswith("jupyterhub-idle-culler-daemon/")


def test_server_session_never_retries_and_trusts_the_default_bundle():
    settings = HubSettings(api_url=SETTINGS.api_url, token="t" * 12,
                           server_url_base=SETTINGS.server_url_base,
                           ca_bundle="/etc/jupyterhub/hub-ca.crt",
                           client_cert=("/c.crt", "/c.key"))
    hub, servers = build_session(settings), build_server_session(settings)
    assert hub.verify == "/etc/jupyterhub/hub-ca.crt" and hub.cert == ("/c.crt", "/c.key")
    assert servers.verify is True and servers.cert is None  # the proxy's URL is public
    for url in ("https://hub.example.org/user/ann/api/status", "https://ann.example.org/"):
        assert servers.get_adapter(url).max_retries.total == 0
    assert servers.auth is None and "Authorization" not in servers.headers


def test_server_api_url_keeps_paths_under_the_proxy():
    proxy = "https://hub.example.org"
    assert server_api_url(proxy, "/user/ann/", "status") == \
        "https://hub.example.org/user/ann/api/status"
    assert server_api_url(proxy, "/user/c@d/my%20lab", "kernels") == \
        "https://hub.example.org/user/c@d/my%20lab/api/kernels"
    # subdomain hubs: the proxy's host or a subdomain of it, same scheme and port
    assert server_api_url(proxy, "https://ann.hub.example.org/user/ann/", "status") == \
        "https://ann.hub.example.org/user/ann/api/status"
    assert server_api_url(proxy, "https://hub.example.org:443/user/ann/", "status")


def test_server_api_url_refuses_what_leaves_the_proxy_or_the_servers_path():
    proxy = "https://hub.example.org"
    for hostile in ("//evil.org/user/x/", "https://evil.org/user/x/",
                    "https://hub.example.org.evil.org/", "https://evilhub.example.org/",
                    "http://hub.example.org/user/ann/", "https://hub.example.org:8443/x/",
                    "https://ann@hub.example.org/", "ftp://hub.example.org/x/",
                    "/user/b/../", "/user/b/..", "/user/b/%2e%2E/", "/user/b/%2E/x/",
                    "/user/b/./", "\\\\evil.org\\", "/user/b\\..\\", "/user/b/?x=",
                    "/user/b/#", "/user/b /", "/user/\nb/", "user/b/", "", None):
        with pytest.raises(HubProtocolError):
            server_api_url(proxy, hostile, "status")


def test_every_pool_makes_connections_that_report_to_the_deadline():
    # direct and through an HTTP proxy (from the environment or not): the deadline covers
    # the headers only when urllib3 uses our connection classes
    from idle_culler_daemon import deadline
    for session in (build_session(SETTINGS), build_server_session(SETTINGS)):
        adapter = session.get_adapter("https://hub.example.org/")
        managers = (adapter.poolmanager, adapter.proxy_manager_for("http://proxy.example:3128"))
        for manager in managers:
            pool = manager.connection_from_url("https://hub.example.org/")
            assert issubclass(pool.ConnectionCls, deadline._WatchedHTTPSConnection)
            pool = manager.connection_from_url("http://hub.example.org/")
            assert issubclass(pool.ConnectionCls, deadline._WatchedHTTPConnection)


def test_alarms_run_in_time_order_on_one_thread_that_ends_when_none_is_left():
    import threading
    import time

    from idle_culler_daemon.deadline import Alarms
    alarms, order, done = Alarms(), [], threading.Event()
    alarms.after(0.2, lambda: (order.append("late"), done.set()))
    alarms.after(0.05, lambda: order.append("early"))
    assert done.wait(2) and order == ["early", "late"]
    deadline = time.monotonic() + 2
    while alarms._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert alarms._thread is None
    alarms.after(60, lambda: order.append("never"))
    alarms.close()  # what waits is dropped and the thread ends
    while alarms._thread is not None and time.monotonic() < deadline + 2:
        time.sleep(0.01)
    assert alarms._thread is None and order == ["early", "late"]


def test_sessions_verify_with_the_environments_ca_bundle():
    settings = HubSettings(api_url="http://127.0.0.1:1/hub/api", token="t" * 16,
                           ca_bundle="/etc/ca.pem", env_ca_bundle="/etc/ca.pem")
    assert build_session(settings).verify == "/etc/ca.pem"
    assert build_server_session(settings).verify == "/etc/ca.pem"


def test_sessions_take_the_environments_proxies_for_their_url(monkeypatch):
    # Session.send of requests < 2.28 reads no proxy from the environment: the sessions must.
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):  # Debian's builds set
        monkeypatch.delenv(name, raising=False)                           # some of them
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "hub.internal")
    settings = HubSettings(api_url="https://hub.internal/hub/api", token="t" * 16,
                           server_url_base="https://jupyter.example.org")
    assert "https" not in build_session(settings).proxies
    assert build_server_session(settings).proxies["https"] == "http://127.0.0.1:3128"

"""The Session is configured once: environment settings are read at build time, not per call."""

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.hub import build_session, server_request_settings

SETTINGS = HubSettings(api_url="https://hub.example.org/hub/api", token="secret-token")


def test_build_session_reads_ca_bundle_and_proxies_from_the_environment_once(monkeypatch):
    # pybuild sets https_proxy itself to keep package builds offline: clear every spelling
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/hub-ca.pem")
    monkeypatch.setenv("https_proxy", "http://proxy.example.org:3128")
    session = build_session(SETTINGS)
    assert session.verify == "/etc/ssl/hub-ca.pem"
    assert session.proxies.get("https") == "http://proxy.example.org:3128"
    assert session.trust_env is False


def test_build_session_explicit_ca_bundle_wins_and_token_stays_out_of_repr(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/other.pem")
    session = build_session(HubSettings(api_url=SETTINGS.api_url, token="secret-token",
                                        ca_bundle="/etc/jupyterhub/hub-ca.crt"))
    assert session.verify == "/etc/jupyterhub/hub-ca.crt"
    assert "secret-token" not in repr(session.auth)


def clear_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_proxy_url_gets_its_own_environment_settings_not_the_hubs(monkeypatch):
    # the hub's API is internal (internal CA, no proxy); the proxy's URL is public
    clear_proxies(monkeypatch)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("https_proxy", "http://egress.example.org:3128")
    monkeypatch.setenv("no_proxy", "hub.internal")
    settings = HubSettings(api_url="https://hub.internal:8081/hub/api", token="t",
                           ca_bundle="/etc/jupyterhub/hub-ca.crt",
                           server_url_base="https://hub.example.org")
    session = build_session(settings)
    assert session.proxies == {} and session.verify == "/etc/jupyterhub/hub-ca.crt"
    extra = server_request_settings(settings.server_url_base, session)
    assert extra["verify"] is True  # the default bundle, not the hub's internal CA
    assert extra["proxies"]["https"] == "http://egress.example.org:3128"


def test_proxy_url_under_no_proxy_switches_the_sessions_proxy_off(monkeypatch):
    clear_proxies(monkeypatch)
    monkeypatch.setenv("https_proxy", "http://egress.example.org:3128")
    monkeypatch.setenv("no_proxy", "jupyter.example.org")
    settings = HubSettings(api_url="https://hub.example.org/hub/api", token="t",
                           server_url_base="https://jupyter.example.org")
    session = build_session(settings)
    assert session.proxies.get("https") == "http://egress.example.org:3128"
    assert server_request_settings(settings.server_url_base, session)["proxies"]["https"] \
        is None
    same = build_session(HubSettings(api_url=SETTINGS.api_url, token="t",
                                     server_url_base="https://hub.example.org"))
    assert server_request_settings("https://hub.example.org", same) == {}  # nothing to add


def test_proxy_url_gets_an_adapter_without_retries_and_the_api_keeps_its_own(monkeypatch):
    settings = HubSettings(api_url="https://hub.example.org/hub/api", token="t",
                           server_url_base="https://hub.example.org")
    session = build_session(settings)
    api = session.get_adapter("https://hub.example.org/hub/api/users")
    server = session.get_adapter("https://hub.example.org/user/ann/api/status")
    assert api.max_retries.total == 3 and server.max_retries.total == 0
    assert session.get_adapter("https://elsewhere.example.org/") is api

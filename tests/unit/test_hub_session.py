"""The Session is configured once: environment settings are read at build time, not per call."""

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.hub import build_session

SETTINGS = HubSettings(api_url="https://hub.example.org/hub/api", token="secret-token")


def test_build_session_reads_ca_bundle_and_proxies_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/hub-ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
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

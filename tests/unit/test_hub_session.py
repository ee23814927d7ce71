"""The Session is configured once: environment settings are read at build time, not per call."""

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.hub import build_session

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

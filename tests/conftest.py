"""Fixtures shared by every tier of tests: ports, the notification socket, the fake hub."""

import socket
from typing import Any, Callable, Iterator, List

import pytest

from tests.notify_listener import NotifyListener
from tests.support.fakehub import FakeHub

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch):
    """Every test talks to loopback servers directly: Debian's package builds set
    http_proxy=127.0.0.1:9, which requests would otherwise use for them. A test about proxies
    sets its own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def unused_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    """A stand-in for systemd's notification socket, on a path and on an abstract name."""
    if request.param == "path":
        sink = NotifyListener.bind_path(tmp_path)
    else:
        sink = NotifyListener.bind_abstract()
    with sink:
        yield sink


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A started loopback :class:`FakeHub` with default settings (JupyterHub 6.1.1, no scopes),
    closed (and its threads joined) at teardown."""
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def make_fake_hub() -> Iterator[Callable[..., FakeHub]]:
    """A factory for started hubs with options (``make_fake_hub(version="1.2.0")``); every hub
    it made is closed at teardown."""
    hubs: List[FakeHub] = []

    def make(**options: Any) -> FakeHub:
        hub = FakeHub(**options).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in reversed(hubs):
        hub.close()

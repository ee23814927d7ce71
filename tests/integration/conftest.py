"""Fixtures for integration tests: a started loopback fake hub, closed (and joined) at teardown."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List

import pytest

from tests.support.fakehub import FakeHub


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A started :class:`FakeHub` with default settings (JupyterHub 6.1.1, no scopes)."""
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

"""Fixtures shared by every tier of tests."""

import socket

import pytest

from tests.notify_listener import NotifyListener


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

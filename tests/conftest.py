"""Fixtures shared by every tier of tests."""

import socket

import pytest


@pytest.fixture
def unused_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

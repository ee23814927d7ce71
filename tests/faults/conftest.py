"""Fixtures of the fault tests: the loopback fake hub of the integration tests."""

from tests.integration.conftest import fake_hub, make_fake_hub  # noqa: F401 - fixtures

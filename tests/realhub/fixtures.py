"""pytest fixtures around RealHub.

Use from any conftest.py:

    from tests.realhub.fixtures import realhub, realhub_factory, fresh_realhub  # noqa: F401

and mark the tests `@pytest.mark.realhub`. Nothing is installed here (the Makefile runs
scripts/install-realhub.sh): when `.venv-hub` or the proxy is missing, the tests are skipped
with a message, unless CI=true, in which case they fail.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.support.realhub import CULLER_SCOPES, RealHub, installed

# Services of the shared hub: the culler with every scope it may need, and variants each
# missing one scope (what each one changes: docs/behaviour.md#scopes-per-feature).
DEFAULT_SERVICES = [
    {"name": "culler", "scopes": CULLER_SCOPES},
    {
        "name": "culler-admin-users",  # admin:users instead of delete:users
        "scopes": [s for s in CULLER_SCOPES if s != "delete:users"] + ["admin:users"],
    },
    {"name": "culler-no-read-servers", "scopes": [s for s in CULLER_SCOPES if s != "read:servers"]},
    {
        "name": "culler-no-delete-servers",
        "scopes": [s for s in CULLER_SCOPES if s != "delete:servers"],
    },
    {"name": "culler-no-delete-users", "scopes": [s for s in CULLER_SCOPES if s != "delete:users"]},
    {   # read:users implies read:users:groups: drop both
        "name": "culler-no-groups",
        "scopes": [s for s in CULLER_SCOPES if s not in ("read:users:groups", "read:users")],
    },
]

# The shared hub answers 202 to a stop that takes over 1 s (set_behaviour(stop_delay=...)),
# instead of the hub's 10 s, so that tests of "slow to stop" stay quick.
DEFAULT_OPTIONS = {"slow_stop_timeout": 1, "slow_spawn_timeout": 1}


def require_realhub(hub=None) -> None:
    """Skip (or, with CI=true, fail) the calling test when the real hub (that version of
    tests/realhub/hub-versions.txt; default 6.1) is not installed."""
    ok, why = installed(hub)
    if ok:
        return
    message = f"real JupyterHub not available: {why}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message + " (CI=true: not skipping)", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def running_hub(hub: RealHub, managed_passes: int = 0):
    """Start `hub`, wait until its managed cullers logged `managed_passes` finished passes
    (their first one runs as the hub starts: let it end before tests add users), yield it;
    then stop it and check that nothing it started is left running."""
    try:
        hub.start()
        if managed_passes:
            hub.wait_for_log("pass-done", count=managed_passes, timeout=30)
        yield hub
    finally:
        hub.stop()
    assert hub.leftover_pids() == []


@contextlib.contextmanager
def _hub_maker(next_dir):
    """Yield make(services=DEFAULT_SERVICES, **RealHub options) -> a started RealHub, each in
    the folder ``next_dir(count)`` gives; every hub made is stopped on the way out."""
    require_realhub()
    hubs: list[RealHub] = []

    def make(services=None, **options) -> RealHub:
        merged = dict(DEFAULT_OPTIONS)
        merged.update(options)
        hub = RealHub(
            next_dir(len(hubs)),
            services=DEFAULT_SERVICES if services is None else services,
            **merged,
        )
        hubs.append(hub)
        hub.start()
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            hub.stop()


@pytest.fixture(scope="session")
def realhub_factory(tmp_path_factory):
    """make(services=DEFAULT_SERVICES, **RealHub options) -> a started RealHub.
    Every hub made is stopped at the end of the session (or earlier with hub.stop())."""
    with _hub_maker(lambda count: tmp_path_factory.mktemp("realhub")) as make:
        yield make


@pytest.fixture(scope="session")
def realhub(realhub_factory) -> RealHub:
    """One hub for the whole session, with DEFAULT_SERVICES. Tests share it: use fresh user
    names (harness.unique_names) and do not rely on the total number of users."""
    return realhub_factory()


@pytest.fixture
def fresh_realhub(tmp_path):
    """make(services=DEFAULT_SERVICES, **options): a hub of the test's own, stopped when the
    test ends (costs ~2.5 s; for tests that need an empty hub or special options)."""
    with _hub_maker(lambda count: tmp_path / f"hub{count}") as make:
        yield make

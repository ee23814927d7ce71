"""Property test of the paths the culler sends: whatever a user or server is called, the hub
receives a request for exactly that user and server.

The loopback fake hub splits the raw path it receives on ``/`` and percent-decodes each
segment, which is what JupyterHub's tornado routes do (``/users/([^/]+)/servers/([^/]*)``
matched on the raw path, each group unescaped); `tests/realhub/` checks a dot name on a real
hub. Names that only the HTTP stack would change on the way (dot segments) are included on
purpose.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.hub import HubClient, RetryPolicy
from tests.support.fakehub import FakeHub

SETTINGS = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Pieces a name can be made of: what HTTP treats specially, and any other character but lone
# surrogates (the model refuses those: they cannot be sent).
SPECIAL = [".", "..", "/", "%", "%2E", "%2e", "%2F", "?", "#", " ", "+", ";", "\\", "\n",
           "\x00", "\x7f", "\u00e9", "\u202e", "\U0001f600", "~", "@", ":", "&", "="]
pieces = st.one_of(st.sampled_from(SPECIAL),
                   st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=3))
names = st.lists(pieces, min_size=1, max_size=4).map("".join)
server_names = st.one_of(st.just(""), names)


def test_any_names_reach_the_hub_as_the_names_they_are():
    with FakeHub() as fake_hub:
        hub = HubClient(HubSettings(api_url=fake_hub.api_url, token=fake_hub.token,
                                    read_timeout=5), RetryPolicy(retries=0))

        @SETTINGS
        @given(names, server_names)
        @example(".", "")
        @example("alice", ".")
        @example("alice", "..")
        @example("..", "..")
        @example("a/../b", "./")
        def check(user, server):
            hub.stop_server(user, server, remove=bool(server))
            hub.delete_user(user)
            stop, delete = fake_hub.records()[-2:]
            assert (stop.method, stop.route, stop.user, stop.server) == (
                "DELETE", "stop_server", user, server), stop.path
            assert (delete.method, delete.route, delete.user) == (
                "DELETE", "delete_user", user), delete.path

        try:
            check()
        finally:
            hub.close()

"""Whole passes with the real HubClient and real threads against the loopback fake hub."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from idle_culler_daemon.config import CullSettings, HubSettings, RuleSettings, load_config
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.service import Culler
from idle_culler_daemon.sources import read_text
from tests.support.fakehub import (
    active_user,
    idle_user,
    inactive_user,
    pending_user,
    user_with_servers,
)

DEFAULT = CullSettings(timeout=600)


def culler_pass(fake_hub, settings=DEFAULT, concurrency=4, page_size=0, server_url_base=None,
                **kwargs):
    hub = HubClient(HubSettings(api_url=fake_hub.api_url, token=fake_hub.token,
                                read_timeout=2, page_size=page_size, pool_size=concurrency,
                                server_url_base=server_url_base),
                    RetryPolicy(connect_timeout=1, backoff_factor=0.01))
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        try:
            return run_pass(hub, settings, datetime.now(timezone.utc),
                            Runtime(executor, concurrency, **kwargs))
        finally:
            hub.close()


def test_pass_pages_through_short_ready_pages_and_ignores_next_url(fake_hub):
    # Pending users count in the hub's SQL page but are dropped from `ready` afterwards,
    # so pages come back short; next.url points at https://hub.invalid:1.
    for i in range(30):
        fake_hub.add(idle_user("idle%02d" % i, 3600), pending_user("pend%02d" % i),
                     active_user("busy%02d" % i))
    stats = culler_pass(fake_hub, page_size=20)
    assert sorted(user for user, _ in fake_hub.stopped_servers()) == \
        ["idle%02d" % i for i in range(30)]
    lists = fake_hub.records(route="list_users")
    assert len(lists) == 5 and all(r.headers["host"].startswith("127.0.0.1") for r in lists)
    assert stats.users_seen == 60 and stats.stopped == 30


@pytest.mark.parametrize("page_size, ahead", [(20, 10), (200, 5)])
def test_pass_prefetches_at_most_concurrency_pages_and_100_users_per_worker(fake_hub, page_size,
                                                                            ahead):
    # 2400 users with nothing to do; each list page takes 100 ms, so the pages asked for ahead
    # are in flight together. 10 workers: 10 pages of 20, but only 5 pages of 200 (1000 users).
    fake_hub.add(*[active_user("u%04d" % i) for i in range(2400)])
    fake_hub.latency.list_users = 0.1
    stats = culler_pass(fake_hub, concurrency=10, page_size=page_size)
    assert stats.users_seen == 2400
    assert fake_hub.max_in_flight("GET") == ahead


def test_pass_sends_no_delete_before_the_last_page(fake_hub):
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(300)])
    culler_pass(fake_hub, page_size=50, concurrency=8)
    assert fake_hub.timeline().lists_before_deletes
    assert len(fake_hub.stopped_servers()) == 300


def test_pass_concurrency_reaches_and_never_exceeds_the_limit_across_users(fake_hub):
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(60)])
    fake_hub.latency.stop_server = 0.05
    culler_pass(fake_hub, concurrency=5)
    assert fake_hub.max_concurrent_deletes == 5
    assert fake_hub.max_in_flight() <= 5


def test_pass_one_tcp_connection_per_worker_reused(fake_hub):
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(80)])
    culler_pass(fake_hub, concurrency=4, page_size=20)
    assert fake_hub.connection_count <= 4 + 1  # the workers and the main thread


def test_pass_named_servers_and_user_deletion(fake_hub):
    fake_hub.add(user_with_servers("ann", {"": 3600, "lab": 3600}),
                 user_with_servers("bob", {"": 5, "lab": 3600}),
                 inactive_user("never", 7200))
    settings = CullSettings(timeout=600, cull_users=True, remove_named_servers=True)
    stats = culler_pass(fake_hub, settings)
    assert sorted(fake_hub.stopped_servers()) == [("ann", ""), ("ann", "lab"), ("bob", "lab")]
    assert sorted(fake_hub.deleted_users()) == ["ann", "never"]
    assert fake_hub.server("bob", "lab") is None and stats.deleted == 2


def test_pass_slow_stop_keeps_the_user(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.set_stop_outcome("ann", "", 202)
    stats = culler_pass(fake_hub, CullSettings(timeout=600, cull_users=True))
    assert stats.pending == 1 and fake_hub.deleted_users() == []


@pytest.mark.parametrize("bad", [
    {"last_activity": "not a date"}, {"admin": "no"}, {"servers": "none"}, {"groups": 3},
])
def test_pass_bad_user_is_skipped_with_a_warning_and_nothing_of_theirs_stopped(
        fake_hub, caplog, bad):
    model = {"kind": "user", "name": "weird", "admin": False, "groups": [],
             "created": "2020-01-01T00:00:00Z", "last_activity": "2020-01-01T00:00:00Z",
             "servers": {"": {"name": "", "ready": True, "pending": None,
                              "started": "2020-01-01T00:00:00Z",
                              "last_activity": "2020-01-01T00:00:00Z", "url": "/user/weird/"}}}
    model.update(bad)
    fake_hub.add_raw_user(model)
    fake_hub.add(idle_user("ann", 3600))
    with caplog.at_level(logging.WARNING):
        stats = culler_pass(fake_hub, CullSettings(timeout=600, cull_users=True))
    assert fake_hub.stopped_servers() == [("ann", "")]
    assert "weird" not in fake_hub.deleted_users()
    assert stats.users_skipped == 1 and "skip-user" in caplog.text


def test_pass_exclude_groups_keeps_members_when_the_hub_hides_groups(fake_hub, caplog):
    # The token may list users but not read their groups: the hub leaves `groups` out.
    fake_hub.scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    fake_hub.add(idle_user("staff-ann", 3600, groups=["staff"]), idle_user("bob", 3600))
    settings = CullSettings(timeout=600, rules=(RuleSettings("exclude-groups",
                                                             groups=("staff",), cull=False),))
    with caplog.at_level(logging.WARNING):
        stats = culler_pass(fake_hub, settings)
    assert fake_hub.stopped_servers() == [] and stats.stopped == 0
    assert "groups-unknown" in caplog.text and "read:users:groups" in caplog.text


def test_pass_counts_and_logs_a_redirected_stop_as_a_failure(fake_hub, caplog):
    fake_hub.add(idle_user("ann", 3600), idle_user("bob", 3600))
    fake_hub.faults.add("DELETE /users/ann/server", 302, count=None,
                        location=fake_hub.api_url + "/")
    with caplog.at_level(logging.ERROR):
        stats = culler_pass(fake_hub)
    assert fake_hub.stopped_servers() == [("bob", "")]
    assert (stats.stopped, stats.failed, stats.errors["3xx"], stats.ok) == (1, 1, 1, False)
    assert "stop-failed" in caplog.text and "user=ann" in caplog.text


def test_pass_one_stop_event_ends_the_hubs_retries_and_the_pass(fake_hub):
    # The culler is wired with one stop event (SIGTERM sets it): the hub client reads it to
    # start no retry, the pass to take no more pages or jobs.
    fake_hub.add(*[idle_user("u%03d" % i, 3600) for i in range(30)])
    values = parse_command_line(["--url=" + fake_hub.api_url, "--timeout=600",
                                 "--api-page-size=10", "--concurrency=2"])
    config = load_config(values, {"JUPYTERHUB_API_TOKEN": fake_hub.token}, read_text)
    stop = threading.Event()
    culler = Culler(config, lambda: config, stop=stop)
    try:
        culler.preflight()
        stop.set()
        stats = culler.run_pass(lambda: None)
        assert stats.interrupted and fake_hub.stopped_servers() == []
        assert len(fake_hub.records(route="list_users")) <= 2  # the first page (one ahead)
        fake_hub.faults.add("GET /users", 503, count=None)
        stats = culler.run_pass(lambda: None)
        assert stats.listing_error and len(fake_hub.records(route="list_users")) <= 3  # no retry
    finally:
        culler.close()

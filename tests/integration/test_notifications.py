"""Notifications end to end: whole passes against the loopback fake hub, the real webhook
sender, and a recording receiver on 127.0.0.1 (docs/behaviour.md#webhook-notifications).

The hub's timestamps stay put and each pass is given its own ``now``, so several passes
minutes apart take no time at all.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from idle_culler_daemon.config import CullSettings, HubSettings, NotifySettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.forewarn import Warned
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.webhook import Webhook
from tests.support.fakehub import crowd, idle_user, inactive_user, utcnow
from tests.support.receiver import Receiver

MINUTE = 60
WARN = CullSettings(timeout=3600, warn_before=15 * MINUTE)


def a_pass(fake_hub, settings, now, hook=None, warned=None, dry_run=False, concurrency=4):
    # the pass measures idle time on the hub's clock (its Date header): the fake hub's clock
    # moves with the simulated time
    fake_hub.clock_offset = now - utcnow()
    hub = HubClient(HubSettings(api_url=fake_hub.api_url, token=fake_hub.token, read_timeout=2,
                                pool_size=concurrency),
                    RetryPolicy(connect_timeout=1, backoff_factor=0.01))
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        try:
            return run_pass(hub, settings, now, Runtime(executor, concurrency, dry_run=dry_run,
                                                        outbox=hook, forewarned=warned))
        finally:
            hub.close()


def webhook(receiver, fake_hub, **kwargs):
    kwargs.setdefault("backoff_s", 0)
    return Webhook(NotifySettings(url=receiver.url, hub=fake_hub.url, read_timeout=2),
                   **kwargs)


def events(receiver):
    return [(body["event"], body["user"]) for body in receiver.bodies()]


@pytest.fixture
def receiver():
    with Receiver() as hook:
        yield hook


def test_notifications_warn_once_per_idle_stretch_then_tell_the_stops(fake_hub, receiver):
    start = utcnow()
    fake_hub.add(idle_user("ann", 50 * MINUTE, start), idle_user("bob", 10 * MINUTE, start))
    hook, warned = webhook(receiver, fake_hub), Warned()
    try:
        for minutes in (0, 2, 4):  # ann: one warning over three passes; bob: none yet
            a_pass(fake_hub, WARN, start + timedelta(minutes=minutes), hook, warned)
        assert hook.idle(5) and events(receiver) == [("server-stop-soon", "ann")]
        # ann uses her server at +5 min: a new idle stretch, warned about again at +50 min
        fake_hub.update_server("ann", last_activity=start + timedelta(minutes=5))
        a_pass(fake_hub, WARN, start + timedelta(minutes=6), hook, warned)
        a_pass(fake_hub, WARN, start + timedelta(minutes=50), hook, warned)  # bob: 60 min
        a_pass(fake_hub, WARN, start + timedelta(minutes=66), hook, warned)  # ann: 61 min
        assert hook.idle(5)
    finally:
        hook.close(1)
    assert events(receiver) == [("server-stop-soon", "ann"), ("server-stop-soon", "ann"),
                                ("server-stopped", "bob"), ("server-stopped", "ann")]
    first, second, bob, ann = receiver.bodies()
    assert first["at"] != second["at"] and first["reason"] == "idle"
    assert second["text"].startswith("The server of ann will be stopped at ")
    assert (bob["result"], bob["reason"], bob["hub"]) == ("stopped", "idle", fake_hub.url)
    assert sorted(fake_hub.stopped_servers()) == [("ann", ""), ("bob", "")]
    assert hook.counts() == ({"server-stop-soon": 2, "server-stopped": 2}, 0, 0)


def test_notifications_never_carry_the_hubs_token(fake_hub, receiver):
    start = utcnow()
    fake_hub.add(idle_user("ann", 50 * MINUTE, start), idle_user("bob", 2 * 3600, start))
    hook = webhook(receiver, fake_hub)
    try:
        a_pass(fake_hub, WARN, start, hook, Warned())
        receiver.wait_for(2)
    finally:
        hook.close(1)
    for item in receiver.received():
        seen = json.dumps(item.headers) + item.raw.decode("utf-8") + item.path
        assert fake_hub.token not in seen and "Authorization" not in item.headers


def test_notifications_user_delete_soon_then_user_deleted(fake_hub, receiver):
    start = utcnow()
    fake_hub.add(inactive_user("carl", 50 * MINUTE, start, created_s=86400))
    settings = CullSettings(timeout=3600, cull_users=True, warn_before=15 * MINUTE)
    hook, warned = webhook(receiver, fake_hub), Warned()
    try:
        a_pass(fake_hub, settings, start, hook, warned)
        a_pass(fake_hub, settings, start + timedelta(minutes=5), hook, warned)
        a_pass(fake_hub, settings, start + timedelta(minutes=11), hook, warned)
        assert hook.idle(5)
    finally:
        hook.close(1)
    soon, deleted = receiver.bodies()
    assert (soon["event"], soon["server"], soon["reason"]) == ("user-delete-soon", None,
                                                               "inactive-user")
    assert (deleted["event"], deleted["user"], deleted["reason"]) == ("user-deleted", "carl",
                                                                      "inactive-user")
    assert fake_hub.deleted_users() == ["carl"]


def test_notifications_dry_run_sends_nothing_and_its_plan_holds_the_warnings(fake_hub,
                                                                             receiver):
    start = utcnow()
    fake_hub.add(idle_user("ann", 50 * MINUTE, start), idle_user("bob", 2 * 3600, start))
    hook = webhook(receiver, fake_hub)
    try:
        stats = a_pass(fake_hub, WARN, start, hook, Warned(), dry_run=True)
    finally:
        hook.close(5)  # would send anything queued
    assert receiver.received() == [] and hook.counts() == ({}, 0, 0)
    assert [(n.event, n.user) for n in stats.warnings] == [("server-stop-soon", "ann")]
    assert [(entry.action, entry.user) for entry in stats.plan] == [("stop", "bob")]
    assert fake_hub.stopped_servers() == []


def test_notifications_guard_tripped_is_told_and_nothing_is_warned(fake_hub, receiver):
    start = utcnow()
    fake_hub.add(*crowd(4, 3, now=start), idle_user("ann", 50 * MINUTE, start))
    settings = CullSettings(timeout=3600, warn_before=15 * MINUTE, max_stop_fraction=0.5)
    hook, warned = webhook(receiver, fake_hub), Warned()
    try:
        stats = a_pass(fake_hub, settings, start, hook, warned)
        (item,) = receiver.wait_for(1)
        assert hook.idle(5)
    finally:
        hook.close(1)
    assert stats.guard_tripped and fake_hub.stopped_servers() == []
    body = item.json()
    assert (body["event"], body["planned"], body["running"], body["limit"]) == \
        ("guard-tripped", 3, 5, 0.5)
    assert len(warned) == 0  # ann's warning waits for a pass that acts: never skipped


@pytest.mark.parametrize("mode, status", [("hang", 204), ("ok", 500), ("close", 204)])
def test_notifications_a_bad_receiver_does_not_slow_the_pass(make_fake_hub, mode, status):
    start = utcnow()

    def timed_pass(hook):
        fake_hub = make_fake_hub()
        fake_hub.latency.stop_server = 0.02
        fake_hub.add(*[idle_user("u%02d" % index, 2 * 3600, start) for index in range(20)])
        began = time.monotonic()
        stats = a_pass(fake_hub, WARN, start, hook, Warned())
        assert stats.stopped == 20
        return time.monotonic() - began

    with Receiver(mode=mode, status=status) as receiver:
        without = timed_pass(None)
        # each notice costs the sender at least 0.2 + 0.4 s of backoff (a hang: 3 x 0.5 s
        # more): 12 s or more for the 20, if the pass waited for them
        hook = Webhook(NotifySettings(url=receiver.url, read_timeout=0.5), retries=2,
                       backoff_s=0.2)
        try:
            with_webhook = timed_pass(hook)
            receiver.wait_for(1)
        finally:
            hook.close(0.2)
        sent, failed, dropped = hook.counts()
    # the pass only queues: as long as without the webhook (a generous bound for a busy CI)
    assert with_webhook < 2 * without + 0.5, (with_webhook, without)
    assert sent == {} and failed + dropped == 20  # every notice counted, none lost silently

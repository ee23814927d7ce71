"""The service's side of notifications, against the fake hub and a loopback receiver: the
warned stretches kept across passes, the webhook kept or replaced by a reload, its secrets
redacted before the swap, and the bounded drain when the culler closes."""

import time
from datetime import timedelta

import pytest

from idle_culler_daemon import webhook
from idle_culler_daemon.config import load_config
from idle_culler_daemon.forewarn import SERVER_STOPPED, Notice
from idle_culler_daemon.hub import RetryPolicy
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.service import Culler
from tests.support.fakehub import idle_user, utcnow
from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as hook:
        yield hook


@pytest.fixture
def make_culler(fake_hub):
    made = []

    def make(files, clock=utcnow):
        files.setdefault("token", fake_hub.token)
        cli = parse_command_line(["--url=" + fake_hub.api_url, "--config=c.ini",
                                  "--api-token-file=token"])

        def read(path):
            if path not in files:
                raise FileNotFoundError(2, "No such file or directory", path)
            return files[path]

        def load():
            return load_config(cli, {}, read)

        calls = []
        culler = Culler(load(), load, clock=clock,
                        logging=lambda config, also: calls.append(also))
        culler.policy = RetryPolicy(retries=0)
        made.append(culler)
        return culler, calls

    yield make
    for culler in made:
        culler.close()


def one_pass(culler):
    return culler.run_pass(lambda: None)


def test_service_warns_once_across_passes_and_tells_the_stop(fake_hub, receiver, make_culler):
    start = utcnow()
    fake_hub.add(idle_user("ann", 50 * 60, start))
    now = [start]
    files = {"c.ini": "[culler]\ntimeout = 1h\nwarn_before = 15m\nnotify_url = %s\n"
                      % receiver.url}
    culler, _ = make_culler(files, clock=lambda: now[0])
    for minutes in (0, 3, 6, 11):  # the stop is due at +10 minutes
        now[0] = start + timedelta(minutes=minutes)
        fake_hub.clock_offset = now[0] - utcnow()  # idle time is measured on the hub's clock
        one_pass(culler)
    assert culler.notifications.webhook.idle(5)
    assert [(body["event"], body["user"]) for body in receiver.bodies()] == [
        ("server-stop-soon", "ann"), ("server-stopped", "ann")]
    assert culler.notifications.webhook.counts() == (
        {"server-stop-soon": 1, "server-stopped": 1}, 0, 0)


def test_service_reload_keeps_the_webhook_unless_its_settings_change(fake_hub, receiver,
                                                                     make_culler):
    files = {"c.ini": "[culler]\nnotify_url = %s\n" % receiver.url}
    culler, calls = make_culler(files)
    first = culler.notifications.webhook
    files["c.ini"] += "timeout = 2h\n"
    culler.reload()
    assert culler.notifications.webhook is first
    with Receiver(path="/other/K3Y-of-the-new-hook") as other:
        files["c.ini"] = "[culler]\nnotify_url = %s\n" % other.url
        culler.reload()
        hook = culler.notifications.webhook
        assert hook is not first and hook.settings.url == other.url
        assert other.url in calls[-2] and calls[-1] == ()  # a secret before the swap
        assert not first.send(stopped())  # the old one is closed
    files["c.ini"] = "[culler]\n"
    culler.reload()
    assert culler.notifications.webhook is None
    assert culler.notification_counts() == ({}, 0, 0)


def test_service_notification_counts_add_up_across_webhooks(fake_hub, receiver, make_culler):
    files = {"c.ini": "[culler]\nnotify_url = %s\n" % receiver.url}
    culler, _ = make_culler(files)
    culler.notifications.webhook.send(stopped())
    assert culler.notifications.webhook.idle(5)
    with Receiver(path="/second/hook-key-2") as other:
        files["c.ini"] = "[culler]\nnotify_url = %s\n" % other.url
        culler.reload()
        culler.notifications.webhook.send(stopped())
        assert culler.notifications.webhook.idle(5)
        assert culler.notification_counts() == ({"server-stopped": 2}, 0, 0)


def stopped():
    return Notice(SERVER_STOPPED, "ann", "", "idle", 1, "default", result="stopped")


def test_service_close_gives_a_hanging_webhook_a_bounded_time(fake_hub, make_culler,
                                                              monkeypatch):
    monkeypatch.setattr(webhook, "DRAIN_S", 0.3)
    with Receiver(mode="hang") as receiver:
        culler, _ = make_culler({"c.ini": "[culler]\nnotify_url = %s\n" % receiver.url})
        hook = culler.notifications.webhook
        hook.send(stopped())
        receiver.wait_for(1)
        hook.send(stopped())
        began = time.monotonic()
        culler.close()
        assert time.monotonic() - began < 3
    assert hook.counts() == ({}, 0, 2) and culler.notifications.webhook is None


def test_service_records_the_notification_totals_in_the_metrics(fake_hub, receiver,
                                                               make_culler):
    pytest.importorskip("prometheus_client")
    from idle_culler_daemon.metrics import PREFIX, Metrics

    start = utcnow()
    fake_hub.add(idle_user("ann", 2 * 3600, start))
    culler, _ = make_culler({"c.ini": "[culler]\ntimeout = 1h\nnotify_url = %s\n"
                                      % receiver.url})
    metrics = Metrics()
    culler._metrics = metrics  # as cli wires it
    one_pass(culler)  # stops ann: server-stopped queued
    assert culler.notifications.webhook.idle(5)
    one_pass(culler)  # the totals are recorded after each pass
    sample = metrics.registry.get_sample_value
    assert sample(PREFIX + "notifications_sent_total", {"event": "server-stopped"}) == 1
    assert culler.notification_counts() == ({"server-stopped": 1}, 0, 0)

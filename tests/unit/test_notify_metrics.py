"""The notification counters: notifications_sent_total{event}, notifications_failed_total and
notifications_dropped_total, fed with the webhooks' totals since start after each pass."""

import pytest

pytest.importorskip("prometheus_client")

from idle_culler_daemon.forewarn import EVENTS  # noqa: E402
from idle_culler_daemon.metrics import PREFIX, Metrics  # noqa: E402


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(PREFIX + name, labels or None)


def test_notify_metrics_exist_at_zero_for_every_event():
    metrics = Metrics()
    for event in EVENTS:
        assert value(metrics, "notifications_sent_total", event=event) == 0
    assert value(metrics, "notifications_failed_total") == 0
    assert value(metrics, "notifications_dropped_total") == 0


def test_notify_metrics_grow_by_what_is_new_in_the_totals():
    metrics = Metrics()
    metrics.notified({"server-stop-soon": 2}, 1, 0)
    metrics.notified({"server-stop-soon": 2, "server-stopped": 3}, 1, 4)
    metrics.notified({"server-stop-soon": 2, "server-stopped": 3}, 1, 4)  # nothing new
    assert value(metrics, "notifications_sent_total", event="server-stop-soon") == 2
    assert value(metrics, "notifications_sent_total", event="server-stopped") == 3
    assert value(metrics, "notifications_failed_total") == 1
    assert value(metrics, "notifications_dropped_total") == 4


def test_notify_metrics_carry_over_from_the_textfile(tmp_path):
    path = tmp_path / "culler.prom"
    first = Metrics(str(path))
    first.notified({"user-deleted": 5}, 2, 1)
    first.write_file(str(path))
    second = Metrics(str(path))  # the next --once run goes on from the file
    second.notified({"user-deleted": 1}, 0, 0)
    assert value(second, "notifications_sent_total", event="user-deleted") == 6
    assert value(second, "notifications_failed_total") == 2
    assert value(second, "notifications_dropped_total") == 1

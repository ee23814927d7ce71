"""Idle on the hub's clock, against the loopback fake hub whose clock (its Date header and the
timestamps it writes) is 2 h ahead of the culler's, then 2 h behind
(docs/behaviour.md#the-hubs-clock). The culler runs as the daemon runs it: a ``Culler`` with
its preflight, metrics and a ``ClockWatch`` kept across passes."""

import logging
from datetime import timedelta

import pytest

from idle_culler_daemon.config import load_config
from idle_culler_daemon.hub import RetryPolicy
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.service import Culler
from tests.support.fakehub import idle_user, utcnow

HOUR = 3600
MINUTE = 60


def hub_off_by(make_fake_hub, offset_s):
    """A hub whose clock is ``offset_s`` ahead of this machine's: in its Date header and in the
    timestamps it writes."""
    return make_fake_hub(clock=lambda: utcnow() + timedelta(seconds=offset_s),
                         clock_offset=timedelta(seconds=offset_s))


def build_culler(hub, *argv):
    pytest.importorskip("prometheus_client")
    from idle_culler_daemon.metrics import Metrics

    values = parse_command_line(["--url=" + hub.api_url, "--timeout=1h", *argv])
    config = load_config(values, {"JUPYTERHUB_API_TOKEN": hub.token}, lambda path: "")
    metrics = Metrics()
    culler = Culler(config, lambda: config, metrics=metrics)
    culler.policy = RetryPolicy(retries=0)
    return culler, metrics


def offset_metric(metrics):
    return metrics.registry.get_sample_value("jupyterhub_idle_culler_hub_clock_offset_seconds")


def one_pass(culler):
    return culler.run_pass(lambda: None)


def clock_lines(caplog):
    return [(record.levelname, record.getMessage()) for record in caplog.records
            if record.getMessage().startswith("clock-")]


def test_hub_two_hours_behind_keeps_servers_idle_30_minutes_at_the_hub(make_fake_hub, caplog):
    hub = hub_off_by(make_fake_hub, -2 * HOUR)
    hub_now = hub.clock()
    hub.add(idle_user("fresh", 30 * MINUTE, hub_now), idle_user("old", 3 * HOUR, hub_now))
    culler, metrics = build_culler(hub)
    try:
        with caplog.at_level(logging.INFO):
            stats = one_pass(culler)
    finally:
        culler.close()
    assert hub.stopped_servers() == [("old", "")] and stats.ok
    (line,) = clock_lines(caplog)
    assert line[0] == "WARNING" and line[1].startswith("clock-offset offset_s=-7200 ")
    assert offset_metric(metrics) == -7200
    assert "stop user=old server=- reason=idle idle_s=10800 " in caplog.text


def test_hub_two_hours_ahead_stops_servers_idle_90_minutes_at_the_hub(make_fake_hub, caplog):
    hub = hub_off_by(make_fake_hub, 2 * HOUR)
    hub_now = hub.clock()
    hub.add(idle_user("idle", 90 * MINUTE, hub_now), idle_user("busy", 10 * MINUTE, hub_now))
    culler, metrics = build_culler(hub)
    try:
        with caplog.at_level(logging.INFO):
            stats = one_pass(culler)
            hub.add(idle_user("later", 2 * HOUR, hub.clock()))
            one_pass(culler)  # the same offset: not said again
    finally:
        culler.close()
    assert hub.stopped_servers() == [("idle", ""), ("later", "")] and stats.ok
    (line,) = clock_lines(caplog)
    assert line[0] == "WARNING" and line[1].startswith("clock-offset offset_s=7200 ")
    assert offset_metric(metrics) == 7200


def test_hub_in_step_says_the_figure_once_at_info(make_fake_hub, caplog):
    hub = make_fake_hub()
    hub.add(idle_user("idle", 90 * MINUTE), idle_user("busy", 10 * MINUTE))
    culler, metrics = build_culler(hub, "--dry-run")
    try:
        with caplog.at_level(logging.INFO):
            one_pass(culler)
            one_pass(culler)
    finally:
        culler.close()
    assert clock_lines(caplog)[0][0] == "INFO"
    assert [message.split(" detail")[0] for _, message in clock_lines(caplog)] == \
        ["clock-offset offset_s=0"]
    assert offset_metric(metrics) == 0

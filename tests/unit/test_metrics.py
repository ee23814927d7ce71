"""Metrics: counters equal what the pass did; the textfile is replaced atomically; the
endpoint stays small whatever its clients do."""

import socket
import threading
import time
import urllib.request
from collections import Counter

import pytest

from idle_culler_daemon.metrics import Endpoint, Metrics
from idle_culler_daemon.stats import PassStats

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_what_the_passes_did():
    metrics = Metrics()
    metrics.record(PassStats(users_seen=10, stopped=3, deleted=1, duration_s=0.4,
                             stopped_by=Counter({("idle", "default", "default"): 2,
                                                 ("max-age", "named", "gpu"): 1})), now=1000.0)
    metrics.record(PassStats(listing_error="down", errors=Counter({"connection": 1})))
    metrics.record(PassStats(users_seen=10, delete_failed=2, errors=Counter({"5xx": 2})))
    values = samples(metrics.text())
    prefix = "jupyterhub_idle_culler_"
    assert values[(prefix + "servers_stopped_total",
                   (("kind", "default"), ("reason", "idle"), ("rule", "default")))] == 2
    assert values[(prefix + "servers_stopped_total",
                   (("kind", "named"), ("reason", "max-age"), ("rule", "gpu")))] == 1
    assert values[(prefix + "users_deleted_total", ())] == 1
    assert values[(prefix + "users_delete_failed_total", ())] == 2
    assert values[(prefix + "passes_total", (("result", "ok"),))] == 1
    assert values[(prefix + "passes_total", (("result", "failed"),))] == 1
    assert values[(prefix + "users_seen", ())] == 10  # a failed listing keeps the last figure
    assert values[(prefix + "request_errors_total", (("status_class", "connection"),))] == 1
    assert values[(prefix + "last_success_timestamp_seconds", ())] == 1000.0
    assert values[(prefix + "passes_total", (("result", "partial"),))] == 1
    assert values[(prefix + "pass_duration_seconds_count", ())] == 3


def test_metrics_file_is_replaced_never_rewritten_in_place(tmp_path):
    path = tmp_path / "culler.prom"
    metrics = Metrics(str(path))
    metrics.record(PassStats(users_seen=1))
    first = path.stat().st_ino
    metrics.record(PassStats(users_seen=2))
    assert path.stat().st_ino != first  # a new file renamed over the old one
    assert [p.name for p in tmp_path.iterdir()] == ["culler.prom"]
    assert samples(path.read_text())[("jupyterhub_idle_culler_users_seen", ())] == 2


def test_metrics_have_no_created_series_and_every_labelled_series_from_the_start():
    metrics = Metrics()
    metrics.configure(300.0, ["gpu", "guests"])
    text = metrics.text()
    assert "_created" not in text
    values = samples(text)
    prefix = "jupyterhub_idle_culler_"
    for rule in ("default", "gpu", "guests"):
        for reason in ("idle", "max-age"):
            for kind in ("default", "named"):
                key = (prefix + "servers_stopped_total",
                       (("kind", kind), ("reason", reason), ("rule", rule)))
                assert values[key] == 0, key
    for status_class in ("3xx", "4xx", "5xx", "connection"):  # every class documented
        assert values[(prefix + "request_errors_total",
                       (("status_class", status_class),))] == 0
    for result in ("ok", "partial", "guard-tripped", "interrupted", "failed"):
        assert values[(prefix + "passes_total", (("result", result),))] == 0
    assert values[(prefix + "users_delete_failed_total", ())] == 0
    assert values[(prefix + "interval_seconds", ())] == 300.0
    metrics.configure(60.0, [])
    assert samples(metrics.text())[(prefix + "interval_seconds", ())] == 60.0
def test_metrics_count_guard_trips_and_servers_held_back():
    metrics = Metrics()
    values = samples(metrics.text())
    prefix = "jupyterhub_idle_culler_"
    assert values[(prefix + "mass_cull_guard_trips_total", ())] == 0  # there from the start
    assert values[(prefix + "servers_held_back_total", ())] == 0
    metrics.record(PassStats(servers_running=100, held_back=90,
                             guard_tripped="mass-cull guard: would stop 90 of 100"))
    metrics.record(PassStats(servers_running=100, held_back=80, stopped=10))
    metrics.record(PassStats(servers_running=100))
    values = samples(metrics.text())
    assert values[(prefix + "mass_cull_guard_trips_total", ())] == 1
    assert values[(prefix + "servers_held_back_total", ())] == 170


# no proxy: Debian's package builds set http_proxy to a closed port (127.0.0.1:9)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthz(port, timeout=2.0):
    with _DIRECT.open("http://127.0.0.1:%d/healthz" % port, timeout=timeout) as answer:
        return answer.status, answer.read().decode()


def test_endpoint_caps_its_connections_and_times_idle_ones_out():
    # Seen: 300 idle connections left 254 threads and the culler's own requests failing with
    # EMFILE. Idle clients now hold at most ``max_connections`` threads and descriptors, and
    # lose them after ``idle_timeout_s``.
    before = threading.active_count()
    endpoint = Endpoint("127.0.0.1", 0, None, lambda: (True, "ok"), max_connections=4,
                        idle_timeout_s=0.5)
    idle = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection(("127.0.0.1", endpoint.port), timeout=5))
        refused = 0
        for client in idle:  # beyond the cap, a connection is closed at once
            client.settimeout(2)
            try:
                refused += client.recv(1) == b""
            except socket.timeout:
                pass
            except OSError:
                refused += 1
            if refused >= 90:
                break
        assert threading.active_count() <= before + 1 + 4  # serve_forever + the cap
        assert refused >= 90
        # The idle ones within the cap are timed out; then a real client is answered.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert healthz(endpoint.port) == (200, "ok\n")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
    finally:
        for client in idle:
            client.close()
        endpoint.close()
    assert threading.active_count() <= before + 4


@pytest.mark.parametrize("stats", [
    PassStats(users_seen=5, interrupted=True),
    PassStats(users_seen=5, guard_tripped="mass-cull guard: would stop 9 of 10"),
    PassStats(users_seen=5, failed=1),
    PassStats(listing_error="down"),
    PassStats(users_seen=5, auth_error="403"),
], ids=["interrupted", "guard-tripped", "failures", "hub-error", "refused"])
def test_metrics_last_success_is_refreshed_only_by_an_ok_pass(stats):
    metrics = Metrics()
    metrics.record(PassStats(users_seen=5), now=1000.0)
    metrics.record(stats, now=2000.0)
    values = samples(metrics.text())
    assert values[("jupyterhub_idle_culler_last_success_timestamp_seconds", ())] == 1000.0


def test_metrics_file_carries_counters_and_last_success_over_from_the_previous_run(tmp_path):
    # A timer runs each --once pass as a process of its own: every run's file restarted at 0,
    # so one failed pass set last_success to 0 (the staleness alert's condition at once) and
    # increase() over counters that were 0 or 1 in every file saw almost nothing.
    path = tmp_path / "culler.prom"
    Metrics(str(path)).record(PassStats(users_seen=3, stopped=1, stopped_by=Counter(
        {("idle", "named", "gpu"): 1})), now=1000.0)
    second = Metrics(str(path))
    second.record(PassStats(listing_error="down", errors=Counter({"connection": 1})), now=2000.0)
    values = samples(path.read_text())
    prefix = "jupyterhub_idle_culler_"
    assert values[(prefix + "last_success_timestamp_seconds", ())] == 1000.0
    assert values[(prefix + "passes_total", (("result", "ok"),))] == 1
    assert values[(prefix + "passes_total", (("result", "failed"),))] == 1
    assert values[(prefix + "servers_stopped_total",
                   (("kind", "named"), ("reason", "idle"), ("rule", "gpu")))] == 1
    assert values[(prefix + "request_errors_total", (("status_class", "connection"),))] == 1


@pytest.mark.parametrize("content", [
    b"not { metrics", b"\xff\xfe", b"",
    b'jupyterhub_idle_culler_passes_total{result="retired-label"} 4.0\n'
    b'jupyterhub_idle_culler_passes_total{result="ok",extra="x"} 4.0\n'
    b'jupyterhub_idle_culler_passes_total{result="ok"} -1.0\n'])
def test_metrics_file_that_cannot_be_read_back_starts_from_zero(tmp_path, content):
    path = tmp_path / "culler.prom"
    path.write_bytes(content)
    values = samples(Metrics(str(path)).text())
    assert values[("jupyterhub_idle_culler_passes_total", (("result", "ok"),))] == 0
    assert not any("retired-label" in str(key) for key in values)

"""Metrics: counters equal what the pass did; the textfile is replaced atomically."""

from collections import Counter

import pytest

from idle_culler_daemon.stats import PassStats

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from idle_culler_daemon.metrics import Metrics  # noqa: E402


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
    for status_class in ("4xx", "5xx", "connection"):
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

"""One outcome per pass (``stats.outcome``), read by every report: exit code, metrics, STATUS=."""

import pytest

from idle_culler_daemon.report import status_line
from idle_culler_daemon.stats import Outcome, PassStats, outcome

GUARD = "mass-cull guard: would stop servers of 90 of 100 users running one"


@pytest.mark.parametrize("stats,expected", [
    (PassStats(users_seen=3, stopped=1), Outcome.OK),
    (PassStats(held_back=5, check_failed=2, unreachable=1), Outcome.OK),
    (PassStats(failed=1), Outcome.PARTIAL),
    (PassStats(delete_failed=1), Outcome.PARTIAL),
    (PassStats(auth_error="DELETE ... answered 403"), Outcome.PARTIAL),
    (PassStats(guard_tripped=GUARD, held_back=90), Outcome.GUARD_TRIPPED),
    (PassStats(interrupted=True, stopped=3), Outcome.INTERRUPTED),
    (PassStats(listing_error="GET /users: 503", aborted=True), Outcome.FAILED),
    (PassStats(auth_error="GET /users answered 403", aborted=True), Outcome.FAILED),
])
def test_outcome_of_a_pass(stats, expected):
    assert outcome(stats) is expected
    assert stats.ok is (expected is Outcome.OK)


def test_status_line_says_a_pass_was_interrupted():
    line = status_line(PassStats(users_seen=10, stopped=3, interrupted=True), None)
    assert line.startswith("interrupted: users 10, stopped 3")


prometheus_client = pytest.importorskip("prometheus_client")


@pytest.mark.parametrize("stats,label", [
    (PassStats(servers_running=100, held_back=90, guard_tripped=GUARD), "guard-tripped"),
    (PassStats(users_seen=10, stopped=3, interrupted=True), "interrupted"),
])
def test_a_tripped_guard_or_an_interrupted_pass_is_not_ok_in_the_metrics(stats, label):
    from prometheus_client.parser import text_string_to_metric_families

    from idle_culler_daemon.metrics import Metrics

    metrics = Metrics()
    metrics.record(PassStats(users_seen=1), now=1000.0)
    metrics.record(stats, now=2000.0)
    values = {(sample.name, tuple(sample.labels.items())): sample.value
              for family in text_string_to_metric_families(metrics.text())
              for sample in family.samples}
    prefix = "jupyterhub_idle_culler_"
    assert values[(prefix + "passes_total", (("result", "ok"),))] == 1
    assert values[(prefix + "passes_total", (("result", label),))] == 1
    assert values[(prefix + "last_success_timestamp_seconds", ())] == 1000.0  # not refreshed

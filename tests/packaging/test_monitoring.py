"""packaging/monitoring/: alert rules that promtool accepts and whose unit tests pass, and a
Grafana dashboard whose every query names a metric the culler really exports.

promtool comes from Debian's prometheus package (.ci/promtool.sh unpacks it into .cache/;
`.ci/run` does so before `make test`). Without it these tests skip, except under CI
(CI=true), where a missing tool is a failure.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.end_to_end.conftest import culler_env
from tests.support.fakehub import FakeHub, active_user, idle_user

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "packaging" / "monitoring"
METRIC = re.compile(r"\bjupyterhub_idle_culler_[a-z0-9_]+\b")
# The mass-cull guard's two metrics, which the guard alert and a dashboard panel use.
GUARD_METRICS = {"jupyterhub_idle_culler_mass_cull_guard_trips_total",
                 "jupyterhub_idle_culler_servers_held_back_total"}


def promtool():
    candidates = [os.environ.get("PROMTOOL"), shutil.which("promtool"),
                  str(REPO / ".cache" / "promtool" / "usr" / "bin" / "promtool")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing (bash .ci/promtool.sh fetches it), and CI=true "
                    "forbids skipping")
    pytest.skip("promtool is not available: bash .ci/promtool.sh fetches Debian's")


def run_promtool(*args, cwd=MONITORING):
    result = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    return result.returncode, result.stdout + result.stderr


def dashboard_queries():
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"]
               for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    assert len(queries) > 10
    return queries


def alert_expressions():
    text = (MONITORING / "alerts.yml").read_text(encoding="utf-8")
    return [line for line in text.splitlines()
            if not line.lstrip().startswith("#") and METRIC.search(line)
            and not line.lstrip().startswith(("summary:", "description:"))]


def test_alert_rules_pass_promtool_check_rules():
    code, output = run_promtool("check", "rules", "alerts.yml")
    print(output)
    assert code == 0 and "SUCCESS: 6 rules found" in output, output


def test_alert_rules_pass_their_promtool_unit_tests():
    code, output = run_promtool("test", "rules", "alerts.test.yml")
    print(output)
    assert code == 0 and "SUCCESS" in output, output


def test_dashboard_queries_are_valid_promql(tmp_path):
    # promtool has no offline query checker, but it parses the expressions of recording
    # rules: one rule per query, with Grafana's variables replaced by what they may match.
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for number, query in enumerate(dashboard_queries()):
        if query.startswith("label_values("):  # Grafana's own function, not PromQL
            query = query[len("label_values("):].rsplit(",", 1)[0]
        query = query.replace("$job", ".*").replace("$instance", ".*")
        rules += ["      - record: dashboard:query_%d" % number,
                  "        expr: %s" % json.dumps(query)]
    (tmp_path / "dashboard-rules.yml").write_text("\n".join(rules) + "\n")
    code, output = run_promtool("check", "rules", "dashboard-rules.yml", cwd=tmp_path)
    assert code == 0 and "SUCCESS" in output, output


@pytest.fixture(scope="module")
def scraped_names(tmp_path_factory):
    """The sample names of a live scrape of the culler's /metrics after one pass."""
    pytest.importorskip("prometheus_client")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeHub() as hub:
        hub.add(idle_user("ann", 7200), active_user("bob"))
        process = subprocess.Popen(
            [sys.executable, "-m", "idle_culler_daemon", "--url=" + hub.api_url,
             "--timeout=3600", "--cull-every=60", "--metrics-port=%d" % port],
            env=culler_env(hub.token), stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if "event=pass-done" in process.stderr.readline():
                    break
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                        timeout=5) as answer:
                text = answer.read().decode()
        finally:
            process.terminate()
            process.wait(timeout=15)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert "jupyterhub_idle_culler_passes_total" in names
    return names


def test_dashboard_queries_name_only_metrics_the_culler_exports(scraped_names):
    used = {name for query in dashboard_queries() for name in METRIC.findall(query)}
    assert used - scraped_names == set()
    assert GUARD_METRICS <= used  # the guard's panel is there


def test_alert_rules_name_only_metrics_the_culler_exports(scraped_names):
    used = {name for line in alert_expressions() for name in METRIC.findall(line)}
    assert used - scraped_names == set()
    assert "jupyterhub_idle_culler_mass_cull_guard_trips_total" in used


def test_dashboard_shows_every_metric_the_culler_exports(scraped_names):
    used = {name for query in dashboard_queries() for name in METRIC.findall(query)}
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in scraped_names
                if METRIC.match(name)}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families - shown == set()


def test_dashboard_shows_the_process_series_the_endpoint_exports(scraped_names):
    process = {"process_cpu_seconds_total", "process_resident_memory_bytes"}
    assert process <= scraped_names
    queries = " ".join(dashboard_queries())
    assert all(name in queries for name in process)


def unit_values(name, key):
    found = []
    for line in (REPO / "packaging" / "systemd" / name).read_text().splitlines():
        if line.startswith(key + "="):
            found.append(line.split("=", 1)[1].strip())
    return found


def systemd_seconds(span):
    factors = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", span)
    return sum(int(number) * factors[unit or "s"] for number, unit in parts)


def test_oneshot_unit_exports_the_timer_period_as_its_interval():
    # Under --once, interval_seconds was half the timeout, not the timer's period, so the
    # staleness alert was wrong for timer users. The unit passes the period, last (it wins
    # over $CULLER_ARGS, which the daemon shares).
    (exec_start,) = unit_values("jupyterhub-idle-culler-oneshot.service", "ExecStart")
    (period,) = unit_values("jupyterhub-idle-culler-oneshot.timer", "OnUnitInactiveSec")
    words = exec_start.split()
    assert words[1:3] == ["--once", "$CULLER_ARGS"]
    assert words[-1] == "--cull-every=%d" % systemd_seconds(period)

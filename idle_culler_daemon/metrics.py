"""Prometheus metrics: an HTTP endpoint served from a thread, or a textfile written atomically.

Optional: needs the ``[metrics]`` extra (prometheus-client). The metrics live in a registry of
their own, and are updated once per pass from the pass's figures, so the counters are exactly
what the pass did.
"""

import os
import tempfile
import time
from typing import Any, Optional

from idle_culler_daemon import __version__
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.stats import PassStats

PREFIX = "jupyterhub_idle_culler_"
INSTALL_HINT = ("pip install 'jupyterhub-idle-culler-daemon[metrics]' (or the distribution's "
                "python3-prometheus-client package)")


def pass_result(stats: PassStats) -> str:
    """The ``result`` label of a pass."""
    if stats.listing_error:
        return "hub_error"
    if stats.auth_error:
        return "refused"
    if stats.failed or stats.delete_failed:
        return "failures"
    return "ok"


class Metrics:
    """The culler's metrics; ``record(stats)`` after every pass."""

    def __init__(self, metrics_file: Optional[str] = None) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ConfigError("metrics need prometheus-client, which is not installed: "
                              + INSTALL_HINT) from None
        self._client = prometheus_client
        self._file = metrics_file
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        counter, gauge = prometheus_client.Counter, prometheus_client.Gauge
        registry = self.registry
        self.passes = counter(PREFIX + "passes", "Cull passes, by result.", ["result"],
                              registry=registry)
        self.duration = prometheus_client.Histogram(
            PREFIX + "pass_duration_seconds", "Duration of a cull pass.", registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.users_seen = gauge(PREFIX + "users_seen", "Users listed by the last pass.",
                                registry=registry)
        self.stopped = counter(PREFIX + "servers_stopped", "Servers stopped, by reason and "
                               "kind (default or named).", ["reason", "kind"], registry=registry)
        self.pending = gauge(PREFIX + "servers_stop_pending", "Servers whose stop was still "
                             "running at the end of the last pass (202).", registry=registry)
        self.stop_failed = counter(PREFIX + "servers_stop_failed", "Stops that failed.",
                                   registry=registry)
        self.deleted = counter(PREFIX + "users_deleted", "Users deleted.", registry=registry)
        self.errors = counter(PREFIX + "request_errors", "Failed requests to the hub, by "
                              "status class (3xx, 4xx, 5xx, connection).", ["status_class"],
                              registry=registry)
        self.guard_trips = counter(PREFIX + "mass_cull_guard_trips", "Passes in which the "
                                   "mass-cull guard (--max-stop-fraction) stopped nothing.",
                                   registry=registry)
        self.held_back = counter(PREFIX + "servers_held_back", "Planned stops held back by "
                                 "the mass-cull guard (--max-stops-per-pass, "
                                 "--max-stop-fraction).", registry=registry)
        self.last_success = gauge(PREFIX + "last_success_timestamp_seconds", "Unix time of "
                                  "the end of the last pass without errors.", registry=registry)
        info = gauge(PREFIX + "build_info", "Version of the culler.", ["version"],
                     registry=registry)
        info.labels(version=__version__).set(1)
        for result in ("ok", "failures", "hub_error", "refused"):
            self.passes.labels(result=result)  # every series exists from the start

    def serve(self, port: int, address: str) -> Any:
        """Serve ``/metrics`` from a daemon thread; ConfigError when the port is taken."""
        try:
            return self._client.start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise ConfigError("--metrics-port: cannot listen on %s:%d: %s"
                              % (address, port, exc.strerror or exc)) from None

    def record(self, stats: PassStats, now: Optional[float] = None) -> None:
        """Add one pass's figures, then rewrite the textfile if there is one."""
        result = pass_result(stats)
        self.passes.labels(result=result).inc()
        self.duration.observe(stats.duration_s)
        if not stats.listing_error:
            self.users_seen.set(stats.users_seen)
        for (reason, kind), count in stats.stopped_by.items():
            self.stopped.labels(reason=reason, kind=kind).inc(count)
        self.pending.set(stats.pending)
        self.stop_failed.inc(stats.failed)
        self.deleted.inc(stats.deleted)
        if stats.guard_tripped:
            self.guard_trips.inc()
        self.held_back.inc(stats.held_back)
        for status_class, count in stats.errors.items():
            self.errors.labels(status_class=status_class).inc(count)
        if result == "ok":
            self.last_success.set(time.time() if now is None else now)
        if self._file:
            self.write_file(self._file)

    def text(self) -> str:
        return self._client.generate_latest(self.registry).decode("utf-8")

    def write_file(self, path: str) -> None:
        """Write the metrics atomically: a temporary file in the same folder, then rename.

        node_exporter's textfile collector must never read half a file.
        """
        folder = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(prefix=".metrics-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(self.text())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise

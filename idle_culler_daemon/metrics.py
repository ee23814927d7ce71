"""Prometheus metrics and the HTTP endpoint: ``/metrics``, ``/healthz``, or a textfile.

The metrics are optional: they need the ``[metrics]`` extra (prometheus-client). They live in
a registry of their own and are updated once per pass from the pass's figures, so the counters
are exactly what the pass did; ``/metrics`` adds prometheus-client's process series (the
textfile does not: node_exporter has its own). Every labelled series exists from the start,
at zero, and no ``*_created`` series is written (they double the output and no alert needs
them).

The endpoint is a small standard-library HTTP server (a thread per connection, at most
``MAX_CONNECTIONS`` of them, each idle one closed after ``IDLE_TIMEOUT_S``), so that ``/healthz``
works without the extra: 200 while the loop makes progress, 503 once it has stalled (the same
condition that stops the watchdog pings). With the extra it also serves ``/metrics``.
"""

import os
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from idle_culler_daemon import __version__
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.forewarn import EVENTS as NOTICE_EVENTS
from idle_culler_daemon.policy import DEFAULT_RULE
from idle_culler_daemon.stats import Outcome, PassStats, outcome

PREFIX = "jupyterhub_idle_culler_"
INSTALL_HINT = ("pip install 'jupyterhub-idle-culler-daemon[metrics]' (or the distribution's "
                "python3-prometheus-client package)")
PASS_RESULTS = tuple(result.value for result in Outcome)
STOP_REASONS = ("idle", "max-age")
SERVER_KINDS = ("default", "named")
STATUS_CLASSES = ("3xx", "4xx", "5xx", "connection")
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
#: The most of an earlier run's textfile read back (ours is a few kB).
CARRY_OVER_MAX_BYTES = 1 << 20

#: The endpoint serves at most this many connections at once (a scraper and a probe or two
#: need far fewer); one more is closed as soon as it is accepted, without a thread.
MAX_CONNECTIONS = 16
#: A connection that sends nothing for this long is closed (a scrape takes milliseconds).
IDLE_TIMEOUT_S = 5.0

#: ``/healthz``: (healthy, one line saying why).
HealthCheck = Callable[[], Tuple[bool, str]]


def pass_result(stats: PassStats) -> str:
    """The ``result`` label of a pass: its outcome."""
    return outcome(stats).value


class _WithoutCreated:
    """A view of a registry without the ``*_created`` samples prometheus-client adds."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        for family in self._registry.collect():  # fresh objects on every collect()
            family.samples = [sample for sample in family.samples
                              if not sample.name.endswith("_created")]
            yield family


class _NotificationCounters:
    """The webhook's counters (``--notify-url``), grown to the totals ``grow`` is given."""

    def __init__(self, counter: Any, registry: Any) -> None:
        self.sent = counter(PREFIX + "notifications_sent", "Notifications the webhook took "
                            "(--notify-url), by event.", ["event"], registry=registry)
        self.failed = counter(PREFIX + "notifications_failed", "Notifications not delivered "
                              "after the retries.", registry=registry)
        self.dropped = counter(PREFIX + "notifications_dropped", "Notifications dropped: the "
                               "queue was full, or the culler stopped first.",
                               registry=registry)
        self._last: Tuple[Dict[str, int], int, int] = ({}, 0, 0)  # the totals seen last

    def grow(self, sent: Dict[str, int], failed: int, dropped: int) -> None:
        """Add what is new in these totals since the last call (totals since start)."""
        last_sent, last_failed, last_dropped = self._last
        for event, count in sent.items():
            if count > last_sent.get(event, 0):
                self.sent.labels(event=event).inc(count - last_sent.get(event, 0))
        self.failed.inc(max(0, failed - last_failed))
        self.dropped.inc(max(0, dropped - last_dropped))
        self._last = (dict(sent), failed, dropped)


class Metrics:
    """The culler's metrics; ``configure`` after every (re)load, ``record`` after every pass."""

    def __init__(self, metrics_file: Optional[str] = None) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ConfigError("metrics need prometheus-client, which is not installed: "
                              + INSTALL_HINT) from None
        self._client = prometheus_client
        self._file = metrics_file
        self._rules = {DEFAULT_RULE}
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        counter, gauge, registry = prometheus_client.Counter, prometheus_client.Gauge, \
            self.registry
        self.passes = counter(PREFIX + "passes", "Cull passes, by result.", ["result"],
                              registry=registry)
        self.duration = prometheus_client.Histogram(
            PREFIX + "pass_duration_seconds", "Duration of a cull pass.", registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.users_seen = gauge(PREFIX + "users_seen", "Users listed by the last pass.",
                                registry=registry)
        self.stopped = counter(PREFIX + "servers_stopped", "Servers stopped, by reason, kind "
                               "(default or named) and the rule that decided.",
                               ["reason", "kind", "rule"], registry=registry)
        self.pending = gauge(PREFIX + "servers_stop_pending", "Servers whose stop was still "
                             "running at the end of the last pass (202).", registry=registry)
        self.stop_failed = counter(PREFIX + "servers_stop_failed", "Stops that failed.",
                                   registry=registry)
        self.deleted = counter(PREFIX + "users_deleted", "Users deleted.", registry=registry)
        self.delete_failed = counter(PREFIX + "users_delete_failed", "User deletions that "
                                     "failed.", registry=registry)
        self.errors = counter(PREFIX + "request_errors", "Failed requests to the hub, by "
                              "status class (3xx, 4xx, 5xx, connection).", ["status_class"],
                              registry=registry)
        self.guard_trips = counter(PREFIX + "mass_cull_guard_trips", "Passes in which the "
                                   "mass-cull guard (--max-stop-fraction) stopped nothing.",
                                   registry=registry)
        self.held_back = counter(PREFIX + "servers_held_back", "Planned stops held back by "
                                 "the mass-cull guard (--max-stops-per-pass, "
                                 "--max-stop-fraction).", registry=registry)
        self._create_time_series(gauge, registry)
        self.process_registry = self._process_series()
        self.notifications = _NotificationCounters(counter, registry)
        self._create_series()
        if metrics_file:
            self._carry_over(metrics_file)

    def _create_time_series(self, gauge: Any, registry: Any) -> None:
        """The gauges of time: the last success, the interval, the hub's clock offset."""
        self.last_success = gauge(PREFIX + "last_success_timestamp_seconds", "Unix time of "
                                  "the end of the last pass without errors.", registry=registry)
        self.interval = gauge(PREFIX + "interval_seconds", "The configured time from the "
                              "start of one pass to the start of the next (--cull-every).",
                              registry=registry)
        self.hub_clock_offset = gauge(PREFIX + "hub_clock_offset_seconds", "The hub's clock "
                                      "minus the culler's, from the Date of the last pass's "
                                      "first page (0: under 2 s or unknown).", registry=registry)

    def _process_series(self) -> Any:
        """The process's own series (CPU, memory, descriptors, start time; python_info), for
        /metrics only: node_exporter, which reads the textfile, exports process_* of its own,
        and a textfile's would be those of a process that has ended."""
        registry = self._client.CollectorRegistry(auto_describe=True)
        self._client.ProcessCollector(registry=registry)
        self._client.PlatformCollector(registry=registry)
        return registry

    def _carry_over(self, path: str) -> None:
        """Go on from the counters and the last success in the file an earlier run wrote.

        A timer runs each ``--once`` pass as a process of its own: starting every file at 0
        made one failed pass look like "never succeeded" and hid failures from ``increase()``.
        A file that cannot be read back (absent, not ours, from another version) is ignored.
        """
        from prometheus_client.parser import text_string_to_metric_families

        counters = {PREFIX + name + "_total": counter for name, counter in (
            ("passes", self.passes), ("servers_stopped", self.stopped),
            ("servers_stop_failed", self.stop_failed), ("users_deleted", self.deleted),
            ("users_delete_failed", self.delete_failed), ("request_errors", self.errors),
            ("mass_cull_guard_trips", self.guard_trips),
            ("servers_held_back", self.held_back),
            ("notifications_sent", self.notifications.sent),
            ("notifications_failed", self.notifications.failed),
            ("notifications_dropped", self.notifications.dropped))}
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read(CARRY_OVER_MAX_BYTES)
            samples = [sample for family in text_string_to_metric_families(text)
                       for sample in family.samples]
        except (OSError, ValueError, UnicodeDecodeError):
            return
        known = {"result": PASS_RESULTS, "status_class": STATUS_CLASSES,
                 "reason": STOP_REASONS, "kind": SERVER_KINDS, "event": NOTICE_EVENTS}
        for sample in samples:
            if not (0 <= sample.value < float("inf")) or any(
                    value not in known.get(label, (value,))
                    for label, value in sample.labels.items()):
                continue  # not a figure, or a label value this version does not export
            try:
                if sample.name == PREFIX + "last_success_timestamp_seconds":
                    self.last_success.set(sample.value)
                elif sample.name in counters:
                    counter = counters[sample.name]
                    (counter.labels(**sample.labels) if sample.labels else counter).inc(
                        sample.value)
            except ValueError:  # labels this version does not have
                continue

    def _create_series(self) -> None:
        """The build information, and every labelled series at zero: there from the start."""
        info = self._client.Gauge(PREFIX + "build_info", "Version of the culler.", ["version"],
                                  registry=self.registry)
        info.labels(version=__version__).set(1)
        for result in PASS_RESULTS:
            self.passes.labels(result=result)
        for status_class in STATUS_CLASSES:
            self.errors.labels(status_class=status_class)
        for event in NOTICE_EVENTS:
            self.notifications.sent.labels(event=event)
        self._create_stop_series()

    def _create_stop_series(self) -> None:
        for rule in sorted(self._rules):
            for reason in STOP_REASONS:
                for kind in SERVER_KINDS:
                    self.stopped.labels(reason=reason, kind=kind, rule=rule)

    def configure(self, interval_s: float, rules: Iterable[str]) -> None:
        """The settings of a (re)loaded configuration: the interval, and the rules that can
        stop servers (their ``servers_stopped_total`` series are created at zero)."""
        self.interval.set(interval_s)
        self._rules.update(rules)
        self._create_stop_series()

    def set_file(self, path: Optional[str]) -> None:
        self._file = path

    def notified(self, sent: Dict[str, int], failed: int, dropped: int) -> None:
        """The webhooks' totals since start (``service.Culler.notification_counts``)."""
        self.notifications.grow(sent, failed, dropped)

    def record(self, stats: PassStats, now: Optional[float] = None) -> None:
        """Add one pass's figures, then rewrite the textfile if there is one."""
        result = pass_result(stats)
        self.passes.labels(result=result).inc()
        self.duration.observe(stats.duration_s)
        if not stats.listing_error:
            self.users_seen.set(stats.users_seen)
        for (reason, kind, rule), count in stats.stopped_by.items():
            self.stopped.labels(reason=reason, kind=kind, rule=rule).inc(count)
        self.pending.set(stats.pending)
        self.stop_failed.inc(stats.failed)
        self.deleted.inc(stats.deleted)
        self.delete_failed.inc(stats.delete_failed)
        if stats.guard_tripped:
            self.guard_trips.inc()
        self.held_back.inc(stats.held_back)
        if stats.hub_clock_offset_s is not None:
            self.hub_clock_offset.set(stats.hub_clock_offset_s)
        for status_class, count in stats.errors.items():
            self.errors.labels(status_class=status_class).inc(count)
        # Only a pass that did all it had to: an interrupted pass, or one the mass-cull guard
        # stopped, is not a success even when nothing failed.
        if result == "ok" and stats.ok:
            self.last_success.set(time.time() if now is None else now)
        if self._file:
            self.write_file(self._file)

    def text(self, process: bool = True) -> str:
        """The exposition text; with ``process``, the process's own series too."""
        text = self._client.generate_latest(_WithoutCreated(self.registry))
        if process:
            text += self._client.generate_latest(self.process_registry)
        return text.decode("utf-8")

    def write_file(self, path: str) -> None:
        """Write the metrics atomically: a temporary file in the same folder, then rename.

        node_exporter's textfile collector must never read half a file.
        """
        folder = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(prefix=".metrics-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(self.text(process=False))
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise


# --- the HTTP endpoint -----------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    """``GET /metrics`` and ``GET /healthz``; anything else is 404. Logs nothing."""

    server: "_Server"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout_s  # the socket's timeout, set by setup()
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            healthy, why = self.server.health()
            self._answer(200 if healthy else 503, (why + "\n").encode(), "text/plain")
        elif path == "/metrics" and self.server.metrics is not None:
            self._answer(200, self.server.metrics.text().encode(), TEXT_FORMAT)
        elif path == "/metrics":
            self._answer(503, ("metrics need prometheus-client: %s\n" % INSTALL_HINT).encode(),
                         "text/plain")
        else:
            self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None  # a scrape every few seconds is not worth a log line


class _Server(ThreadingHTTPServer):
    """A thread per connection, but at most ``slots`` of them; each idle one times out.

    Without the cap, idle clients held a thread and a descriptor each for ever: 300 of them
    used up the process's descriptors, and every request to the hub failed with EMFILE.
    """

    daemon_threads = True
    block_on_close = False  # keep no list of the connection threads; they are daemons
    request_queue_size = 64  # listen() backlog: a burst waits to be accepted (and maybe closed)
    metrics: Optional[Metrics] = None
    health: HealthCheck
    idle_timeout_s: float = IDLE_TIMEOUT_S
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Endpoint:
    """``/metrics`` (with prometheus-client) and ``/healthz`` on one address and port.

    At most ``max_connections`` at once, each closed after ``idle_timeout_s`` of silence.
    """

    def __init__(self, address: str, port: int, metrics: Optional[Metrics],
                 health: HealthCheck, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) \
            if ":" in address else _Server
        try:
            self._server = server_class((address, port), _Handler)
        except OSError as exc:
            raise ConfigError("--metrics-port: cannot listen on %s:%d: %s"
                              % (address, port, exc.strerror or exc)) from None
        self._server.metrics, self._server.health = metrics, health
        self._server.idle_timeout_s = idle_timeout_s
        self._server.slots = threading.BoundedSemaphore(max_connections)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoint",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

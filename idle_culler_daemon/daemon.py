"""The main loop: passes start to start on a monotonic clock, an abortable sleep between them.

Signal handlers only set events (installed by ``cli``); all the work, reloads included, happens
here in the main thread. The watchdog is fed only from this loop's own progress: between pages
and while waiting on the workers (through the heartbeat given to the pass) and in the sleep
between passes, so a stuck pass stops the pings and systemd restarts us.
"""

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Protocol

from idle_culler_daemon.cull import PassStats
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.notify import Notifier

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: --once could not reach the hub or the pass had failures
EXIT_CONFIG = 78    # EX_CONFIG


class Service(Protocol):
    """What the loop drives: one pass at a time, and a reload between passes."""

    interval_s: float

    def run_pass(self, heartbeat: Callable[[], None], should_stop: Callable[[], bool]
                 ) -> PassStats: ...

    def reload(self) -> None: ...


class Signals:
    """Events set by the signal handlers; ``wake`` interrupts the sleep between passes."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload.set()
        self.wake.set()


def status_line(stats: PassStats, next_at: Optional[datetime]) -> str:
    """The one-line summary used for STATUS= (kept short and ASCII by the notifier)."""
    if stats.listing_error:
        head = "hub unreachable: %s" % stats.listing_error
    elif stats.auth_error:
        head = "refused by the hub: %s" % stats.auth_error
    else:
        head = ("users %d, stopped %d, pending %d, failed %d, deleted %d in %.1fs"
                % (stats.users_seen, stats.stopped, stats.pending,
                   stats.failed + stats.delete_failed, stats.deleted, stats.duration_s))
        if stats.first_failure:
            head += " (first failure: user %s)" % stats.first_failure
    if next_at is not None:
        head += "; next pass %s" % next_at.strftime("%H:%M:%SZ")
    return head


def _log_pass(stats: PassStats, next_at: Optional[datetime]) -> None:
    fields = (stats.users_seen, stats.users_skipped, stats.stopped, stats.pending,
              stats.failed, stats.deleted, stats.delete_failed, "%.2f" % stats.duration_s,
              next_at.strftime("%Y-%m-%dT%H:%M:%SZ") if next_at else "-")
    if stats.listing_error:
        log.error("pass-aborted reason=hub-error error=%s detail=%s", stats.listing_error,
                  "nothing was stopped; trying again at the next pass")
    if stats.auth_error:
        log.error("pass-refused reason=auth error=%s hint=%s", stats.auth_error,
                  "check the scopes of the token's role")
    log.info("pass-done users=%s skipped=%s stopped=%s pending=%s failed=%s deleted=%s "
             "delete_failed=%s took_s=%s next=%s", *fields)


def run_forever(service: Service, notifier: Notifier, signals: Signals, once: bool = False,
                monotonic: Callable[[], float] = time.monotonic,
                wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                wait: Optional[Callable[[float], object]] = None) -> int:
    """Run passes until stopped; return the exit code.

    With ``once``: one pass, then 0, or 75 when the hub could not be reached or something
    failed. A ConfigError from a pass (missing scopes found by the preflight) ends the loop
    with 78. SIGTERM/SIGINT: no new work, requests in flight finish, STOPPING=1, exit 0.
    ``wait(seconds)`` sleeps between passes (default: on ``signals.wake``); tests inject a
    manual clock through ``monotonic`` and ``wait``.
    """
    wait = wait or signals.wake.wait
    notifier.ready("started; first pass running")
    code = EXIT_OK
    while not signals.stop.is_set():
        started = monotonic()
        try:
            stats = service.run_pass(notifier.heartbeat, signals.stop.is_set)
        except ConfigError as exc:
            log.error("config-error error=%s", exc)
            notifier.stopping("configuration error: %s" % exc)
            return EXIT_CONFIG
        interval = service.interval_s
        next_at = None if once else wall() + timedelta(
            seconds=max(0.0, interval - (monotonic() - started)))
        _log_pass(stats, next_at)
        notifier.status(status_line(stats, next_at))
        if once:
            code = EXIT_OK if stats.ok or signals.stop.is_set() else EXIT_TEMPFAIL
            break
        overrun = monotonic() - (started + interval)
        if overrun > 0:
            log.warning("pass-overran overrun_s=%.1f interval_s=%s detail=%s", overrun,
                        interval, "the next pass starts now")
        _sleep_until(started, service, notifier, signals, monotonic, wait)
    notifier.stopping("stopping")
    log.info("stopped")
    return code


def _sleep_until(started: float, service: Service, notifier: Notifier, signals: Signals,
                 monotonic: Callable[[], float], wait: Callable[[float], object]) -> None:
    """Sleep until the next pass is due, heartbeating, waking at once for a stop or a reload.

    The deadline is recomputed after a reload, which may change the interval.
    """
    while not signals.stop.is_set():
        if signals.reload.is_set():
            signals.reload.clear()
            service.reload()
        left = started + service.interval_s - monotonic()
        if left <= 0:
            return
        wait(min(left, notifier.tick_s))
        signals.wake.clear()
        notifier.heartbeat()

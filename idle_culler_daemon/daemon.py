"""The main loop: passes start to start on a monotonic clock, an abortable sleep between them.

Signal handlers only set events (installed by ``cli``); all the work, reloads included, happens
here in the main thread. The watchdog is fed only from this loop's own progress: between pages
and while waiting on the workers (through the heartbeat given to the pass) and in the sleep
between passes, so a stuck pass stops the pings and systemd restarts us. The same heartbeat
feeds :class:`Health`, which ``/healthz`` reports.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Protocol, Tuple

from idle_culler_daemon.errors import EXIT_CONFIG, EXIT_OK, EXIT_TEMPFAIL, ConfigError
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.notify import Notifier
from idle_culler_daemon.report import log_pass, status_line
from idle_culler_daemon.stats import PassStats

log = get_logger(__name__)


class Service(Protocol):
    """What the loop drives: one pass at a time, and a reload between passes.

    ``reload`` returns the ``STATUS=`` line that says how the reload went.
    """

    interval_s: float

    def run_pass(self, heartbeat: Callable[[], None]) -> PassStats: ...

    def reload(self) -> Optional[str]: ...


class Health:
    """Whether the loop makes progress, for ``/healthz``.

    :meth:`beat` is called with every heartbeat of the loop, which stops exactly when the
    watchdog pings stop (a pass where no request finished for the stall limit). The loop is
    healthy while the last beat is at most ``limit_s()`` old: the watchdog interval under
    systemd, else the worst case of one blocking call plus two ticks.
    """

    def __init__(self, limit_s: Callable[[], float],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limit_s = limit_s
        self._monotonic = monotonic
        self._last = monotonic()

    def beat(self) -> None:
        self._last = self._monotonic()

    def check(self) -> Tuple[bool, str]:
        """(healthy, a line saying how long ago the loop last made progress)."""
        age, limit = self._monotonic() - self._last, self._limit_s()
        if age <= limit:
            return True, "ok: progress %.1fs ago (limit %.0fs)" % (age, limit)
        return False, "stalled: no progress for %.1fs (limit %.0fs)" % (age, limit)


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


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LoopClock:
    """The loop's sense of time; tests give a manual one.

    ``monotonic`` schedules passes, ``wall`` only names the next pass in the logs, and
    ``wait(seconds)`` sleeps between passes (default: on ``signals.wake``, so that a signal
    ends the sleep at once).
    """

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _utc_now
    wait: Optional[Callable[[float], object]] = None


class _Beat:
    """The loop's heartbeat: a watchdog ping when due, and a beat of the health check."""

    def __init__(self, notifier: Notifier, health: Optional[Health]) -> None:
        self._notifier, self._health = notifier, health
        self.tick_s = notifier.tick_s

    def __call__(self) -> None:
        if self._health is not None:
            self._health.beat()
        self._notifier.heartbeat()


# shape: the loop's collaborators; health and clock have defaults
def run_forever(service: Service, notifier: Notifier, signals: Signals, once: bool = False,
                clock: LoopClock = LoopClock(), health: Optional[Health] = None) -> int:
    """Run passes until stopped; return the exit code.

    With ``once``: one pass, then 0, or 75 when the hub could not be reached or something
    failed. A ConfigError from a pass (missing scopes found by the preflight) ends the loop
    with 78. SIGTERM/SIGINT: no new work, requests in flight finish, STOPPING=1, exit 0.
    SIGHUP: a reload between passes, announced with RELOADING=1 and ended with READY=1.
    """
    monotonic = clock.monotonic
    wait = clock.wait or signals.wake.wait
    beat = _Beat(notifier, health)
    notifier.ready("started; first pass running")
    code = EXIT_OK
    while not signals.stop.is_set():
        started = monotonic()
        try:
            stats = service.run_pass(beat)  # the pass reads signals.stop, given at wiring
        except ConfigError as exc:
            log.error("config-error", error=str(exc))
            notifier.stopping("configuration error: %s" % exc)
            return EXIT_CONFIG
        interval = service.interval_s
        next_at = None if once else clock.wall() + timedelta(
            seconds=max(0.0, interval - (monotonic() - started)))
        log_pass(stats, next_at)
        notifier.status(status_line(stats, next_at))
        if once:
            code = EXIT_OK if stats.ok or signals.stop.is_set() else EXIT_TEMPFAIL
            break
        overrun = monotonic() - (started + interval)
        if overrun > 0:
            log.warning("pass-overran", overrun_s=round(overrun, 1), interval_s=interval,
                        detail="the next pass starts now")
        _sleep_until(started, service, (notifier, beat), signals, monotonic, wait)
    notifier.stopping("stopping")
    log.info("stopped")
    return code


# shape: the sleep needs the loop's state: start, service, notifier and beat, signals, clocks
def _sleep_until(started: float, service: Service, talk: Tuple[Notifier, _Beat],
                 signals: Signals, monotonic: Callable[[], float],
                 wait: Callable[[float], object]) -> None:
    """Sleep until the next pass is due, heartbeating, waking at once for a stop or a reload.

    A reload is announced to systemd (``RELOADING=1``) and ended with ``READY=1`` and a
    ``STATUS=`` saying what changed or why it was refused; the deadline is then recomputed
    from the (maybe new) interval.
    """
    notifier, beat = talk
    while not signals.stop.is_set():
        if signals.reload.is_set():
            signals.reload.clear()
            notifier.reloading("reloading the configuration")
            beat()
            outcome = service.reload()
            beat()
            notifier.ready(outcome or "reloaded")
        left = started + service.interval_s - monotonic()
        if left <= 0:
            return
        wait(min(left, beat.tick_s))
        signals.wake.clear()
        beat()

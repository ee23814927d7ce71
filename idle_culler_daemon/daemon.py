"""The main loop: passes start to start on a monotonic clock, an abortable sleep between them.

Signal handlers (installed by ``cli``) only record the signal; the loop wakes on a pipe the
interpreter writes to and turns the records into events. All the work, reloads included,
happens here in the main thread. The watchdog is fed only from this loop's own progress:
between pages and while waiting on the workers (through the heartbeat given to the pass) and
in the sleep between passes, so a stuck pass stops the pings and systemd restarts us. The same
heartbeat feeds :class:`Health`, which ``/healthz`` reports.
"""

import collections
import os
import select
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Callable, Deque, Optional, Protocol, Tuple

from idle_culler_daemon.errors import EXIT_CONFIG, EXIT_OK, EXIT_TEMPFAIL, ConfigError, HubError
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.notify import Notifier
from idle_culler_daemon.report import log_pass, status_line
from idle_culler_daemon.stats import PassStats

log = get_logger(__name__)


class Service(Protocol):
    """What the loop drives: a preflight at start, one pass at a time, a reload between passes.

    ``preflight`` raises ConfigError for a configuration the hub refuses and HubError when
    the hub cannot be asked (the next pass then preflights again).
    ``reload`` returns the ``STATUS=`` line that says how the reload went.
    """

    interval_s: float

    def preflight(self) -> None: ...

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


class _StopEvent(threading.Event):
    """A plain Event whose ``is_set`` first takes in the signals recorded so far.

    Whoever asks whether to stop (the loop, a worker before its next job, a retry about to
    start in any thread) turns a recorded SIGTERM into this set Event, from normal code: the
    handlers themselves may not call ``set()``, which takes a lock.
    """

    def __init__(self, collect: Callable[[], None]) -> None:
        super().__init__()
        self._collect = collect

    def is_set(self) -> bool:
        self._collect()
        return super().is_set()


class Signals:
    """What the signal handlers recorded, and the events normal code makes of it.

    A handler (installed by ``cli``) only calls :meth:`record`: one ``deque.append``, atomic
    and lock-free, so a handler that runs while the main thread is anywhere (inside a lock,
    inside another handler) can neither wait nor recurse. ``cli`` also points
    ``signal.set_wakeup_fd`` at :attr:`wakeup_fd`, so each signal writes a byte that ends
    :meth:`wait`. :meth:`collect` (normal code, any thread) drains the records into two plain
    events: ``stop`` (SIGTERM, SIGINT), which always wins, and ``reload`` (SIGHUP), set once
    however many arrived.
    """

    STOP, RELOAD = "stop", "reload"

    def __init__(self) -> None:
        self._recorded: Deque[str] = collections.deque()
        self.stop: threading.Event = _StopEvent(self.collect)
        self.reload = threading.Event()
        self._read_fd, self.wakeup_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self.wakeup_fd, False)

    def record(self, kind: str) -> None:
        """The whole of a signal handler's work: no lock, no I/O, no logging."""
        self._recorded.append(kind)

    def collect(self) -> None:
        """Turn what the handlers recorded into the events (normal code, any thread)."""
        while True:
            try:
                kind = self._recorded.popleft()
            except IndexError:
                return
            if kind == self.STOP:
                self.stop.set()
            else:
                self.reload.set()

    def request_stop(self) -> None:
        """Ask the loop to stop, from normal code (tests, another thread)."""
        self._request(self.STOP)

    def request_reload(self) -> None:
        """Ask the loop to reload, from normal code (tests, another thread)."""
        self._request(self.RELOAD)

    def _request(self, kind: str) -> None:
        self.record(kind)
        try:
            os.write(self.wakeup_fd, b"\0")
        except BlockingIOError:  # the pipe is full: the loop is woken anyway
            pass

    def stopping(self) -> bool:
        return self.stop.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` have passed or a signal came, then take the signals in."""
        readable, _, _ = select.select([self._read_fd], [], [], max(0.0, seconds))
        if readable:
            try:
                while os.read(self._read_fd, 4096):
                    pass
            except BlockingIOError:  # drained
                pass
        self.collect()

    def close(self) -> None:
        for fd in (self._read_fd, self.wakeup_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass(frozen=True)
class LoopClock:
    """The loop's sense of time; tests give a manual one.

    ``monotonic`` schedules passes, ``wall`` only names the next pass in the logs, and
    ``wait(seconds)`` sleeps between passes (default: :meth:`Signals.wait`, so that a signal
    ends the sleep at once).
    """

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = partial(datetime.now, timezone.utc)
    wait: Optional[Callable[[float], object]] = None


class _Beat:
    """The loop's heartbeat: a watchdog ping when due, a beat of the health check, and the
    signals recorded meanwhile taken in (it is called from the main thread while a pass
    waits, so a stop is seen there too)."""

    def __init__(self, notifier: Notifier, health: Optional[Health], signals: Signals) -> None:
        self._notifier, self._health, self._signals = notifier, health, signals
        self.tick_s = notifier.tick_s

    def __call__(self) -> None:
        self._signals.collect()
        if self._health is not None:
            self._health.beat()
        self._notifier.heartbeat()


def _start(service: Service, notifier: Notifier) -> Optional[int]:
    """The first preflight, then ``READY=1``; an exit code when the start must fail.

    A configuration error (the hub refuses the token, a scope is missing, ``--url`` is not
    the API) fails the start before READY, so ``systemctl start`` fails with it. A hub that
    cannot be asked is not one: READY goes out with a STATUS= saying the culler waits for
    the hub, and the preflight is tried again before each pass.
    """
    try:
        service.preflight()
    except ConfigError as exc:
        log.error("config-error", error=str(exc))
        notifier.stopping("configuration error: %s" % exc)
        return EXIT_CONFIG
    except HubError as exc:
        log.warning("hub-unavailable-at-start", error=str(exc),
                    detail="the preflight is tried again before each pass")
        notifier.ready("waiting for the hub (%s); tried again at each pass" % exc)
        return None
    notifier.ready("started; first pass running")
    return None


def run_forever(service: Service, notifier: Notifier, signals: Signals, once: bool = False,
                clock: LoopClock = LoopClock(), health: Optional[Health] = None) -> int:
    """Run passes until stopped; return the exit code.

    Without ``once``: the first preflight, then READY=1 (see :func:`_start`). With ``once``:
    no READY (a oneshot unit waits for the exit), one pass (which preflights), then 0, or 75
    when the hub could not be reached or something failed. A ConfigError from a pass (missing
    scopes found by a later preflight) ends the loop with 78. SIGTERM/SIGINT: no new work,
    requests in flight finish, STOPPING=1, exit 0. SIGHUP: a reload between passes,
    announced with RELOADING=1 and ended with READY=1.
    """
    monotonic = clock.monotonic
    wait = clock.wait or signals.wait
    beat = _Beat(notifier, health, signals)
    if not once and not signals.stopping():
        failed = _start(service, notifier)
        if failed is not None:
            return failed
    code = EXIT_OK
    while not signals.stopping():
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
            code = EXIT_OK if stats.ok or signals.stopping() else EXIT_TEMPFAIL
            break
        overrun = monotonic() - (started + interval)
        if overrun > 0:
            log.warning("pass-overran", overrun_s=round(overrun, 1), interval_s=interval,
                        detail="the next pass starts now")
        _sleep_until(started, service, (notifier, beat), signals, monotonic, wait)
    notifier.stopping("stopping")
    log.info("stopped")
    return code


def _sleep_until(started: float, service: Service, talk: Tuple[Notifier, "_Beat"],
                 signals: Signals, monotonic: Callable[[], float],
                 wait: Callable[[float], object]) -> None:
    """Sleep until the next pass is due, heartbeating, waking at once for a stop or a reload.

    A reload is announced to systemd (``RELOADING=1``) and ended with ``READY=1`` and a
    ``STATUS=`` saying what changed or why it was refused; the deadline is then recomputed
    from the (maybe new) interval. A stop always wins over a reload, and however many SIGHUPs
    came while the culler was busy, they make one reload.
    """
    notifier, beat = talk
    while not signals.stopping():
        if signals.reload.is_set():
            signals.reload.clear()
            notifier.reloading("reloading the configuration")
            beat()
            outcome = service.reload()
            beat()
            notifier.ready(outcome or "reloaded")
            continue  # a stop or another SIGHUP may have come during the reload
        left = started + service.interval_s - monotonic()
        if left <= 0:
            return
        wait(min(left, beat.tick_s))
        beat()

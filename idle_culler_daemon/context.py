"""How a pass runs, as opposed to what it decides: the pool, the stop signal, the watchdog.

A pass is three stages (``listing`` → ``planning`` → ``acting``, composed in ``cull``); what
they share while running is one :class:`PassContext`: the :class:`Runtime` the service gives
(pool, width, dry run, the one stop event, the heartbeat and the stall limit), the pass's
counters (``stats.PassStats``) and its :class:`Progress`, the only thing that feeds the
watchdog.
"""

import threading
import time
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from idle_culler_daemon.forewarn import Notice, Warned
from idle_culler_daemon.stats import PassStats


def _nothing() -> None:
    return None


class Outbox(Protocol):
    """Where a pass hands its notices (``webhook.Webhook``, or a list in tests)."""

    def send(self, notice: Notice) -> bool: ...


@dataclass(frozen=True)
class Runtime:
    """How a pass runs: given by the service for each pass (tests build their own).

    ``stop`` is the one stop signal: the same event stops the HTTP client's retries (given to
    ``hub.HubClient`` as its ``cancel``) and the pass (read between pages and before each
    job). ``heartbeat`` feeds systemd's watchdog; it is called from the calling thread at
    least every ``tick_s`` while requests keep finishing, and not at all once none has
    finished for ``stall_s`` (longer than any legitimate call, retries included), so a stuck
    pass gets the daemon restarted. ``check_token_s`` is the lifetime of the token minted for
    each kernel check (``--check-kernels``). ``outbox``: the webhook's queue (None: no
    ``--notify-url``); ``forewarned``: the stretches already warned about, kept across passes
    by the service (None: no warnings at all).
    """

    pool: Executor
    concurrency: int
    dry_run: bool = False
    use_state_filter: bool = True
    heartbeat: Callable[[], None] = _nothing
    stop: threading.Event = field(default_factory=threading.Event)
    tick_s: float = 1.0
    stall_s: float = 600.0
    check_token_s: int = 60
    monotonic: Callable[[], float] = time.monotonic
    outbox: Optional[Outbox] = None
    forewarned: Optional[Warned] = None


class Progress:
    """Heartbeats only while the pass makes progress (see ``Runtime``)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._last = runtime.monotonic()

    def finished(self) -> None:
        """A request finished (any thread): the pass is making progress."""
        self._last = self._runtime.monotonic()

    def advanced(self) -> None:
        """A request finished in the calling (main) thread: note it and feed the watchdog."""
        self.finished()
        self._runtime.heartbeat()

    def waiting(self) -> None:
        """Feed the watchdog, unless no request has finished for the stall limit."""
        if self._runtime.monotonic() - self._last < self._runtime.stall_s:
            self._runtime.heartbeat()

    def result(self, future: Future) -> Any:
        """The result of ``future``, feeding the watchdog (in ticks) while waiting for it."""
        while not wait((future,), timeout=self._runtime.tick_s).done:
            self.waiting()
        self.advanced()
        return future.result()


@dataclass(frozen=True)
class PassContext:
    """What every stage of one pass shares: the runtime, the counters and the progress."""

    runtime: Runtime
    stats: PassStats
    progress: Progress

    @classmethod
    def start(cls, runtime: Runtime) -> "PassContext":
        return cls(runtime, PassStats(dry_run=runtime.dry_run), Progress(runtime))

    def stopping(self) -> bool:
        """Has the stop signal come? (Read between pages and before each job.)"""
        return self.runtime.stop.is_set()

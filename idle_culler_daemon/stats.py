"""The figures of one pass and, in dry runs, its plan: what the summary, STATUS= and metrics show.

Workers add to a ``PassStats`` while the pass runs; every change goes through a method that
holds its lock, so the figures are exact whatever the number of workers. :func:`outcome` is the
one place that turns a pass's figures into its outcome: the exit code of ``--once``, the
metric's ``result`` label, ``last_success`` and ``STATUS=`` all read it.
"""

import enum
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, List, Optional

from idle_culler_daemon.errors import status_class
from idle_culler_daemon.forewarn import Notice
from idle_culler_daemon.policy import Verdict


@dataclass(frozen=True)
class PlanEntry:
    """One action of a ``--dry-run`` plan (kept only in dry runs).

    ``held_back``: planned, but held back by the mass-cull guard (``--max-stops-per-pass``
    or ``--max-stop-fraction``).
    """

    action: str  # stop, delete
    user: str
    server: str
    verdict: Verdict
    profile: Optional[str] = None
    held_back: bool = False


@dataclass
class PassStats:
    """The figures of one pass, for the summary line, STATUS= and the metrics."""

    users_seen: int = 0
    users_skipped: int = 0
    servers_running: int = 0  # ready servers listed (each user counted once)
    users_running: int = 0    # users listed with at least one ready server
    held_back: int = 0        # planned stops the mass-cull guard held back
    deletions_held_back: int = 0  # planned user deletions the mass-cull guard held back
    guard_tripped: Optional[str] = None  # --max-stop-fraction: why nothing was done
    checked: int = 0          # servers asked about their kernels (--check-kernels)
    check_failed: int = 0     # ... that could not be asked: judged by the hub's data
    kept_by_server: int = 0   # ... kept on the server's own word (busy kernel, recent activity)
    stopped: int = 0
    pending: int = 0
    unreachable: int = 0  # servers and users a filtered token cannot reach (404, left alone)
    failed: int = 0
    deleted: int = 0
    delete_failed: int = 0
    duration_s: float = 0.0
    listing_error: Optional[str] = None
    auth_error: Optional[str] = None
    interrupted: bool = False
    aborted: bool = False  # the listing (or the preflight) failed: nothing was sent
    dry_run: bool = False  # nothing was sent: ``plan`` holds what would have been
    first_failure: Optional[str] = None  # a user whose stop or deletion failed, for STATUS=
    hub_clock_offset_s: Optional[int] = None  # the hub's clock minus the culler's, as used
    stopped_by: Counter = field(default_factory=Counter)  # (reason, kind, rule) -> servers
    errors: Counter = field(default_factory=Counter)      # status class -> failed requests
    plan: List[PlanEntry] = field(default_factory=list)
    warnings: List[Notice] = field(default_factory=list)  # dry run: warnings it would send
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The pass did all it set out to do (:func:`outcome` is ``Outcome.OK``)."""
        return outcome(self) is Outcome.OK

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, amount in counts.items():
                setattr(self, name, getattr(self, name) + amount)

    def count_stop(self, reason: str, kind: str, rule: str) -> None:
        with self._lock:
            self.stopped += 1
            self.stopped_by[(reason, kind, rule)] += 1

    def count_error(self, status: Optional[int]) -> None:
        with self._lock:
            self.errors[status_class(status)] += 1

    def count_failure(self, action: str, user: str) -> None:
        with self._lock:
            if action == "stop":
                self.failed += 1
            else:
                self.delete_failed += 1
            if self.first_failure is None:
                self.first_failure = user

    def would(self, action: str) -> int:
        """How many ``stop`` or ``delete`` actions a dry run would carry out (held-back ones
        are not counted: the guard would keep them)."""
        with self._lock:
            return sum(1 for entry in self.plan if entry.action == action and not entry.held_back)

    def add_to_plan(self, entry: PlanEntry) -> None:
        with self._lock:
            self.plan.append(entry)

    def add_warning(self, notice: Notice) -> None:
        with self._lock:
            self.warnings.append(notice)


class Outcome(enum.Enum):
    """How a pass ended; the value is the metric's ``result`` label."""

    OK = "ok"                        # listed, judged, and every action it sent succeeded
    PARTIAL = "partial"              # acted, but a stop or deletion failed or was refused
    GUARD_TRIPPED = "guard-tripped"  # --max-stop-fraction: nothing was stopped or deleted
    INTERRUPTED = "interrupted"      # a stop signal ended the pass before its end
    FAILED = "failed"                # the listing or the preflight failed: nothing was sent


def outcome(stats: PassStats) -> Outcome:
    """The outcome of a pass from its figures: the one rule every report reads.

    The first that applies wins: a failed listing, a tripped guard, an interruption, failed or
    refused actions; otherwise ``ok``. Held-back actions (``--max-stops-per-pass``), servers
    that could not be asked (``--check-kernels``) and servers a filtered token cannot reach
    are what the configuration asks for, so they leave a pass ``ok``.
    """
    if stats.aborted or stats.listing_error is not None:
        return Outcome.FAILED
    if stats.guard_tripped is not None:
        return Outcome.GUARD_TRIPPED
    if stats.interrupted:
        return Outcome.INTERRUPTED
    if stats.failed or stats.delete_failed or stats.auth_error is not None:
        return Outcome.PARTIAL
    return Outcome.OK


def whole_seconds(delta: Optional[timedelta]) -> Optional[int]:
    """A duration in whole seconds (truncated), None when unknown: for logs, plans, tables."""
    return None if delta is None else int(delta.total_seconds())

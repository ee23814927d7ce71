"""One cull pass: list every user, plan, then act, with a value between each stage.

``listing.open_listing`` yields parsed users page by page; ``planning.plan_pass`` judges them as
they come and returns an immutable ``Plan`` (the mass-cull guard applied); ``acting.act`` runs
the plan on the pool, each stop that asks for it after its kernel check (``kernels``).

List first, then act: every finished stop takes a user out of the ``state=ready`` listing and
shifts the offsets of later pages, so no DELETE is sent before the last page was read
(docs/behaviour.md#list-then-act). A ``HubError`` while listing ends the pass with nothing
sent. ``now`` is taken on the hub's clock, from the ``Date`` of the listing's first answer,
before the first user is judged (docs/behaviour.md#the-hubs-clock). What the stages share
while running (the stop signal, the heartbeat, the stall limit and the counters) is one
``context.PassContext``.
"""

from datetime import datetime, timedelta
from typing import MutableSet, Optional, Protocol

from idle_culler_daemon.acting import ActingHub, Actor, act
from idle_culler_daemon.clock import ZERO, ClockWatch, Notice, hub_offset, sample
from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.context import PassContext, Runtime
from idle_culler_daemon.errors import HubAuthError, HubError
from idle_culler_daemon.kernels import KernelCheck, KernelHub
from idle_culler_daemon.listing import FirstAnswer, ListingHub, open_listing
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.planning import plan_pass
from idle_culler_daemon.stats import PassStats

log = get_logger(__name__)

__all__ = ["HubApi", "Runtime", "listing_failed", "on_hub_clock", "run_pass"]


class HubApi(ListingHub, ActingHub, KernelHub, Protocol):
    """What a pass needs from the hub (``hub.HubClient``, or a fake in tests)."""


def run_pass(hub: HubApi, settings: CullSettings, now: datetime, runtime: Runtime,
             warned: Optional[MutableSet[str]] = None,
             clock_watch: Optional[ClockWatch] = None) -> PassStats:
    """Run one whole pass and return its figures; never raises a ``HubError``.

    ``now`` is the culler's clock, taken by the caller just before the pass; the pass moves
    it onto the hub's clock once the first page is in, and uses that for the whole pass.
    ``warned`` (the things already warned about) and ``clock_watch`` (what was said about the
    hub's clock) are kept by the daemon for its lifetime.
    """
    context = PassContext.start(runtime)
    started = runtime.monotonic()
    try:
        first, users = open_listing(hub, context, settings.cull_users)
        now = on_hub_clock(now, first, context.stats, clock_watch or ClockWatch())
        plan = plan_pass(users, now, settings, context.stats, warned, runtime.forewarned)
    except HubError as exc:
        listing_failed(context.stats, exc)
    else:
        act(plan, Actor(hub, settings, context, KernelCheck(hub, context, now), warned), context)
    context.stats.duration_s = runtime.monotonic() - started
    return context.stats


def listing_failed(stats: PassStats, exc: HubError) -> PassStats:
    """A listing (or the preflight before it) that failed or was refused: the pass ends with
    nothing sent. Returns ``stats``."""
    stats.aborted = True
    if isinstance(exc, HubAuthError):
        stats.auth_error = str(exc)
    else:
        stats.listing_error = str(exc)
    stats.count_error(exc.status)
    return stats


def on_hub_clock(now: datetime, first: FirstAnswer, stats: PassStats,
                 watch: ClockWatch) -> datetime:
    """The pass's ``now`` on the hub's clock: the culler's ``now`` (taken just before the first
    request) plus the offset the first answer's ``Date`` shows; the culler's own without one.

    The request's end is ``now`` plus its length on the monotonic clock, not the wall clock
    read again: the wall clock may step at any time. ``stats`` records the offset used;
    ``watch`` says when it is worth a line of the log.
    """
    offset = hub_offset([sample(now, now + timedelta(seconds=first.took_s), first.date)])
    stats.hub_clock_offset_s = int((offset or ZERO).total_seconds())
    _say(watch.observe(offset))
    return now + (offset or ZERO)


def _say(notice: Optional[Notice]) -> None:
    if notice is None:
        return
    if notice.kind == "offset":
        log.warning("clock-offset", offset_s=notice.offset_s,
                    detail="the hub's clock is %s the culler's: idle times and ages are "
                           "measured on the hub's clock (its Date header)"
                    % ("ahead of" if (notice.offset_s or 0) > 0 else "behind"))
    elif notice.kind == "in-step":
        log.info("clock-offset", offset_s=notice.offset_s,
                 detail="the hub's clock and the culler's agree to within 30 s; idle times "
                        "are measured on the hub's clock (its Date header)")
    else:
        log.warning("clock-unknown", reason="the hub's answer carries no usable Date header "
                    "(a proxy that removes it?)",
                    detail="idle times are measured on the culler's own clock; said once")

"""One cull pass: list every user, plan, then act, with a value between each stage.

``listing.list_users`` yields parsed users page by page; ``planning.plan_pass`` judges them as
they come and returns an immutable ``Plan`` (the mass-cull guard applied); ``acting.act`` runs
the plan on the pool, each stop that asks for it after its kernel check (``kernels``).

List first, then act: every finished stop takes a user out of the ``state=ready`` listing and
shifts the offsets of later pages, so no DELETE is sent before the last page was read
(docs/behaviour.md#list-then-act). A ``HubError`` while listing ends the pass with nothing
sent. What the stages share while running (the stop signal, the heartbeat, the stall limit and
the counters) is one ``context.PassContext``.
"""

from datetime import datetime
from typing import MutableSet, Optional, Protocol

from idle_culler_daemon.acting import ActingHub, Actor, act
from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.context import PassContext, Runtime
from idle_culler_daemon.errors import HubAuthError, HubError
from idle_culler_daemon.kernels import KernelCheck, KernelHub
from idle_culler_daemon.listing import ListingHub, list_users
from idle_culler_daemon.planning import plan_pass
from idle_culler_daemon.stats import PassStats

__all__ = ["HubApi", "Runtime", "listing_failed", "run_pass"]


class HubApi(ListingHub, ActingHub, KernelHub, Protocol):
    """What a pass needs from the hub (``hub.HubClient``, or a fake in tests)."""


def run_pass(hub: HubApi, settings: CullSettings, now: datetime, runtime: Runtime,
             warned: Optional[MutableSet[str]] = None) -> PassStats:
    """Run one whole pass and return its figures; never raises a ``HubError``.

    ``now`` is taken once by the caller for the whole pass. ``warned`` is the set of things
    already warned about, kept by the daemon for its lifetime.
    """
    context = PassContext.start(runtime)
    started = runtime.monotonic()
    try:
        plan = plan_pass(list_users(hub, context, settings.cull_users), now, settings,
                         context.stats, warned, runtime.forewarned)
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

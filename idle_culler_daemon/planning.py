"""The planning stage of a pass: judge every listed user, then let the mass-cull guard have its
say over the whole plan, before anything is sent.

Each user is judged as their page arrives (``jobs.judge``, from the verdicts of ``policy``);
only the small jobs are kept, never the user models. A name seen twice keeps only what every
sighting agrees on. The result is an immutable :class:`Plan`.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Dict, Iterable, List, MutableSet, Optional, Set, Tuple

from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.forewarn import GUARD_TRIPPED, Notice, Warned, due_notices
from idle_culler_daemon.jobs import UserJob, judged
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.model import User
from idle_culler_daemon.policy import GuardVerdict, PlannedUser, guard_plan
from idle_culler_daemon.stats import PassStats

log = get_logger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a pass will do, decided before anything is sent.

    ``jobs``: one per user with something to do, in listing order. ``held``: what the
    mass-cull guard holds back (shown by a dry run). ``guard``: why nothing at all is done (the
    guard tripped), else None. Notifications (``--warn-before``, ``--notify-url``):
    ``warnings``, the ``*-soon`` notices not sent before (claimed only when the plan is acted
    on); ``due``, every ``*-soon`` notice of the listing, warned or not (``Warned.sweep``
    forgets the others); ``tripped``, the ``guard-tripped`` notice.
    """

    jobs: Tuple[UserJob, ...] = ()
    held: Tuple[UserJob, ...] = ()
    guard: Optional[str] = None
    warnings: Tuple[Notice, ...] = ()
    due: Tuple[Notice, ...] = ()
    tripped: Optional[Notice] = None


class _Sightings:
    """The jobs of a listing, keyed by user name, and the figures the guard needs.

    The names seen so far are the keys of ``jobs`` and the names in ``_nothing_to_do`` (users
    with nothing to do): a plain set, so every second sighting of a name is recognised.
    """

    def __init__(self, now: datetime, settings: CullSettings,
                 warned: Optional[MutableSet[str]]) -> None:
        self._now, self._settings, self._warned = now, settings, warned
        self.jobs: Dict[str, UserJob] = {}
        self._nothing_to_do: Set[str] = set()
        self.servers_running = 0
        self.users_running = 0
        self.due: List[Notice] = []  # --warn-before: the *-soon notices, warned or not

    @property
    def listed(self) -> int:
        return len(self.jobs) + len(self._nothing_to_do)

    def take(self, user: User) -> None:
        job, verdicts, user_verdict = judged(user, self._now, self._settings, self._warned)
        if self._settings.warn_before:  # the planner's verdicts: nothing is judged twice
            self.due += due_notices(user, verdicts, user_verdict, self._now, self._settings)
        if user.name in self.jobs or user.name in self._nothing_to_do:
            # seen before: keep only what every sighting agrees on
            earlier = self.jobs.get(user.name) or UserJob(user.name)
            self.jobs[user.name] = earlier.merged(job or UserJob(user.name))
            return
        running = sum(1 for server in user.servers if server.ready and not server.pending)
        self.servers_running += running  # once per user
        self.users_running += running > 0
        if job is None:
            self._nothing_to_do.add(user.name)
        else:
            self.jobs[user.name] = job


def plan_pass(users: Iterable[User], now: datetime, settings: CullSettings, stats: PassStats,
              warned: Optional[MutableSet[str]] = None,
              forewarned: Optional[Warned] = None) -> Plan:
    """Judge every user of ``users`` (consumed as they come), then apply the guard; with
    ``forewarned`` (the stretches already warned about), the warnings not sent before."""
    sightings = _Sightings(now, settings, warned)
    for user in users:
        sightings.take(user)
    stats.servers_running = sightings.servers_running
    stats.users_running = sightings.users_running
    if stats.interrupted:  # a stop signal cut the listing short: nothing will be sent
        return Plan()
    # A job emptied by a duplicate sighting has nothing left to send.
    jobs = [job for job in sightings.jobs.values() if not job.empty]
    plan = _guard(jobs, sightings, settings, stats)
    if forewarned is None or plan.guard is not None:  # a held-back pass warns nobody
        return plan
    due = tuple(sightings.due)
    return replace(plan, warnings=tuple(forewarned.fresh(due)), due=due)


def _guard(jobs: List[UserJob], sightings: _Sightings, settings: CullSettings,
           stats: PassStats) -> Plan:
    """Hold back what ``--max-stops-per-pass`` or ``--max-stop-fraction`` say must wait."""
    if settings.max_stop_fraction is None and not settings.max_stops_per_pass:
        return Plan(tuple(jobs))  # no guard: build nothing for it (50k users: megabytes)
    planned = [PlannedUser(tuple(stop.verdict.idle_for for stop in job.stops),
                           job.delete is not None, job.delete.idle_for if job.delete else None)
               for job in jobs]
    verdict = guard_plan(planned, sightings.users_running, sightings.listed, settings)
    if not verdict.held_stops and not verdict.held_deletions:
        return Plan(tuple(jobs))
    stats.held_back = len(verdict.held_stops)
    stats.deletions_held_back = len(verdict.held_deletions)
    held_stops: Dict[int, Set[int]] = {}
    for index, stop in verdict.held_stops:
        held_stops.setdefault(index, set()).add(stop)
    acting, held = [], []
    for index, job in enumerate(jobs):
        stops = held_stops.get(index, set())
        deleted = index in verdict.held_deletions
        if stops or deleted:
            held.append(UserJob(job.user, tuple(s for j, s in enumerate(job.stops) if j in stops),
                                job.delete if deleted else None))
            job = UserJob(job.user, tuple(s for j, s in enumerate(job.stops) if j not in stops),
                          None if deleted else job.delete)
        if not verdict.tripped and not job.empty:
            acting.append(job)
    if not verdict.tripped:
        _say_held(verdict, planned, settings)
        return Plan(tuple(acting), tuple(held))
    stats.guard_tripped = _trip(verdict, settings)
    counts = (("planned", verdict.stopping), ("running", verdict.running),
              ("limit", settings.max_stop_fraction or 0.0))
    return Plan(tuple(acting), tuple(held), stats.guard_tripped,
                tripped=Notice(GUARD_TRIPPED, counts=counts))


def _trip(verdict: GuardVerdict, settings: CullSettings) -> str:
    limit = settings.max_stop_fraction or 0.0
    running = max(verdict.running, 1)
    listed = max(verdict.listed, 1)
    log.error("mass-cull-guard", share="%d/%d" % (verdict.stopping, verdict.running),
              fraction=round(verdict.stopping / running, 2),
              deletions="%d/%d" % (verdict.deleting, verdict.listed),
              deletion_fraction=round(verdict.deleting / listed, 2), limit=limit,
              detail="nothing was stopped or deleted in this pass. If activity reporting "
                     "broke (the proxy, the network, a hub upgrade), mend it first; if "
                     "that many servers really are idle, run once with a higher "
                     "--max-stop-fraction, or let --max-stops-per-pass=N drain them")
    text = "mass-cull guard: would stop %d of %d users with a running server" % (
        verdict.stopping, verdict.running)
    if verdict.deleting:
        text += " and delete %d of %d users listed" % (verdict.deleting, verdict.listed)
    return text + ", more than %g of them; nothing stopped or deleted" % limit


def _say_held(verdict: GuardVerdict, planned: List[PlannedUser], settings: CullSettings) -> None:
    detail = "the longest idle go first; the others wait for the next pass"
    if verdict.held_stops:
        log.warning("stops-held-back", held=len(verdict.held_stops),
                    planned=sum(len(user.stops) for user in planned),
                    limit=settings.max_stops_per_pass, detail=detail)
    if verdict.held_deletions:
        log.warning("deletions-held-back", held=len(verdict.held_deletions),
                    planned=verdict.deleting, limit=settings.max_stops_per_pass,
                    detail=detail + " (a user whose server waits is not deleted either)")

"""One cull pass: list every user, judge, then act through a bounded pool of workers.

List first, then act: every finished stop takes a user out of the ``state=ready`` listing and
shifts the offsets of later pages, so no DELETE is sent before the last page was read
(docs/behaviour.md#list-then-act). Only the small jobs (user name, servers to stop,
verdicts) are kept while listing, never the user models. A job never raises: every failed call
becomes a counted, logged outcome, so one user's failure never ends the pass for the others.

A pass is one :class:`CullPass` object holding what every step shares: the hub, the settings,
``now``, the runtime (pool, width, hooks of the loop), the progress that feeds the watchdog,
the kinds of request the hub refused, and the figures (``stats.PassStats``). What to do for
each user is decided in ``jobs``, from the verdicts of ``policy``.
"""

import threading
import time
from collections import deque
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from datetime import datetime
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Generator,
    Iterator,
    List,
    MutableSet,
    Optional,
    Protocol,
    Set,
)

from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.errors import HubAuthError, HubError, HubUnavailable, ModelError
from idle_culler_daemon.forewarn import (
    GUARD_TRIPPED,
    INACTIVE_USER,
    SERVER_STOPPED,
    USER_DELETED,
    Notice,
    Warned,
    judged_notices,
    log_fields,
)
from idle_culler_daemon.hub import DeleteResult, Page, StopResult
from idle_culler_daemon.jobs import Stop, UserJob, judge, verdict_fields
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.model import parse_server_status, parse_user
from idle_culler_daemon.policy import (
    Verdict,
    guard_plan,
    judge_server_status,
    kernels_needed,
)
from idle_culler_daemon.scopes import scope_hint
from idle_culler_daemon.stats import PassStats, PlanEntry

log = get_logger(__name__)


# Users the listing may hold ahead of the page being judged, per worker: 5 pages of 200 at the
# default concurrency. Measured by `make bench` (bench/README.md): at 2 pages of 200 ahead the
# pass took up to 1.16 x its bound, at 10 pages the peak RSS grew by 16 MiB from 1k to 50k users.
PREFETCH_USERS_PER_WORKER = 100


class HubApi(Protocol):
    """What a pass needs from the hub (``hub.HubClient``, or a fake in tests)."""

    def users_page(self, state: Optional[str], offset: int) -> Page: ...

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult: ...

    def delete_user(self, user: str) -> DeleteResult: ...

    def server_status(self, server_url: str) -> Any: ...

    def server_kernels(self, server_url: str) -> Any: ...


class Outbox(Protocol):
    """Where a pass hands its notices (``webhook.Webhook``, or a list in tests)."""

    def send(self, notice: Notice) -> bool: ...


# --- how a pass runs -------------------------------------------------------------------------

def _nothing() -> None:
    return None


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Runtime:
    """How a pass runs, as opposed to what it decides: the pool and the loop's hooks.

    ``heartbeat`` feeds systemd's watchdog; it is called from the calling thread at least every
    ``tick_s`` while requests keep finishing, and not at all once none has finished for
    ``stall_s`` (longer than any legitimate call, retries included), so a stuck pass gets the
    daemon restarted. ``should_stop`` is polled between pages and before each job.
    """

    pool: Executor
    concurrency: int
    dry_run: bool = False
    use_state_filter: bool = True
    heartbeat: Callable[[], None] = _nothing
    should_stop: Callable[[], bool] = _never
    tick_s: float = 1.0
    stall_s: float = 600.0
    monotonic: Callable[[], float] = time.monotonic
    # Notifications (docs/behaviour.md#webhook-notifications): the webhook's queue (None: no
    # --notify-url), and the stretches already warned about (kept across passes).
    outbox: Optional[Outbox] = None
    forewarned: Optional[Warned] = None


class _Progress:
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


class _Runners:
    """``width`` workers on the pool, each taking the next job until none is left.

    One pool task per worker, not one per job: no future, callback or wake-up of the main
    thread per job (with a future per job, that bookkeeping was a fifth of the culler's CPU at
    10,000 users). A worker asks ``should_stop`` before it takes each job, so after a stop
    signal no job that has not begun goes out. The main thread waits in ticks, feeding the
    watchdog while jobs keep finishing.
    """

    def __init__(self, runtime: Runtime, progress: _Progress, run: Callable[[UserJob], None],
                 jobs: List[UserJob]) -> None:
        self._runtime = runtime
        self._progress = progress
        self._run = run
        self._width = min(runtime.concurrency, len(jobs))
        self._todo = iter(jobs)
        self._lock = threading.Lock()
        self._broken: List[BaseException] = []
        self.interrupted = False

    def run(self) -> None:
        """Run every job; a job that raised (a bug) raises here once all have ended."""
        pending = {self._runtime.pool.submit(self._work) for _ in range(self._width)}
        while pending:
            pending = wait(pending, timeout=self._runtime.tick_s).not_done
            self._progress.waiting()
        if self._broken:
            raise self._broken[0]  # a job never raises; if one does, it is a bug: let it out

    def _next(self) -> Optional[UserJob]:
        with self._lock:
            if self.interrupted:
                return None
            job = next(self._todo, None)
            if job is not None and self._runtime.should_stop():
                self.interrupted = True
                return None
            return job

    def _work(self) -> None:
        job = self._next()
        while job is not None:
            try:
                self._run(job)
            except Exception as exc:  # kept for run(); the other jobs go on
                self._broken.append(exc)
            self._progress.finished()
            job = self._next()


class _Denials:
    """Kinds of request the hub refused for our token during this pass (thread-safe).

    After a 401/403 the pass stops sending that kind of request: every other one would be
    refused too, and one ERROR line with the scope hint says more than a thousand.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: Dict[str, str] = {}

    def deny(self, kind: str, message: str) -> bool:
        """Record a refusal; True the first time for this kind."""
        with self._lock:
            first = kind not in self._kinds
            self._kinds.setdefault(kind, message)
            return first

    def denied(self, kind: str) -> bool:
        with self._lock:
            return kind in self._kinds

    def summary(self) -> Optional[str]:
        with self._lock:
            return "; ".join(self._kinds.values()) or None


class _Unreached:
    """What a filtered token cannot reach (404 of its scope's filter), said once (thread-safe).

    Each server or user is named in one WARNING per kind of request at the end of the pass,
    and only once for the life of the process (the daemon's ``warned`` set): pass after pass
    the same servers answer the same, and one line says it.
    """

    SHOWN = 20  # names in the line; the rest are counted

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: Dict[str, List[str]] = {}

    def add(self, action: str, name: str) -> None:
        with self._lock:
            self._names.setdefault(action, []).append(name)

    def report(self, warned: Optional[MutableSet[str]]) -> None:
        for action, names in sorted(self._names.items()):
            new = [name for name in names if warned is None
                   or "unreachable:%s:%s" % (action, name) not in warned]
            if not new:
                continue
            shown = ",".join(new[:self.SHOWN]) + (" and %d more" % (len(new) - self.SHOWN)
                                                  if len(new) > self.SHOWN else "")
            log.warning(action + "-unreachable", count=len(new), names=shown,
                        hint="the token's %s scope is filtered and does not cover them: "
                             "left alone, not counted as done; said once" % scope_hint(action))
            if warned is not None:
                warned.update("unreachable:%s:%s" % (action, name) for name in new)


# --- the pass --------------------------------------------------------------------------------

class CullPass:
    """One pass over the hub; :meth:`run` returns its figures and never raises a HubError."""

    def __init__(self, hub: HubApi, settings: CullSettings, now: datetime, runtime: Runtime,
                 warned: Optional[MutableSet[str]] = None) -> None:
        self.hub = hub
        self.settings = settings
        self.now = now
        self.runtime = runtime
        self.warned = warned
        self.stats = PassStats(dry_run=runtime.dry_run)
        self._progress = _Progress(runtime)
        self._denials = _Denials()
        self._check_failures = _Denials()  # reasons a kernel check failed, logged once each
        self._unreached = _Unreached()
        self._due: List[Notice] = []  # *-soon notices found while listing, warned or not

    def run(self) -> PassStats:
        started = self.runtime.monotonic()
        jobs = self._guard(self._list())
        self._warn()
        self._act(jobs)
        self._unreached.report(self.warned)
        if self._denials.summary() and not self.stats.auth_error:
            self.stats.auth_error = self._denials.summary()
        self.stats.duration_s = self.runtime.monotonic() - started
        return self.stats

    # -- listing ------------------------------------------------------------------------------

    def _states(self) -> List[Optional[str]]:
        if not self.runtime.use_state_filter:
            return [None]  # hub < 1.3: every user, filtered here
        return ["ready"] + (["inactive"] if self.settings.cull_users else [])

    def _list(self) -> Dict[str, UserJob]:
        """Read every listing into jobs; a failed listing gives none (nothing is stopped)."""
        try:
            return self._collect()
        except HubError as exc:
            if isinstance(exc, HubAuthError):
                self.stats.auth_error = str(exc)
            else:
                self.stats.listing_error = str(exc)
            self.stats.count_error(exc.status)
            return {}

    def _collect(self) -> Dict[str, UserJob]:
        """Every listing read into jobs, keyed by user name.

        The names seen so far are the keys of ``jobs`` and the names in ``nothing_to_do`` (users
        with nothing to do): a plain set, so every second sighting of a name is recognised.
        """
        jobs: Dict[str, UserJob] = {}
        nothing_to_do: Set[str] = set()
        for state in self._states():
            for page in self._pages(state):
                if self.runtime.should_stop():
                    self.stats.interrupted = True
                    return jobs
                for item in page.items:
                    self._take(item, jobs, nothing_to_do)
        return jobs

    def _take(self, item: Any, jobs: Dict[str, UserJob], nothing_to_do: Set[str]) -> None:
        """Judge one user model as its page arrives; keep only the job."""
        self.stats.users_seen += 1  # the listing runs in one thread
        try:
            user = parse_user(item)
        except ModelError as exc:
            self.stats.users_skipped += 1
            log.warning("skip-user", reason="bad-model", error=str(exc),
                        detail="nothing of this user is stopped or deleted in this pass")
            return
        job = judge(user, self.now, self.settings, self.warned)
        if self.settings.warn_before and self.runtime.forewarned is not None:
            self._due.extend(judged_notices(user, self.now, self.settings))
        if user.name in jobs or user.name in nothing_to_do:
            # seen before: keep only what every sighting agrees on
            earlier = jobs.get(user.name) or UserJob(user.name)
            jobs[user.name] = earlier.merged(job or UserJob(user.name))
            return
        self.stats.servers_running += sum(1 for server in user.servers  # once per user
                                          if server.ready and not server.pending)
        if job is None:
            nothing_to_do.add(user.name)
        else:
            jobs[user.name] = job

    def _pages(self, state: Optional[str]) -> Iterator[Page]:
        """The pages of one listing, in order: the first, the prefetched ones, the rest."""
        first = self._fetch(state, 0)
        yield first
        last = first
        if first.next_offset is not None and first.total is not None and first.limit:
            last = yield from self._prefetch(state, first)
        yield from self._follow(state, last.next_offset)

    def _prefetch(self, state: Optional[str], first: Page) -> Generator[Page, None, Page]:
        """Fetch the pages ``total`` announces, several at a time; yield them in order.

        At most ``concurrency`` pages, and at most ``concurrency * PREFETCH_USERS_PER_WORKER``
        users, are asked for ahead of the one being judged, so that the users held in memory
        do not grow with the page size. ``total`` is a hint, not a promise: offsets are taken
        lazily, and once a page says it is the last, no more are asked for. Returns the last
        page read, for ``_follow``.
        """
        limit = first.limit or 1
        ahead = max(1, min(self.runtime.concurrency,
                           self.runtime.concurrency * PREFETCH_USERS_PER_WORKER // limit))
        offsets = iter(range(first.next_offset or 0, first.total or 0, limit))
        window: Deque[Future] = deque()
        last, ended = first, False
        while True:
            while not ended and len(window) < ahead:
                offset = next(offsets, None)
                if offset is None:
                    break
                window.append(self.runtime.pool.submit(self.hub.users_page, state, offset))
            if not window:
                return last
            last = self._result(window.popleft())
            yield last
            ended = ended or last.next_offset is None

    def _follow(self, state: Optional[str], offset: Optional[int]) -> Iterator[Page]:
        """Pages past what ``total`` announced (users added while listing), one by one."""
        while offset is not None:
            page = self._fetch(state, offset)
            yield page
            offset = page.next_offset

    def _fetch(self, state: Optional[str], offset: int) -> Page:
        page = self.hub.users_page(state, offset)
        self._progress.advanced()
        return page

    def _result(self, future: Future) -> Any:
        """The result of a prefetched page, feeding the watchdog while waiting for it."""
        while not wait((future,), timeout=self.runtime.tick_s).done:
            self._progress.waiting()
        self._progress.advanced()
        return future.result()

    # -- the mass-cull guard: one decision over the whole plan, before anything is sent -------

    def _guard(self, jobs: Dict[str, UserJob]) -> Dict[str, UserJob]:
        """Hold back what ``--max-stops-per-pass`` or ``--max-stop-fraction`` say must wait."""
        planned = [(job.user, stop) for job in jobs.values() for stop in job.stops]
        verdict = guard_plan([stop.verdict.idle_for for _, stop in planned],
                             self.stats.servers_running, self.settings)
        if not verdict.held:
            return jobs
        held: Dict[str, Set[str]] = {}
        for index in verdict.held:
            user, stop = planned[index]
            held.setdefault(user, set()).add(stop.server)
        self.stats.held_back = len(verdict.held)
        if verdict.tripped:
            self._trip(verdict.planned, verdict.running)
        else:
            log.warning("stops-held-back", held=len(verdict.held), planned=verdict.planned,
                        limit=self.settings.max_stops_per_pass,
                        detail="the longest idle are stopped first; the others wait for the "
                               "next pass")
        if self.runtime.dry_run:
            self._plan_held(jobs, held, verdict.tripped)
        if verdict.tripped:
            return {}
        return {name: job.holding_back(held.get(name, set())) for name, job in jobs.items()}

    def _trip(self, planned: int, running: int) -> None:
        limit = self.settings.max_stop_fraction or 0.0
        self._tell(Notice(GUARD_TRIPPED, counts=(("planned", planned), ("running", running),
                                                 ("limit", limit))))
        self.stats.guard_tripped = ("mass-cull guard: would stop %d of %d running servers, "
                                    "more than %g of them; nothing stopped"
                                    % (planned, running, limit))
        log.error("mass-cull-guard", share="%d/%d" % (planned, running),
                  fraction=round(planned / running if running else 1.0, 2), limit=limit,
                  detail="nothing was stopped or deleted in this pass. If activity reporting "
                         "broke (the proxy, the network, a hub upgrade), mend it first; if "
                         "that many servers really are idle, run once with a higher "
                         "--max-stop-fraction, or let --max-stops-per-pass=N drain them")

    def _plan_held(self, jobs: Dict[str, UserJob], held: Dict[str, Set[str]],
                   tripped: bool) -> None:
        """A dry run still shows the whole plan: what the guard holds back is marked."""
        for job in jobs.values():
            for stop in job.stops:
                if stop.server in held.get(job.user, ()):
                    self.stats.add_to_plan(PlanEntry("stop", job.user, stop.server,
                                                     stop.verdict, stop.profile, True))
            if tripped and job.delete is not None:
                self.stats.add_to_plan(PlanEntry("delete", job.user, "", job.delete,
                                                 held_back=True))

    # -- acting -------------------------------------------------------------------------------

    def _act(self, jobs: Dict[str, UserJob]) -> None:
        """Run the jobs on the pool, at most ``concurrency`` at once."""
        # A job emptied by a duplicate sighting has nothing left to send.
        runners = _Runners(self.runtime, self._progress, self._run_job,
                           [job for job in jobs.values() if not job.empty])
        try:
            runners.run()
        finally:
            self.stats.interrupted = self.stats.interrupted or runners.interrupted

    def _run_job(self, job: UserJob) -> None:
        """Stop the job's servers in order, then delete the user if every stop finished."""
        all_down, kept = True, False
        for stop in job.stops:
            if not self._second_look(job.user, stop).acts:
                kept = True
                continue
            down = self._stop(job.user, stop)
            all_down = all_down and down
        if job.delete is not None and kept:
            log.info("keep-user", user=job.user, reason="servers-alive", detail="a server of "
                     "theirs was kept on its own word (--check-kernels)")
        elif job.delete is not None:
            self._delete(job.user, job.delete, all_down)

    def _second_look(self, user: str, stop: Stop) -> Verdict:
        """Ask the server itself before stopping it, when its verdict says so (--check-kernels).

        Returns the verdict to act on: the stop's own, or a KEEP when a kernel is busy or the
        server's own activity is recent. ``api/kernels`` is asked only when ``api/status``
        leaves the question open. A server that cannot be asked is judged by the hub's data.
        """
        verdict = stop.verdict
        if verdict.check_within_s is None:
            return verdict
        who = {"user": user, "server": stop.server or "-"}
        if not stop.url:
            self._check_failed(who, "no-url", "the hub's model has no url for this server")
            return verdict
        self.stats.add(checked=1)
        try:
            body = self.hub.server_status(stop.url)
            status = parse_server_status(body)
            judged = judge_server_status(verdict, status, self.now)
            if kernels_needed(judged, status):
                status = parse_server_status(body, self.hub.server_kernels(stop.url))
                judged = judge_server_status(verdict, status, self.now)
        except (HubError, ModelError) as exc:
            self._check_failed(who, _check_failure(exc), str(exc))
            return verdict
        except Exception:  # a bug must not end the pass: judge by the hub's data
            log.exception("kernel-check-failed", **who, reason="bug")
            self.stats.add(check_failed=1)
            return verdict
        if not judged.acts:
            self.stats.add(kept_by_server=1)
            log.info("keep", **who, **verdict_fields(judged))
        return judged

    def _check_failed(self, who: Dict[str, str], reason: str, error: str) -> None:
        """Count a server that could not be asked; log each reason once per pass."""
        self.stats.add(check_failed=1)
        extra = {"hint": "the token needs the scope " + scope_hint("check")} \
            if reason == "refused" else {}
        if self._check_failures.deny(reason, error):
            log.warning("kernel-check-failed", **who, reason=reason, error=error, **extra,
                        detail="judged by the hub's data alone; more of this kind in this "
                               "pass are logged at DEBUG")
        else:
            log.debug("kernel-check-failed", **who, reason=reason, error=error)

    def _stop(self, user: str, stop: Stop) -> bool:
        """Stop one server; True when it is down (stopped, already gone, or a dry run)."""
        who = {"user": user, "server": stop.server or "-"}
        if self.runtime.dry_run:
            log.info("would-stop", **who, **verdict_fields(stop.verdict))
            self.stats.add_to_plan(PlanEntry("stop", user, stop.server, stop.verdict,
                                             stop.profile))
            return True
        remove = self.settings.remove_named_servers and bool(stop.server)
        result = self._attempt("stop", who, stop.verdict.reason,
                               lambda: self.hub.stop_server(user, stop.server, remove))
        if result is None:
            return False
        if result is StopResult.PENDING:
            self.stats.add(pending=1)
        elif result is StopResult.UNREACHABLE:
            self.stats.add(unreachable=1)
            self._unreached.add("stop", "%s/%s" % (user, stop.server or "-"))
        else:
            self.stats.count_stop(stop.verdict.reason, "named" if stop.server else "default",
                                  stop.verdict.rule)
        log.info("stop", **who, **verdict_fields(stop.verdict), result=result.value)
        if result in (StopResult.STOPPED, StopResult.PENDING):
            self._tell(_done(SERVER_STOPPED, user, stop.server, stop.verdict, result.value))
        return result in (StopResult.STOPPED, StopResult.GONE)

    def _delete(self, user: str, verdict: Verdict, all_down: bool) -> None:
        """Delete the user record, unless a server of theirs is still alive."""
        if self.runtime.dry_run:
            log.info("would-delete", user=user, **verdict_fields(verdict))
            self.stats.add_to_plan(PlanEntry("delete", user, "", verdict))
            return
        if not all_down:
            log.info("keep-user", user=user, reason="servers-alive", detail="a server is still "
                     "stopping; the user is judged again at the next pass")
            return
        result = self._attempt("delete", {"user": user}, verdict.reason,
                               lambda: self.hub.delete_user(user))
        if result is DeleteResult.BUSY:
            log.info("keep-user", user=user, reason="servers-alive", detail="the hub says a "
                     "server is still stopping; judged again at the next pass")
        elif result is DeleteResult.UNREACHABLE:
            self.stats.add(unreachable=1)
            self._unreached.add("delete", user)
            log.info("delete", user=user, **verdict_fields(verdict), result=result.value)
        elif result is not None:
            self.stats.add(deleted=1)
            log.info("delete", user=user, **verdict_fields(verdict), result=result.value)
            if result is DeleteResult.DELETED:
                self._tell(_done(USER_DELETED, user, None, verdict))

    # -- notifications (docs/behaviour.md#webhook-notifications) ---------------------------

    def _warn(self) -> None:
        """After a complete listing that the guard let through: the warnings not sent before,
        each logged as its event and handed to the webhook (a dry run: ``would-warn``, and
        into the plan). Anything less than a whole picture warns nobody and forgets nothing."""
        warned = self.runtime.forewarned
        stats = self.stats
        if warned is None or stats.listing_error or stats.auth_error or stats.interrupted \
                or stats.guard_tripped:
            return
        warned.sweep(self._due)
        for notice in self._due:
            if not warned.claim(notice):
                continue
            if self.runtime.dry_run:
                log.info("would-warn", notice=notice.event, **log_fields(notice))
                stats.add_warning(notice)
                continue
            log.info(notice.event, **log_fields(notice))
            if self.runtime.outbox is not None:
                self.runtime.outbox.send(notice)

    def _tell(self, notice: Notice) -> None:
        """An action's notice: logged as its event and handed to the webhook, when there is
        one (without it, the ``stop``/``delete``/``mass-cull-guard`` lines say it all)."""
        if self.runtime.outbox is None or self.runtime.dry_run:
            return
        log.info(notice.event, **log_fields(notice))
        self.runtime.outbox.send(notice)

    def _attempt(self, action: str, who: Dict[str, str], reason: str,
                 call: Callable[[], Any]) -> Any:
        """Perform one hub call of a job; every failure becomes a counted, logged outcome.

        Returns the call's result, or None when it failed or the hub already refused this
        kind of request in this pass. Logs ``<action>-refused`` (once per pass, with the scope
        the token needs) or ``<action>-failed``.
        """
        if not self._denials.denied(action):
            try:
                return call()
            except HubAuthError as exc:
                if self._denials.deny(action, str(exc)):
                    log.error(action + "-refused", **who, status=exc.status,
                              hint="the token needs the scope " + scope_hint(action),
                              error=str(exc))
                self.stats.count_error(exc.status)
            except HubError as exc:
                log.error(action + "-failed", **who, reason=reason, error=str(exc))
                self.stats.count_error(exc.status)
            except Exception:  # a bug must not end the pass for everyone else
                log.exception(action + "-failed", **who, reason=reason)
        self.stats.count_failure(action, who["user"])
        return None


def _done(event: str, user: str, server: Optional[str], verdict: Verdict,
          result: Optional[str] = None) -> Notice:
    """The notice of a stop (``server`` a name) or deletion (``server`` None) the hub took."""
    reason = INACTIVE_USER if server is None and verdict.reason == "idle" else verdict.reason
    idle_s = None if verdict.idle_for is None else int(verdict.idle_for.total_seconds())
    return Notice(event, user, server, reason, idle_s, verdict.rule, result=result)


def _check_failure(exc: Exception) -> str:
    """Why a server could not be asked, as a short reason for the log."""
    status = getattr(exc, "status", None)
    if isinstance(exc, HubAuthError):
        return "refused"
    if isinstance(exc, ModelError) or status == 404:
        return "not-jupyter-server"  # no api/status, or not the answer jupyter-server gives
    if status is None:
        return "no-answer" if isinstance(exc, HubUnavailable) else "not-jupyter-server"
    if 300 <= status < 400:
        return "redirected"  # the hub's "not running" page, or a login
    return "http-%d" % status


def run_pass(hub: HubApi, settings: CullSettings, now: datetime, runtime: Runtime,
             warned: Optional[MutableSet[str]] = None) -> PassStats:
    """Run one whole pass and return its figures; a ``HubError`` while listing ends it early.

    ``now`` is taken once by the caller for the whole pass.
    """
    return CullPass(hub, settings, now, runtime, warned).run()

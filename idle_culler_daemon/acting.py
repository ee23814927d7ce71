"""The acting stage of a pass: run a plan's jobs on the pool, at most ``concurrency`` at once.

One job handles one user: it stops that user's servers in order (each after its kernel check,
when its verdict asks for one), then deletes the user if every stop finished. A job never
raises: every failed call becomes a counted, logged outcome (:meth:`Actor._attempt`), so one
user's failure never ends the pass for the others. ``--dry-run`` is honoured here and only
here (:meth:`Actor._dry_run`): nothing is sent, the plan is recorded instead.
"""

import threading
from concurrent.futures import wait
from typing import Any, Callable, Dict, List, MutableSet, Optional, Protocol, Sequence

from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.context import PassContext
from idle_culler_daemon.errors import HubAuthError, HubError
from idle_culler_daemon.forewarn import (
    GUARD_TRIPPED,
    INACTIVE_USER,
    SERVER_STOP_SOON,
    SERVER_STOPPED,
    USER_DELETE_SOON,
    USER_DELETED,
    Notice,
    log_fields,
)
from idle_culler_daemon.hub import DeleteResult, StopResult
from idle_culler_daemon.jobs import Stop, UserJob, verdict_fields
from idle_culler_daemon.kernels import KernelCheck
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.planning import Plan
from idle_culler_daemon.policy import Verdict
from idle_culler_daemon.scopes import scope_hint
from idle_culler_daemon.stats import PlanEntry

log = get_logger(__name__)


class ActingHub(Protocol):
    """What acting needs from the hub (``hub.HubClient``, or a fake in tests)."""

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult: ...

    def delete_user(self, user: str) -> DeleteResult: ...


class _Runners:
    """``width`` workers on the pool, each taking the next job until none is left.

    One pool task per worker, not one per job: no future, callback or wake-up of the main
    thread per job (with a future per job, that bookkeeping was a fifth of the culler's CPU at
    10,000 users). A worker looks at the stop signal before it takes each job, so after it no
    job that has not begun goes out. The main thread waits in ticks, feeding the watchdog while
    jobs keep finishing.
    """

    def __init__(self, context: PassContext, run: Callable[[UserJob], None],
                 jobs: Sequence[UserJob]) -> None:
        self._context = context
        self._run = run
        self._width = min(context.runtime.concurrency, len(jobs))
        self._todo = iter(jobs)
        self._lock = threading.Lock()
        self._broken: List[BaseException] = []

    def run(self) -> None:
        """Run every job; a job that raised (a bug) raises here once all have ended."""
        runtime = self._context.runtime
        pending = {runtime.pool.submit(self._work) for _ in range(self._width)}
        while pending:
            pending = wait(pending, timeout=runtime.tick_s).not_done
            self._context.progress.waiting()
        if self._broken:
            raise self._broken[0]  # a job never raises; if one does, it is a bug: let it out

    def _next(self) -> Optional[UserJob]:
        with self._lock:
            if self._context.stats.interrupted:
                return None
            job = next(self._todo, None)
            if job is not None and self._context.stopping():
                self._context.stats.interrupted = True
                return None
            return job

    def _work(self) -> None:
        job = self._next()
        while job is not None:
            try:
                self._run(job)
            except Exception as exc:  # kept for run(); the other jobs go on
                self._broken.append(exc)
            self._context.progress.finished()
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


def act(plan: Plan, actor: "Actor", context: PassContext) -> None:
    """Send the plan's warnings, run ``plan`` on the pool, at most ``concurrency`` jobs at
    once, then say what could not be reached or was refused. In a dry run, what the guard held
    back joins the plan too."""
    _warn(plan, context)
    if plan.tripped is not None:
        tell(context, plan.tripped)
    actor.hold(plan.held)
    try:
        _Runners(context, actor.run_job, plan.jobs).run()
    finally:
        actor.finish()


def _warn(plan: Plan, context: PassContext) -> None:
    """The plan's warnings (docs/behaviour.md#webhook-notifications), claimed only now that
    the plan is acted on, so a plan that is not acted on skips nothing: each is logged as its
    event and handed to the webhook (a dry run: ``would-warn``, and into the plan). First the
    stretches no longer due are forgotten (``sweep`` needs the whole due list)."""
    warned = context.runtime.forewarned
    if warned is None or plan.guard is not None:
        return
    warned.sweep(plan.due)
    for notice in plan.warnings:
        if not warned.claim(notice):
            continue
        if context.runtime.dry_run:
            log.info("would-warn", notice=notice.event, **log_fields(notice))
            context.stats.add_warning(notice)
            continue
        _log_notice(notice)
        if context.runtime.outbox is not None:
            context.runtime.outbox.send(notice)


def tell(context: PassContext, notice: Notice) -> None:
    """An action's notice: logged as its event and handed to the webhook, when there is one
    (without it, the ``stop``/``delete``/``mass-cull-guard`` lines say it all). A dry run
    tells nothing."""
    outbox = context.runtime.outbox
    if outbox is None or context.runtime.dry_run:
        return
    _log_notice(notice)
    outbox.send(notice)


def _log_notice(notice: Notice) -> None:
    """A notice as the log event of its name (each name spelt out for the events registry)."""
    fields = log_fields(notice)
    if notice.event == SERVER_STOP_SOON:
        log.info(SERVER_STOP_SOON, **fields)
    elif notice.event == USER_DELETE_SOON:
        log.info(USER_DELETE_SOON, **fields)
    elif notice.event == SERVER_STOPPED:
        log.info(SERVER_STOPPED, **fields)
    elif notice.event == USER_DELETED:
        log.info(USER_DELETED, **fields)
    elif notice.event == GUARD_TRIPPED:
        log.info(GUARD_TRIPPED, **fields)


def _done(event: str, user: str, server: Optional[str], verdict: Verdict,
          result: Optional[str] = None) -> Notice:
    """The notice of a stop (``server`` a name) or deletion (``server`` None) the hub took."""
    reason = INACTIVE_USER if server is None and verdict.reason == "idle" else verdict.reason
    idle_s = None if verdict.idle_for is None else int(verdict.idle_for.total_seconds())
    return Notice(event, user, server, reason, idle_s, verdict.rule, result=result)


class Actor:
    """The jobs of one pass: each user's stops, then their deletion, through ``_attempt``."""

    def __init__(self, hub: ActingHub, settings: CullSettings, context: PassContext,
                 check: KernelCheck, warned: Optional[MutableSet[str]] = None) -> None:
        self._hub = hub
        self._settings = settings
        self._context = context
        self._stats = context.stats
        self._check = check
        self._warned = warned
        self._denials = _Denials()
        self._unreached = _Unreached()

    def finish(self) -> None:
        self._unreached.report(self._warned)
        if self._denials.summary() and not self._stats.auth_error:
            self._stats.auth_error = self._denials.summary()

    def hold(self, held: Sequence[UserJob]) -> None:
        """What the guard holds back is not sent; a dry run shows it in the plan, marked."""
        for job in held:
            for stop in job.stops:
                self._dry_run(PlanEntry("stop", job.user, stop.server, stop.verdict,
                                        stop.profile, True))
            if job.delete is not None:
                self._dry_run(PlanEntry("delete", job.user, "", job.delete, held_back=True))

    def run_job(self, job: UserJob) -> None:
        """Stop the job's servers in order, then delete the user if every stop finished."""
        all_down, kept = True, False
        for stop in job.stops:
            if not self._check.look(job.user, stop).acts:
                kept = True
                continue
            all_down = self._stop(job.user, stop) and all_down
        if job.delete is not None and kept:
            log.info("keep-user", user=job.user, reason="servers-alive", detail="a server of "
                     "theirs was kept on its own word (--check-kernels)")
        elif job.delete is not None:
            self._delete(job.user, job.delete, all_down)

    def _dry_run(self, entry: PlanEntry) -> bool:
        """The one place ``--dry-run`` is honoured: in a dry run, ``entry`` joins the plan
        (logged as ``would-stop``/``would-delete`` unless held back) and True says that
        nothing is to be sent; otherwise False."""
        if not self._context.runtime.dry_run:
            return False
        if entry.action == "stop" and not entry.held_back:
            log.info("would-stop", user=entry.user, server=entry.server or "-",
                     **verdict_fields(entry.verdict))
        elif entry.action == "delete" and not entry.held_back:
            log.info("would-delete", user=entry.user, **verdict_fields(entry.verdict))
        self._stats.add_to_plan(entry)
        return True

    def _send(self, entry: PlanEntry, call: Callable[[], Any]) -> Any:
        """Record ``entry`` in a dry run (returns True), or send it through ``_attempt``."""
        return True if self._dry_run(entry) else self._attempt(entry, call)

    def _stop(self, user: str, stop: Stop) -> bool:
        """Stop one server; True when it is down (stopped, already gone, or a dry run)."""
        remove = self._settings.remove_named_servers and bool(stop.server)
        result = self._send(PlanEntry("stop", user, stop.server, stop.verdict, stop.profile),
                             lambda: self._hub.stop_server(user, stop.server, remove))
        if result is None or result is True:
            return bool(result)
        if result is StopResult.PENDING:
            self._stats.add(pending=1)
        elif result is StopResult.UNREACHABLE:
            self._stats.add(unreachable=1)
            self._unreached.add("stop", "%s/%s" % (user, stop.server or "-"))
        else:
            self._stats.count_stop(stop.verdict.reason, "named" if stop.server else "default",
                                   stop.verdict.rule)
        log.info("stop", user=user, server=stop.server or "-", **verdict_fields(stop.verdict),
                 result=result.value)
        if result in (StopResult.STOPPED, StopResult.PENDING):
            tell(self._context, _done(SERVER_STOPPED, user, stop.server, stop.verdict,
                                      result.value))
        return result in (StopResult.STOPPED, StopResult.GONE)

    def _delete(self, user: str, verdict: Verdict, all_down: bool) -> None:
        """Delete the user record, unless a server of theirs is still alive."""
        if not all_down:
            log.info("keep-user", user=user, reason="servers-alive", detail="a server is still "
                     "stopping; the user is judged again at the next pass")
            return
        result = self._send(PlanEntry("delete", user, "", verdict),
                            lambda: self._hub.delete_user(user))
        if result is DeleteResult.BUSY:
            log.info("keep-user", user=user, reason="servers-alive", detail="the hub says a "
                     "server is still stopping; judged again at the next pass")
        elif result is DeleteResult.UNREACHABLE:
            self._stats.add(unreachable=1)
            self._unreached.add("delete", user)
            log.info("delete", user=user, **verdict_fields(verdict), result=result.value)
        elif result is not None and result is not True:
            self._stats.add(deleted=1)
            log.info("delete", user=user, **verdict_fields(verdict), result=result.value)
            if result is DeleteResult.DELETED:
                tell(self._context, _done(USER_DELETED, user, None, verdict))

    def _attempt(self, entry: PlanEntry, call: Callable[[], Any]) -> Any:
        """Perform one hub call of a job; every failure becomes a counted, logged outcome.

        Returns the call's result, or None when it failed or the hub already refused this
        kind of request in this pass. Logs ``<action>-refused`` (once per pass, with the scope
        the token needs) or ``<action>-failed``.
        """
        action = entry.action
        who = {"user": entry.user, "server": entry.server or "-"} if action == "stop" \
            else {"user": entry.user}
        if not self._denials.denied(action):
            try:
                return call()
            except HubAuthError as exc:
                if self._denials.deny(action, str(exc)):
                    log.error(action + "-refused", **who, status=exc.status,
                              hint="the token needs the scope " + scope_hint(action),
                              error=str(exc))
                self._stats.count_error(exc.status)
            except HubError as exc:
                log.error(action + "-failed", **who, reason=entry.verdict.reason,
                          error=str(exc))
                self._stats.count_error(exc.status)
            except Exception:  # a bug must not end the pass for everyone else
                log.exception(action + "-failed", **who, reason=entry.verdict.reason)
        self._stats.count_failure(action, entry.user)
        return None

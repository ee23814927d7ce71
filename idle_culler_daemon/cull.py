"""One cull pass: list every user, judge, then act through a bounded pool of workers.

List first, then act (SPEC section 4, step 3): every finished stop takes a user out of the
``state=ready`` listing and shifts the offsets of later pages, so no DELETE is sent before the
last page was read. Only the small jobs (user name, servers to stop, reasons) are kept while
listing, never the user models. Jobs never raise: each returns its outcome, and a failure of one
user is counted and logged, never fatal to the pass.
"""

import hashlib
import logging
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    MutableSet,
    Optional,
    Protocol,
    Set,
    Tuple,
)

from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.errors import HubAuthError, HubError, ModelError
from idle_culler_daemon.hub import DeleteResult, Page, StopResult
from idle_culler_daemon.model import User, parse_user
from idle_culler_daemon.policy import Action, Verdict, judge_server, judge_user

log = logging.getLogger(__name__)

SCOPE_HINTS = {"stop": "delete:servers", "delete": "delete:users (or admin:users)"}


class HubApi(Protocol):
    """What a pass needs from the hub (``hub.HubClient``, or a fake in tests)."""

    def users_page(self, state: Optional[str], offset: int) -> Page: ...

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult: ...

    def delete_user(self, user: str) -> DeleteResult: ...


@dataclass(frozen=True)
class Stop:
    server: str
    verdict: Verdict


@dataclass(frozen=True)
class UserJob:
    """What to do for one user: stop these servers, then maybe delete the user."""

    user: str
    stops: Tuple[Stop, ...] = ()
    delete: Optional[Verdict] = None

    def merged(self, other: "UserJob") -> "UserJob":
        """Combine two sightings of the same user (duplicates across pages or listings).

        Only what both sightings agree on is kept: a server is stopped only if both judged it
        idle, the user deleted only if both said so. Doubt keeps.
        """
        theirs = {stop.server for stop in other.stops}
        stops = tuple(stop for stop in self.stops if stop.server in theirs)
        delete = self.delete if (self.delete and other.delete) else None
        return UserJob(self.user, stops, delete)


@dataclass(frozen=True)
class Row:
    """One line of the ``--dry-run`` summary table (kept only in dry runs)."""

    action: str  # stop, delete
    user: str
    server: str
    verdict: Verdict


@dataclass
class JobOutcome:
    stopped: int = 0
    pending: int = 0
    failed: int = 0
    deleted: int = 0
    delete_failed: int = 0
    stopped_by: Counter = field(default_factory=Counter)  # (reason, kind) -> count
    errors: Counter = field(default_factory=Counter)      # status class -> count
    rows: List[Row] = field(default_factory=list)
    failed_user: Optional[str] = None


@dataclass
class PassStats:
    """The figures of one pass, for the summary line, STATUS= and the metrics."""

    users_seen: int = 0
    users_skipped: int = 0
    stopped: int = 0
    pending: int = 0
    failed: int = 0
    deleted: int = 0
    delete_failed: int = 0
    duration_s: float = 0.0
    listing_error: Optional[str] = None
    auth_error: Optional[str] = None
    stopped_by: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    rows: List[Row] = field(default_factory=list)
    interrupted: bool = False
    first_failure: Optional[str] = None  # a user whose stop or deletion failed, for STATUS=

    @property
    def ok(self) -> bool:
        return (self.listing_error is None and self.auth_error is None and not self.failed
                and not self.delete_failed and not self.interrupted)

    def add(self, outcome: JobOutcome) -> None:
        self.stopped += outcome.stopped
        self.pending += outcome.pending
        self.failed += outcome.failed
        self.deleted += outcome.deleted
        self.delete_failed += outcome.delete_failed
        self.stopped_by.update(outcome.stopped_by)
        self.errors.update(outcome.errors)
        self.rows.extend(outcome.rows)
        if self.first_failure is None:
            self.first_failure = outcome.failed_user


def seconds(delta: Optional[timedelta]) -> str:
    return "-" if delta is None else str(int(delta.total_seconds()))


def _decision_fields(user: str, server: Optional[str], verdict: Verdict) -> Tuple:
    return (user, "-" if not server else server, verdict.reason, seconds(verdict.idle_for),
            seconds(verdict.age), verdict.rule)


class _Denials:
    """Kinds of request the hub refused for our token during this pass (thread-safe).

    After a 401/403 the pass stops sending that kind of request: every other one would be
    refused too, and one ERROR line with the scope hint says more than a thousand.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: Dict[str, str] = {}

    def deny(self, kind: str, message: str) -> bool:
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


def judge(user: User, now: datetime, settings: CullSettings,
          warned: Optional[MutableSet[str]] = None) -> Optional[UserJob]:
    """Turn one parsed user into a job, or None when nothing is to be done."""
    stops = []
    kept = False
    for server in user.servers:
        verdict = judge_server(user, server, now, settings)
        if verdict.action is Action.STOP:
            stops.append(Stop(server.name, verdict))
            continue
        kept = True
        if verdict.reason == "no-timestamps":
            key = "%s/%s" % (user.name, server.name)
            if warned is None or key not in warned:
                log.warning("keep user=%s server=%s reason=no-timestamps detail=%s", user.name,
                            server.name or "-", "neither last_activity nor started is known")
                if warned is not None:
                    warned.add(key)
        else:
            log.debug("keep user=%s server=%s reason=%s idle_s=%s age_s=%s rule=%s",
                      *_decision_fields(user.name, server.name, verdict))
    user_verdict = judge_user(user, now, settings, kept)
    delete = user_verdict if user_verdict.action is Action.DELETE else None
    if not stops and delete is None:
        return None
    return UserJob(user.name, tuple(stops), delete)


def run_job(job: UserJob, hub: HubApi, settings: CullSettings, dry_run: bool,
            denials: _Denials) -> JobOutcome:
    """Stop the job's servers in order, then delete the user if every stop finished.

    Never raises: each failure is logged with the user and server and counted.
    """
    outcome = JobOutcome()
    all_down = True
    for stop in job.stops:
        fields = _decision_fields(job.user, stop.server, stop.verdict)
        kind = "named" if stop.server else "default"
        if dry_run:
            log.info("would-stop user=%s server=%s reason=%s idle_s=%s age_s=%s rule=%s", *fields)
            outcome.rows.append(Row("stop", job.user, stop.server, stop.verdict))
            continue
        if denials.denied("stop"):
            outcome.failed += 1
            all_down = False
            continue
        try:
            result = hub.stop_server(job.user, stop.server,
                                     settings.remove_named_servers and bool(stop.server))
        except HubAuthError as exc:
            if denials.deny("stop", str(exc)):
                log.error("stop-refused user=%s server=%s status=%s hint=%s error=%s",
                          fields[0], fields[1], exc.status, "the token needs the scope "
                          + SCOPE_HINTS["stop"], exc)
            outcome.failed += 1
            outcome.errors["4xx"] += 1
            all_down = False
            continue
        except HubError as exc:
            log.error("stop-failed user=%s server=%s reason=%s error=%s", fields[0], fields[1],
                      fields[2], exc)
            outcome.failed += 1
            outcome.errors[status_class(exc.status)] += 1
            all_down = False
            continue
        except Exception:  # a bug must not end the pass for everyone else
            log.exception("stop-failed user=%s server=%s reason=%s", *fields[:3])
            outcome.failed += 1
            all_down = False
            continue
        if result is StopResult.PENDING:
            outcome.pending += 1
            all_down = False
        else:
            outcome.stopped += 1
            outcome.stopped_by[(stop.verdict.reason, kind)] += 1
        log.info("stop user=%s server=%s reason=%s idle_s=%s age_s=%s rule=%s result=%s",
                 *fields, result.value)
    if job.delete is not None:
        _delete_user(job, hub, dry_run, denials, outcome, all_down)
    if outcome.failed or outcome.delete_failed:
        outcome.failed_user = job.user
    return outcome


def _delete_user(job: UserJob, hub: HubApi, dry_run: bool, denials: _Denials,
                 outcome: JobOutcome, all_down: bool) -> None:
    verdict = job.delete
    fields = _decision_fields(job.user, None, verdict)
    fields = (fields[0],) + fields[2:]
    if dry_run:
        log.info("would-delete user=%s reason=%s idle_s=%s age_s=%s rule=%s", *fields)
        outcome.rows.append(Row("delete", job.user, "", verdict))
        return
    if not all_down:
        log.info("keep-user user=%s reason=servers-alive detail=%s", job.user,
                 "a server is still stopping; the user is judged again at the next pass")
        return
    if denials.denied("delete"):
        outcome.delete_failed += 1
        return
    try:
        result = hub.delete_user(job.user)
    except HubAuthError as exc:
        if denials.deny("delete", str(exc)):
            log.error("delete-refused user=%s status=%s hint=%s error=%s", job.user, exc.status,
                      "the token needs the scope " + SCOPE_HINTS["delete"], exc)
        outcome.delete_failed += 1
        outcome.errors["4xx"] += 1
        return
    except HubError as exc:
        log.error("delete-failed user=%s reason=%s error=%s", job.user, verdict.reason, exc)
        outcome.delete_failed += 1
        outcome.errors[status_class(exc.status)] += 1
        return
    except Exception:
        log.exception("delete-failed user=%s reason=%s", job.user, verdict.reason)
        outcome.delete_failed += 1
        return
    if result is DeleteResult.BUSY:
        log.info("keep-user user=%s reason=servers-alive detail=%s", job.user,
                 "the hub says a server is still stopping; judged again at the next pass")
        return
    outcome.deleted += 1
    log.info("delete user=%s reason=%s idle_s=%s age_s=%s rule=%s result=%s", *fields,
             result.value)


def status_class(status: Optional[int]) -> str:
    return "connection" if status is None else "%dxx" % (status // 100)


class _Progress:
    """Heartbeats only while the pass makes progress.

    The watchdog must fire when a pass is stuck, so the main thread pings only if some request
    finished within ``stall_s`` (longer than any legitimate call, retries included).
    """

    def __init__(self, heartbeat: Callable[[], None], stall_s: float,
                 monotonic: Callable[[], float]) -> None:
        self._heartbeat = heartbeat
        self._stall_s = stall_s
        self._monotonic = monotonic
        self._last = monotonic()

    def advanced(self) -> None:
        self._last = self._monotonic()
        self._heartbeat()

    def waiting(self) -> None:
        if self._monotonic() - self._last < self._stall_s:
            self._heartbeat()


def _drain(pending: Set[Future], limit: int, progress: _Progress, tick_s: float
           ) -> Tuple[Set[Future], Set[Future]]:
    """Wait until at most ``limit`` futures are pending, pinging while waiting."""
    finished: Set[Future] = set()
    while len(pending) > limit:
        done, pending = wait(pending, timeout=tick_s, return_when=FIRST_COMPLETED)
        if done:
            finished |= done
            progress.advanced()
        else:
            progress.waiting()
    return finished, pending


def _pages(hub: HubApi, state: Optional[str], executor: Executor, window: int,
           progress: _Progress, tick_s: float) -> Iterator[Page]:
    """Yield the pages of one listing in order.

    The first page says how many users match (``total``) and the page size: the next pages are
    then fetched ``window`` at a time. ``total`` is a hint, not a promise: fetching stops at
    the first page that has no ``next``, and pages beyond ``total`` (users added while
    listing) are followed one by one.
    """
    page = hub.users_page(state, 0)
    progress.advanced()
    yield page
    if page.next_offset is None:
        return
    if page.total is not None and page.limit:
        offsets = iter(range(page.next_offset, page.total, page.limit))  # lazy: total may lie
        futures: List[Future] = []
        more = True
        while True:
            while more and len(futures) < window:
                offset = next(offsets, None)
                if offset is None:
                    more = False
                else:
                    futures.append(executor.submit(hub.users_page, state, offset))
            if not futures:
                break
            head = futures.pop(0)
            _drain({head}, 0, progress, tick_s)
            page = head.result()
            yield page
            if page.next_offset is None:
                more = False  # the listing ended before `total`: fetch nothing more
        if page.next_offset is None:
            return
    offset = page.next_offset
    while offset is not None:
        page = hub.users_page(state, offset)
        progress.advanced()
        yield page
        offset = page.next_offset


class SeenNames:
    """Which user names a pass has seen, in a fixed 1 MiB whatever the number of users.

    A Bloom filter: an answer "seen" may be wrong (about 3 in 10 million at 50k users), never
    "not seen". A wrong "seen" makes a user count as a duplicate sighting, which only keeps
    that user's servers for this pass; the salt changes every pass, so it is never the same
    user twice. This keeps memory growing with the number of culls, not of users (SPEC 4.3).
    """

    BITS = 1 << 23
    HASHES = 4

    def __init__(self, salt: Optional[bytes] = None) -> None:
        self._bits = bytearray(self.BITS // 8)
        self._salt = salt if salt is not None else secrets.token_bytes(16)

    def add(self, name: str) -> bool:
        """Record ``name``; return True when it was (probably) seen before."""
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16,
                                 key=self._salt).digest()
        seen = True
        for index in range(self.HASHES):
            bit = int.from_bytes(digest[4 * index:4 * index + 4], "little") % self.BITS
            byte, mask = bit >> 3, 1 << (bit & 7)
            if not self._bits[byte] & mask:
                seen = False
                self._bits[byte] |= mask
        return seen


def collect_jobs(hub: HubApi, settings: CullSettings, now: datetime, executor: Executor,
                 window: int, progress: _Progress, tick_s: float, stats: PassStats,
                 states: Iterable[Optional[str]], warned: Optional[MutableSet[str]],
                 should_stop: Callable[[], bool]) -> Dict[str, UserJob]:
    """Read every listing and judge each user as its page arrives; keep only the jobs."""
    jobs: Dict[str, UserJob] = {}
    seen = SeenNames()
    for state in states:
        for page in _pages(hub, state, executor, window, progress, tick_s):
            if should_stop():
                stats.interrupted = True
                return jobs
            for item in page.items:
                stats.users_seen += 1
                try:
                    user = parse_user(item)
                except ModelError as exc:
                    stats.users_skipped += 1
                    log.warning("skip-user reason=bad-model error=%s detail=%s", exc,
                                "nothing of this user is stopped or deleted in this pass")
                    continue
                job = judge(user, now, settings, warned)
                if seen.add(user.name):  # seen before: keep only what every sighting agrees on
                    earlier = jobs.get(user.name) or UserJob(user.name)
                    jobs[user.name] = earlier.merged(job or UserJob(user.name))
                elif job is not None:
                    jobs[user.name] = job
    return jobs


def run_pass(hub: HubApi, settings: CullSettings, now: datetime, executor: Executor,
             concurrency: int, *, dry_run: bool = False, use_state_filter: bool = True,
             heartbeat: Callable[[], None] = lambda: None, tick_s: float = 1.0,
             stall_s: float = 600.0, should_stop: Callable[[], bool] = lambda: False,
             warned: Optional[MutableSet[str]] = None,
             monotonic: Callable[[], float] = time.monotonic) -> PassStats:
    """Run one whole pass and return its figures; a ``HubError`` while listing ends it early.

    ``now`` is taken once by the caller for the whole pass. ``heartbeat`` is called from the
    calling thread between pages and while waiting on the workers, only while requests finish.
    """
    started = monotonic()
    stats = PassStats()
    progress = _Progress(heartbeat, stall_s, monotonic)
    if not use_state_filter:
        states: List[Optional[str]] = [None]  # hub < 1.3: every user, filtered here
    else:
        states = ["ready"] + (["inactive"] if settings.cull_users else [])
    try:
        jobs = collect_jobs(hub, settings, now, executor, concurrency, progress, tick_s, stats,
                            states, warned, should_stop)
    except HubAuthError as exc:
        stats.auth_error = str(exc)
        stats.errors["4xx"] += 1
        jobs = {}
    except HubError as exc:
        stats.listing_error = str(exc)
        stats.errors[status_class(exc.status)] += 1
        jobs = {}
    denials = _Denials()
    pending: Set[Future] = set()
    for job in jobs.values():
        if should_stop():
            stats.interrupted = True
            break
        if not job.stops and job.delete is None:
            continue  # a duplicate sighting cancelled everything
        finished, pending = _drain(pending, concurrency - 1, progress, tick_s)
        for future in finished:
            stats.add(future.result())
        pending.add(executor.submit(run_job, job, hub, settings, dry_run, denials))
    finished, _ = _drain(pending, 0, progress, tick_s)
    for future in finished:
        stats.add(future.result())
    if denials.summary() and not stats.auth_error:
        stats.auth_error = denials.summary()
    stats.duration_s = monotonic() - started
    return stats

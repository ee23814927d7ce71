"""What a pass decides for each user: the job (servers to stop, maybe the user to delete).

Built from the pure verdicts of ``policy`` as each user's page arrives; only jobs are kept
while listing, never the user models. Kept servers are logged here at DEBUG.
"""

from datetime import datetime
from logging import DEBUG
from typing import Any, Dict, MutableSet, NamedTuple, Optional, Tuple

from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.model import Server, User
from idle_culler_daemon.policy import (
    GROUPS_UNKNOWN,
    Action,
    Verdict,
    judge_server,
    judge_user,
)
from idle_culler_daemon.stats import whole_seconds

log = get_logger(__name__)


class Stop(NamedTuple):
    """A server to stop. ``url`` (kept only when the server is to be asked, see
    ``Verdict.check_within_s``) and ``profile`` come from the hub's model."""

    server: str
    verdict: Verdict
    url: Optional[str] = None
    profile: Optional[str] = None


class UserJob(NamedTuple):
    """What to do for one user: stop these servers, then maybe delete the user.

    Named tuples (``Stop`` too) rather than dataclasses: a pass keeps every job until the
    listing ends, so each byte counts once per idle user.
    """

    user: str
    stops: Tuple[Stop, ...] = ()
    delete: Optional[Verdict] = None

    @property
    def empty(self) -> bool:
        return not self.stops and self.delete is None

    def merged(self, other: "UserJob") -> "UserJob":
        """Combine two sightings of the same user (duplicates across pages or listings).

        Only what both sightings agree on is kept: a server is stopped only if both judged it
        idle, the user deleted only if both said so. Doubt keeps.
        """
        theirs = {stop.server for stop in other.stops}
        stops = tuple(stop for stop in self.stops if stop.server in theirs)
        delete = self.delete if (self.delete and other.delete) else None
        return UserJob(self.user, stops, delete)


def verdict_fields(verdict: Verdict) -> Dict[str, Any]:
    """The log fields every decision line carries after ``user=`` (and ``server=``).

    ``idle_s`` and ``age_s`` are whole seconds, None (``-`` in text) when unknown.
    """
    return {"reason": verdict.reason, "idle_s": whole_seconds(verdict.idle_for),
            "age_s": whole_seconds(verdict.age), "rule": verdict.rule}


class Judged(NamedTuple):
    """One user's job (None: nothing to do) and the verdicts it was made from, for the
    warnings ahead of a cull (``forewarn.due_notices``)."""

    job: Optional[UserJob]
    verdicts: Tuple[Tuple[Server, Verdict], ...]
    user_verdict: Verdict


def judge(user: User, now: datetime, settings: CullSettings,
          warned: Optional[MutableSet[str]] = None) -> Optional[UserJob]:
    """Turn one parsed user into a job, or None when nothing is to be done."""
    return judged(user, now, settings, warned).job


def judged(user: User, now: datetime, settings: CullSettings,
           warned: Optional[MutableSet[str]] = None) -> Judged:
    """Judge one parsed user: the job and the verdicts.

    A server kept for want of any timestamp is warned about once per ``warned`` set (the
    daemon keeps one for its lifetime), and so, once in all, is a keep for want of groups.
    """
    stops = []
    verdicts = []
    kept = False
    for server in user.servers:
        if server.user_options is None and settings.needs_user_options:
            _warn_once(warned, "user-options",
                       "a rule matches on profiles or user_options, but the hub's server "
                       "models carry no user_options: such rules match no server until the "
                       "token has the scope read:servers")
        verdict = judge_server(user, server, now, settings)
        verdicts.append((server, verdict))
        if verdict.action is Action.STOP:
            url = server.url if verdict.check_within_s is not None else None
            stops.append(Stop(server.name, verdict, url, server.profile))
            continue
        kept = True
        _warn_groups_unknown(user.name, verdict, warned)
        if verdict.reason != "no-timestamps":
            if log.enabled(DEBUG):  # most servers are kept: build no fields for nothing
                log.debug("keep", user=user.name, server=server.name or "-",
                          **verdict_fields(verdict))
            continue
        key = "%s/%s" % (user.name, server.name)
        if warned is None or key not in warned:
            log.warning("keep", user=user.name, server=server.name or "-",
                        reason="no-timestamps",
                        detail="neither last_activity nor started is known")
            if warned is not None:
                warned.add(key)
    user_verdict = judge_user(user, now, settings, kept)
    _warn_groups_unknown(user.name, user_verdict, warned)
    delete = user_verdict if user_verdict.action is Action.DELETE else None
    job = UserJob(user.name, tuple(stops), delete) if stops or delete is not None else None
    return Judged(job, tuple(verdicts), user_verdict)


def _warn_once(warned: Optional[MutableSet[str]], key: str, detail: str) -> None:
    """A WARNING ``user-options-missing``: once per ``warned`` set, each time without one."""
    if warned is not None:
        if key in warned:
            return
        warned.add(key)
    log.warning("user-options-missing", scope="read:servers", detail=detail)


def _warn_groups_unknown(user: str, verdict: Verdict,
                         warned: Optional[MutableSet[str]]) -> None:
    """One WARNING (per ``warned`` set) when a group rule meets a model without groups."""
    if verdict.reason != GROUPS_UNKNOWN or (warned is not None and GROUPS_UNKNOWN in warned):
        return
    log.warning(GROUPS_UNKNOWN, user=user, rule=verdict.rule, scope="read:users:groups",
                detail="the hub leaves 'groups' out of user models (the token lacks this scope "
                       "or holds it filtered): users a group rule could match are kept; "
                       "said once")
    if warned is not None:
        warned.add(GROUPS_UNKNOWN)

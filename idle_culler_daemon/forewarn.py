"""Warnings before a cull and notices after it: pure decisions, payloads and sentences.

A server (or, with ``--cull-users``, a user) that the rules keep for now, but whose stop (or
deletion) is due within ``--warn-before``, gets one ``server-stop-soon`` (``user-delete-soon``)
notice per idle stretch. :func:`due_notices` finds those notices for one listed user, from the
planner's verdicts; a :class:`Warned` remembers, per server and user, the stretch already
warned about, so the same stretch is not warned twice while a server used again and idle once
more is warned again.
Nothing here logs, reads the clock or sends anything: ``now`` is an argument, and the pass
logs and hands the notices to the webhook (docs/behaviour.md#webhook-notifications).
"""

import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Server, User
from idle_culler_daemon.policy import Action, Verdict, judge_server, judge_user

SERVER_STOP_SOON = "server-stop-soon"
USER_DELETE_SOON = "user-delete-soon"
SERVER_STOPPED = "server-stopped"
USER_DELETED = "user-deleted"
GUARD_TRIPPED = "guard-tripped"
EVENTS = (SERVER_STOP_SOON, USER_DELETE_SOON, SERVER_STOPPED, USER_DELETED, GUARD_TRIPPED)
# The reason of a user deleted for want of activity (a server's is "idle").
INACTIVE_USER = "inactive-user"


class Notice(NamedTuple):
    """One event to tell people about.

    ``server`` is the hub's name (``""``: the default server), None for a user or a whole
    pass. ``at``: for ``*-soon``, the earliest time of the action. ``stretch``: for ``*-soon``,
    the timestamp that began what is warned about (the activity an idle stretch runs from, or
    the start a maximum age counts from); it identifies the stretch in :class:`Warned` and is
    not sent. ``counts``: the figures of ``guard-tripped``.
    """

    event: str
    user: Optional[str] = None
    server: Optional[str] = None
    reason: Optional[str] = None
    idle_s: Optional[int] = None
    rule: Optional[str] = None
    at: Optional[datetime] = None
    result: Optional[str] = None
    stretch: Optional[datetime] = None
    counts: Tuple[Tuple[str, Any], ...] = ()

    @property
    def key(self) -> Tuple[str, Optional[str]]:
        return (self.user or "", self.server)


# --- when is an action due -------------------------------------------------------------------

def _rule(settings: CullSettings, name: str) -> Optional[RuleSettings]:
    for rule in settings.rules:
        if rule.name == name:
            return rule
    return None


def _first(*values: Optional[int]) -> int:
    for value in values:
        if value is not None:
            return value
    return 0


class _Due(NamedTuple):
    reason: str
    at: datetime
    stretch: datetime
    limit_s: int  # the timeout or maximum age that makes it due

    def warned_at(self, warn_before_s: int) -> datetime:
        """When the warning is due: ``warn_before`` ahead, but never more than half the
        limit ahead. Otherwise, with a limit as short as the warning time, every use would
        begin a stretch already within it: a warning at every pass of a server in use."""
        return self.at - timedelta(seconds=min(warn_before_s, self.limit_s / 2))


def _earliest(idle: _Due, max_age: int, started: Optional[datetime]) -> _Due:
    if not max_age or started is None:
        return idle
    aged = _Due("max-age", started + timedelta(seconds=max_age), started, max_age)
    return aged if aged.at < idle.at else idle


def server_due(user: User, server: Server, verdict: Verdict, settings: CullSettings
               ) -> Optional[_Due]:
    """When the stop of a server kept as ``active`` falls due, and why; None for any other
    verdict (pending, excluded, not managed, ...: no stop is coming).

    The limits are those ``policy.judge_server`` used: the deciding rule's, else the global
    ones. ``--max-age`` counts only where it may stop this user's servers (admins).
    """
    if verdict.action is not Action.KEEP or verdict.reason != "active":
        return None
    rule = _rule(settings, verdict.rule)
    since = server.last_activity or server.started
    if since is None:
        return None
    timeout = _first(rule.timeout if rule else None, settings.timeout)
    idle = _Due("idle", since + timedelta(seconds=timeout), since, timeout)
    spared = user.admin is not False and not settings.cull_admin_users
    max_age = 0 if spared else _first(rule.max_age if rule else None, settings.max_age)
    return _earliest(idle, max_age, server.started)


def user_due(user: User, verdict: Verdict, settings: CullSettings) -> Optional[_Due]:
    """When the deletion of a user kept as ``active`` falls due (``--cull-users``)."""
    if verdict.action is not Action.KEEP or verdict.reason != "active":
        return None
    rule = _rule(settings, verdict.rule)
    since = user.last_activity or user.created
    if since is None:
        return None
    timeout = _first(rule.user_timeout if rule else None, rule.timeout if rule else None,
                     settings.timeout)
    max_age = _first(rule.user_max_age if rule else None, rule.max_age if rule else None,
                     settings.max_age)
    idle = _Due(INACTIVE_USER, since + timedelta(seconds=timeout), since, timeout)
    return _earliest(idle, max_age, user.created)


def _whole_seconds(delta: Optional[timedelta]) -> Optional[int]:
    return None if delta is None else int(delta.total_seconds())


def due_notices(user: User, verdicts: Sequence[Tuple[Server, Verdict]],
                user_verdict: Optional[Verdict], now: datetime,
                settings: CullSettings) -> List[Notice]:
    """Every ``*-soon`` notice of one user whose action is due within ``warn_before`` (at
    most half its limit: :meth:`_Due.warned_at`).

    ``verdicts`` are the user's servers with ``policy.judge_server``'s verdicts;
    ``user_verdict`` is ``judge_user``'s (None without ``--cull-users``). Warned or not:
    :meth:`Warned.fresh` tells which are new.
    """
    if not settings.warn_before:
        return []
    notices = []
    for server, verdict in verdicts:
        due = server_due(user, server, verdict, settings)
        if due is not None and now >= due.warned_at(settings.warn_before):
            notices.append(Notice(SERVER_STOP_SOON, user.name, server.name, due.reason,
                                  _whole_seconds(verdict.idle_for), verdict.rule, due.at,
                                  stretch=due.stretch))
    due = user_due(user, user_verdict, settings) if user_verdict is not None else None
    if due is not None and user_verdict is not None and \
            now >= due.warned_at(settings.warn_before):
        notices.append(Notice(USER_DELETE_SOON, user.name, None, due.reason,
                              _whole_seconds(user_verdict.idle_for), user_verdict.rule, due.at,
                              stretch=due.stretch))
    return notices


def judged_notices(user: User, now: datetime, settings: CullSettings) -> List[Notice]:
    """:func:`due_notices` for a user model, judged here with ``policy`` (as ``jobs`` does):
    for tests and tools; a pass gives the planner's verdicts to ``due_notices`` instead."""
    if not settings.warn_before:
        return []
    verdicts = [(server, judge_server(user, server, now, settings)) for server in user.servers]
    kept = any(verdict.action is not Action.STOP for _, verdict in verdicts)
    user_verdict = judge_user(user, now, settings, kept) if settings.cull_users else None
    return due_notices(user, verdicts, user_verdict, now, settings)


class Warned:
    """The idle stretches already warned about, per (user, server) (server None: the user).

    A stretch is identified by its reason and the timestamp it runs from: the server's (or
    user's) last activity, or its start (creation) for a maximum age. A server used again gets
    a new last activity, so its next idle stretch is warned about again. Only in memory: after
    a restart a warning may be sent again, never skipped. Not thread-safe: the pass's main
    thread alone uses it.
    """

    def __init__(self) -> None:
        self._stretches: Dict[Tuple[str, Optional[str]], Tuple[str, Optional[datetime]]] = {}

    def __len__(self) -> int:
        return len(self._stretches)

    def is_new(self, notice: Notice) -> bool:
        return self._stretches.get(notice.key) != (notice.reason or "", notice.stretch)

    def fresh(self, notices: Iterable[Notice]) -> List[Notice]:
        return [notice for notice in notices if self.is_new(notice)]

    def claim(self, notice: Notice) -> bool:
        """Remember ``notice`` as sent; False when its stretch was already warned about."""
        if not self.is_new(notice):
            return False
        self._stretches[notice.key] = (notice.reason or "", notice.stretch)
        return True

    def sweep(self, due: Iterable[Notice]) -> None:
        """After a complete listing: forget every server and user no longer within its
        warning time (stopped, deleted, or used again), so the memory stays bounded."""
        keep = {notice.key for notice in due}
        self._stretches = {key: value for key, value in self._stretches.items() if key in keep}


# --- what people read ------------------------------------------------------------------------

def iso(when: datetime) -> str:
    """``2026-12-03T14:05:00Z``: UTC, whole seconds."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(text: str) -> str:
    """A name as the sentence shows it: control and formatting characters escaped as ``\\u``
    and four hex digits (a name cannot start a line or reorder the text), and ``&``, ``<``,
    ``>`` as the entities chat webhooks (Slack, Mattermost) ask for, so that a name cannot
    ping a channel or make a link.
    The JSON's ``user`` and ``server`` fields carry the names as they are."""
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append("\\u%04x" % ord(char))
        else:
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(char, char))
    return "".join(out)


def _duration(seconds: Optional[int]) -> str:
    """``7260`` -> ``2h01m``, ``2700`` -> ``45m``, ``90000`` -> ``1d01h``."""
    total = max(0, seconds or 0)
    days, rest = divmod(total, 86400)
    hours, minutes = divmod(rest // 60, 60)
    if days:
        return "%dd%02dh" % (days, hours)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    return "%dm" % minutes


def _when(at: datetime, now: datetime) -> str:
    """``14:05 UTC``, with the date when it is not today's (UTC); cut to the minute, so a
    user who acts before the time given is always in time."""
    at, now = at.astimezone(timezone.utc), now.astimezone(timezone.utc)
    text = at.strftime("%H:%M UTC")
    return text if at.date() == now.date() else text + " on " + at.strftime("%Y-%m-%d")


def _subject(notice: Notice) -> str:
    user = _name(notice.user or "")
    if notice.server is None:
        return "The user %s" % user
    if notice.server == "":
        return "The server of %s" % user
    return "The server %s of %s" % (_name(notice.server), user)


def _it(notice: Notice) -> str:
    return "it" if notice.server is not None else "the account"


def sentence(notice: Notice, now: datetime) -> str:
    """The one human sentence of a notice (the payload's ``text``), in UTC."""
    subject, aged = _subject(notice), notice.reason == "max-age"
    if notice.event == GUARD_TRIPPED:
        counts = dict(notice.counts)
        return ("The culler held a pass back: it would have stopped %s of %s running servers, "
                "more than the limit of %s (--max-stop-fraction). Nothing was stopped."
                % (counts.get("planned"), counts.get("running"), counts.get("limit")))
    if notice.event in (SERVER_STOP_SOON, USER_DELETE_SOON):
        verb = "stopped" if notice.event == SERVER_STOP_SOON else "deleted"
        when = _when(notice.at or now, now)
        if aged:
            return "%s will be %s at %s, when %s reaches its maximum age." % (
                subject, verb, when, _it(notice))
        unless = "it is used" if notice.server is not None else "they are active"
        return "%s will be %s at %s unless %s before then." % (subject, verb, when, unless)
    if notice.event == SERVER_STOPPED and notice.result == "pending":
        done = "is being stopped"
    else:
        done = "was stopped" if notice.event == SERVER_STOPPED else "was deleted"
    if aged:
        return "%s %s: %s reached its maximum age." % (subject, done, _it(notice))
    return "%s %s after %s without activity." % (subject, done, _duration(notice.idle_s))


def payload(notice: Notice, now: datetime, hub: str) -> Dict[str, Any]:
    """The JSON object POSTed for a notice: ``event``, ``user``, ``server``, ``reason``,
    ``idle_s``, ``rule``, ``hub``, ``time`` (``now``, the time of sending) and ``text``; ``at``
    for ``*-soon``, ``result`` for ``server-stopped``, the counts for ``guard-tripped``."""
    body: Dict[str, Any] = {
        "event": notice.event, "user": notice.user, "server": notice.server,
        "reason": notice.reason, "idle_s": notice.idle_s, "rule": notice.rule, "hub": hub,
        "time": iso(now), "text": sentence(notice, now)}
    if notice.at is not None:
        body["at"] = iso(notice.at)
    if notice.result is not None:
        body["result"] = notice.result
    body.update(notice.counts)
    return body


def log_fields(notice: Notice) -> Dict[str, Any]:
    """The fields of the log line of a notice (the event is the line's event)."""
    fields: Dict[str, Any] = {"user": notice.user, "server": None if notice.server is None
                              else notice.server or "-"}
    fields.update(reason=notice.reason, idle_s=notice.idle_s, rule=notice.rule)
    if notice.at is not None:
        fields["at"] = iso(notice.at)
    if notice.result is not None:
        fields["result"] = notice.result
    fields.update(notice.counts)
    return {key: value for key, value in fields.items() if value is not None}

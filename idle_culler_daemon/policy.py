"""Pure cull decisions: which server to stop and which user to delete, and why.

Everything here is a function of its arguments: the parsed models, ``now`` and the settings.
Nothing logs, reads the clock or talks to the hub, so each rule (docs/behaviour.md#server-rules,
#user-rules and #rules) is one small test. The caller logs the verdicts.
"""

import enum
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Options, Server, ServerStatus, User

DEFAULT_RULE = "default"
GROUPS_UNKNOWN = "groups-unknown"  # the reason of a keep decided by groups the hub hides


class Action(enum.Enum):
    KEEP = "keep"
    STOP = "stop"
    DELETE = "delete"


class Verdict(NamedTuple):
    """A decision with the reason, the rule that made it and the figures behind it.

    A named tuple rather than a dataclass: a pass keeps one per job until it acts, and at
    50,000 users the lighter object is megabytes less memory.
    """

    action: Action
    reason: str
    rule: str = DEFAULT_RULE
    idle_for: Optional[timedelta] = None
    age: Optional[timedelta] = None
    # A stop that waits for the server's own word (--check-kernels): the server is kept if a
    # kernel is busy or its own activity is less than this many seconds old.
    check_within_s: Optional[int] = None

    @property
    def acts(self) -> bool:
        return self.action is not Action.KEEP


def _matches(patterns: Sequence[str], values: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns for value in values)


def _options_match(rule: RuleSettings, options: Optional[Options]) -> bool:
    """The rule's ``profiles`` and ``user_options`` matchers against a server's options.

    Options the model does not carry (None) match nothing. ``user_options`` pairs on the same
    key are alternatives; every key named must match.
    """
    if options is None:
        return False
    values = dict(options)
    if rule.profiles and not ("profile" in values
                              and _matches(rule.profiles, [values["profile"]])):
        return False
    for key in dict(rule.user_options):
        wanted = [pattern for name, pattern in rule.user_options if name == key]
        if key not in values or not _matches(wanted, [values[key]]):
            return False
    return True


def rule_matches(rule: RuleSettings, user: User, server_name: Optional[str],
                 user_options: Optional[Options] = None) -> Optional[bool]:
    """Does ``rule`` apply to this user (``server_name`` None) or to this user's server?

    All matchers of a rule must match. A rule with ``server_names``, ``profiles`` or
    ``user_options`` applies to servers only, never to the user record itself;
    ``user_options`` are the server's (``Server.user_options``: None when unknown). None: only
    the user's groups could tell, and the model does not show them.
    """
    if rule.users and not _matches(rule.users, [user.name]):
        return False
    if rule.server_names and (server_name is None
                              or not _matches(rule.server_names, [server_name])):
        return False
    if rule.needs_user_options and (server_name is None
                                    or not _options_match(rule, user_options)):
        return False
    if rule.groups:
        return None if user.groups is None else _matches(rule.groups, user.groups)
    return True


def select_rule(rules: Sequence[RuleSettings], user: User, server_name: Optional[str],
                user_options: Optional[Options] = None) -> Optional[RuleSettings]:
    """Return the first rule that matches, or None when the global settings apply."""
    for rule in rules:
        if rule_matches(rule, user, server_name, user_options):
            return rule
    return None


def undecided_rule(rules: Sequence[RuleSettings], user: User, server_name: Optional[str],
                   user_options: Optional[Options] = None) -> Optional[RuleSettings]:
    """The first rule that only the user's unknown groups could decide, when it comes before
    any rule that matches: then nobody knows which rule applies, and doubt keeps."""
    for rule in rules:
        matched = rule_matches(rule, user, server_name, user_options)
        if matched is None:
            return rule
        if matched:
            return None
    return None


def _pick(*values: Optional[int]) -> int:
    for value in values:
        if value is not None:
            return value
    return 0


def judge_server(user: User, server: Server, now: datetime, settings: CullSettings) -> Verdict:
    """Decide whether one server should be stopped (docs/behaviour.md#server-rules)."""
    if server.pending:
        return Verdict(Action.KEEP, "pending-" + server.pending)
    if not server.ready:
        return Verdict(Action.KEEP, "not-ready")
    managed = settings.cull_default_servers if server.is_default else settings.cull_named_servers
    if not managed:
        return Verdict(Action.KEEP, "not-managed")
    undecided = undecided_rule(settings.rules, user, server.name, server.user_options)
    if undecided is not None:
        return Verdict(Action.KEEP, GROUPS_UNKNOWN, undecided.name)
    rule = select_rule(settings.rules, user, server.name, server.user_options)
    rule_name = rule.name if rule else DEFAULT_RULE
    age = now - server.started if server.started else None
    since = server.last_activity or server.started
    idle_for = now - since if since else None
    if rule is not None and rule.cull is False:
        return Verdict(Action.KEEP, "excluded", rule_name, idle_for, age)
    if idle_for is None:
        return Verdict(Action.KEEP, "no-timestamps", rule_name)
    timeout = _pick(rule.timeout if rule else None, settings.timeout)
    max_age = _pick(rule.max_age if rule else None, settings.max_age)
    past_max_age = bool(max_age and age is not None and age >= timedelta(seconds=max_age))
    # an admin, or a user whose admin flag the token cannot read: doubt keeps
    spared = user.admin is not False and not settings.cull_admin_users
    if idle_for >= timedelta(seconds=timeout):
        check = settings.check_kernels if rule is None or rule.check_kernels is None \
            else rule.check_kernels
        # --max-age wins: a server past it is stopped whatever its kernels do
        ask = timeout if check and not (past_max_age and not spared) else None
        return Verdict(Action.STOP, "idle", rule_name, idle_for, age, ask)
    if past_max_age:
        if spared:
            return Verdict(Action.KEEP, "admin", rule_name, idle_for, age)
        return Verdict(Action.STOP, "max-age", rule_name, idle_for, age)
    return Verdict(Action.KEEP, "active", rule_name, idle_for, age)


def kernels_needed(verdict: Verdict, status: ServerStatus) -> bool:
    """After ``api/status``: is ``api/kernels`` worth asking for?

    Only while the server is still to be stopped and may run kernels: a server that reports
    no kernel cannot have a busy one, and one whose own activity keeps it needs no more.
    """
    return verdict.acts and status.kernel_states is None and status.kernels != 0


def judge_server_status(verdict: Verdict, status: ServerStatus, now: datetime) -> Verdict:
    """A second look, with the server's own word, at a stop that asked for one.

    The hub's ``last_activity`` lags the server's by up to its ``last_activity_interval``
    and never sees a long computation: the server is kept when one of its kernels is
    ``busy`` (reason ``kernel-busy``) or when its own ``last_activity`` is within the timeout
    (``server-active``). Any other verdict is returned as it is.
    """
    if verdict.action is not Action.STOP or verdict.check_within_s is None:
        return verdict
    own_idle = now - status.last_activity if status.last_activity else None
    if "busy" in (status.kernel_states or ()):
        return Verdict(Action.KEEP, "kernel-busy", verdict.rule, own_idle, verdict.age)
    if own_idle is not None and own_idle < timedelta(seconds=verdict.check_within_s):
        return Verdict(Action.KEEP, "server-active", verdict.rule, own_idle, verdict.age)
    return verdict


def judge_user(user: User, now: datetime, settings: CullSettings, servers_kept: bool) -> Verdict:
    """Decide whether the user record should be deleted once its idle servers are stopped.

    ``servers_kept`` says whether any server of the user is kept by ``judge_server``: a user
    with a server still alive is never deleted (the hub refuses while a server is stopping).
    The caller deletes only when every stop of this pass has finished. Judged on the model read
    before the stops, because the hub sets ``last_activity`` to now when it stops a server.
    """
    if not settings.cull_users:
        return Verdict(Action.KEEP, "cull-users-off")
    undecided = undecided_rule(settings.rules, user, None)
    if undecided is not None:
        return Verdict(Action.KEEP, GROUPS_UNKNOWN, undecided.name)
    rule = select_rule(settings.rules, user, None)
    rule_name = rule.name if rule else DEFAULT_RULE
    since = user.last_activity or user.created
    idle_for = now - since if since else None
    age = now - user.created if user.created else None
    if rule is not None and rule.cull is False:
        return Verdict(Action.KEEP, "excluded", rule_name, idle_for, age)
    if user.admin is not False and not settings.cull_admin_users:
        return Verdict(Action.KEEP, "admin", rule_name, idle_for, age)
    if servers_kept:
        return Verdict(Action.KEEP, "servers-alive", rule_name, idle_for, age)
    if idle_for is None:
        return Verdict(Action.KEEP, "no-timestamps", rule_name)
    timeout = _pick(rule.user_timeout if rule else None, rule.timeout if rule else None,
                    settings.timeout)
    max_age = _pick(rule.user_max_age if rule else None, rule.max_age if rule else None,
                    settings.max_age)
    if idle_for >= timedelta(seconds=timeout):
        return Verdict(Action.DELETE, "idle", rule_name, idle_for, age)
    if max_age and age is not None and age >= timedelta(seconds=max_age):
        return Verdict(Action.DELETE, "max-age", rule_name, idle_for, age)
    return Verdict(Action.KEEP, "active", rule_name, idle_for, age)


class PlannedUser(NamedTuple):
    """What a pass's plan would do to one user, as the mass-cull guard sees it: the idle time
    of each server to stop (in the job's order), and whether the user is to be deleted."""

    stops: Tuple[Optional[timedelta], ...] = ()
    deletes: bool = False
    idle_for: Optional[timedelta] = None  # the user's own, for the order of deletions


class GuardVerdict(NamedTuple):
    """What the mass-cull guard decides over the whole plan of a pass.

    The figures are users: ``stopping`` users with a planned stop out of ``running`` users
    with a running server, ``deleting`` users to delete out of ``listed`` users. ``held_stops``
    are (user index, stop index) pairs and ``held_deletions`` user indices that wait for the
    next pass; ``tripped`` means ``max_stop_fraction`` was exceeded: nothing at all is done.
    """

    stopping: int
    running: int
    deleting: int = 0
    listed: int = 0
    held_stops: FrozenSet[Tuple[int, int]] = frozenset()
    held_deletions: FrozenSet[int] = frozenset()
    tripped: bool = False


def guard_plan(planned: Sequence[PlannedUser], running: int, listed: int,
               settings: CullSettings) -> GuardVerdict:
    """Judge a pass's plan (one entry per user with an action) before anything is sent.

    When activity reporting breaks (a proxy or network change, a hub upgrade), every server
    and every user looks idle at once. The unit is the user, so that one user with many idle
    servers cannot hold every other user hostage. With ``max_stop_fraction`` F the plan is
    refused whole when more than F of the ``running`` users would have a server stopped, or
    more than F of the ``listed`` users would be deleted. Otherwise, with
    ``max_stops_per_pass`` N, only the N longest idle servers are stopped and the N longest
    idle users deleted (each kind its own count); the others wait for the next pass, and so
    does the deletion of a user whose stop is held back.
    """
    stopping = sum(1 for user in planned if user.stops)
    deleting = sum(1 for user in planned if user.deletes)
    limit = settings.max_stop_fraction
    if limit is not None and (stopping > limit * running or deleting > limit * listed):
        return GuardVerdict(stopping, running, deleting, listed,
                            frozenset((i, j) for i, user in enumerate(planned)
                                      for j in range(len(user.stops))),
                            frozenset(i for i, user in enumerate(planned) if user.deletes),
                            tripped=True)
    cap = settings.max_stops_per_pass
    if not cap:
        return GuardVerdict(stopping, running, deleting, listed)
    stops = [((i, j), idle) for i, user in enumerate(planned) for j, idle in enumerate(user.stops)]
    held_stops = frozenset(_beyond(stops, cap))
    waiting = {i for i, _ in held_stops}
    deletions = [(i, user.idle_for) for i, user in enumerate(planned)
                 if user.deletes and i not in waiting]
    held_deletions = frozenset(_beyond(deletions, cap)) | frozenset(
        i for i in waiting if planned[i].deletes)
    return GuardVerdict(stopping, running, deleting, listed, held_stops, held_deletions)


def _beyond(items: Sequence[Tuple[Any, Optional[timedelta]]], cap: Optional[int]) -> List[Any]:
    """The keys of ``items`` past the ``cap`` longest idle (an unknown idle time counts as 0)."""
    if not cap or len(items) <= cap:
        return []
    zero = timedelta(0)
    longest_first = sorted(items, key=lambda item: item[1] or zero, reverse=True)
    return [key for key, _ in longest_first[cap:]]
